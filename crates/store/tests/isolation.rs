//! Tenant A cannot read or change tenant B's rows through any store method that takes a
//! tenant, on either backend: each trait's methods are called as A with B's ids, and B's
//! data is compared before and after.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[macro_use]
mod common;

use std::sync::Arc;

use common::{AnyStore, Fixture};
use serde_json::{Map, json};
use time::OffsetDateTime;
use time::macros::datetime;
use tollgate_domain::{InventoryItem, ResourceKind, SyncRunId, TenantId};
use tollgate_store::{
    AuditDraft, Coverage, EncodedLeaf, EventFilter, EventStatus, IngestOutcome, JobFilter,
    LeafEncoder, LeafFilter, NewEvent, NewJob, NewWaiver, Observation, Replace, ReplaySelection,
    StoreError, StoredApiKey, StoredCheckpoint, SyncMode,
};

const AT: OffsetDateTime = datetime!(2026-05-04 12:00 UTC);

fn a() -> TenantId {
    TenantId::parse("tenant-a").unwrap()
}

fn b() -> TenantId {
    TenantId::parse("tenant-b").unwrap()
}

struct Encoder;

impl LeafEncoder for Encoder {
    fn encode(
        &self,
        tenant: &TenantId,
        draft: &AuditDraft,
        seq: u64,
        _logged: OffsetDateTime,
    ) -> Result<EncodedLeaf, String> {
        Ok(EncodedLeaf {
            record_id: format!("{tenant}-{seq}"),
            bytes: format!("{tenant}/{seq}/{}", draft.event_type).into_bytes(),
            hash: [u8::try_from(seq % 251).unwrap_or(0); 32],
        })
    }
}

fn draft(event_type: &str) -> AuditDraft {
    AuditDraft {
        event_type: event_type.to_owned(),
        time: AT,
        fields: Map::new(),
        dedupe_key: None,
    }
}

fn item(ado_id: &str) -> InventoryItem {
    InventoryItem {
        kind: ResourceKind::Repositories,
        key: InventoryItem::key_for("p", ado_id),
        scope: "p".to_owned(),
        project: "p".to_owned(),
        ado_id: ado_id.to_owned(),
        name: None,
        revision: None,
        raw: r#"{"b":true}"#.to_owned(),
    }
}

async fn inventory_of(store: &dyn AnyStore, tenant: &TenantId) -> Vec<InventoryItem> {
    store
        .items(tenant, ResourceKind::Repositories, None, 100)
        .await
        .unwrap()
}

async fn inventory_is_per_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    let run = store
        .begin_sync(&b(), SyncMode::Incremental)
        .await
        .unwrap()
        .id;
    store
        .stage(&b(), run, &[item("r1"), item("r2")])
        .await
        .unwrap();
    store
        .commit_kind(
            &b(),
            run,
            ResourceKind::Repositories,
            &Replace::all(),
            &[("w".into(), "b".into())],
        )
        .await
        .unwrap();
    store.stage(&b(), run, &[item("r3")]).await.unwrap();
    let before = inventory_of(store, &b()).await;
    assert_eq!(before.len(), 2);

    // Reads as A see nothing of B's.
    assert!(inventory_of(store, &a()).await.is_empty());
    assert!(
        store
            .keys(&a(), ResourceKind::Repositories, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .project_items(&a(), ResourceKind::Repositories, "p", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let keys: Vec<String> = before.iter().map(|i| i.key.clone()).collect();
    assert!(
        store
            .items_by_keys(&a(), ResourceKind::Repositories, &keys)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .items_by_ado_ids(&a(), ResourceKind::Repositories, &["r1".to_owned()])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.counts(&a()).await.unwrap()[&ResourceKind::Repositories],
        0
    );
    assert_eq!(store.watermark(&a(), "w").await.unwrap(), None);
    assert!(store.syncs_since(&a(), None).await.unwrap().is_empty());
    assert!(
        store
            .changes_since(&a(), SyncRunId(0))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.last_successful_sync(&a()).await.unwrap().is_none());

    // Writes as A with B's run change nothing of B's.
    store
        .commit_kind(&a(), run, ResourceKind::Repositories, &Replace::all(), &[])
        .await
        .unwrap();
    store
        .discard_staged(&a(), run, ResourceKind::Repositories)
        .await
        .unwrap();
    assert!(matches!(
        store.finish_sync(&a(), run, "ok", &json!({}), &[]).await,
        Err(StoreError::UnknownRun(_))
    ));
    store.prune_changes(&a(), run).await.unwrap();
    store.set_watermark(&a(), "w", "a").await.unwrap();

    assert_eq!(inventory_of(store, &b()).await, before);
    assert_eq!(
        store.watermark(&b(), "w").await.unwrap().as_deref(),
        Some("b")
    );
    assert_eq!(
        store.changes_since(&b(), SyncRunId(0)).await.unwrap().len(),
        2
    );
    // B's staged row is still there: committing it now brings in r3.
    let count = store
        .commit_kind(
            &b(),
            run,
            ResourceKind::Repositories,
            &Replace::upsert_only(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(count, 3, "A's discard did not touch B's staged rows");
    assert!(inventory_of(store, &a()).await.is_empty());
}

async fn findings_are_per_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    let observation = Observation {
        control: "C-1".into(),
        resource_kind: ResourceKind::Repositories,
        resource_key: "p/r1".into(),
        resource_name: None,
        project: "p".into(),
        severity: "high".into(),
        action: "deny".into(),
        message: "m".into(),
        evidence: json!({"x": 1}),
    };
    let coverage = Coverage {
        controls: vec!["C-1".into()],
        kinds: vec![ResourceKind::Repositories],
        keys: None,
    };
    store
        .apply_observations(&b(), &[observation], &coverage, AT, &|_, _| Vec::new())
        .await
        .unwrap();
    let waiver = store
        .add_waiver(
            &b(),
            &NewWaiver {
                control: "C-9".into(),
                scope: "*".into(),
                owner: "o".into(),
                reason: "r".into(),
                expires_at: datetime!(2030-01-01 0:00 UTC),
            },
            &[],
        )
        .await
        .unwrap();
    let before = store.findings(&b(), &[]).await.unwrap();

    assert!(store.findings(&a(), &[]).await.unwrap().is_empty());
    assert!(store.waivers(&a()).await.unwrap().is_empty());
    assert!(!store.remove_waiver(&a(), waiver.id, &[]).await.unwrap());
    // A full evaluation as A that observes nothing fixes nothing of B's.
    let counts = store
        .apply_observations(&a(), &[], &coverage, AT, &|_, _| Vec::new())
        .await
        .unwrap();
    assert_eq!(counts.fixed, 0);

    assert_eq!(store.findings(&b(), &[]).await.unwrap(), before);
    assert_eq!(store.waivers(&b()).await.unwrap(), vec![waiver]);
}

async fn events_and_jobs_are_per_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    let outcome = store
        .ingest(
            &[NewEvent {
                tenant: b(),
                event_id: Some("e1".into()),
                event_type: Some("git.push".into()),
                subscription_id: None,
                status: EventStatus::Received,
                body: b"{}".to_vec(),
                error: None,
                received_at: AT,
                job: Some(NewJob {
                    kind: "event.process".into(),
                    payload: json!({}),
                    dedupe_key: Some("k".into()),
                    run_after: AT,
                    max_attempts: 1,
                }),
            }],
            &|_, _| Vec::new(),
        )
        .await
        .unwrap();
    let IngestOutcome::Stored { id, job: Some(job) } = outcome[0] else {
        panic!("stored with a job: {outcome:?}");
    };
    let all = EventFilter {
        limit: 100,
        ..EventFilter::default()
    };
    let all_jobs = JobFilter {
        limit: 100,
        ..JobFilter::default()
    };
    let events_before = store.events(&b(), &all).await.unwrap();
    let jobs_before = store.jobs(&b(), &all_jobs).await.unwrap();

    assert!(store.event(&a(), id).await.unwrap().is_none());
    assert!(store.events(&a(), &all).await.unwrap().is_empty());
    assert!(matches!(
        store
            .mark_event(&a(), id, EventStatus::Processed, None, AT)
            .await,
        Err(StoreError::UnknownEvent(_))
    ));
    assert_eq!(
        store
            .mark_job_events(&a(), job, EventStatus::Failed, Some("x"), AT)
            .await
            .unwrap(),
        0
    );
    let replayed = store
        .replay(&a(), &ReplaySelection::Ids(vec![id]), &|_| None, &[])
        .await
        .unwrap();
    assert_eq!(replayed.not_found, 1);
    let replayed = store
        .replay(
            &a(),
            &ReplaySelection::Received {
                since: AT - time::Duration::days(1),
                until: AT + time::Duration::days(1),
            },
            &|_| None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!((replayed.enqueued, replayed.skipped), (0, 0));
    assert!(store.job(&a(), job).await.unwrap().is_none());
    assert!(store.jobs(&a(), &all_jobs).await.unwrap().is_empty());
    assert!(!store.retry_job(&a(), job, AT, &[]).await.unwrap());
    // A's enqueue with B's dedupe key opens A's own job.
    let own = store
        .enqueue(
            &a(),
            &NewJob {
                kind: "event.process".into(),
                payload: json!({}),
                dedupe_key: Some("k".into()),
                run_after: AT,
                max_attempts: 1,
            },
            &[],
        )
        .await
        .unwrap();
    assert_ne!(own, job);

    assert_eq!(store.events(&b(), &all).await.unwrap(), events_before);
    assert_eq!(store.jobs(&b(), &all_jobs).await.unwrap(), jobs_before);
}

async fn api_keys_are_per_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    let key = StoredApiKey {
        key_id: "BBBBBBBBBBB1".into(),
        tenant: b(),
        name: "b's key".into(),
        role: "admin".into(),
        secret_sha256: [9; 32],
        created_at: AT,
        created_by: "test".into(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_api_key(&key, &[]).await.unwrap();
    assert!(store.api_keys(&a()).await.unwrap().is_empty());
    assert!(
        !store
            .revoke_api_key(&a(), &key.key_id, AT, &[])
            .await
            .unwrap()
    );
    assert_eq!(store.api_keys(&b()).await.unwrap(), vec![key.clone()]);
    // The lookup by public id finds the key in its own tenant, whoever asks.
    assert_eq!(
        store.api_key(&key.key_id).await.unwrap().unwrap().tenant,
        b()
    );
}

async fn audit_logs_are_per_tenant(fixture: Fixture) {
    fixture.store.set_leaf_encoder(Arc::new(Encoder)).unwrap();
    let store = &*fixture.store;
    store
        .append_audit(&b(), &[draft("x"), draft("y")])
        .await
        .unwrap();
    store
        .add_checkpoint(
            &b(),
            &StoredCheckpoint {
                size: 2,
                root: [1; 32],
                note: "b".into(),
                signed_at: AT,
            },
        )
        .await
        .unwrap();
    store.set_sink_cursor(&b(), "syslog", 2).await.unwrap();
    let everything = LeafFilter {
        limit: 100,
        ..LeafFilter::default()
    };
    let before = store.audit_leaves(&b(), &everything).await.unwrap();

    assert_eq!(store.audit_size(&a()).await.unwrap(), 0);
    assert!(
        store
            .audit_leaves(&a(), &everything)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .audit_leaf_by_id(&a(), "tenant-b-0")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.audit_leaf_hashes(&a(), 0, 2).await.is_err());
    assert!(store.checkpoints(&a(), None, 10).await.unwrap().is_empty());
    assert!(store.latest_checkpoint(&a()).await.unwrap().is_none());
    assert_eq!(store.sink_cursor(&a(), "syslog").await.unwrap(), 0);
    assert_eq!(
        store
            .withhold_audit_payloads(&a(), 10, &draft("retention"))
            .await
            .unwrap(),
        0
    );
    // A's own log holds only its retention record, whatever B's holds.
    assert_eq!(
        store.append_audit(&a(), &[draft("z")]).await.unwrap(),
        [Some(1)]
    );

    assert_eq!(store.audit_leaves(&b(), &everything).await.unwrap(), before);
    assert_eq!(store.sink_cursor(&b(), "syslog").await.unwrap(), 2);
    assert_eq!(store.audit_tenants().await.unwrap(), [a(), b()]);
}

on_both_backends!(
    inventory_is_per_tenant,
    findings_are_per_tenant,
    events_and_jobs_are_per_tenant,
    api_keys_are_per_tenant,
    audit_logs_are_per_tenant,
);
