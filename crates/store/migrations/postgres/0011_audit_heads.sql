-- The gate's hot statements in one round trip each (docs/adr/0014-gate-group-commit-and-memo.md).

-- Each audit log's next `seq` and last `logged`, one row per tenant, kept in the transaction
-- that appends. Finding the tip by `ORDER BY seq DESC LIMIT 1` over the leaves depends on the
-- planner: with statistics taken while a log was small it chose a bitmap scan and a sort of
-- every leaf of the tenant, on every append (seen under the gate benchmark). A row lock on
-- this row also replaces the per-tenant advisory lock: appends to one log queue up on it,
-- appends to different logs do not wait for each other.
CREATE TABLE audit_heads (
    tenant_id text COLLATE "C" PRIMARY KEY,
    next_seq  bigint      NOT NULL,
    -- NULL until the log's first append.
    logged    timestamptz
);
ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_heads
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
-- The backfill runs as the owner, which forced row-level security would confine to no tenant:
-- lifted for these statements only, inside the migration's transaction (as in migration 8).
ALTER TABLE audit_leaves NO FORCE ROW LEVEL SECURITY;
INSERT INTO audit_heads (tenant_id, next_seq, logged)
    SELECT tenant_id, max(seq) + 1, max(logged) FROM audit_leaves GROUP BY tenant_id;
ALTER TABLE audit_leaves FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;

-- Scope the caller's transaction to `tenant`, lock its log's head (creating it for a log's
-- first append) and return it. A SELECT … FOR UPDATE that waited for the lock returns the row
-- as the previous holder committed it (READ COMMITTED: the store begins every transaction so,
-- whatever the server's default; under REPEATABLE READ a contended append would fail).
-- Replicas of an older tollgate do not move the head: stop them before this migration.
-- SECURITY INVOKER (the default): row-level security applies to the caller as always.
CREATE FUNCTION tollgate_audit_head(tenant text)
RETURNS TABLE (next_seq bigint, logged timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant, true);
    RETURN QUERY
        SELECT h.next_seq, h.logged FROM audit_heads AS h WHERE h.tenant_id = tenant FOR UPDATE;
    IF NOT FOUND THEN
        -- The log's first append; a second one at the same time waits here for the first to
        -- commit, then finds its row.
        INSERT INTO audit_heads (tenant_id, next_seq, logged) VALUES (tenant, 0, NULL)
            ON CONFLICT (tenant_id) DO NOTHING;
        RETURN QUERY
            SELECT h.next_seq, h.logged FROM audit_heads AS h WHERE h.tenant_id = tenant FOR UPDATE;
    END IF;
END
$$;

-- A tenant's watermarks by name, scoped to the tenant for this statement alone: call it
-- outside a transaction, where the statement is its own and `set_config(…, true)` ends with
-- it (inside one it would scope the rest of that transaction). The gate reads two on every
-- check, and a transaction of its own (BEGIN with the scope, the SELECT, COMMIT) is three
-- round trips.
CREATE FUNCTION tollgate_watermarks(tenant text, wanted text[])
RETURNS TABLE (name text, value text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('app.tenant_id', tenant, true);
    RETURN QUERY
        SELECT w.name, w.value FROM watermarks AS w
        WHERE w.tenant_id = tenant AND w.name = ANY (wanted);
END
$$;
