//! What the gate remembers between checks never outlives the inventory it came from: a run's
//! facts are kept while the inventory's version stays the same, and a verdict for the same
//! input within the same second. After a sync changes the run's build, the next check about
//! the same run, at the same instant, sees the change and is judged on it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use tollgate::config::{self, Config, Overrides};
use tollgate::services::audit_events::Actor;
use tollgate::services::gate::{DeploymentRequest, RequestSource};
use tollgate::services::sync::{ModeRequest, NoProgress};
use tollgate::startup;
use tollgate_domain::{InventoryItem, ResourceKind, SecretString, TenantId};
use tollgate_sim::{Profile, SimConfig, Simulator};
use tollgate_store::{INVENTORY_VERSION, Replace, SyncMode};

/// A Tuesday morning: nothing about the time stops a deployment.
const TUESDAY: OffsetDateTime = datetime!(2026-11-24 10:00:00 UTC);

/// Checks arriving together about the same request, in the same second, are judged once: the
/// first judges, the others wait for its judgement instead of each judging again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_checks_is_judged_once() {
    let synced = synced_gate().await;
    let request = deployment_of_build(&synced, 0, "production").await;
    for _attempt in 0..3 {
        let into_second = OffsetDateTime::now_utc().nanosecond();
        tokio::time::sleep(std::time::Duration::from_nanos(
            u64::from(1_000_000_000 - into_second) + 5_000_000,
        ))
        .await;
        if burst_is_judged_once(&synced, &request).await {
            return;
        }
    }
    panic!("three bursts each crossed a second: the machine is too busy for this test");
}

/// Send 24 checks of `request` at once; `false` if they did not all fall in one second (the
/// test then proves nothing and tries again).
async fn burst_is_judged_once(synced: &Synced, request: &DeploymentRequest) -> bool {
    let gate = synced.gate.clone();
    let before = gate.memory.judged_afresh();
    let mut seconds = std::collections::BTreeSet::new();
    for answer in validate_together(&gate, request, 24).await {
        let decision = synced
            .store
            .decision(&synced.tenant, &answer.decision_id)
            .await
            .unwrap()
            .unwrap();
        seconds.insert(decision.decided_at.unix_timestamp());
    }
    if seconds.len() != 1 {
        return false;
    }
    assert_eq!(
        gate.memory.judged_afresh() - before,
        1,
        "24 checks of one request in one second, judged once"
    );
    true
}

/// When the facts cannot be read, the checks get an approval (never an allow) and it is not
/// kept: the next check, in the same second, reads the facts again and is judged on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_for_unreadable_facts_is_not_kept() {
    let synced = synced_gate().await;
    let gate = synced.gate.clone();
    let request = deployment_of_build(&synced, 1, "staging").await;
    let sql = |statement: &'static str| {
        let url = format!("sqlite://{}", synced.db_path.display());
        async move {
            use sqlx::Connection as _;
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(statement)
                .execute(&mut connection)
                .await
                .unwrap();
            connection.close().await.unwrap();
        }
    };
    let degraded = |answer: &tollgate::services::gate::GateAnswer| {
        mentions(&answer.findings, "capability:gate.evaluate")
    };
    for _attempt in 0..3 {
        let into_second = OffsetDateTime::now_utc().nanosecond();
        tokio::time::sleep(std::time::Duration::from_nanos(
            u64::from(1_000_000_000 - into_second) + 5_000_000,
        ))
        .await;
        let second = OffsetDateTime::now_utc().unix_timestamp();
        sql("ALTER TABLE inventory RENAME TO inventory_away").await;
        let answers = validate_together(&gate, &request, 8).await;
        sql("ALTER TABLE inventory_away RENAME TO inventory").await;
        for answer in &answers {
            assert_eq!(answer.verdict.as_str(), "approval", "{answer:?}");
            assert!(degraded(answer), "{answer:?}");
        }
        let after = gate
            .validate(request.clone(), RequestSource::Api, &Actor::system())
            .await
            .unwrap();
        if OffsetDateTime::now_utc().unix_timestamp() != second {
            continue; // the second moved on: the check proves nothing, try again
        }
        assert!(!degraded(&after), "judged on the facts again: {after:?}");
        return;
    }
    panic!("three attempts each crossed a second: the machine is too busy for this test");
}

/// `checks` validations of `request` sent at once, their answers once all are in.
async fn validate_together(
    gate: &std::sync::Arc<tollgate::services::gate::GateService>,
    request: &DeploymentRequest,
    checks: usize,
) -> Vec<tollgate::services::gate::GateAnswer> {
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..checks {
        let (gate, request) = (gate.clone(), request.clone());
        burst.spawn(async move {
            gate.validate(request, RequestSource::Api, &Actor::system())
                .await
                .unwrap()
        });
    }
    burst.join_all().await
}

/// A deployment of the `nth` synced build's run to `environment`.
async fn deployment_of_build(synced: &Synced, nth: usize, environment: &str) -> DeploymentRequest {
    let builds = synced
        .store
        .items(&synced.tenant, ResourceKind::Builds, None, 1_000)
        .await
        .unwrap();
    DeploymentRequest {
        project: builds[nth].project.clone(),
        environment: environment.to_owned(),
        run_id: Some(builds[nth].ado_id.parse().unwrap()),
        ..DeploymentRequest::default()
    }
}

struct Synced {
    _sim: tollgate_sim::RunningSimulator,
    _dir: tempfile::TempDir,
    db_path: std::path::PathBuf,
    store: std::sync::Arc<dyn startup::Store>,
    gate: std::sync::Arc<tollgate::services::gate::GateService>,
    tenant: TenantId,
}

/// The simulator's small organisation synced into a new SQLite file, and its gate.
async fn synced_gate() -> Synced {
    let sim = Simulator::new(SimConfig {
        seed: 7,
        profile: Profile::Small,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        db: Some(dir.path().join("gate.db").display().to_string()),
        org_url: Some(sim.org_url()),
        ..Overrides::default()
    };
    let mut config: Config = config::load_from(None, &[], &overrides).unwrap().config;
    config.ado.pat = Some(SecretString::new("test-pat"));
    config.audit.key_file = Some(dir.path().join("audit.key"));
    startup::sync_service(&config)
        .await
        .unwrap()
        .run(ModeRequest::Full, &NoProgress)
        .await
        .unwrap();
    let store = startup::configured_store(&config).await.unwrap();
    let (policies, problems) = startup::policies(&config).unwrap();
    let contexts = startup::tenant_contexts(&config, store.clone(), policies, &problems).unwrap();
    Synced {
        db_path: dir.path().join("gate.db"),
        _sim: sim,
        _dir: dir,
        store,
        gate: contexts[0].gate.clone(),
        tenant: TenantId::default_tenant(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_build_is_seen_by_the_next_check_about_the_same_run() {
    let synced = synced_gate().await;
    let (store, gate, tenant) = (
        synced.store.clone(),
        synced.gate.clone(),
        synced.tenant.clone(),
    );
    let synced_version = store.watermark(&tenant, INVENTORY_VERSION).await.unwrap();
    assert!(
        synced_version.is_some(),
        "a sync gives the inventory a version"
    );

    // A run whose build succeeded: its result is in the rules' input.
    let builds = store
        .items(&tenant, ResourceKind::Builds, None, 1_000)
        .await
        .unwrap();
    let build = builds
        .iter()
        .find(|item| item.raw.contains(r#""result":"succeeded""#))
        .expect("a succeeded build in the simulated organisation")
        .clone();
    let request = DeploymentRequest {
        project: build.project.clone(),
        environment: "production".to_owned(),
        run_id: Some(build.ado_id.parse().unwrap()),
        ..DeploymentRequest::default()
    };
    let (_, findings, input) = gate.judge(&request, TUESDAY).await.unwrap();
    assert_eq!(input["build"]["result"], "succeeded", "{input}");
    assert!(!mentions(&findings, "GATE-08"), "{findings:?}");
    // Asked again at the same instant, the gate answers the same.
    let (_, again, same_input) = gate.judge(&request, TUESDAY).await.unwrap();
    assert_eq!(same_input, input);
    assert_eq!(format!("{again:?}"), format!("{findings:?}"));
    // Through a recorded decision (the judgement kept for the version and the second).
    let system = Actor::system();
    let validate = || gate.validate(request.clone(), RequestSource::Api, &system);
    // At the start of a second, so that the decision after the sync below falls in the same
    // second (asserted there): only the inventory's version then tells the two apart.
    let into_second = OffsetDateTime::now_utc().nanosecond();
    tokio::time::sleep(std::time::Duration::from_nanos(
        u64::from(1_000_000_000 - into_second) + 5_000_000,
    ))
    .await;
    let before = validate().await.unwrap();
    assert!(!mentions(&before.findings, "GATE-08"), "{before:?}");
    assert!(!mentions(&validate().await.unwrap().findings, "GATE-08"));

    // A sync records that the build failed after all.
    let mut raw: Value = serde_json::from_str(&build.raw).unwrap();
    raw["result"] = json!("failed");
    let failed = InventoryItem {
        raw: raw.to_string(),
        ..build.clone()
    };
    let run = store
        .begin_sync(&tenant, SyncMode::Incremental)
        .await
        .unwrap()
        .id;
    store.stage(&tenant, run, &[failed]).await.unwrap();
    store
        .commit_kind(
            &tenant,
            run,
            ResourceKind::Builds,
            &Replace::upsert_only(),
            &[],
        )
        .await
        .unwrap();
    store
        .finish_sync(&tenant, run, "ok", &json!({}), &[])
        .await
        .unwrap();

    let changed_version = store.watermark(&tenant, INVENTORY_VERSION).await.unwrap();
    assert_ne!(changed_version, synced_version);
    let (_, findings, input) = gate.judge(&request, TUESDAY).await.unwrap();
    assert_eq!(input["build"]["result"], "failed", "{input}");
    assert!(
        mentions(&findings, "GATE-08"),
        "the quality gate judges the failed build: {findings:?}"
    );
    // A decision right after the sync, in the same second as the one before it, is not
    // answered from the judgement kept for the older version.
    let after = validate().await.unwrap();
    assert!(mentions(&after.findings, "GATE-08"), "{after:?}");
    let recorded = store
        .decision(&tenant, &after.decision_id)
        .await
        .unwrap()
        .unwrap();
    let earlier = store
        .decision(&tenant, &before.decision_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        recorded.decided_at.unix_timestamp(),
        earlier.decided_at.unix_timestamp(),
        "both decisions in one second (the test took longer than a second?)"
    );
    assert_eq!(
        recorded.input.to_value().unwrap()["build"]["result"],
        "failed"
    );
}

fn mentions(findings: &[tollgate::services::gate::JudgedFinding], rule: &str) -> bool {
    findings.iter().any(|finding| finding.rule == rule)
}
