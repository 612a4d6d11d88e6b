-- The leaf hashes alone, in order (docs/adr/0009): what a checkpoint reads to extend the
-- signed tree and a proof reads to build its path. In the table each leaf's row carries its
-- record (2 KB for a gate decision), so reading 50,000 hashes read every one of those pages
-- — ≈ 300 ms every 5 s at 10,000 decisions/s, a stall for everything sharing the cores. This
-- index holds ≈ 50 bytes per leaf, appended at its right edge.
CREATE INDEX audit_leaf_hashes ON audit_leaves (tenant_id, seq, leaf_hash);
