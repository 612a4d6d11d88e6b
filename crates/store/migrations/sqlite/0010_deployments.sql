-- Deployments queued through tollgate (crates/store/src/deployments.rs): the document as
-- JSON, plus the columns queries filter and order by. Times are fixed-width UTC text.
CREATE TABLE deployments (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    environment TEXT NOT NULL,
    project     TEXT NOT NULL,
    project_id  TEXT,
    pipeline_id INTEGER NOT NULL,
    run_id      INTEGER NOT NULL,
    state       TEXT NOT NULL,
    document    TEXT NOT NULL
);
CREATE INDEX deployments_by_time ON deployments (tenant_id, created_at);
CREATE INDEX deployments_by_environment ON deployments (tenant_id, environment, created_at);
