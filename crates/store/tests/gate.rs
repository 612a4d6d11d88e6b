//! `GateStore`: decisions are idempotent per key and keep the callback token out of their
//! documents; approvals follow one state machine under a row lock, and closing one queues
//! its decision's callback exactly once — on SQLite and on PostgreSQL (see tests/common).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[macro_use]
mod common;

use std::sync::Arc;

use common::{Fixture, PlainEncoder};
use serde_json::{Map, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tollgate_domain::TenantId;
use tollgate_store::gate::{
    Approval, ApprovalChange, ApprovalOutcome, ApprovalRefusal, ApprovalState, ApprovalVote,
    CallbackState, CallbackTarget, DecisionFilter, DecisionWrite, GateDecision, NewDecision,
    Stored, Verdict,
};
use tollgate_store::{AuditDraft, JobFilter, NewJob};

const NOW: OffsetDateTime = datetime!(2026-11-24 10:00:00 UTC);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn decision(id: &str, key: &str, verdict: Verdict) -> GateDecision {
    GateDecision {
        id: id.to_owned(),
        key: key.to_owned(),
        source: "ado-check".to_owned(),
        mode: "callback".to_owned(),
        verdict,
        project: "Payments".to_owned(),
        environment: "production".to_owned(),
        pipeline: Some("payments-api".to_owned()),
        run_id: Some(100),
        requested_by: Some("dev@fabrikam.example".to_owned()),
        findings: tollgate_domain::CanonicalJson::new(
            &json!([{"rule": "GATE-01", "effect": "approval"}]),
        )
        .unwrap(),
        input: tollgate_domain::CanonicalJson::new(&json!({"environment": {"name": "production"}}))
            .unwrap(),
        callback: Some(CallbackTarget {
            project_id: "p".into(),
            hub_name: "checks".into(),
            plan_id: "plan".into(),
            job_id: "job".into(),
            task_instance_id: "task".into(),
        }),
        callback_state: Some(CallbackState::Waiting),
        approval_id: Some(format!("{id}-approval")),
        decided_at: NOW,
    }
}

fn approval(decision: &GateDecision, quorum: u32) -> Approval {
    Approval {
        id: decision.approval_id.clone().unwrap(),
        decision_id: decision.id.clone(),
        state: ApprovalState::Pending,
        project: decision.project.clone(),
        environment: decision.environment.clone(),
        pipeline: decision.pipeline.clone(),
        run_id: decision.run_id,
        requested_by: decision.requested_by.clone(),
        reasons: vec!["deployments to production need 1 approval(s)".into()],
        quorum,
        approver_role: "release_manager".into(),
        votes: Vec::new(),
        created_at: NOW,
        expires_at: NOW + Duration::hours(24),
        closed_at: None,
        closed_by: None,
    }
}

fn vote(by: &str, decision: &str) -> ApprovalChange {
    ApprovalChange::Vote(ApprovalVote {
        by: by.to_owned(),
        role: "release_manager".to_owned(),
        decision: decision.to_owned(),
        comment: String::new(),
        at: NOW + Duration::minutes(5),
    })
}

fn callback_job(approval: &Approval, decision: &GateDecision) -> Option<NewJob> {
    Some(NewJob {
        kind: "gate.callback".into(),
        payload: json!({"decision": decision.id, "result": approval.state.as_str()}),
        dedupe_key: Some(format!("callback:{}", decision.id)),
        run_after: NOW,
        max_attempts: 5,
    })
}

/// A job that tells approvers about `approval` (the gate makes one per channel).
fn notice_job(approval: &str, notice: &str) -> NewJob {
    NewJob {
        kind: "approval.notify".into(),
        payload: json!({"approval": approval, "notice": notice}),
        dedupe_key: Some(format!("notify:{approval}:{notice}")),
        run_after: NOW,
        max_attempts: 5,
    }
}

fn closed_notice(approval: &Approval) -> Vec<NewJob> {
    vec![notice_job(&approval.id, approval.state.as_str())]
}

/// The notice jobs of one tenant's approvals, as (approval, notice) pairs.
async fn notices(fixture: &Fixture) -> Vec<(String, String)> {
    let mut notices: Vec<(String, String)> = jobs_of_kind(fixture, "approval.notify")
        .await
        .iter()
        .map(|job| {
            (
                job.payload["approval"].as_str().unwrap().to_owned(),
                job.payload["notice"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    notices.sort();
    notices
}

async fn with_approval(fixture: &Fixture, id: &str, quorum: u32) -> GateDecision {
    let decision = decision(id, &format!("ado:{id}"), Verdict::Approval);
    let new = NewDecision {
        approval: Some(approval(&decision, quorum)),
        callback_token: Some("job-token-secret".into()),
        callback_job: None,
        notices: vec![notice_job(&format!("{id}-approval"), "requested")],
        decision: decision.clone(),
    };
    let recorded = fixture
        .store
        .record_decision(&tenant("contoso"), &new, &[])
        .await
        .unwrap();
    assert!(recorded.created);
    decision
}

/// The jobs of one kind queued for the contoso tenant.
async fn jobs_of_kind(fixture: &Fixture, kind: &str) -> Vec<tollgate_store::Job> {
    fixture
        .store
        .jobs(
            &tenant("contoso"),
            &JobFilter {
                kind: Some(kind.into()),
                limit: 100,
                ..JobFilter::default()
            },
        )
        .await
        .unwrap()
}

async fn callback_jobs(fixture: &Fixture) -> usize {
    jobs_of_kind(fixture, "gate.callback").await.len()
}

async fn decisions_are_idempotent_and_keep_the_token_apart(fixture: Fixture) {
    let store = &*fixture.store;
    let contoso = tenant("contoso");
    let first = with_approval(&fixture, "d1", 1).await;
    // The same check delivered again (another id, the same key) gets the first answer.
    let again = NewDecision {
        decision: decision("d1-again", "ado:d1", Verdict::Deny),
        callback_token: Some("other".into()),
        approval: None,
        callback_job: None,
        notices: vec![notice_job("d1-again-approval", "requested")],
    };
    let recorded = store.record_decision(&contoso, &again, &[]).await.unwrap();
    assert!(!recorded.created);
    assert_eq!(
        notices(&fixture).await,
        [("d1-approval".to_owned(), "requested".to_owned())],
        "a check delivered again asks no one again"
    );
    assert_eq!(recorded.decision, first);
    assert_eq!(
        store.decision(&contoso, "d1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.decision_by_key(&contoso, "ado:d1").await.unwrap(),
        Some(first.clone())
    );
    assert!(
        store
            .decision(&contoso, "d1-again")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .callback_token(&contoso, "d1")
            .await
            .unwrap()
            .as_deref(),
        Some("job-token-secret")
    );
    let listed = store
        .decisions(
            &contoso,
            &DecisionFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed, vec![first.clone()]);
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains("job-token-secret")
    );
    assert_eq!(
        store
            .approvals(&contoso, Some(ApprovalState::Pending), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    store
        .finish_callback(&contoso, "d1", CallbackState::Sent, &[])
        .await
        .unwrap();
    assert_eq!(store.callback_token(&contoso, "d1").await.unwrap(), None);
    assert_eq!(
        store
            .decision(&contoso, "d1")
            .await
            .unwrap()
            .unwrap()
            .callback_state,
        Some(CallbackState::Sent)
    );

    // Another tenant sees none of it, and cannot change it.
    let fabrikam = tenant("fabrikam");
    assert!(store.decision(&fabrikam, "d1").await.unwrap().is_none());
    assert!(
        store
            .approval(&fabrikam, "d1-approval")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .approvals(&fabrikam, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .callback_token(&fabrikam, "d1")
            .await
            .unwrap()
            .is_none()
    );
    let outcome = store
        .change_approval(
            &fabrikam,
            "d1-approval",
            &vote("rm@x", "approved"),
            &|_| vec![],
            &callback_job,
            &closed_notice,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, ApprovalOutcome::NotFound));
}

async fn a_quorum_closes_the_approval_and_queues_one_callback(fixture: Fixture) {
    let store = &*fixture.store;
    let contoso = tenant("contoso");
    let contoso = &contoso;
    with_approval(&fixture, "d2", 2).await;
    let change = |by: &str, decision: &str| {
        let change = vote(by, decision);
        async move {
            store
                .change_approval(
                    contoso,
                    "d2-approval",
                    &change,
                    &|_| vec![],
                    &callback_job,
                    &closed_notice,
                )
                .await
                .unwrap()
        }
    };
    let ApprovalOutcome::Changed(one) = change("rm@fabrikam.example", "approved").await else {
        panic!("the first vote counts")
    };
    assert_eq!(one.state, ApprovalState::Pending);
    assert_eq!(callback_jobs(&fixture).await, 0);
    let requested = ("d2-approval".to_owned(), "requested".to_owned());
    assert_eq!(
        notices(&fixture).await,
        std::slice::from_ref(&requested),
        "a vote that does not close the approval tells no one"
    );
    assert!(matches!(
        change("RM@fabrikam.example", "approved").await,
        ApprovalOutcome::Refused(ApprovalRefusal::AlreadyVoted(_))
    ));
    assert!(matches!(
        change("dev@fabrikam.example", "approved").await,
        ApprovalOutcome::Refused(ApprovalRefusal::SelfApproval)
    ));
    let ApprovalOutcome::Changed(two) = change("lead@fabrikam.example", "approved").await else {
        panic!("the second vote counts")
    };
    assert_eq!(two.state, ApprovalState::Approved);
    assert_eq!(two.votes.len(), 2);
    assert_eq!(callback_jobs(&fixture).await, 1);
    let approved = ("d2-approval".to_owned(), "approved".to_owned());
    assert_eq!(
        notices(&fixture).await,
        [approved.clone(), requested.clone()]
    );
    assert_eq!(
        store
            .decision(contoso, "d2")
            .await
            .unwrap()
            .unwrap()
            .callback_state,
        Some(CallbackState::Queued)
    );
    assert!(matches!(
        change("third@fabrikam.example", "rejected").await,
        ApprovalOutcome::Refused(ApprovalRefusal::NotPending("approved"))
    ));
    assert_eq!(callback_jobs(&fixture).await, 1);
    assert_eq!(notices(&fixture).await, [approved, requested]);
    assert_eq!(
        store
            .approval(contoso, "d2-approval")
            .await
            .unwrap()
            .unwrap(),
        *two
    );
}

async fn rejection_expiry_and_cancellation_close_pending_approvals(fixture: Fixture) {
    let store = &*fixture.store;
    let contoso = tenant("contoso");
    let contoso = &contoso;
    for id in ["r", "e", "c"] {
        with_approval(&fixture, id, 1).await;
    }
    let apply = |id: &'static str, change: ApprovalChange| async move {
        match store
            .change_approval(
                contoso,
                &format!("{id}-approval"),
                &change,
                &|_| vec![],
                &callback_job,
                &closed_notice,
            )
            .await
            .unwrap()
        {
            ApprovalOutcome::Changed(approval) => approval.state,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        apply("r", vote("rm@x", "rejected")).await,
        ApprovalState::Rejected
    );
    assert!(store.due_approvals(contoso, NOW).await.unwrap().is_empty());
    let due = store
        .due_approvals(contoso, NOW + Duration::hours(25))
        .await
        .unwrap();
    let mut due = due;
    due.sort();
    assert_eq!(due, vec!["c-approval".to_owned(), "e-approval".to_owned()]);
    assert_eq!(
        apply(
            "e",
            ApprovalChange::Expire {
                at: NOW + Duration::hours(25)
            }
        )
        .await,
        ApprovalState::Expired
    );
    assert_eq!(
        apply(
            "c",
            ApprovalChange::Cancel {
                by: "rm@x".into(),
                at: NOW
            }
        )
        .await,
        ApprovalState::Cancelled
    );
    // Each closed one queued its callback, once.
    assert_eq!(callback_jobs(&fixture).await, 3);
    assert!(
        store
            .due_approvals(contoso, NOW + Duration::days(30))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn concurrent_votes_from_two_replicas_reach_the_quorum_once(fixture: Fixture) {
    let contoso = tenant("contoso");
    with_approval(&fixture, "q", 2).await;
    let other = fixture.open_again().await;
    let (vote_a, vote_b) = (vote("a@x", "approved"), vote("b@x", "approved"));
    let no_audit = |_: &Approval| vec![];
    let (a, b) = tokio::join!(
        fixture.store.change_approval(
            &contoso,
            "q-approval",
            &vote_a,
            &no_audit,
            &callback_job,
            &closed_notice,
        ),
        other.change_approval(
            &contoso,
            "q-approval",
            &vote_b,
            &no_audit,
            &callback_job,
            &closed_notice,
        ),
    );
    assert!(matches!(a.unwrap(), ApprovalOutcome::Changed(_)));
    assert!(matches!(b.unwrap(), ApprovalOutcome::Changed(_)));
    let approval = fixture
        .store
        .approval(&contoso, "q-approval")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(approval.state, ApprovalState::Approved);
    assert_eq!(approval.votes.len(), 2);
    assert_eq!(callback_jobs(&fixture).await, 1);
    assert_eq!(
        notices(&fixture).await,
        [
            ("q-approval".to_owned(), "approved".to_owned()),
            ("q-approval".to_owned(), "requested".to_owned()),
        ],
        "only the vote that closed it tells approvers"
    );
}

/// Bypass detection reads the decisions ADO's check received, per tenant, oldest first, with
/// their run and environment; validations through the API or CLI are not among them.
async fn check_decisions_list_the_checks_answers_of_one_tenant(fixture: Fixture) {
    let store = &*fixture.store;
    let contoso = tenant("contoso");
    let record = |id: &str, source: &str, run: Option<u64>, environment: &str, at: Duration| {
        let mut decision = decision(id, &format!("{source}:{id}"), Verdict::Allow);
        decision.source = source.to_owned();
        decision.run_id = run;
        decision.environment = environment.to_owned();
        decision.decided_at = NOW + at;
        decision.approval_id = None;
        NewDecision {
            decision,
            callback_token: None,
            approval: None,
            callback_job: None,
            notices: Vec::new(),
        }
    };
    for (tenant_name, new) in [
        (
            "contoso",
            record(
                "late",
                "ado-check",
                Some(7),
                "production",
                Duration::hours(2),
            ),
        ),
        (
            "contoso",
            record("early", "ado-check", Some(5), "staging", Duration::hours(1)),
        ),
        (
            "contoso",
            record(
                "no-run",
                "ado-check",
                None,
                "production",
                Duration::hours(3),
            ),
        ),
        (
            "contoso",
            record("cli", "cli", Some(7), "production", Duration::ZERO),
        ),
        (
            "fabrikam",
            record("other", "ado-check", Some(7), "production", Duration::ZERO),
        ),
    ] {
        store
            .record_decision(&tenant(tenant_name), &new, &[])
            .await
            .unwrap();
    }
    let checks = store.check_decisions(&contoso).await.unwrap();
    let seen: Vec<(&str, Option<u64>, &str)> = checks
        .iter()
        .map(|c| (c.decision_id.as_str(), c.run_id, c.environment.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("early", Some(5), "staging"),
            ("late", Some(7), "production"),
            ("no-run", None, "production"),
        ]
    );
    assert_eq!(checks[0].decided_at, NOW + Duration::hours(1));
    assert_eq!(checks[0].verdict, Verdict::Allow);
    assert!(
        store
            .check_decisions(&tenant("nobody"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Decisions recorded before the run and source became columns are found after the
/// migration: it fills the columns from the documents (SQLite 9, PostgreSQL 8).
async fn the_migration_fills_run_and_source_of_earlier_decisions(fixture: Fixture) {
    let contoso = tenant("contoso");
    let mut earlier = decision("before", "ado:before", Verdict::Deny);
    earlier.approval_id = None;
    record_alone(&fixture, &contoso, earlier).await;
    // Back to the schema before the migration, as a database of the previous release has it:
    // without this migration and the ones after it (migrations apply above the highest
    // version recorded).
    let undo = |version: u32| {
        format!(
            "DROP TABLE deployments; DROP TABLE memberships; DROP TABLE tenants; \
             DROP INDEX gate_decisions_by_source; DROP INDEX IF EXISTS audit_leaf_hashes; \
             ALTER TABLE gate_decisions DROP COLUMN source; \
             ALTER TABLE gate_decisions DROP COLUMN run_id; \
             DELETE FROM schema_migrations WHERE version >= {version};"
        )
    };
    let undo_postgres = format!(
        "DROP FUNCTION tollgate_watermarks(text, text[]); DROP FUNCTION tollgate_audit_head(text); \
         DROP TABLE audit_heads; {}",
        undo(8)
    );
    fixture
        .behind_the_store("contoso", &undo(9), &undo_postgres)
        .await;
    let upgraded = fixture.open_upgraded().await;
    let checks = upgraded.check_decisions(&contoso).await.unwrap();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].decision_id, "before");
    assert_eq!(checks[0].run_id, Some(100));
    assert_eq!(checks[0].environment, "production");
    assert_eq!(checks[0].verdict, Verdict::Deny);
}

/// Tokens of sync-mode checks, of callbacks already posted, and tokens past ADO's 48 hours were
/// kept by earlier releases (in clear, for good); the migration drops them and keeps those a
/// callback still waits for (SQLite 14, PostgreSQL 13).
async fn the_migration_drops_job_tokens_no_callback_needs(fixture: Fixture) {
    let contoso = tenant("contoso");
    let now = OffsetDateTime::now_utc();
    let token_of = |id: &str, state: Option<CallbackState>, decided_at| NewDecision {
        decision: GateDecision {
            callback_state: state,
            approval_id: None,
            decided_at,
            ..decision(id, &format!("ado:{id}"), Verdict::Allow)
        },
        callback_token: Some(format!("token-of-{id}")),
        approval: None,
        callback_job: None,
        notices: Vec::new(),
    };
    for (id, state, decided_at) in [
        ("sync", None, now),
        ("waiting", Some(CallbackState::Waiting), now),
        ("queued", Some(CallbackState::Queued), now),
        ("sent", Some(CallbackState::Sent), now),
        ("failed", Some(CallbackState::Failed), now),
        // Past ADO's 48 hours the token opens nothing.
        (
            "stale",
            Some(CallbackState::Waiting),
            now - time::Duration::days(3),
        ),
    ] {
        fixture
            .store
            .record_decision(&contoso, &token_of(id, state, decided_at), &[])
            .await
            .unwrap();
    }
    let undo = |version: u32| format!("DELETE FROM schema_migrations WHERE version >= {version};");
    fixture
        .behind_the_store("contoso", &undo(14), &undo(13))
        .await;
    let upgraded = fixture.open_upgraded().await;
    for (id, kept) in [
        ("sync", false),
        ("waiting", true),
        ("queued", true),
        ("sent", false),
        ("failed", false),
        ("stale", false),
    ] {
        let token = upgraded.callback_token(&contoso, id).await.unwrap();
        assert_eq!(token, kept.then(|| format!("token-of-{id}")), "{id}");
    }
}

fn decided(event_type: &str) -> AuditDraft {
    AuditDraft {
        encoded: Default::default(),
        event_type: event_type.to_owned(),
        time: NOW,
        fields: Map::new(),
        dedupe_key: None,
    }
}

fn write(id: &str, key: &str, event_type: &str) -> DecisionWrite {
    DecisionWrite {
        new: NewDecision {
            decision: GateDecision {
                approval_id: None,
                callback_state: Some(CallbackState::Queued),
                ..decision(id, key, Verdict::Allow)
            },
            callback_token: Some(format!("token-{id}")),
            approval: None,
            callback_job: Some(NewJob {
                kind: "gate.callback".into(),
                payload: json!({"decision": id}),
                dedupe_key: Some(format!("callback:{id}")),
                run_after: NOW,
                max_attempts: 5,
            }),
            notices: Vec::new(),
        },
        audit: vec![decided(event_type)],
    }
}

/// The decision stored under `id`: the earlier one or one of the batch.
fn batch_decision(
    batch: &[DecisionWrite],
    earlier: &tollgate_store::gate::RecordedDecision,
    id: &str,
) -> GateDecision {
    if earlier.decision.id == id {
        return earlier.decision.clone();
    }
    batch
        .iter()
        .map(|write| write.new.decision.clone())
        .find(|decision| decision.id == id)
        .unwrap()
}

/// The gate's group commit: a batch is stored in one transaction, in order, with the audit
/// records of the decisions it created only; a key stored before or earlier in the batch is
/// answered with the stored decision; one record that cannot be encoded stores nothing.
async fn a_batch_of_decisions_is_stored_together_or_not_at_all(fixture: Fixture) {
    fixture
        .store
        .set_leaf_encoder(Arc::new(PlainEncoder))
        .unwrap();
    let store = &*fixture.store;
    let contoso = tenant("contoso");
    let earlier = store
        .record_decision(&contoso, &write("d0", "ado:k0", "d0").new, &[decided("d0")])
        .await
        .unwrap();
    assert!(earlier.created);

    let batch = [
        write("d1", "ado:k1", "d1"),
        write("d0-again", "ado:k0", "d0-again"),
        write("d2", "ado:k2", "d2"),
        write("d1-again", "ado:k1", "d1-again"),
    ];
    let recorded = store.record_decisions(&contoso, &batch).await.unwrap();
    let existing = |id: &str| Stored::Existing(Box::new(batch_decision(&batch, &earlier, id)));
    assert_eq!(
        recorded,
        [
            Stored::Created,
            existing("d0"),
            Stored::Created,
            existing("d1")
        ]
    );
    assert_eq!(
        fixture.audit_types(&tenant("contoso")).await,
        ["d0", "d1", "d2"]
    );
    assert_eq!(callback_jobs(&fixture).await, 3);
    for id in ["d1", "d2"] {
        assert!(
            store.decision(&contoso, id).await.unwrap().is_some(),
            "{id}"
        );
    }
    assert!(
        store
            .decision(&contoso, "d1-again")
            .await
            .unwrap()
            .is_none()
    );

    let refused = [
        write("d3", "ado:k3", "d3"),
        write("d4", "ado:k4", "refuse.me"),
    ];
    assert!(store.record_decisions(&contoso, &refused).await.is_err());
    for id in ["d3", "d4"] {
        assert!(
            store.decision(&contoso, id).await.unwrap().is_none(),
            "{id}"
        );
    }
    assert_eq!(
        fixture.audit_types(&tenant("contoso")).await,
        ["d0", "d1", "d2"]
    );
    assert_eq!(callback_jobs(&fixture).await, 3);
    assert!(
        store
            .record_decisions(&contoso, &[])
            .await
            .unwrap()
            .is_empty()
    );

    // The refused batch left no transaction open: the next one is stored after the last
    // leaf that was kept.
    let after = store
        .record_decisions(&contoso, &[write("d5", "ado:k5", "d5")])
        .await
        .unwrap();
    assert_eq!(after, [Stored::Created]);
    assert_eq!(
        fixture.audit_types(&tenant("contoso")).await,
        ["d0", "d1", "d2", "d5"]
    );
    assert_eq!(fixture.store.audit_size(&contoso).await.unwrap(), 4);
    assert!(store.decision(&contoso, "d5").await.unwrap().is_some());

    // A batch of keys stored before inserts nothing, and still ends its transaction.
    let again = store
        .record_decisions(&contoso, &[write("d5-again", "ado:k5", "d5-again")])
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(!again[0].created());
    let next = store
        .record_decisions(&contoso, &[write("d6", "ado:k6", "d6")])
        .await
        .unwrap();
    assert_eq!(next, [Stored::Created]);
    assert_eq!(
        fixture.audit_types(&tenant("contoso")).await,
        ["d0", "d1", "d2", "d5", "d6"]
    );
}

/// A decision whose rules' input is ≈ 3 KB, as a real check's is.
fn large_decision(id: &str, key: &str, run_id: u64) -> GateDecision {
    let builds: Vec<_> = (0..40)
        .map(|i| json!({"id": i, "result": "succeeded", "environment": "production"}))
        .collect();
    GateDecision {
        run_id: Some(run_id),
        approval_id: None,
        input: tollgate_domain::CanonicalJson::new(&json!({"builds": builds})).unwrap(),
        ..decision(id, key, Verdict::Allow)
    }
}

/// Record a decision with no token, approval or callback job, and no audit records.
async fn record_alone(fixture: &Fixture, tenant: &TenantId, decision: GateDecision) {
    let new = NewDecision {
        decision,
        callback_token: None,
        approval: None,
        callback_job: None,
        notices: Vec::new(),
    };
    fixture
        .store
        .record_decision(tenant, &new, &[])
        .await
        .unwrap();
}

async fn a_large_decision_reads_back_as_written(fixture: Fixture) {
    let acme = tenant("acme");
    let written = [
        large_decision("large-1", "ado:large-1", 7),
        large_decision("large-2", "ado:large-2", 8),
    ];
    for decision in &written {
        record_alone(&fixture, &acme, decision.clone()).await;
    }
    let store = &fixture.store;
    assert_eq!(
        store.decision(&acme, "large-1").await.unwrap().as_ref(),
        Some(&written[0])
    );
    assert_eq!(
        store
            .decision_by_key(&acme, "ado:large-2")
            .await
            .unwrap()
            .as_ref(),
        Some(&written[1])
    );
    let by_run = store
        .decisions(
            &acme,
            &DecisionFilter {
                run_id: Some(8),
                limit: 10,
                ..DecisionFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_run, [written[1].clone()]);
}

/// SQLite keeps a large decision's document packed, a small one as text.
#[tokio::test]
async fn on_sqlite_a_large_decision_is_stored_packed() {
    let fixture = Fixture::sqlite().await;
    let acme = tenant("acme");
    let mut small = decision("small", "ado:small", Verdict::Allow);
    small.approval_id = None;
    for decision in [small, large_decision("large", "ado:large", 7)] {
        record_alone(&fixture, &acme, decision).await;
    }
    let mut connection = fixture.sqlite_connection().await;
    let stored: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT id, typeof(document), length(CAST(document AS BLOB)) FROM gate_decisions ORDER BY id",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let large_json = serde_json::to_vec(&large_decision("large", "ado:large", 7)).unwrap();
    assert_eq!(stored[0].0, "large");
    assert_eq!(stored[0].1, "blob");
    assert!(
        (stored[0].2 as usize) * 2 < large_json.len(),
        "{} bytes stored for {}",
        stored[0].2,
        large_json.len()
    );
    assert_eq!(
        (stored[1].0.as_str(), stored[1].1.as_str()),
        ("small", "text")
    );
}

on_both_backends!(
    a_large_decision_reads_back_as_written,
    a_batch_of_decisions_is_stored_together_or_not_at_all,
    the_migration_fills_run_and_source_of_earlier_decisions,
    the_migration_drops_job_tokens_no_callback_needs,
    check_decisions_list_the_checks_answers_of_one_tenant,
    decisions_are_idempotent_and_keep_the_token_apart,
    a_quorum_closes_the_approval_and_queues_one_callback,
    rejection_expiry_and_cancellation_close_pending_approvals,
    concurrent_votes_from_two_replicas_reach_the_quorum_once,
);
