-- Gate decisions and approvals (crates/store/src/gate.rs); see the SQLite migration 8.
CREATE TABLE gate_decisions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    decision_key   TEXT NOT NULL,
    decided_at     TIMESTAMPTZ NOT NULL,
    environment    TEXT NOT NULL,
    verdict        TEXT NOT NULL,
    approval_id    TEXT,
    callback_state TEXT,
    -- ADO's job access token, kept only until the callback is posted; never in `document`.
    callback_token TEXT,
    document       JSONB NOT NULL,
    UNIQUE (tenant_id, decision_key)
);
CREATE INDEX gate_decisions_by_time ON gate_decisions (tenant_id, decided_at);

CREATE TABLE approvals (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    decision_id  TEXT NOT NULL REFERENCES gate_decisions (id),
    state        TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    document     JSONB NOT NULL
);
CREATE INDEX approvals_by_state ON approvals (tenant_id, state, expires_at);
CREATE INDEX approvals_by_time ON approvals (tenant_id, created_at);

-- Row-level security as for every other table (migration 6).
ALTER TABLE gate_decisions ENABLE ROW LEVEL SECURITY;
ALTER TABLE gate_decisions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON gate_decisions
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
ALTER TABLE approvals ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON approvals
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
