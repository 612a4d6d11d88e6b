//! `DeploymentStore`: a deployment and its audit record land together or not at all; lists
//! filter by environment, project and pipeline, newest first, within the tenant; a status
//! update never turns a completed run back into a running one. `GateStore::decisions` finds
//! a run's decisions by its id. On SQLite and on PostgreSQL (see tests/common).

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
use tollgate_store::AuditDraft;
use tollgate_store::deployments::{
    Deployment, DeploymentFilter, DeploymentKind, RunResult, RunState, RunStatus,
};
use tollgate_store::gate::{DecisionFilter, GateDecision, NewDecision, Verdict};

const NOW: OffsetDateTime = datetime!(2026-11-24 10:00:00 UTC);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn deployment(id: &str, environment: &str, run_id: u64, minutes: i64) -> Deployment {
    Deployment {
        id: id.to_owned(),
        kind: DeploymentKind::Deploy,
        project: "Payments".to_owned(),
        project_id: Some("p-1".to_owned()),
        pipeline_id: 12,
        pipeline: Some("payments-api".to_owned()),
        environment: environment.to_owned(),
        ref_name: Some("refs/heads/main".to_owned()),
        version: Some("1.4.2".to_owned()),
        source_version: None,
        parameters: [("environment".to_owned(), environment.to_owned())]
            .into_iter()
            .collect(),
        run_id,
        run_name: Some(format!("20261124.{run_id}")),
        run_url: None,
        rollback_of: None,
        requested_by: "apikey:rm".to_owned(),
        decision_id: Some(format!("gd_{id}")),
        verdict: Verdict::Allow,
        state: RunState::InProgress,
        result: None,
        created_at: NOW + Duration::minutes(minutes),
        updated_at: NOW + Duration::minutes(minutes),
        finished_at: None,
    }
}

fn queued(id: &str) -> AuditDraft {
    let mut fields = Map::new();
    fields.insert("deployment".to_owned(), json!(id));
    AuditDraft {
        encoded: Default::default(),
        event_type: "deployment.queued".to_owned(),
        time: NOW,
        fields,
        dedupe_key: None,
    }
}

async fn a_deployment_and_its_audit_record_land_together_or_not_at_all(fixture: Fixture) {
    fixture
        .store
        .set_leaf_encoder(Arc::new(PlainEncoder))
        .unwrap();
    let store = &*fixture.store;
    let contoso = tenant("contoso");
    let first = deployment("dp_1", "staging", 101, 0);
    store
        .record_deployment(&contoso, &first, &[queued("dp_1")])
        .await
        .unwrap();
    assert_eq!(
        store.deployment(&contoso, "dp_1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        fixture.audit_types(&contoso).await,
        vec!["deployment.queued"]
    );

    // The same id again is refused and writes nothing.
    let again = store
        .record_deployment(&contoso, &first, &[queued("dp_1")])
        .await;
    assert!(again.is_err());
    assert_eq!(fixture.audit_types(&contoso).await.len(), 1);

    // An audit record the log refuses takes the row with it.
    let refused = deployment("dp_2", "staging", 102, 1);
    let mut bad = queued("dp_2");
    bad.event_type = "refuse.me".to_owned();
    assert!(
        store
            .record_deployment(&contoso, &refused, &[bad])
            .await
            .is_err()
    );
    assert_eq!(store.deployment(&contoso, "dp_2").await.unwrap(), None);
    assert_eq!(fixture.audit_types(&contoso).await.len(), 1);

    // Another tenant sees none of it.
    let fabrikam = tenant("fabrikam");
    assert_eq!(store.deployment(&fabrikam, "dp_1").await.unwrap(), None);
    assert!(
        store
            .deployments(
                &fabrikam,
                &DeploymentFilter {
                    limit: 10,
                    ..DeploymentFilter::default()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
}

async fn lists_filter_and_come_newest_first(fixture: Fixture) {
    fixture
        .store
        .set_leaf_encoder(Arc::new(PlainEncoder))
        .unwrap();
    let store = &*fixture.store;
    let contoso = &tenant("contoso");
    let mut other_pipeline = deployment("dp_c", "production", 103, 2);
    other_pipeline.pipeline_id = 13;
    other_pipeline.project = "Ledger".to_owned();
    other_pipeline.project_id = Some("p-2".to_owned());
    for row in [
        deployment("dp_a", "staging", 101, 0),
        deployment("dp_b", "production", 102, 1),
        other_pipeline,
    ] {
        store.record_deployment(contoso, &row, &[]).await.unwrap();
    }
    let ids = |rows: Vec<Deployment>| rows.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let list = |filter: DeploymentFilter| async move {
        ids(store
            .deployments(
                contoso,
                &DeploymentFilter {
                    limit: 10,
                    ..filter
                },
            )
            .await
            .unwrap())
    };
    assert_eq!(
        list(DeploymentFilter::default()).await,
        ["dp_c", "dp_b", "dp_a"]
    );
    assert_eq!(
        list(DeploymentFilter {
            environment: Some("production".into()),
            ..DeploymentFilter::default()
        })
        .await,
        ["dp_c", "dp_b"]
    );
    // A project by name or by id.
    for project in ["Payments", "p-1"] {
        assert_eq!(
            list(DeploymentFilter {
                project: Some(project.into()),
                ..DeploymentFilter::default()
            })
            .await,
            ["dp_b", "dp_a"],
            "{project}"
        );
    }
    assert_eq!(
        list(DeploymentFilter {
            pipeline_id: Some(13),
            ..DeploymentFilter::default()
        })
        .await,
        ["dp_c"]
    );
    assert_eq!(
        ids(store
            .deployments(
                contoso,
                &DeploymentFilter {
                    limit: 1,
                    ..DeploymentFilter::default()
                }
            )
            .await
            .unwrap()),
        ["dp_c"]
    );
}

async fn a_completed_run_stays_completed(fixture: Fixture) {
    fixture
        .store
        .set_leaf_encoder(Arc::new(PlainEncoder))
        .unwrap();
    let store = &*fixture.store;
    let contoso = tenant("contoso");
    store
        .record_deployment(&contoso, &deployment("dp_s", "test", 201, 0), &[])
        .await
        .unwrap();
    let done = RunStatus {
        state: RunState::Completed,
        result: Some(RunResult::Succeeded),
        source_version: Some("abc123".into()),
        finished_at: Some(NOW + Duration::minutes(3)),
        checked_at: NOW + Duration::minutes(4),
    };
    let updated = store
        .update_run_status(&contoso, "dp_s", &done)
        .await
        .unwrap()
        .unwrap();
    assert!(updated.succeeded());
    assert_eq!(updated.source_version.as_deref(), Some("abc123"));
    assert_eq!(
        store.deployment(&contoso, "dp_s").await.unwrap(),
        Some(updated.clone())
    );
    // A stale answer (a replica that asked earlier) does not reopen it.
    let stale = RunStatus {
        state: RunState::InProgress,
        result: None,
        source_version: None,
        finished_at: None,
        checked_at: NOW + Duration::minutes(5),
    };
    let after = store
        .update_run_status(&contoso, "dp_s", &stale)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.state, RunState::Completed);
    assert_eq!(after.result, Some(RunResult::Succeeded));
    assert_eq!(after.updated_at, NOW + Duration::minutes(5));
    assert_eq!(
        store
            .update_run_status(&contoso, "dp_missing", &stale)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .update_run_status(&tenant("fabrikam"), "dp_s", &stale)
            .await
            .unwrap(),
        None
    );
}

fn decision(id: &str, run_id: Option<u64>) -> NewDecision {
    NewDecision {
        decision: GateDecision {
            id: id.to_owned(),
            key: format!("api:{id}"),
            source: "api".to_owned(),
            mode: "dry-run".to_owned(),
            verdict: Verdict::Allow,
            project: "Payments".to_owned(),
            environment: "staging".to_owned(),
            pipeline: None,
            run_id,
            requested_by: None,
            findings: tollgate_domain::CanonicalJson::new(&json!([])).unwrap(),
            input: tollgate_domain::CanonicalJson::new(&json!({})).unwrap(),
            callback: None,
            callback_state: None,
            approval_id: None,
            decided_at: NOW,
        },
        callback_token: None,
        approval: None,
        callback_job: None,
        notices: Vec::new(),
    }
}

async fn decisions_are_found_by_their_run(fixture: Fixture) {
    let store = &*fixture.store;
    let contoso = tenant("contoso");
    for (id, run) in [
        ("gd_1", Some(4711)),
        ("gd_2", Some(4712)),
        ("gd_3", None),
        ("gd_4", Some(4711)),
    ] {
        store
            .record_decision(&contoso, &decision(id, run), &[])
            .await
            .unwrap();
    }
    let mut found: Vec<String> = store
        .decisions(
            &contoso,
            &DecisionFilter {
                run_id: Some(4711),
                limit: 10,
                ..DecisionFilter::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    found.sort();
    assert_eq!(found, ["gd_1", "gd_4"]);
    assert_eq!(
        store
            .decisions(
                &contoso,
                &DecisionFilter {
                    limit: 10,
                    ..DecisionFilter::default()
                }
            )
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(
        store
            .decisions(
                &contoso,
                &DecisionFilter {
                    run_id: Some(u64::MAX),
                    limit: 10,
                    ..DecisionFilter::default()
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_backends!(
    a_deployment_and_its_audit_record_land_together_or_not_at_all,
    lists_filter_and_come_newest_first,
    a_completed_run_stays_completed,
    decisions_are_found_by_their_run,
);
