//! Tenant A cannot read or change tenant B's rows through any store method that takes a
//! tenant, on either backend: each trait's methods are called as A with B's ids, and B's
//! data is compared before and after. `every_store_method_is_covered` reads the store traits'
//! source and fails when a method is neither called here nor listed as spanning tenants by
//! design, so a new method cannot slip past this file.

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
use tollgate_store::deployments::{
    Deployment, DeploymentFilter, DeploymentKind, RunResult, RunState, RunStatus,
};
use tollgate_store::gate::{
    Approval, ApprovalChange, ApprovalOutcome, ApprovalState, ApprovalVote, CallbackState,
    CallbackTarget, DecisionFilter, DecisionWrite, GateDecision, NewDecision, Verdict,
};
use tollgate_store::{
    AuditDraft, Coverage, EncodedLeaf, EventFilter, EventStatus, INVENTORY_VERSION, IngestOutcome,
    JobFilter, LeafEncoder, LeafFilter, NewEvent, NewJob, NewWaiver, Observation, Replace,
    ReplaySelection, StoreError, StoredApiKey, StoredCheckpoint, StoredMembership, StoredTenant,
    SyncMode,
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
        encoded: Default::default(),
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
    assert_eq!(
        store
            .watermarks(&a(), &["w", INVENTORY_VERSION])
            .await
            .unwrap(),
        [None, None]
    );
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
    // Staging as A under B's run id stages A's row: B's commit below does not take it.
    store.stage(&a(), run, &[item("a1")]).await.unwrap();
    // A's own run is A's: B's list of runs does not grow.
    let b_runs = store.syncs_since(&b(), None).await.unwrap();
    let own = store.begin_sync(&a(), SyncMode::Full).await.unwrap();
    assert_ne!(own.id, run);
    assert_eq!(store.syncs_since(&b(), None).await.unwrap(), b_runs);
    assert!(
        store
            .items(&a(), ResourceKind::Repositories, None, 100)
            .await
            .unwrap()
            .is_empty()
    );

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
    // A's waiver is A's own.
    store
        .add_waiver(
            &a(),
            &NewWaiver {
                control: "C-9".into(),
                scope: "*".into(),
                owner: "mallory".into(),
                reason: "r".into(),
                expires_at: datetime!(2030-01-01 0:00 UTC),
            },
            &[],
        )
        .await
        .unwrap();

    assert_eq!(store.findings(&b(), &[]).await.unwrap(), before);
    assert_eq!(store.waivers(&b()).await.unwrap(), vec![waiver]);
}

async fn events_and_jobs_are_per_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    // B taking its scheduled turn leaves A's free, and A's claim leaves B's taken.
    let every = std::time::Duration::from_secs(60);
    assert!(
        store
            .claim_schedule(&b(), "tenant.refresh", AT, every)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_schedule(&a(), "tenant.refresh", AT, every)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_schedule(&b(), "tenant.refresh", AT, every)
            .await
            .unwrap()
    );
    // Likewise leases: B's holder does not keep A's from being taken.
    assert!(
        store
            .claim_lease(&b(), "export:x", "replica-b", AT, every)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_lease(&a(), "export:x", "replica-a", AT, every)
            .await
            .unwrap()
    );
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
            .first_seq_logged_since(&a(), AT - time::Duration::days(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .withhold_audit_payloads(&a(), 10, &draft("retention"))
            .await
            .unwrap(),
        0
    );
    let b_checkpoints = store.checkpoints(&b(), None, 10).await.unwrap();
    store
        .add_checkpoint(
            &a(),
            &StoredCheckpoint {
                size: 0,
                root: [3; 32],
                note: "a".into(),
                signed_at: AT,
            },
        )
        .await
        .unwrap();
    store.set_sink_cursor(&a(), "syslog", 7).await.unwrap();
    assert_eq!(
        store.checkpoints(&b(), None, 10).await.unwrap(),
        b_checkpoints
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

fn gate_decision(id: &str, key: &str) -> GateDecision {
    GateDecision {
        id: id.to_owned(),
        key: key.to_owned(),
        source: "ado-check".to_owned(),
        mode: "callback".to_owned(),
        verdict: Verdict::Approval,
        project: "p".to_owned(),
        environment: "production".to_owned(),
        pipeline: None,
        run_id: Some(1),
        requested_by: None,
        findings: tollgate_domain::CanonicalJson::new(&json!([])).unwrap(),
        input: tollgate_domain::CanonicalJson::new(&json!({})).unwrap(),
        callback: Some(CallbackTarget {
            project_id: "p".into(),
            hub_name: "checks".into(),
            plan_id: "plan".into(),
            job_id: "job".into(),
            task_instance_id: "task".into(),
        }),
        callback_state: Some(CallbackState::Waiting),
        approval_id: Some(format!("{id}-approval")),
        decided_at: AT,
    }
}

fn pending_approval(decision: &GateDecision) -> Approval {
    Approval {
        id: decision.approval_id.clone().unwrap(),
        decision_id: decision.id.clone(),
        state: ApprovalState::Pending,
        project: decision.project.clone(),
        environment: decision.environment.clone(),
        pipeline: None,
        run_id: decision.run_id,
        requested_by: None,
        reasons: vec!["r".into()],
        quorum: 1,
        approver_role: "release_manager".into(),
        votes: Vec::new(),
        created_at: AT,
        expires_at: AT + time::Duration::hours(1),
        closed_at: None,
        closed_by: None,
    }
}

async fn gate_is_per_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    let decision = gate_decision("b-decision", "ado:b");
    store
        .record_decision(
            &b(),
            &NewDecision {
                approval: Some(pending_approval(&decision)),
                callback_token: Some("b-token".into()),
                callback_job: None,
                notices: Vec::new(),
                decision: decision.clone(),
            },
            &[],
        )
        .await
        .unwrap();
    let approval_id = decision.approval_id.clone().unwrap();
    let filter = DecisionFilter {
        limit: 100,
        ..DecisionFilter::default()
    };
    let decisions_before = store.decisions(&b(), &filter).await.unwrap();
    let approvals_before = store.approvals(&b(), None, 100).await.unwrap();

    assert!(store.decision(&a(), &decision.id).await.unwrap().is_none());
    assert!(
        store
            .decision_by_key(&a(), "ado:b")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.decisions(&a(), &filter).await.unwrap().is_empty());
    assert_eq!(
        store.callback_token(&a(), &decision.id).await.unwrap(),
        None
    );
    assert!(store.approval(&a(), &approval_id).await.unwrap().is_none());
    assert!(store.approvals(&a(), None, 100).await.unwrap().is_empty());
    let later = AT + time::Duration::days(1);
    assert!(store.due_approvals(&a(), later).await.unwrap().is_empty());
    assert!(store.check_decisions(&a()).await.unwrap().is_empty());
    assert_eq!(store.check_decisions(&b()).await.unwrap().len(), 1);
    // Changing B's decision or approval as A finds nothing to change.
    assert!(
        store
            .finish_callback(&a(), &decision.id, CallbackState::Sent, &[])
            .await
            .is_err()
    );
    let vote = ApprovalChange::Vote(ApprovalVote {
        by: "oidc:t:mallory".into(),
        role: "release_manager".into(),
        decision: "approve".into(),
        comment: String::new(),
        at: AT,
    });
    let outcome = store
        .change_approval(
            &a(),
            &approval_id,
            &vote,
            &|_| Vec::new(),
            &|_, _| None,
            &|_| Vec::new(),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, ApprovalOutcome::NotFound), "{outcome:?}");
    // A's decision with B's key is A's own.
    let own = store
        .record_decision(
            &a(),
            &NewDecision {
                decision: gate_decision("a-decision", "ado:b"),
                callback_token: None,
                approval: None,
                callback_job: None,
                notices: Vec::new(),
            },
            &[],
        )
        .await
        .unwrap();
    assert!(own.created);
    assert_eq!(own.decision.id, "a-decision");
    // So is one stored in a batch (the gate's group commit).
    let batch = [DecisionWrite {
        new: NewDecision {
            decision: gate_decision("a-batched", "ado:b-batched"),
            callback_token: None,
            approval: None,
            callback_job: None,
            notices: Vec::new(),
        },
        audit: Vec::new(),
    }];
    let batched = store.record_decisions(&a(), &batch).await.unwrap();
    assert!(batched[0].created());
    assert!(
        store
            .decision_by_key(&b(), "ado:b-batched")
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(
        store.decisions(&b(), &filter).await.unwrap(),
        decisions_before
    );
    assert_eq!(
        store.approvals(&b(), None, 100).await.unwrap(),
        approvals_before
    );
    assert_eq!(
        store
            .callback_token(&b(), &decision.id)
            .await
            .unwrap()
            .as_deref(),
        Some("b-token")
    );
    assert_eq!(
        store.due_approvals(&b(), later).await.unwrap(),
        [approval_id]
    );
}

fn membership(tenant: TenantId, subject: &str, role: &str) -> StoredMembership {
    StoredMembership {
        tenant,
        subject: subject.to_owned(),
        role: role.to_owned(),
        created_at: AT,
        created_by: "test".to_owned(),
    }
}

async fn memberships_are_per_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    let registration = StoredTenant {
        tenant: b(),
        created_at: AT,
        created_by: "test".into(),
    };
    assert!(store.register_tenant(&registration, &[]).await.unwrap());
    store
        .put_membership(&membership(b(), "oidc:t:bob", "admin"), &[])
        .await
        .unwrap();
    let key = StoredApiKey {
        key_id: "BBBBBBBBBBB2".into(),
        tenant: b(),
        name: "b's key".into(),
        role: "viewer".into(),
        secret_sha256: [7; 32],
        created_at: AT,
        created_by: "test".into(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_api_key(&key, &[]).await.unwrap();
    let members_before = store.memberships(&b()).await.unwrap();

    assert!(store.registered_tenant(&a()).await.unwrap().is_none());
    assert!(store.memberships(&a()).await.unwrap().is_empty());
    assert!(
        !store
            .remove_membership(&a(), "oidc:t:bob", &[])
            .await
            .unwrap()
    );
    // A's membership for the same subject is A's own row; B's role stays.
    assert_eq!(
        store
            .put_membership(&membership(a(), "oidc:t:bob", "viewer"), &[])
            .await
            .unwrap(),
        None
    );
    // Removing A ends A's memberships and keys only.
    let removed = store.remove_tenant(&a(), AT, &[]).await.unwrap();
    assert_eq!(
        (
            removed.was_registered,
            removed.memberships_removed,
            removed.api_keys_revoked
        ),
        (false, 1, 0)
    );

    assert_eq!(store.memberships(&b()).await.unwrap(), members_before);
    assert_eq!(
        store.registered_tenant(&b()).await.unwrap(),
        Some(registration.clone())
    );
    assert_eq!(store.registered_tenants().await.unwrap(), [registration]);
    assert_eq!(store.api_keys(&b()).await.unwrap(), [key]);
    // The lookup by subject spans tenants by design and finds B's row where it lives.
    assert_eq!(
        store.memberships_of("oidc:t:bob").await.unwrap(),
        members_before
    );
}

async fn deployments_are_per_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    let deployment = Deployment {
        id: "dp_b".to_owned(),
        kind: DeploymentKind::Deploy,
        project: "Payments".to_owned(),
        project_id: None,
        pipeline_id: 12,
        pipeline: None,
        environment: "production".to_owned(),
        ref_name: None,
        version: None,
        source_version: None,
        parameters: Default::default(),
        run_id: 7,
        run_name: None,
        run_url: None,
        rollback_of: None,
        requested_by: "apikey:b".to_owned(),
        decision_id: None,
        verdict: Verdict::Allow,
        state: RunState::InProgress,
        result: None,
        created_at: AT,
        updated_at: AT,
        finished_at: None,
    };
    store
        .record_deployment(&b(), &deployment, &[])
        .await
        .unwrap();
    let everything = DeploymentFilter {
        limit: 100,
        ..DeploymentFilter::default()
    };
    assert!(store.deployment(&a(), "dp_b").await.unwrap().is_none());
    assert!(
        store
            .deployments(&a(), &everything)
            .await
            .unwrap()
            .is_empty()
    );
    let done = RunStatus {
        state: RunState::Completed,
        result: Some(RunResult::Failed),
        source_version: None,
        finished_at: Some(AT),
        checked_at: AT,
    };
    assert!(
        store
            .update_run_status(&a(), "dp_b", &done)
            .await
            .unwrap()
            .is_none(),
        "A cannot change B's run"
    );
    // A recording a row under the same id writes A's row (or is refused), never B's.
    let mut mine = deployment.clone();
    mine.requested_by = "apikey:a".to_owned();
    let _ = store.record_deployment(&a(), &mine, &[]).await;
    let unchanged = store.deployment(&b(), "dp_b").await.unwrap().unwrap();
    assert_eq!(unchanged, deployment);
    assert_eq!(store.deployments(&b(), &everything).await.unwrap().len(), 1);
}

/// Methods that span tenants by design (docs/ARCHITECTURE.md, "PostgreSQL"): workers, retention
/// and metrics over the shared queue, finding a presented key or a principal's memberships
/// before any tenant is known, the bootstrap's count, the operators' list of tenants. Their
/// own tests are in queue.rs, api_keys.rs, audit.rs and tenancy.rs.
const ACROSS_TENANTS: &[&str] = &[
    "prune_events",
    "claim",
    "extend_lease",
    "complete",
    "fail",
    "queue_stats",
    "prune_jobs",
    "api_key",
    "touch_api_key",
    "count_active_api_keys",
    "insert_api_key_if_none_active",
    "audit_tenants",
    "registered_tenants",
    "memberships_of",
];

/// Methods whose tenant travels inside their argument (the new row's own tenant), called
/// here for A's and B's rows alike.
const TENANT_IN_ARGUMENT: &[&str] = &[
    "ingest",
    "insert_api_key",
    "register_tenant",
    "put_membership",
];

/// The methods of every `pub trait` in a store source file.
fn trait_methods(source: &str) -> Vec<String> {
    let mut methods = Vec::new();
    let mut in_trait = false;
    for line in source.lines() {
        if line.starts_with("pub trait ") {
            in_trait = true;
        } else if in_trait && line.starts_with('}') {
            in_trait = false;
        } else if in_trait && let Some(rest) = line.trim_start().strip_prefix("async fn ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            methods.push(name);
        }
    }
    methods
}

#[test]
fn every_store_method_is_covered() {
    let sources = [
        include_str!("../src/lib.rs"),
        include_str!("../src/queue.rs"),
        include_str!("../src/keys.rs"),
        include_str!("../src/audit.rs"),
        include_str!("../src/gate.rs"),
        include_str!("../src/tenancy.rs"),
        include_str!("../src/deployments.rs"),
    ];
    let methods: Vec<String> = sources.iter().flat_map(|s| trait_methods(s)).collect();
    assert!(
        methods.len() > 60,
        "the parser found the traits: {methods:?}"
    );
    let this_file = include_str!("isolation.rs");
    // Without whitespace, so calls rustfmt split over lines read like one-liners.
    let scenarios: String = this_file
        .split("const ACROSS_TENANTS")
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let uncovered: Vec<&String> = methods
        .iter()
        .filter(|m| {
            let called_as_a = scenarios.contains(&format!(".{m}(&a()"));
            let called = scenarios.contains(&format!(".{m}("));
            !(called_as_a
                || ACROSS_TENANTS.contains(&m.as_str())
                || (TENANT_IN_ARGUMENT.contains(&m.as_str()) && called))
        })
        .collect();
    assert!(
        uncovered.is_empty(),
        "store methods never called as tenant A on B's data in this file: {uncovered:?}"
    );
}

on_both_backends!(
    inventory_is_per_tenant,
    findings_are_per_tenant,
    events_and_jobs_are_per_tenant,
    api_keys_are_per_tenant,
    audit_logs_are_per_tenant,
    gate_is_per_tenant,
    memberships_are_per_tenant,
    deployments_are_per_tenant,
);
