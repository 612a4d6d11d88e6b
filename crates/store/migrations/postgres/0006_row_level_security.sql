-- Row-level security (docs/adr/0010-postgresql-store.md): every table holds one tenant's rows, and a transaction
-- sees and writes only the rows of the tenant it named first with
-- `SELECT set_config('app.tenant_id', $1, true)` (transaction-local, so a pooled connection
-- never carries it into the next transaction). NULLIF: once set in a session the setting
-- reads '' outside a transaction that set it, and '' must match nothing. FORCE: the owner is
-- subject too (superusers and BYPASSRLS roles never are; the store refuses to run as one).
--
-- The exceptions, each a policy of its own, opened only by a transaction that also says
-- `set_config('app.across_tenants', 'on', true)`, and never for INSERT (a new row always
-- carries the transaction's tenant):
--   jobs          SELECT, UPDATE, DELETE  workers claim, lease, finish and prune jobs of every tenant
--   events        SELECT, DELETE          retention prunes events of every tenant
--   api_keys      SELECT, UPDATE          a presented key is found by its public id before any
--                                         tenant is known; the bootstrap counts every tenant's keys
--   audit_leaves  SELECT                  the list of tenants that have an audit log
DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY[
        'inventory', 'inventory_staging', 'sync_runs', 'watermarks', 'inventory_changes',
        'findings', 'waivers', 'events', 'jobs', 'api_keys', 'audit_leaves',
        'audit_checkpoints', 'audit_sink_cursors'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I '
            'USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), '''')) '
            'WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), ''''))',
            tenant_table);
    END LOOP;
END
$$;

CREATE POLICY across_tenants_read ON jobs FOR SELECT
    USING (current_setting('app.across_tenants', true) = 'on');
CREATE POLICY across_tenants_update ON jobs FOR UPDATE
    USING (current_setting('app.across_tenants', true) = 'on')
    WITH CHECK (current_setting('app.across_tenants', true) = 'on');
CREATE POLICY across_tenants_delete ON jobs FOR DELETE
    USING (current_setting('app.across_tenants', true) = 'on');

CREATE POLICY across_tenants_read ON events FOR SELECT
    USING (current_setting('app.across_tenants', true) = 'on');
CREATE POLICY across_tenants_delete ON events FOR DELETE
    USING (current_setting('app.across_tenants', true) = 'on');

CREATE POLICY across_tenants_read ON api_keys FOR SELECT
    USING (current_setting('app.across_tenants', true) = 'on');
CREATE POLICY across_tenants_update ON api_keys FOR UPDATE
    USING (current_setting('app.across_tenants', true) = 'on')
    WITH CHECK (current_setting('app.across_tenants', true) = 'on');

CREATE POLICY across_tenants_read ON audit_leaves FOR SELECT
    USING (current_setting('app.across_tenants', true) = 'on');
