//! The store conformance story: behaviour every `InventoryStore` implementation must show.
//! Written against the trait; runs on SQLite and on PostgreSQL (see tests/common).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[macro_use]
mod common;

use common::Fixture;
use serde_json::json;
use tollgate_domain::{InventoryItem, ResourceKind, SyncRunId, TenantId};
use tollgate_store::{INVENTORY_VERSION, InventoryStore, Replace, SqliteStore, SyncMode};

fn item(kind: ResourceKind, scope: &str, project: &str, ado_id: &str, raw: &str) -> InventoryItem {
    InventoryItem {
        kind,
        key: InventoryItem::key_for(scope, ado_id),
        scope: scope.to_owned(),
        project: project.to_owned(),
        ado_id: ado_id.to_owned(),
        name: Some(format!("name-{ado_id}")),
        revision: Some("1".to_owned()),
        raw: raw.to_owned(),
    }
}

async fn staged_rows_are_invisible_until_their_kind_commits(store: &dyn InventoryStore) {
    let tenant = TenantId::default_tenant();
    let run = store
        .begin_sync(&tenant, SyncMode::Full)
        .await
        .expect("begin")
        .id;
    let repos = [
        item(ResourceKind::Repositories, "p1", "p1", "r1", "{}"),
        item(ResourceKind::Repositories, "p1", "p1", "r2", "{}"),
    ];
    store.stage(&tenant, run, &repos).await.expect("stage");
    assert_eq!(
        store.counts(&tenant).await.expect("counts")[&ResourceKind::Repositories],
        0
    );
    let count = store
        .commit_kind(
            &tenant,
            run,
            ResourceKind::Repositories,
            &Replace::all(),
            &[],
        )
        .await
        .expect("commit");
    assert_eq!(count, 2);
    assert_eq!(
        store.counts(&tenant).await.expect("counts")[&ResourceKind::Repositories],
        2
    );
}

async fn a_discarded_kind_leaves_the_previous_rows_untouched(store: &dyn InventoryStore) {
    let tenant = TenantId::default_tenant();
    let first = store
        .begin_sync(&tenant, SyncMode::Full)
        .await
        .expect("begin")
        .id;
    store
        .stage(
            &tenant,
            first,
            &[item(ResourceKind::Teams, "p1", "p1", "t1", r#"{"v":1}"#)],
        )
        .await
        .expect("stage");
    store
        .commit_kind(&tenant, first, ResourceKind::Teams, &Replace::all(), &[])
        .await
        .expect("commit");
    store
        .finish_sync(&tenant, first, "ok", &json!({}), &[])
        .await
        .expect("finish");

    let second = store
        .begin_sync(&tenant, SyncMode::Full)
        .await
        .expect("begin")
        .id;
    store
        .stage(
            &tenant,
            second,
            &[item(ResourceKind::Teams, "p1", "p1", "t2", r#"{"v":2}"#)],
        )
        .await
        .expect("stage");
    store
        .discard_staged(&tenant, second, ResourceKind::Teams)
        .await
        .expect("discard");
    store
        .finish_sync(&tenant, second, "failed", &json!({"error": "boom"}), &[])
        .await
        .expect("finish");

    let items = store
        .items(&tenant, ResourceKind::Teams, None, 10)
        .await
        .expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].ado_id, "t1");
    assert_eq!(items[0].raw, r#"{"v":1}"#);
    let last = store
        .last_successful_sync(&tenant)
        .await
        .expect("last")
        .expect("a successful run");
    assert_eq!(last.id, first, "a failed run is not a successful one");
}

async fn replace_by_scope_project_and_key_deletes_only_what_it_names(store: &dyn InventoryStore) {
    let tenant = TenantId::default_tenant();
    let kind = ResourceKind::Refs;
    let run = store
        .begin_sync(&tenant, SyncMode::Full)
        .await
        .expect("begin")
        .id;
    let refs = [
        item(kind, "repoA", "p1", "main", "{}"),
        item(kind, "repoA", "p1", "dev", "{}"),
        item(kind, "repoB", "p1", "main", "{}"),
        item(kind, "repoC", "p2", "main", "{}"),
        item(kind, "repoD", "p3", "main", "{}"),
    ];
    store.stage(&tenant, run, &refs).await.expect("stage");
    store
        .commit_kind(&tenant, run, kind, &Replace::all(), &[])
        .await
        .expect("commit");

    // repoA is re-listed with only `main`; repoB vanished; project p2 vanished; one key goes.
    store
        .stage(
            &tenant,
            run,
            &[item(kind, "repoA", "p1", "main", r#"{"new":true}"#)],
        )
        .await
        .expect("stage");
    let replace = Replace {
        scopes: vec!["repoA".into(), "repoB".into()],
        projects: vec!["p2".into()],
        keys: vec!["repoD/main".into()],
        ..Replace::default()
    };
    let count = store
        .commit_kind(&tenant, run, kind, &replace, &[])
        .await
        .expect("commit");
    assert_eq!(count, 1);
    let left = store.items(&tenant, kind, None, 10).await.expect("items");
    assert_eq!(
        left.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        vec!["repoA/main"]
    );
    assert_eq!(left[0].raw, r#"{"new":true}"#);
}

async fn inventory_version(store: &dyn InventoryStore, tenant: &TenantId) -> Option<String> {
    store
        .watermark(tenant, INVENTORY_VERSION)
        .await
        .expect("version")
}

async fn upserts_replace_rows_with_the_same_key_and_watermarks_commit_with_them(
    store: &dyn InventoryStore,
) {
    let tenant = TenantId::default_tenant();
    let kind = ResourceKind::WorkItems;
    let before = inventory_version(store, &tenant).await;
    let run = store
        .begin_sync(&tenant, SyncMode::Incremental)
        .await
        .expect("begin")
        .id;
    store
        .stage(&tenant, run, &[item(kind, "p1", "p1", "7", r#"{"rev":1}"#)])
        .await
        .expect("stage");
    assert_eq!(
        inventory_version(store, &tenant).await,
        before,
        "staging changes nothing"
    );
    store
        .commit_kind(&tenant, run, kind, &Replace::upsert_only(), &[])
        .await
        .expect("commit");
    let first = inventory_version(store, &tenant).await;
    assert!(
        first.is_some() && first != before,
        "a commit gives the inventory a new version: {before:?} → {first:?}"
    );
    store
        .stage(&tenant, run, &[item(kind, "p1", "p1", "7", r#"{"rev":2}"#)])
        .await
        .expect("stage");
    let watermark = [(
        "work_items.changed".to_owned(),
        "2026-11-23T00:00:00Z".to_owned(),
    )];
    store
        .commit_kind(&tenant, run, kind, &Replace::upsert_only(), &watermark)
        .await
        .expect("commit");
    let second = inventory_version(store, &tenant).await;
    assert!(
        second.is_some() && second != first,
        "every commit, even of the same run and kind, gives a new version: {first:?} → {second:?}"
    );
    let items = store.items(&tenant, kind, None, 10).await.expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].raw, r#"{"rev":2}"#);
    assert_eq!(
        store
            .watermark(&tenant, "work_items.changed")
            .await
            .expect("read"),
        Some("2026-11-23T00:00:00Z".to_owned())
    );
    assert_eq!(
        store.watermark(&tenant, "missing").await.expect("read"),
        None
    );
    assert_eq!(
        store
            .watermarks(
                &tenant,
                &[INVENTORY_VERSION, "missing", "work_items.changed"]
            )
            .await
            .expect("read"),
        [second, None, Some("2026-11-23T00:00:00Z".to_owned())],
        "several watermarks in one read, in the order asked"
    );
    assert!(
        store
            .watermarks(&tenant, &[])
            .await
            .expect("read")
            .is_empty()
    );
}

async fn tenants_never_see_each_others_rows(store: &dyn InventoryStore) {
    let a = TenantId::parse("tenant-a").expect("id");
    let b = TenantId::parse("tenant-b").expect("id");
    let run = store
        .begin_sync(&a, SyncMode::Full)
        .await
        .expect("begin")
        .id;
    store
        .stage(&a, run, &[item(ResourceKind::Projects, "", "", "pa", "{}")])
        .await
        .expect("stage");
    store
        .commit_kind(&a, run, ResourceKind::Projects, &Replace::all(), &[])
        .await
        .expect("commit");
    // Tenant b's commit of the same run id and kind must neither see nor delete a's rows.
    store
        .commit_kind(&b, run, ResourceKind::Projects, &Replace::all(), &[])
        .await
        .expect("commit");
    assert_eq!(
        store.counts(&a).await.expect("counts")[&ResourceKind::Projects],
        1
    );
    assert_eq!(
        store.counts(&b).await.expect("counts")[&ResourceKind::Projects],
        0
    );
    assert!(
        store
            .keys(&b, ResourceKind::Projects, None)
            .await
            .expect("keys")
            .is_empty()
    );
}

async fn items_page_in_key_order(store: &dyn InventoryStore) {
    let tenant = TenantId::parse("paging").expect("id");
    let run = store
        .begin_sync(&tenant, SyncMode::Full)
        .await
        .expect("begin")
        .id;
    let many: Vec<InventoryItem> = (0..25)
        .map(|i| item(ResourceKind::Builds, "p", "p", &format!("{i:03}"), "{}"))
        .collect();
    store.stage(&tenant, run, &many).await.expect("stage");
    store
        .commit_kind(&tenant, run, ResourceKind::Builds, &Replace::all(), &[])
        .await
        .expect("commit");
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .items(&tenant, ResourceKind::Builds, after.as_deref(), 10)
            .await
            .expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|i| i.key.clone());
        seen.extend(page.into_iter().map(|i| i.key));
    }
    assert_eq!(seen.len(), 25);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let scoped = store
        .keys(&tenant, ResourceKind::Builds, Some("p"))
        .await
        .expect("keys");
    assert_eq!(scoped.len(), 25);
    assert_eq!(scoped[0].project, "p");
}

async fn incremental_syncs_record_exactly_what_changed(store: &dyn InventoryStore) {
    let tenant = TenantId::parse("tenant-changes").expect("id");
    let repos = |raws: &[(&str, &str, &str)]| -> Vec<InventoryItem> {
        raws.iter()
            .map(|(project, id, raw)| item(ResourceKind::Repositories, project, project, id, raw))
            .collect()
    };
    let full = store
        .begin_sync(&tenant, SyncMode::Full)
        .await
        .expect("begin")
        .id;
    store
        .stage(
            &tenant,
            full,
            &repos(&[("p1", "a", "{}"), ("p1", "b", "{}"), ("p2", "c", "{}")]),
        )
        .await
        .expect("stage");
    store
        .commit_kind(
            &tenant,
            full,
            ResourceKind::Repositories,
            &Replace::all(),
            &[],
        )
        .await
        .expect("commit");
    assert!(
        store
            .changes_since(&tenant, SyncRunId(0))
            .await
            .expect("changes")
            .is_empty(),
        "a full sync records nothing"
    );

    // p1 is listed again: a unchanged, b modified, d new, and nothing else (p2's c stays).
    let incremental = store
        .begin_sync(&tenant, SyncMode::Incremental)
        .await
        .expect("begin")
        .id;
    store
        .stage(
            &tenant,
            incremental,
            &repos(&[
                ("p1", "a", "{}"),
                ("p1", "b", r#"{"v":2}"#),
                ("p1", "d", "{}"),
            ]),
        )
        .await
        .expect("stage");
    let replace = Replace {
        projects: vec!["p1".to_owned()],
        ..Replace::default()
    };
    store
        .commit_kind(
            &tenant,
            incremental,
            ResourceKind::Repositories,
            &replace,
            &[],
        )
        .await
        .expect("commit");
    let deleting = store
        .begin_sync(&tenant, SyncMode::Incremental)
        .await
        .expect("begin")
        .id;
    let gone = Replace {
        keys: vec![InventoryItem::key_for("p2", "c")],
        ..Replace::default()
    };
    store
        .commit_kind(&tenant, deleting, ResourceKind::Repositories, &gone, &[])
        .await
        .expect("commit");

    let changes = store.changes_since(&tenant, full).await.expect("changes");
    let seen: Vec<(SyncRunId, String, bool)> = changes
        .iter()
        .map(|c| (c.run, c.key.clone(), c.deleted))
        .collect();
    assert_eq!(
        seen,
        vec![
            (incremental, InventoryItem::key_for("p1", "b"), false),
            (incremental, InventoryItem::key_for("p1", "d"), false),
            (deleting, InventoryItem::key_for("p2", "c"), true),
        ]
    );
    assert!(changes.iter().all(|c| c.kind == ResourceKind::Repositories));
    assert_eq!(changes[2].project, "p2");

    let runs = store.syncs_since(&tenant, Some(full)).await.expect("runs");
    assert_eq!(
        runs.iter().map(|r| (r.id, r.mode)).collect::<Vec<_>>(),
        vec![
            (incremental, SyncMode::Incremental),
            (deleting, SyncMode::Incremental)
        ]
    );
    store
        .prune_changes(&tenant, incremental)
        .await
        .expect("prune");
    let left = store
        .changes_since(&tenant, SyncRunId(0))
        .await
        .expect("changes");
    assert_eq!(left.len(), 1);
    assert!(left[0].deleted);

    // Lookups by project, key and ADO id.
    let p1 = store
        .project_items(&tenant, ResourceKind::Repositories, "p1", None, 10)
        .await
        .expect("project items");
    assert_eq!(
        p1.iter().map(|i| i.ado_id.as_str()).collect::<Vec<_>>(),
        ["a", "b", "d"]
    );
    let by_key = store
        .items_by_keys(
            &tenant,
            ResourceKind::Repositories,
            &[InventoryItem::key_for("p1", "d"), "missing".to_owned()],
        )
        .await
        .expect("by key");
    assert_eq!(by_key.len(), 1);
    let by_id = store
        .items_by_ado_ids(&tenant, ResourceKind::Repositories, &["b".to_owned()])
        .await
        .expect("by id");
    assert_eq!(by_id[0].raw, r#"{"v":2}"#);

    store
        .set_watermark(&tenant, "scan.evaluated_run", "7")
        .await
        .expect("set");
    assert_eq!(
        store
            .watermark(&tenant, "scan.evaluated_run")
            .await
            .expect("get")
            .as_deref(),
        Some("7")
    );
}

async fn the_conformance_story(fixture: Fixture) {
    let store = &*fixture.store;
    staged_rows_are_invisible_until_their_kind_commits(store).await;
    a_discarded_kind_leaves_the_previous_rows_untouched(store).await;
    replace_by_scope_project_and_key_deletes_only_what_it_names(store).await;
    upserts_replace_rows_with_the_same_key_and_watermarks_commit_with_them(store).await;
    tenants_never_see_each_others_rows(store).await;
    items_page_in_key_order(store).await;
    incremental_syncs_record_exactly_what_changed(store).await;
    a_key_staged_twice_in_a_run_keeps_the_last_one(store).await;
}

/// Pages of a listing can overlap; the last copy staged is the one stored.
async fn a_key_staged_twice_in_a_run_keeps_the_last_one(store: &dyn InventoryStore) {
    let tenant = TenantId::parse("twice").expect("id");
    let run = store
        .begin_sync(&tenant, SyncMode::Full)
        .await
        .expect("begin")
        .id;
    for raw in [r#"{"page":1}"#, r#"{"page":2}"#] {
        store
            .stage(
                &tenant,
                run,
                &[item(ResourceKind::Teams, "p", "p", "t", raw)],
            )
            .await
            .expect("stage");
    }
    let count = store
        .commit_kind(&tenant, run, ResourceKind::Teams, &Replace::all(), &[])
        .await
        .expect("commit");
    assert_eq!(count, 1);
    let items = store
        .items(&tenant, ResourceKind::Teams, None, 10)
        .await
        .expect("items");
    assert_eq!(items[0].raw, r#"{"page":2}"#);
}

use findings::the_findings_story;

on_both_backends!(the_conformance_story, the_findings_story);

#[tokio::test]
async fn reopening_a_database_keeps_its_data_and_applies_no_migration_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("reopen.db");
    let path = path.to_str().expect("utf-8");
    let tenant = TenantId::default_tenant();
    {
        let store = SqliteStore::open(path).await.expect("open");
        let run = store
            .begin_sync(&tenant, SyncMode::Full)
            .await
            .expect("begin")
            .id;
        store
            .stage(
                &tenant,
                run,
                &[item(ResourceKind::Projects, "", "", "p", "{}")],
            )
            .await
            .expect("stage");
        store
            .commit_kind(&tenant, run, ResourceKind::Projects, &Replace::all(), &[])
            .await
            .expect("commit");
    }
    let store = SqliteStore::open(path).await.expect("reopen");
    assert_eq!(
        store.counts(&tenant).await.expect("counts")[&ResourceKind::Projects],
        1
    );
}

#[tokio::test]
async fn a_database_from_a_newer_tollgate_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("newer.db");
    let path = path.to_str().expect("utf-8");
    drop(SqliteStore::open(path).await.expect("open"));
    {
        use sqlx::ConnectOptions as _;
        let mut connection = format!("sqlite://{path}")
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("url")
            .connect()
            .await
            .expect("connect");
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 'now')")
            .execute(&mut connection)
            .await
            .expect("insert");
    }
    let error = SqliteStore::open(path)
        .await
        .expect_err("newer schema must be refused");
    assert!(
        error.to_string().contains("newer than this tollgate"),
        "{error}"
    );
}

mod findings {
    use serde_json::json;
    use time::{Duration, OffsetDateTime};
    use tollgate_domain::{ResourceKind, TenantId};
    use tollgate_store::{Coverage, FindingStatus, FindingStore, NewWaiver, Observation};

    use crate::common::Fixture;

    fn observation(control: &str, key: &str) -> Observation {
        Observation {
            control: control.to_owned(),
            resource_kind: ResourceKind::Repositories,
            resource_key: key.to_owned(),
            resource_name: Some(format!("name of {key}")),
            project: "p".to_owned(),
            severity: "high".to_owned(),
            action: "deny".to_owned(),
            message: format!("{control} on {key}"),
            evidence: json!({"field": 1}),
        }
    }

    fn coverage() -> Coverage {
        Coverage {
            controls: vec!["C-1".into()],
            kinds: vec![ResourceKind::Repositories],
            keys: None,
        }
    }

    async fn status_of(store: &dyn FindingStore, key: &str) -> Option<FindingStatus> {
        let tenant = TenantId::default_tenant();
        store
            .findings(&tenant, &[])
            .await
            .unwrap()
            .into_iter()
            .find(|f| f.resource_key == key)
            .map(|f| f.status)
    }

    async fn the_lifecycle_opens_fixes_reopens_and_waives(store: &dyn FindingStore) {
        let tenant = TenantId::default_tenant();
        let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        let counts = store
            .apply_observations(
                &tenant,
                &[observation("C-1", "p/a"), observation("C-1", "p/b")],
                &coverage(),
                t0,
                &|_, _| Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!((counts.opened, counts.fixed), (2, 0));

        let t1 = t0 + Duration::hours(1);
        let counts = store
            .apply_observations(
                &tenant,
                &[observation("C-1", "p/a")],
                &coverage(),
                t1,
                &|_, _| Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!((counts.still_open, counts.fixed), (1, 1));
        assert_eq!(status_of(store, "p/b").await, Some(FindingStatus::Fixed));
        let a = store
            .findings(&tenant, &[FindingStatus::Open])
            .await
            .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].first_seen, a[0].last_seen),
            (t0, t1),
            "first_seen stays, last_seen moves"
        );

        let t2 = t1 + Duration::hours(1);
        let counts = store
            .apply_observations(
                &tenant,
                &[observation("C-1", "p/a"), observation("C-1", "p/b")],
                &coverage(),
                t2,
                &|_, _| Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(counts.reopened, 1);
        assert_eq!(status_of(store, "p/b").await, Some(FindingStatus::Reopened));

        // A waiver turns the finding into `waived`; when it expires the finding reopens.
        let waiver = store
            .add_waiver(
                &tenant,
                &NewWaiver {
                    control: "C-1".into(),
                    scope: "p/*".into(),
                    owner: "risk@x".into(),
                    reason: "legacy".into(),
                    expires_at: t2 + Duration::days(1),
                },
                &[],
            )
            .await
            .unwrap();
        let t3 = t2 + Duration::hours(1);
        let counts = store
            .apply_observations(
                &tenant,
                &[observation("C-1", "p/a")],
                &coverage(),
                t3,
                &|_, _| Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!((counts.waived, counts.fixed), (1, 1));
        let waived = store
            .findings(&tenant, &[FindingStatus::Waived])
            .await
            .unwrap();
        assert_eq!(waived[0].waiver_id, Some(waiver.id));
        let t4 = t2 + Duration::days(2);
        let counts = store
            .apply_observations(
                &tenant,
                &[observation("C-1", "p/a")],
                &coverage(),
                t4,
                &|_, _| Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(counts.reopened, 1, "an expired waiver reopens its finding");
        assert!(store.remove_waiver(&tenant, waiver.id, &[]).await.unwrap());
        assert!(!store.remove_waiver(&tenant, waiver.id, &[]).await.unwrap());
    }

    async fn coverage_limits_what_is_fixed(store: &dyn FindingStore) {
        let tenant = TenantId::parse("coverage").unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
        store
            .apply_observations(
                &tenant,
                &[observation("C-1", "p/a"), observation("C-1", "p/b")],
                &coverage(),
                t0,
                &|_, _| Vec::new(),
            )
            .await
            .unwrap();
        // Re-evaluating only p/a must not fix p/b; another control's evaluation touches neither.
        let only_a = Coverage {
            keys: Some(vec!["p/a".into()]),
            ..coverage()
        };
        let counts = store
            .apply_observations(&tenant, &[], &only_a, t0, &|_, _| Vec::new())
            .await
            .unwrap();
        assert_eq!(counts.fixed, 1);
        let other = Coverage {
            controls: vec!["C-2".into()],
            ..coverage()
        };
        store
            .apply_observations(&tenant, &[], &other, t0, &|_, _| Vec::new())
            .await
            .unwrap();
        let open: Vec<String> = store
            .findings(&tenant, &[FindingStatus::Open])
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.resource_key)
            .collect();
        assert_eq!(open, vec!["p/b"]);
    }

    pub async fn the_findings_story(fixture: Fixture) {
        let store = &*fixture.store;
        the_lifecycle_opens_fixes_reopens_and_waives(store).await;
        coverage_limits_what_is_fixed(store).await;
    }
}

/// A kind commits while another connection holds the write lock: it waits its turn. Its
/// transaction reads before it writes; begun deferred, it would hold a read snapshot that the
/// other commit makes stale, and SQLite refuses such an upgrade at once ("database is
/// locked") instead of waiting.
#[tokio::test]
async fn a_kind_commits_after_another_writer_finishes() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("busy.db");
    let path = path.to_str().expect("utf-8").to_owned();
    let store = std::sync::Arc::new(SqliteStore::open(&path).await.expect("open"));
    let tenant = TenantId::default_tenant();
    let run = store
        .begin_sync(&tenant, SyncMode::Full)
        .await
        .expect("begin")
        .id;
    store
        .stage(
            &tenant,
            run,
            &[item(ResourceKind::Teams, "p", "p", "t", "{}")],
        )
        .await
        .expect("stage");
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .expect("connect");
    sqlx::raw_sql("BEGIN IMMEDIATE; UPDATE sync_runs SET mode = mode;")
        .execute(&mut other)
        .await
        .expect("hold the write lock");
    let committing = tokio::spawn({
        let store = store.clone();
        let tenant = tenant.clone();
        async move {
            store
                .commit_kind(&tenant, run, ResourceKind::Teams, &Replace::all(), &[])
                .await
        }
    });
    // Give the commit time to start (and, begun deferred, to take its read snapshot).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    sqlx::raw_sql("COMMIT")
        .execute(&mut other)
        .await
        .expect("commit");
    let count = committing.await.expect("task").expect("the kind commits");
    assert_eq!(count, 1);
}
