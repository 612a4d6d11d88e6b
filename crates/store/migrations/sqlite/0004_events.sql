-- The service-hook pipeline (docs/adr/0003): webhook events as ADO delivered them, and the job
-- queue their processing runs on. Times here are fixed-width UTC text
-- (YYYY-MM-DDTHH:MM:SS.ffffffZ), so comparing and ordering the text compares the times.
-- AUTOINCREMENT: ids are never reused after pruning, so keyset pages and event → job links
-- stay unambiguous.

-- One row per event, its body kept byte for byte for inspection and replay.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT    NOT NULL,
    event_id        TEXT,              -- ADO's "id"; NULL never collides, so never a duplicate
    event_type      TEXT,
    subscription_id TEXT,
    status          TEXT    NOT NULL,  -- received | processed | failed | malformed | unknown
    body            BLOB    NOT NULL,
    error           TEXT,
    received_at     TEXT    NOT NULL,
    processed_at    TEXT,
    deliveries      INTEGER NOT NULL DEFAULT 1,  -- 1 + the redeliveries ADO made
    job_id          INTEGER                      -- the job processing it, shared when coalesced
);
-- ADO redelivers until it sees a 2xx; this is what recognises a redelivery.
-- ADO's ids are GUIDs; the type is part of the key because published samples (and
-- anonymised replays) reuse one id across event types.
CREATE UNIQUE INDEX events_dedupe ON events (tenant_id, event_id, event_type);
CREATE INDEX events_by_tenant ON events (tenant_id, id);
CREATE INDEX events_by_status ON events (tenant_id, status, id);
CREATE INDEX events_by_received ON events (received_at);
CREATE INDEX events_by_job ON events (tenant_id, job_id);

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,  -- JSON
    dedupe_key   TEXT,
    status       TEXT    NOT NULL,  -- queued | running | done | dead
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_after    TEXT    NOT NULL,
    lease_owner  TEXT,
    lease_until  TEXT,
    last_error   TEXT,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
);
-- Claiming reads due queued jobs in run_after order, and running jobs whose lease expired.
CREATE INDEX jobs_claimable ON jobs (status, run_after, id);
CREATE INDEX jobs_by_lease ON jobs (status, lease_until);
-- Enqueueing looks for a queued job to coalesce into. Not unique: a failed job going back to
-- the queue may meet a newer queued one with the same key, and that is harmless.
CREATE INDEX jobs_dedupe ON jobs (tenant_id, kind, dedupe_key)
    WHERE status = 'queued' AND dedupe_key IS NOT NULL;
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, id);
CREATE INDEX jobs_by_status ON jobs (tenant_id, status, id);
