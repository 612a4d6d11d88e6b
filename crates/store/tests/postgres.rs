//! What only PostgreSQL has: row-level security under the store, the two-role setup and the
//! start-up refusals (docs/adr/0010-postgresql-store.md). Each test prints a notice and passes when
//! `TOLLGATE_TEST_POSTGRES_URL` / `TOLLGATE_TEST_POSTGRES_OWNER_URL` are not set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

mod common;

use std::sync::Arc;

use common::{Fixture, PlainEncoder, fresh_database, postgres_urls, role_of, with_database};
use serde_json::{Map, json};
use sqlx::{Connection, PgConnection, Row};
use time::macros::datetime;
use tollgate_domain::{InventoryItem, ResourceKind, TenantId};
use tollgate_store::{
    AuditDraft, NewEvent, NewJob, PostgresStore, Replace, StoreError, StoredApiKey, SyncMode,
};

/// Every table that holds tenant rows (`every_table_is_in_the_row_level_security_tests` checks
/// the database has no other).
const TENANT_TABLES: &[&str] = &[
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
    "audit_checkpoints",
    "audit_sink_cursors",
    "gate_decisions",
    "approvals",
    "tenants",
    "memberships",
    "deployments",
];

fn draft(event_type: &str) -> AuditDraft {
    AuditDraft {
        encoded: Default::default(),
        event_type: event_type.to_owned(),
        time: datetime!(2026-05-04 12:00 UTC),
        fields: Map::new(),
        dedupe_key: None,
    }
}

fn app_url(fixture: &Fixture) -> &str {
    match &fixture.backend {
        common::Backend::Postgres { app_url, .. } => app_url,
        common::Backend::Sqlite { .. } => unreachable!("a PostgreSQL fixture"),
    }
}

fn owner_url(fixture: &Fixture) -> &str {
    match &fixture.backend {
        common::Backend::Postgres { owner_url, .. } => owner_url,
        common::Backend::Sqlite { .. } => unreachable!("a PostgreSQL fixture"),
    }
}

/// Rows of one tenant in every table, written through the store.
/// Tenants `tenant-a` and `tenant-b`, each with a row in every tenant table.
async fn two_filled_tenants(fixture: &Fixture) -> (TenantId, TenantId) {
    fixture
        .store
        .set_leaf_encoder(Arc::new(PlainEncoder))
        .unwrap();
    let a = TenantId::parse("tenant-a").unwrap();
    let b = TenantId::parse("tenant-b").unwrap();
    fill(fixture, &a).await;
    fill(fixture, &b).await;
    (a, b)
}

async fn fill(fixture: &Fixture, tenant: &TenantId) {
    let store = &*fixture.store;
    let run = store
        .begin_sync(tenant, SyncMode::Incremental)
        .await
        .unwrap();
    let item = InventoryItem {
        kind: ResourceKind::Projects,
        key: InventoryItem::key_for("", "p"),
        scope: String::new(),
        project: String::new(),
        ado_id: "p".to_owned(),
        name: None,
        revision: None,
        raw: "{}".to_owned(),
    };
    store
        .stage(tenant, run.id, std::slice::from_ref(&item))
        .await
        .unwrap();
    store
        .commit_kind(
            tenant,
            run.id,
            ResourceKind::Projects,
            &Replace::all(),
            &[("w".into(), "1".into())],
        )
        .await
        .unwrap();
    // Left staged on purpose, so inventory_staging has a row too.
    store.stage(tenant, run.id, &[item]).await.unwrap();
    store
        .apply_observations(
            tenant,
            &[tollgate_store::Observation {
                control: "C-1".into(),
                resource_kind: ResourceKind::Projects,
                resource_key: "/p".into(),
                resource_name: None,
                project: String::new(),
                severity: "high".into(),
                action: "deny".into(),
                message: "m".into(),
                evidence: json!({}),
            }],
            &tollgate_store::Coverage::default(),
            datetime!(2026-05-04 12:00 UTC),
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    store
        .add_waiver(
            tenant,
            &tollgate_store::NewWaiver {
                control: "C-2".into(),
                scope: "*".into(),
                owner: "o".into(),
                reason: "r".into(),
                expires_at: datetime!(2030-01-01 0:00 UTC),
            },
            &[],
        )
        .await
        .unwrap();
    store
        .ingest(
            &[NewEvent {
                tenant: tenant.clone(),
                event_id: Some(format!("{tenant}-event")),
                event_type: Some("git.push".into()),
                subscription_id: None,
                status: tollgate_store::EventStatus::Received,
                body: b"{}".to_vec(),
                error: None,
                received_at: datetime!(2026-05-04 12:00 UTC),
                job: Some(NewJob {
                    kind: "event.process".into(),
                    payload: json!({}),
                    dedupe_key: None,
                    run_after: datetime!(2026-05-04 12:00 UTC),
                    max_attempts: 3,
                }),
            }],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    store
        .insert_api_key(
            &StoredApiKey {
                key_id: format!("KEY-{tenant}"),
                tenant: tenant.clone(),
                name: "k".into(),
                role: "viewer".into(),
                secret_sha256: [1; 32],
                created_at: datetime!(2026-05-04 12:00 UTC),
                created_by: "test".into(),
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
            },
            &[draft("api_key.created")],
        )
        .await
        .unwrap();
    store
        .add_checkpoint(
            tenant,
            &tollgate_store::StoredCheckpoint {
                size: 1,
                root: [2; 32],
                note: "n".into(),
                signed_at: datetime!(2026-05-04 12:00 UTC),
            },
        )
        .await
        .unwrap();
    store.set_sink_cursor(tenant, "syslog", 1).await.unwrap();
    let decision = tollgate_store::gate::GateDecision {
        id: format!("{tenant}-decision"),
        key: "ado:1".into(),
        source: "ado-check".into(),
        mode: "sync".into(),
        verdict: tollgate_store::gate::Verdict::Approval,
        project: "p".into(),
        environment: "production".into(),
        pipeline: None,
        run_id: None,
        requested_by: None,
        findings: tollgate_domain::CanonicalJson::new(&json!([])).unwrap(),
        input: tollgate_domain::CanonicalJson::new(&json!({})).unwrap(),
        callback: None,
        callback_state: None,
        approval_id: Some(format!("{tenant}-approval")),
        decided_at: datetime!(2026-05-04 12:00 UTC),
    };
    let approval = tollgate_store::gate::Approval {
        id: format!("{tenant}-approval"),
        decision_id: decision.id.clone(),
        state: tollgate_store::gate::ApprovalState::Pending,
        project: "p".into(),
        environment: "production".into(),
        pipeline: None,
        run_id: None,
        requested_by: None,
        reasons: Vec::new(),
        quorum: 1,
        approver_role: "release_manager".into(),
        votes: Vec::new(),
        created_at: datetime!(2026-05-04 12:00 UTC),
        expires_at: datetime!(2030-01-01 0:00 UTC),
        closed_at: None,
        closed_by: None,
    };
    store
        .record_decision(
            tenant,
            &tollgate_store::gate::NewDecision {
                decision,
                callback_token: None,
                approval: Some(approval),
                callback_job: None,
                notices: Vec::new(),
            },
            &[],
        )
        .await
        .unwrap();
    store
        .register_tenant(
            &tollgate_store::StoredTenant {
                tenant: tenant.clone(),
                created_at: datetime!(2026-05-04 12:00 UTC),
                created_by: "test".into(),
            },
            &[],
        )
        .await
        .unwrap();
    store
        .put_membership(
            &tollgate_store::StoredMembership {
                tenant: tenant.clone(),
                subject: "oidc:t:someone".into(),
                role: "viewer".into(),
                created_at: datetime!(2026-05-04 12:00 UTC),
                created_by: "test".into(),
            },
            &[],
        )
        .await
        .unwrap();
    store
        .record_deployment(
            tenant,
            &tollgate_store::deployments::Deployment {
                id: format!("dp_{tenant}"),
                kind: tollgate_store::deployments::DeploymentKind::Deploy,
                project: "p".into(),
                project_id: None,
                pipeline_id: 1,
                pipeline: None,
                environment: "production".into(),
                ref_name: None,
                version: None,
                source_version: None,
                parameters: Default::default(),
                run_id: 1,
                run_name: None,
                run_url: None,
                rollback_of: None,
                requested_by: "test".into(),
                decision_id: None,
                verdict: tollgate_store::gate::Verdict::Allow,
                state: tollgate_store::deployments::RunState::InProgress,
                result: None,
                created_at: datetime!(2026-05-04 12:00 UTC),
                updated_at: datetime!(2026-05-04 12:00 UTC),
                finished_at: None,
            },
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn every_table_is_in_the_row_level_security_tests() {
    let Some(fixture) = Fixture::postgres("every_table").await else {
        return;
    };
    let mut connection = PgConnection::connect(owner_url(&fixture)).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
         AND tablename <> 'schema_migrations' ORDER BY tablename",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let mut listed: Vec<String> = TENANT_TABLES.iter().map(|t| (*t).to_owned()).collect();
    listed.sort();
    assert_eq!(
        tables, listed,
        "a table the row-level security tests do not fill and query"
    );
}

/// Row counts per table as the app role sees them in one transaction, after `setup` ran in it.
async fn visible_rows(url: &str, setup: &str) -> Vec<(String, i64, i64)> {
    let mut connection = PgConnection::connect(url).await.unwrap();
    let mut transaction = connection.begin().await.unwrap();
    if !setup.is_empty() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(setup.to_owned()))
            .execute(&mut *transaction)
            .await
            .unwrap();
    }
    let mut counts = Vec::new();
    for table in TENANT_TABLES {
        // Deliberately no tenant filter: this is the query that forgot its scope.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS all_rows, COUNT(*) FILTER (WHERE tenant_id = 'tenant-a') AS a_rows FROM {table}"
        )))
        .fetch_one(&mut *transaction)
        .await
        .unwrap();
        counts.push((
            (*table).to_owned(),
            row.get::<i64, _>("all_rows"),
            row.get::<i64, _>("a_rows"),
        ));
    }
    transaction.rollback().await.unwrap();
    counts
}

#[tokio::test]
async fn row_level_security_hides_other_tenants_rows_from_a_query_that_forgets_its_scope() {
    let Some(fixture) = Fixture::postgres("rls_hides").await else {
        return;
    };
    two_filled_tenants(&fixture).await;

    let as_a = visible_rows(
        app_url(&fixture),
        "SELECT set_config('app.tenant_id', 'tenant-a', true)",
    )
    .await;
    for (table, all_rows, a_rows) in &as_a {
        assert!(*a_rows > 0, "{table}: tenant a wrote rows");
        assert_eq!(
            all_rows, a_rows,
            "{table}: only tenant a's rows are visible"
        );
    }
    let as_b = visible_rows(
        app_url(&fixture),
        "SELECT set_config('app.tenant_id', 'tenant-b', true)",
    )
    .await;
    for (table, all_rows, a_rows) in &as_b {
        assert!(*all_rows > 0, "{table}: tenant b has rows of its own");
        assert_eq!(
            *a_rows, 0,
            "{table}: none of tenant a's rows are visible to b"
        );
    }
    let without_tenant = visible_rows(app_url(&fixture), "").await;
    for (table, all_rows, _) in &without_tenant {
        assert_eq!(
            *all_rows, 0,
            "{table}: no tenant named, no rows (fails closed)"
        );
    }
    // The owner is bound too (FORCE ROW LEVEL SECURITY).
    let owner_as_a = visible_rows(
        owner_url(&fixture),
        "SELECT set_config('app.tenant_id', 'tenant-a', true)",
    )
    .await;
    assert_eq!(owner_as_a, as_a);
}

#[tokio::test]
async fn row_level_security_refuses_writes_to_another_tenant() {
    let Some(fixture) = Fixture::postgres("rls_refuses").await else {
        return;
    };
    fixture
        .store
        .set_leaf_encoder(Arc::new(PlainEncoder))
        .unwrap();
    let b = TenantId::parse("tenant-b").unwrap();
    fill(&fixture, &b).await;
    let mut connection = PgConnection::connect(app_url(&fixture)).await.unwrap();

    let mut transaction = connection.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'tenant-a', true)")
        .execute(&mut *transaction)
        .await
        .unwrap();
    let error = sqlx::query(
        "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES ('tenant-b', 'x', 'y', now())",
    )
    .execute(&mut *transaction)
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("row-level security"),
        "an insert for b is refused: {error}"
    );
    transaction.rollback().await.unwrap();

    let mut transaction = connection.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'tenant-a', true)")
        .execute(&mut *transaction)
        .await
        .unwrap();
    for statement in [
        "UPDATE inventory SET raw = 'tampered'",
        "UPDATE api_keys SET role = 'admin'",
        "DELETE FROM audit_leaves",
        "DELETE FROM events",
        "UPDATE jobs SET status = 'dead'",
        "UPDATE approvals SET state = 'approved'",
        "DELETE FROM gate_decisions",
        "UPDATE memberships SET role = 'admin'",
        "DELETE FROM memberships",
        "DELETE FROM tenants",
        "UPDATE deployments SET state = 'completed'",
    ] {
        let touched = sqlx::query(statement)
            .execute(&mut *transaction)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(touched, 0, "{statement} reached tenant b's rows");
    }
    // Moving one's own row into another tenant is refused as well.
    sqlx::query(
        "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES ('tenant-a', 'x', 'y', now())",
    )
    .execute(&mut *transaction)
    .await
    .unwrap();
    let error = sqlx::query("UPDATE watermarks SET tenant_id = 'tenant-b'")
        .execute(&mut *transaction)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("row-level security"), "{error}");
    transaction.rollback().await.unwrap();

    // The across-tenants policies never open INSERT.
    let mut transaction = connection.begin().await.unwrap();
    sqlx::query(
        "SELECT set_config('app.tenant_id', 'tenant-a', true), set_config('app.across_tenants', 'on', true)",
    )
    .execute(&mut *transaction)
    .await
    .unwrap();
    let error = sqlx::query(
        "INSERT INTO jobs (tenant_id, kind, payload, status, max_attempts, run_after, created_at, updated_at) \
         VALUES ('tenant-b', 'k', '{}', 'queued', 1, now(), now(), now())",
    )
    .execute(&mut *transaction)
    .await
    .unwrap_err();
    assert!(error.to_string().contains("row-level security"), "{error}");
    transaction.rollback().await.unwrap();

    // Nor does the lookup of memberships by subject, which reads across tenants: an admin of
    // a cannot grant itself a role in b.
    let mut transaction = connection.begin().await.unwrap();
    sqlx::query(
        "SELECT set_config('app.tenant_id', 'tenant-a', true), set_config('app.across_tenants', 'on', true)",
    )
    .execute(&mut *transaction)
    .await
    .unwrap();
    for statement in [
        "INSERT INTO memberships (tenant_id, subject, role, created_at, created_by) \
         VALUES ('tenant-b', 'oidc:t:mallory', 'admin', now(), 'mallory')",
        "INSERT INTO tenants (tenant_id, created_at, created_by) VALUES ('tenant-c', now(), 'mallory')",
    ] {
        let error = sqlx::query(statement)
            .execute(&mut *transaction)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("row-level security"), "{error}");
        transaction.rollback().await.unwrap();
        transaction = connection.begin().await.unwrap();
        sqlx::query(
            "SELECT set_config('app.tenant_id', 'tenant-a', true), set_config('app.across_tenants', 'on', true)",
        )
        .execute(&mut *transaction)
        .await
        .unwrap();
    }
    for statement in [
        "UPDATE memberships SET role = 'admin'",
        "DELETE FROM memberships",
        "DELETE FROM tenants",
        "UPDATE deployments SET state = 'completed'",
    ] {
        let touched = sqlx::query(statement)
            .execute(&mut *transaction)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(
            touched, 0,
            "{statement} reached tenant b's rows across tenants"
        );
    }
    transaction.rollback().await.unwrap();

    let untouched = visible_rows(
        owner_url(&fixture),
        "SELECT set_config('app.tenant_id', 'tenant-b', true)",
    )
    .await;
    for (table, all_rows, _) in untouched {
        assert!(all_rows > 0, "{table}: tenant b's rows are still there");
    }
}

#[tokio::test]
async fn the_tenant_setting_ends_with_its_transaction() {
    let Some(fixture) = Fixture::postgres("setting_ends").await else {
        return;
    };
    let mut connection = PgConnection::connect(app_url(&fixture)).await.unwrap();
    let mut transaction = connection.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'tenant-a', true)")
        .execute(&mut *transaction)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    let after: Option<String> =
        sqlx::query_scalar("SELECT NULLIF(current_setting('app.tenant_id', true), '')")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert_eq!(
        after, None,
        "a pooled connection carries no tenant into the next use"
    );
}

/// The functions that read in one statement (migration 11) scope that statement to the tenant
/// they are given and nothing after it, and see only that tenant's rows.
#[tokio::test]
async fn the_one_statement_reads_scope_their_statement_alone() {
    let Some(fixture) = Fixture::postgres("one_statement_reads").await else {
        return;
    };
    let (a, b) = two_filled_tenants(&fixture).await;
    fixture
        .store
        .append_audit(&a, &[draft("extra")])
        .await
        .unwrap();
    let mut connection = PgConnection::connect(app_url(&fixture)).await.unwrap();
    let watermarks: Vec<(String, String)> =
        sqlx::query_as("SELECT name, value FROM tollgate_watermarks('tenant-a', ARRAY['w'])")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    assert_eq!(watermarks, vec![("w".to_owned(), "1".to_owned())]);
    let scope: Option<String> =
        sqlx::query_scalar("SELECT NULLIF(current_setting('app.tenant_id', true), '')")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert_eq!(scope, None, "the tenant's scope ended with the statement");
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM watermarks")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(visible, 0, "unscoped, no tenant's rows are visible");

    // The head of tenant a's log, whatever tenant b's holds.
    let size_a = fixture.store.audit_size(&a).await.unwrap();
    let size_b = fixture.store.audit_size(&b).await.unwrap();
    assert_ne!(size_a, size_b);
    let mut transaction = connection.begin().await.unwrap();
    let next: i64 = sqlx::query_scalar("SELECT next_seq FROM tollgate_audit_head('tenant-a')")
        .fetch_one(&mut *transaction)
        .await
        .unwrap();
    assert_eq!(u64::try_from(next).unwrap(), size_a);
    let scope: Option<String> =
        sqlx::query_scalar("SELECT NULLIF(current_setting('app.tenant_id', true), '')")
            .fetch_one(&mut *transaction)
            .await
            .unwrap();
    assert_eq!(
        scope.as_deref(),
        Some("tenant-a"),
        "the rest of the transaction is the tenant's, as the append that follows needs"
    );
    transaction.commit().await.unwrap();
}

/// Decisions and audit records of a few kilobytes (what the gate writes for every check) are
/// stored inline and uncompressed (migration 12): compressing them on insert cost CPU on the
/// path every check waits for. Without the migration PostgreSQL compresses both (pglz).
#[tokio::test]
async fn gate_decisions_and_audit_records_are_stored_uncompressed() {
    let Some(fixture) = Fixture::postgres("inline_rows").await else {
        return;
    };
    fixture
        .store
        .set_leaf_encoder(Arc::new(PlainEncoder))
        .unwrap();
    let tenant = TenantId::parse("tenant-a").unwrap();
    // Compressible, and well past the ≈ 2 KB at which PostgreSQL compresses a row.
    let text = "the rules' input ".repeat(300);
    let input = tollgate_domain::CanonicalJson::new(&json!({ "text": text })).unwrap();
    let mut fields = Map::new();
    fields.insert("details".to_owned(), json!({ "text": text }));
    let record = AuditDraft {
        fields,
        ..draft("gate.decided")
    };
    let decision = tollgate_store::gate::GateDecision {
        id: "gd-1".into(),
        key: "ado:1".into(),
        source: "ado-check".into(),
        mode: "sync".into(),
        verdict: tollgate_store::gate::Verdict::Allow,
        project: "p".into(),
        environment: "production".into(),
        pipeline: None,
        run_id: None,
        requested_by: None,
        findings: tollgate_domain::CanonicalJson::new(&json!([])).unwrap(),
        input,
        callback: None,
        callback_state: None,
        approval_id: None,
        decided_at: datetime!(2026-05-04 12:00 UTC),
    };
    fixture
        .store
        .record_decision(
            &tenant,
            &tollgate_store::gate::NewDecision {
                decision,
                callback_token: None,
                approval: None,
                callback_job: None,
                notices: Vec::new(),
            },
            &[record],
        )
        .await
        .unwrap();
    let mut owner = PgConnection::connect(owner_url(&fixture)).await.unwrap();
    let mut scoped = owner.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', 'tenant-a', true)")
        .execute(&mut *scoped)
        .await
        .unwrap();
    let stored: (i32, Option<String>) = sqlx::query_as(
        "SELECT octet_length(document::text), pg_column_compression(document) FROM gate_decisions",
    )
    .fetch_one(&mut *scoped)
    .await
    .unwrap();
    assert!(stored.0 > 4_000, "a large decision: {stored:?}");
    assert_eq!(stored.1, None, "the decision is stored uncompressed");
    let stored: (i32, Option<String>) = sqlx::query_as(
        "SELECT octet_length(bytes), pg_column_compression(bytes) FROM audit_leaves",
    )
    .fetch_one(&mut *scoped)
    .await
    .unwrap();
    assert!(stored.0 > 4_000, "a large record: {stored:?}");
    assert_eq!(stored.1, None, "the record is stored uncompressed");
}

/// A database whose audit logs predate the heads table (migration 11) continues each log where
/// it ended: the migration fills the heads from the leaves.
#[tokio::test]
async fn the_audit_heads_migration_continues_every_log_where_it_ended() {
    use tollgate_store::AuditStore as _;
    let Some(fixture) = Fixture::postgres("audit_heads_backfill").await else {
        return;
    };
    fixture
        .store
        .set_leaf_encoder(Arc::new(PlainEncoder))
        .unwrap();
    let a = TenantId::parse("tenant-a").unwrap();
    let b = TenantId::parse("tenant-b").unwrap();
    let three: Vec<AuditDraft> = (0..3).map(|_| draft("before")).collect();
    fixture.store.append_audit(&a, &three).await.unwrap();
    fixture.store.append_audit(&b, &three[..1]).await.unwrap();
    // Back to the schema before migration 11, as a database of the previous release has it,
    // with tenant a's last leaf logged ahead of the clock (an earlier clock step): the next
    // leaf must not be logged before it.
    let mut owner = PgConnection::connect(owner_url(&fixture)).await.unwrap();
    sqlx::raw_sql(
        "DROP FUNCTION tollgate_watermarks(text, text[]); DROP FUNCTION tollgate_audit_head(text); \
         DROP TABLE audit_heads; DELETE FROM schema_migrations WHERE version >= 11; \
         BEGIN; SELECT set_config('app.tenant_id', 'tenant-a', true); \
         UPDATE audit_leaves SET logged = now() + interval '1 hour' WHERE seq = 2; COMMIT;",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    PostgresStore::migrate(owner_url(&fixture), &role_of(app_url(&fixture)))
        .await
        .unwrap();
    let store = PostgresStore::connect(app_url(&fixture)).await.unwrap();
    store.set_leaf_encoder(Arc::new(PlainEncoder)).unwrap();
    let placed = store.append_audit(&a, &[draft("after")]).await.unwrap();
    assert_eq!(placed, vec![Some(3)], "tenant a's log continues at 3");
    let placed = store.append_audit(&b, &[draft("after")]).await.unwrap();
    assert_eq!(placed, vec![Some(1)], "tenant b's log continues at 1");
    let leaves = store
        .audit_leaves(
            &a,
            &tollgate_store::LeafFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = leaves.iter().map(|leaf| leaf.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    assert!(
        leaves[2].logged > time::OffsetDateTime::now_utc(),
        "the last leaf before the migration is ahead of the clock"
    );
    assert_eq!(
        leaves[3].logged, leaves[2].logged,
        "logged does not go backwards: the head carries the last leaf's"
    );
}

#[tokio::test]
async fn connect_refuses_a_superuser() {
    let Some((_, owner)) = postgres_urls("connect_refuses_a_superuser") else {
        return;
    };
    let Ok(superuser) = std::env::var(common::SUPERUSER_URL) else {
        eprintln!(
            "notice: connect_refuses_a_superuser did not run: set {}",
            common::SUPERUSER_URL
        );
        return;
    };
    let database = fresh_database(&owner, "superuser").await;
    let error = PostgresStore::connect(&with_database(&superuser, &database))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::UnsafeRole { reason, .. } if reason.contains("superuser")),
        "{error}"
    );
}

#[tokio::test]
async fn connect_refuses_the_owner_of_the_tables() {
    let Some(fixture) = Fixture::postgres("refuses_owner").await else {
        return;
    };
    let error = PostgresStore::connect(owner_url(&fixture))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::UnsafeRole { reason, .. } if reason.contains("owns table")),
        "{error}"
    );
}

#[tokio::test]
async fn connect_refuses_a_database_that_was_never_migrated() {
    let Some((app, owner)) = postgres_urls("never_migrated") else {
        return;
    };
    let database = fresh_database(&owner, "never_migrated").await;
    let error = PostgresStore::connect(&with_database(&app, &database))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::NotMigrated(_)), "{error}");
    assert!(error.to_string().contains("tollgate migrate"), "{error}");
}

#[tokio::test]
async fn a_schema_from_a_newer_tollgate_is_refused_and_migrating_again_changes_nothing() {
    let Some(fixture) = Fixture::postgres("newer_schema").await else {
        return;
    };
    let app_role = role_of(&std::env::var(common::APP_URL).unwrap());
    PostgresStore::migrate(owner_url(&fixture), &app_role)
        .await
        .expect("migrating twice is harmless");
    PostgresStore::connect(app_url(&fixture)).await.unwrap();

    let mut owner = PgConnection::connect(owner_url(&fixture)).await.unwrap();
    sqlx::query(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', now())",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    let error = PostgresStore::connect(app_url(&fixture)).await.unwrap_err();
    assert!(
        error.to_string().contains("newer than this tollgate"),
        "{error}"
    );
    let error = PostgresStore::migrate(owner_url(&fixture), &app_role)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::SchemaTooNew { .. }), "{error}");
}

#[tokio::test]
async fn migrate_refuses_an_app_role_that_is_the_owner_or_missing() {
    let Some((_, owner)) = postgres_urls("migrate_refuses") else {
        return;
    };
    let database = fresh_database(&owner, "migrate_refuses").await;
    let owner_url = with_database(&owner, &database);
    let error = PostgresStore::migrate(&owner_url, &role_of(&owner))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("separate role"), "{error}");
    let error = PostgresStore::migrate(&owner_url, "no_such_role")
        .await
        .unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
}

/// Replicas append to one tenant's audit log at once; the sequence has no gap and no repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_from_several_replicas_keep_the_audit_log_gap_free() {
    let Some(fixture) = Fixture::postgres("audit_replicas").await else {
        return;
    };
    appends_from_two_replicas_stay_gap_free(&fixture).await;
}

/// The per-log lock needs each statement's own snapshot (READ COMMITTED): the store asks for
/// it in every transaction, so a server whose default is stricter changes nothing.
#[tokio::test]
async fn appends_stay_gap_free_where_the_server_defaults_to_repeatable_read() {
    let Some(fixture) = Fixture::postgres("audit_repeatable_read").await else {
        return;
    };
    let mut owner = PgConnection::connect(owner_url(&fixture)).await.unwrap();
    let database: String = sqlx::query_scalar("SELECT quote_ident(current_database())")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {database} SET default_transaction_isolation = 'repeatable read'"
    )))
    .execute(&mut owner)
    .await
    .unwrap();
    appends_from_two_replicas_stay_gap_free(&fixture).await;
}

async fn appends_from_two_replicas_stay_gap_free(fixture: &Fixture) {
    let replicas = [fixture.open_again().await, fixture.open_again().await];
    for replica in &replicas {
        replica.set_leaf_encoder(Arc::new(PlainEncoder)).unwrap();
    }
    let tenant = TenantId::parse("acme").unwrap();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let replica = replicas[writer % 2].clone();
            let tenant = tenant.clone();
            tokio::spawn(async move {
                for round in 0..10 {
                    let drafts = [draft(&format!("w{writer}.{round}.a")), draft("b")];
                    replica.append_audit(&tenant, &drafts).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let size = replicas[0].audit_size(&tenant).await.unwrap();
    assert_eq!(size, 8 * 10 * 2);
    // Every position 0..size is present exactly once (the call reports a hole as an error).
    let hashes = replicas[1]
        .audit_leaf_hashes(&tenant, 0, size)
        .await
        .unwrap();
    assert_eq!(hashes.len() as u64, size);
}
