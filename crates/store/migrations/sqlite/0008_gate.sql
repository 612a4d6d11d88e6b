-- Gate decisions and approvals (crates/store/src/gate.rs). Each row keeps its document as
-- JSON, plus the columns queries filter, order and lock by. Times are fixed-width UTC text.
CREATE TABLE gate_decisions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    decision_key   TEXT NOT NULL,
    decided_at     TEXT NOT NULL,
    environment    TEXT NOT NULL,
    verdict        TEXT NOT NULL,
    approval_id    TEXT,
    callback_state TEXT,
    -- ADO's job access token, kept only until the callback is posted; never in `document`.
    callback_token TEXT,
    document       TEXT NOT NULL,
    UNIQUE (tenant_id, decision_key)
);
CREATE INDEX gate_decisions_by_time ON gate_decisions (tenant_id, decided_at);

CREATE TABLE approvals (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    decision_id  TEXT NOT NULL REFERENCES gate_decisions (id),
    state        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    document     TEXT NOT NULL
);
CREATE INDEX approvals_by_state ON approvals (tenant_id, state, expires_at);
CREATE INDEX approvals_by_time ON approvals (tenant_id, created_at);
