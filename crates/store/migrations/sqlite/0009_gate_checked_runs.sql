-- The run and the source of each gate decision as columns (crates/store/src/gate.rs,
-- `GateStore::check_decisions`): bypass detection matches every deployment record against the
-- decisions ADO's check received, on each evaluation, without reading the documents.
ALTER TABLE gate_decisions ADD COLUMN source TEXT;
ALTER TABLE gate_decisions ADD COLUMN run_id INTEGER;
UPDATE gate_decisions
   SET source = json_extract(document, '$.source'),
       run_id = json_extract(document, '$.run_id');
CREATE INDEX gate_decisions_by_source ON gate_decisions (tenant_id, source, decided_at);
