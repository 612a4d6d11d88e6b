-- API keys (see migrations/sqlite/0005). The key id is public and unique across tenants: a
-- presented key is found by its id alone, before any tenant is known.
CREATE TABLE api_keys (
    key_id        text COLLATE "C" PRIMARY KEY,
    tenant_id     text COLLATE "C" NOT NULL,
    name          text        NOT NULL,
    role          text        NOT NULL,
    secret_sha256 bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    created_by    text        NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
