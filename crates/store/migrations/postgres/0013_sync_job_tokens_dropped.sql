-- Job tokens kept only for a callback yet to be posted, and none past ADO's 48 hours; see the
-- SQLite migration 14. The update runs as the owner, which forced row-level security would
-- confine to no tenant: lifted for this statement only, inside the migration's transaction.
ALTER TABLE gate_decisions NO FORCE ROW LEVEL SECURITY;
UPDATE gate_decisions
   SET callback_token = NULL
 WHERE callback_token IS NOT NULL
   AND (callback_state IS NULL
        OR callback_state IN ('sent', 'failed')
        OR decided_at < now() - interval '2 days');
ALTER TABLE gate_decisions FORCE ROW LEVEL SECURITY;
