-- What each incremental sync changed: a row per inserted, modified or deleted object, so that
-- evaluation can judge only what changed (and what depends on it). Full syncs record nothing:
-- they are followed by a full evaluation. Consumers prune what they have processed.
CREATE TABLE inventory_changes (
    tenant_id  TEXT    NOT NULL,
    run_id     INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    project    TEXT    NOT NULL,
    deleted    INTEGER NOT NULL
);
CREATE INDEX inventory_changes_by_run ON inventory_changes (tenant_id, run_id);

-- Work-item parents are looked up by ADO id across projects.
CREATE INDEX inventory_by_ado_id ON inventory (tenant_id, kind, ado_id);
