//! A small, embedded migration runner: numbered SQL files compiled into the binary, applied
//! in order inside one transaction each, recorded in `schema_migrations`. Migrations are
//! never edited once released; a database newer than the binary is refused.

pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "inventory",
        sql: include_str!("../migrations/sqlite/0001_inventory.sql"),
    },
    Migration {
        version: 2,
        name: "findings",
        sql: include_str!("../migrations/sqlite/0002_findings.sql"),
    },
    Migration {
        version: 3,
        name: "changes",
        sql: include_str!("../migrations/sqlite/0003_changes.sql"),
    },
    Migration {
        version: 4,
        name: "events",
        sql: include_str!("../migrations/sqlite/0004_events.sql"),
    },
    Migration {
        version: 5,
        name: "api_keys",
        sql: include_str!("../migrations/sqlite/0005_api_keys.sql"),
    },
    Migration {
        version: 6,
        name: "event_bodies",
        sql: include_str!("../migrations/sqlite/0006_event_bodies.sql"),
    },
    Migration {
        version: 7,
        name: "audit",
        sql: include_str!("../migrations/sqlite/0007_audit.sql"),
    },
    Migration {
        version: 8,
        name: "gate",
        sql: include_str!("../migrations/sqlite/0008_gate.sql"),
    },
    Migration {
        version: 9,
        name: "gate_checked_runs",
        sql: include_str!("../migrations/sqlite/0009_gate_checked_runs.sql"),
    },
    Migration {
        version: 10,
        name: "deployments",
        sql: include_str!("../migrations/sqlite/0010_deployments.sql"),
    },
    Migration {
        version: 11,
        name: "tenancy",
        sql: include_str!("../migrations/sqlite/0011_tenancy.sql"),
    },
    Migration {
        version: 12,
        name: "audit_leaf_hashes",
        sql: include_str!("../migrations/sqlite/0012_audit_leaf_hashes.sql"),
    },
    Migration {
        version: 13,
        name: "audit_leaves_rowid",
        sql: include_str!("../migrations/sqlite/0013_audit_leaves_rowid.sql"),
    },
    Migration {
        version: 14,
        name: "sync_job_tokens_dropped",
        sql: include_str!("../migrations/sqlite/0014_sync_job_tokens_dropped.sql"),
    },
];

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "inventory",
        sql: include_str!("../migrations/postgres/0001_inventory.sql"),
    },
    Migration {
        version: 2,
        name: "findings",
        sql: include_str!("../migrations/postgres/0002_findings.sql"),
    },
    Migration {
        version: 3,
        name: "events",
        sql: include_str!("../migrations/postgres/0003_events.sql"),
    },
    Migration {
        version: 4,
        name: "api_keys",
        sql: include_str!("../migrations/postgres/0004_api_keys.sql"),
    },
    Migration {
        version: 5,
        name: "audit",
        sql: include_str!("../migrations/postgres/0005_audit.sql"),
    },
    Migration {
        version: 6,
        name: "row_level_security",
        sql: include_str!("../migrations/postgres/0006_row_level_security.sql"),
    },
    Migration {
        version: 7,
        name: "gate",
        sql: include_str!("../migrations/postgres/0007_gate.sql"),
    },
    Migration {
        version: 8,
        name: "gate_checked_runs",
        sql: include_str!("../migrations/postgres/0008_gate_checked_runs.sql"),
    },
    Migration {
        version: 9,
        name: "deployments",
        sql: include_str!("../migrations/postgres/0009_deployments.sql"),
    },
    Migration {
        version: 10,
        name: "tenancy",
        sql: include_str!("../migrations/postgres/0010_tenancy.sql"),
    },
    Migration {
        version: 11,
        name: "audit_heads",
        sql: include_str!("../migrations/postgres/0011_audit_heads.sql"),
    },
    Migration {
        version: 12,
        name: "inline_rows",
        sql: include_str!("../migrations/postgres/0012_inline_rows.sql"),
    },
    Migration {
        version: 13,
        name: "sync_job_tokens_dropped",
        sql: include_str!("../migrations/postgres/0013_sync_job_tokens_dropped.sql"),
    },
];

/// Every PostgreSQL table that holds tenant rows: each has `tenant_id` and row-level security
/// on and forced (migration 6), and the app role may read and write it.
pub(crate) const POSTGRES_TENANT_TABLES: &[&str] = &[
    "inventory",
    "inventory_staging",
    "sync_runs",
    "watermarks",
    "inventory_changes",
    "findings",
    "waivers",
    "events",
    "jobs",
    "api_keys",
    "audit_leaves",
    "audit_heads",
    "gate_decisions",
    "approvals",
    "deployments",
    "audit_checkpoints",
    "audit_sink_cursors",
    "tenants",
    "memberships",
];
