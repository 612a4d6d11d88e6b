-- API keys: `tg_{key_id}_{secret}`. Only a SHA-256 of the secret is kept; the key id is public
-- (it appears in listings, logs and audit records) and unique across all tenants, so a
-- presented key is found by its id alone and then acts in the tenant stored here.
CREATE TABLE api_keys (
    key_id        TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,   -- admin | release_manager | operator | developer | viewer
    secret_sha256 BLOB NOT NULL,   -- 32 bytes
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    last_used_at  TEXT
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
