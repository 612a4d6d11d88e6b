-- The inventory: one row per ADO object, its raw JSON kept as evidence.
CREATE TABLE inventory (
    tenant_id  TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    project    TEXT    NOT NULL,
    ado_id     TEXT    NOT NULL,
    name       TEXT,
    revision   TEXT,
    raw        TEXT    NOT NULL,
    synced_at  TEXT    NOT NULL,
    sync_run   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, kind, key)
);
CREATE INDEX inventory_by_scope ON inventory (tenant_id, kind, scope);
CREATE INDEX inventory_by_project ON inventory (tenant_id, project);

-- Pages land here first; a kind is swapped into `inventory` in one transaction when it is
-- complete, so a failed sync never leaves a half-written kind behind.
CREATE TABLE inventory_staging (
    run_id     INTEGER NOT NULL,
    tenant_id  TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    project    TEXT    NOT NULL,
    ado_id     TEXT    NOT NULL,
    name       TEXT,
    revision   TEXT,
    raw        TEXT    NOT NULL
);
CREATE INDEX inventory_staging_by_run ON inventory_staging (run_id, kind);

CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    mode        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL,
    summary     TEXT
);
CREATE INDEX sync_runs_by_tenant ON sync_runs (tenant_id, id);

CREATE TABLE watermarks (
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
