-- Registered tenants and memberships (see migrations/sqlite/0009 and
-- docs/adr/0012-memberships.md). Both hold tenant rows under the same row-level security as
-- every other table (migration 6): a registration or a membership is written, changed,
-- removed and listed in a transaction scoped to its own tenant, so a bug in the code that
-- administers tenant A cannot touch tenant B's members. Two reads span tenants by design and
-- get an `across_tenants` SELECT policy, like api_keys:
--   memberships  SELECT  a request's principal is looked up by subject before its tenant is
--                        chosen (the lookup decides which tenants it may choose)
--   tenants      SELECT  operators list every registered tenant
CREATE TABLE tenants (
    tenant_id  text COLLATE "C" PRIMARY KEY,
    created_at timestamptz NOT NULL,
    created_by text        NOT NULL
);

CREATE TABLE memberships (
    tenant_id  text COLLATE "C" NOT NULL,
    subject    text COLLATE "C" NOT NULL,
    role       text        NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text        NOT NULL,
    PRIMARY KEY (tenant_id, subject)
);
CREATE INDEX memberships_by_subject ON memberships (subject, tenant_id);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY across_tenants_read ON tenants FOR SELECT
    USING (current_setting('app.across_tenants', true) = 'on');

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
CREATE POLICY across_tenants_read ON memberships FOR SELECT
    USING (current_setting('app.across_tenants', true) = 'on');
