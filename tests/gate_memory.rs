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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_build_is_seen_by_the_next_check_about_the_same_run() {
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
    let gate = contexts[0].gate.clone();
    let tenant = TenantId::default_tenant();
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
