-- The audit log (see migrations/sqlite/0007). seq is gap-free per tenant: every append takes
-- a per-tenant advisory lock in its transaction before reading the last seq.
CREATE TABLE audit_leaves (
    tenant_id  text COLLATE "C" NOT NULL,
    seq        bigint      NOT NULL,
    record_id  text        NOT NULL,
    event_type text        NOT NULL,
    time       timestamptz NOT NULL,
    logged     timestamptz NOT NULL,
    leaf_hash  bytea       NOT NULL,
    bytes      bytea,
    dedupe_key text,
    PRIMARY KEY (tenant_id, seq)
);
CREATE UNIQUE INDEX audit_by_record ON audit_leaves (tenant_id, record_id);
CREATE UNIQUE INDEX audit_by_source ON audit_leaves (tenant_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE INDEX audit_by_type ON audit_leaves (tenant_id, event_type, seq);

CREATE TABLE audit_checkpoints (
    tenant_id text COLLATE "C" NOT NULL,
    size      bigint      NOT NULL,
    root      bytea       NOT NULL,
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, signed_at, size)
);

CREATE TABLE audit_sink_cursors (
    tenant_id  text COLLATE "C" NOT NULL,
    sink       text        NOT NULL,
    next_seq   bigint      NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, sink)
);
