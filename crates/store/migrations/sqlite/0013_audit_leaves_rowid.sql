-- The audit log's leaves in a table with rowids (docs/adr/0014). In a table without rowids,
-- SQLite keeps at most ≈ 1,000 bytes of a row on its b-tree page (a 4 KB page's quarter) and
-- moves the rest to an overflow page of its own: each 2 KB gate decision record took ≈ 1.5
-- pages of the file and of the write-ahead log. A table with rowids keeps rows up to ≈ 4,000
-- bytes on the page, where records, packed when large (crates/store/src/sqlite_pack.rs),
-- share pages three or four at a time. (tenant_id, seq) stays the key, now as a unique index.
-- Stored bytes are copied as they are; rows written from now on may be packed.
CREATE TABLE audit_leaves_with_rowid (
    tenant_id  TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    record_id  TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    time       TEXT    NOT NULL,
    logged     TEXT    NOT NULL,   -- non-decreasing per tenant
    leaf_hash  BLOB    NOT NULL,
    bytes      BLOB,               -- NULL: payload withheld by retention; else JCS, maybe packed
    dedupe_key TEXT,               -- a source's own id (ADO audit entries)
    PRIMARY KEY (tenant_id, seq)
);
INSERT INTO audit_leaves_with_rowid
    (tenant_id, seq, record_id, event_type, time, logged, leaf_hash, bytes, dedupe_key)
    SELECT tenant_id, seq, record_id, event_type, time, logged, leaf_hash, bytes, dedupe_key
      FROM audit_leaves ORDER BY tenant_id, seq;
DROP TABLE audit_leaves;
ALTER TABLE audit_leaves_with_rowid RENAME TO audit_leaves;
CREATE UNIQUE INDEX audit_by_record ON audit_leaves (tenant_id, record_id);
CREATE UNIQUE INDEX audit_by_source ON audit_leaves (tenant_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE INDEX audit_by_type ON audit_leaves (tenant_id, event_type, seq);
CREATE INDEX audit_leaf_hashes ON audit_leaves (tenant_id, seq, leaf_hash);
