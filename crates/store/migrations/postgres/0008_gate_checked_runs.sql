-- The run and the source of each gate decision as columns; see the SQLite migration 9.
ALTER TABLE gate_decisions ADD COLUMN source TEXT;
ALTER TABLE gate_decisions ADD COLUMN run_id BIGINT;
-- The backfill runs as the owner, which forced row-level security would confine to no tenant:
-- lifted for this statement only, inside the migration's transaction.
ALTER TABLE gate_decisions NO FORCE ROW LEVEL SECURITY;
UPDATE gate_decisions
   SET source = document->>'source',
       run_id = (document->>'run_id')::bigint;
ALTER TABLE gate_decisions FORCE ROW LEVEL SECURITY;
CREATE INDEX gate_decisions_by_source ON gate_decisions (tenant_id, source, decided_at);
