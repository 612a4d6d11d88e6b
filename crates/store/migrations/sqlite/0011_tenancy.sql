-- Tenants created through the API or `tollgate tenant add` (tenants named only in the
-- configuration file need no row), and memberships: a principal (by subject) may act in each
-- tenant it has a row in, with that row's role. See docs/adr/0012-memberships.md.
CREATE TABLE tenants (
    tenant_id  TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE memberships (
    tenant_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    role       TEXT NOT NULL,   -- admin | release_manager | operator | developer | viewer
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, subject)
);
-- Every request looks its principal's memberships up by subject.
CREATE INDEX memberships_by_subject ON memberships (subject, tenant_id);
