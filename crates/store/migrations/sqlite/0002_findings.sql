-- Findings: one row per (control, resource), with a lifecycle.
CREATE TABLE findings (
    tenant_id     TEXT NOT NULL,
    control       TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    resource_key  TEXT NOT NULL,
    resource_name TEXT,
    project       TEXT NOT NULL,
    severity      TEXT NOT NULL,
    status        TEXT NOT NULL,   -- open | fixed | waived | reopened
    action        TEXT NOT NULL,   -- deny | warn | dry-run: what the finding does
    message       TEXT NOT NULL,
    evidence      TEXT NOT NULL,   -- JSON
    first_seen    TEXT NOT NULL,
    last_seen     TEXT NOT NULL,
    fixed_at      TEXT,
    waiver_id     INTEGER,
    PRIMARY KEY (tenant_id, control, resource_kind, resource_key)
);
CREATE INDEX findings_by_status ON findings (tenant_id, status);

-- Risk acceptances: a control waived for a resource key or a key prefix, until an expiry.
CREATE TABLE waivers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    control     TEXT NOT NULL,
    scope       TEXT NOT NULL,     -- a resource key, a key prefix ending in '*', or '*'
    owner       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX waivers_by_tenant ON waivers (tenant_id, control);
