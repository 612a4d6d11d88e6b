-- The tamper-evident audit log (docs/adr/0009): one Merkle log per tenant. A leaf's bytes are
-- its record in canonical (JCS) form, stored verbatim, and its hash is what the tree is built
-- from. seq is the leaf index: gap-free per tenant, assigned under SQLite's single writer in
-- the transaction that stores the record. Retention withholds bytes (NULL) and keeps hashes.
CREATE TABLE audit_leaves (
    tenant_id  TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    record_id  TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    time       TEXT    NOT NULL,
    logged     TEXT    NOT NULL,   -- non-decreasing per tenant
    leaf_hash  BLOB    NOT NULL,
    bytes      BLOB,               -- NULL: payload withheld by retention
    dedupe_key TEXT,               -- a source's own id (ADO audit entries)
    PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX audit_by_record ON audit_leaves (tenant_id, record_id);
CREATE UNIQUE INDEX audit_by_source ON audit_leaves (tenant_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE INDEX audit_by_type ON audit_leaves (tenant_id, event_type, seq);

-- Every signed checkpoint, kept forever (~200 bytes each): external copies are checked
-- against them. Heartbeats repeat a size with a newer signature.
CREATE TABLE audit_checkpoints (
    tenant_id TEXT    NOT NULL,
    size      INTEGER NOT NULL,
    root      BLOB    NOT NULL,
    note      TEXT    NOT NULL,
    signed_at TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, signed_at, size)
) WITHOUT ROWID;

-- Each SIEM sink's position: the next seq it has not delivered.
CREATE TABLE audit_sink_cursors (
    tenant_id TEXT    NOT NULL,
    sink      TEXT    NOT NULL,
    next_seq  INTEGER NOT NULL,
    updated_at TEXT   NOT NULL,
    PRIMARY KEY (tenant_id, sink)
) WITHOUT ROWID;
