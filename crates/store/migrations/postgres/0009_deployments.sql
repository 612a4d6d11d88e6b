-- Deployments queued through tollgate (crates/store/src/deployments.rs); see the SQLite
-- migration 9.
CREATE TABLE deployments (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    environment TEXT NOT NULL,
    project     TEXT NOT NULL,
    project_id  TEXT,
    pipeline_id BIGINT NOT NULL,
    run_id      BIGINT NOT NULL,
    state       TEXT NOT NULL,
    document    JSONB NOT NULL
);
CREATE INDEX deployments_by_time ON deployments (tenant_id, created_at);
CREATE INDEX deployments_by_environment ON deployments (tenant_id, environment, created_at);

-- Row-level security as for every other table (migration 6).
ALTER TABLE deployments ENABLE ROW LEVEL SECURITY;
ALTER TABLE deployments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON deployments
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
