//! Inventory sync against the simulator over real HTTP on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tollgate::config::{self, AdoAuth, Config, Overrides};
use tollgate::services::events::add_change_hints;
use tollgate::services::sync::{
    ChangeHintSource, ChangeHints, KindStatus, ModeRequest, NoProgress, SyncSummary,
};
use tollgate::startup;
use tollgate_domain::{ResourceKind, SecretString, TenantId};
use tollgate_sim::{Faults, MutationKind, Profile, RunningSimulator, SimConfig, Simulator};

async fn simulator(config: SimConfig) -> RunningSimulator {
    Simulator::new(config)
        .spawn("127.0.0.1:0")
        .await
        .expect("simulator starts")
}

fn config_for(sim: &RunningSimulator, db: &Path) -> Config {
    let overrides = Overrides {
        db: Some(db.display().to_string()),
        org_url: Some(sim.org_url()),
        ..Overrides::default()
    };
    let mut config = config::load_from(None, &[], &overrides)
        .expect("config")
        .config;
    config.ado.pat = Some(SecretString::new("test-pat"));
    config
}

async fn sync(config: &Config, mode: ModeRequest) -> anyhow::Result<SyncSummary> {
    startup::sync_service(config)
        .await?
        .run(mode, &NoProgress)
        .await
}

async fn get_json(sim: &RunningSimulator, path: &str) -> Value {
    reqwest::get(format!("{}{path}", sim.base_url))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

async fn manifest_counts(sim: &RunningSimulator) -> BTreeMap<String, u64> {
    let manifest = get_json(sim, "/_sim/manifest").await;
    serde_json::from_value(manifest["counts"].clone()).expect("counts")
}

async fn stored_counts(config: &Config) -> BTreeMap<String, u64> {
    let service = startup::inventory_service(config).await.expect("inventory");
    service
        .counts()
        .await
        .expect("counts")
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect()
}

async fn total_calls(sim: &RunningSimulator) -> u64 {
    get_json(sim, "/_sim/calls").await["total"]
        .as_u64()
        .expect("total")
}

/// Every stored object as (kind, key) → raw JSON.
async fn snapshot(config: &Config) -> BTreeMap<(ResourceKind, String), String> {
    let store = startup::open_store(&config.database.url)
        .await
        .expect("store");
    let tenant = TenantId::default_tenant();
    let mut all = BTreeMap::new();
    for kind in ResourceKind::ALL {
        let mut after: Option<String> = None;
        loop {
            let page = store
                .items(&tenant, *kind, after.as_deref(), 5_000)
                .await
                .expect("items");
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            for item in page {
                all.insert((*kind, item.key), item.raw);
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sync_stores_exactly_the_simulated_counts_at_several_seeds() {
    for seed in [1, 7, 42] {
        let sim = simulator(SimConfig {
            seed,
            profile: Profile::Medium,
            ..SimConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let config = config_for(&sim, &dir.path().join("inventory.db"));
        let summary = sync(&config, ModeRequest::Auto).await.unwrap();
        assert_eq!(summary.status, "ok", "seed {seed}: {summary:?}");
        assert_eq!(summary.mode.as_str(), "full");
        let expected = manifest_counts(&sim).await;
        assert_eq!(stored_counts(&config).await, expected, "seed {seed}");
        assert!(expected.values().all(|n| *n > 0), "every kind is populated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_latency_truncation_and_a_throttling_storm_change_nothing_in_the_result() {
    let seed = 11;
    let clean = simulator(SimConfig {
        seed,
        ..SimConfig::default()
    })
    .await;
    let clean_dir = tempfile::tempdir().unwrap();
    let clean_config = config_for(&clean, &clean_dir.path().join("clean.db"));
    sync(&clean_config, ModeRequest::Full).await.unwrap();

    let faults = Faults {
        latency_ms: 200,
        error_rate: 0.10,
        truncate_rate: 0.05,
        throttle_for_ms: 0,
    };
    let faulty = simulator(SimConfig {
        seed,
        faults,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&faulty, &dir.path().join("faulty.db"));
    config.ado.max_concurrency = 16;
    config.ado.max_attempts = 12;

    // Exhaust the budget mid-sync: once the sync is under way, every request gets 429 for 1.5 s.
    let storm = {
        let base = faulty.base_url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let calls: Value = client
                    .get(format!("{base}/_sim/calls"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if calls["total"].as_u64().unwrap_or(0) >= 20 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut faults: Value = client
                .get(format!("{base}/_sim/faults"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            faults["throttle_for_ms"] = 1_500.into();
            client
                .post(format!("{base}/_sim/faults"))
                .body(faults.to_string())
                .send()
                .await
                .unwrap();
        })
    };
    let summary = sync(&config, ModeRequest::Full).await.unwrap();
    storm.await.unwrap();
    assert_eq!(summary.status, "ok", "{summary:?}");
    let calls = get_json(&faulty, "/_sim/calls").await;
    assert!(
        calls["injected_errors"].as_u64().unwrap() > 0,
        "errors were injected: {calls}"
    );
    assert!(
        calls["throttled"].as_u64().unwrap() > 0,
        "requests were throttled: {calls}"
    );
    assert!(
        summary.api.retries > 0 && summary.api.throttled > 0,
        "{:?}",
        summary.api
    );
    assert_eq!(
        snapshot(&config).await,
        snapshot(&clean_config).await,
        "same inventory with and without faults"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_rate_limit_budget_slows_the_client_down_but_the_inventory_is_complete() {
    let sim = simulator(SimConfig {
        seed: 5,
        tstu_budget: 40,
        // A window of several seconds: X-RateLimit-Reset has whole-second resolution, so a
        // one-second window can round to "now" and leave nothing to pace on a slow machine.
        tstu_window: Duration::from_secs(4),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &dir.path().join("paced.db"));
    let summary = sync(&config, ModeRequest::Full).await.unwrap();
    assert_eq!(summary.status, "ok");
    assert!(
        summary.api.paced > 0,
        "the client slowed down as X-RateLimit-Remaining fell: {:?}",
        summary.api
    );
    assert_eq!(stored_counts(&config).await, manifest_counts(&sim).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_sync_after_mutations_is_cheap_and_converges_to_a_full_sync() {
    let sim = simulator(SimConfig {
        seed: 3,
        profile: Profile::Medium,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &dir.path().join("incremental.db"));
    let before = total_calls(&sim).await;
    sync(&config, ModeRequest::Full).await.unwrap();
    let full_calls = total_calls(&sim).await - before;

    let ops: Vec<MutationKind> = MutationKind::ALL
        .iter()
        .chain(MutationKind::ALL)
        .copied()
        .collect();
    let applied = reqwest::Client::new()
        .post(format!("{}/_sim/mutate", sim.base_url))
        .body(serde_json::json!({"ops": ops}).to_string())
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert!(
        applied["applied"].as_array().unwrap().len() >= MutationKind::ALL.len(),
        "{applied}"
    );

    let before = total_calls(&sim).await;
    let summary = sync(&config, ModeRequest::Auto).await.unwrap();
    let incremental_calls = total_calls(&sim).await - before;
    assert_eq!(summary.mode.as_str(), "incremental");
    assert_eq!(summary.status, "ok", "{summary:?}");
    assert!(
        incremental_calls * 3 < full_calls,
        "incremental sync made {incremental_calls} calls, full sync {full_calls}: {:#?}",
        summary
            .kinds
            .iter()
            .map(|k| (k.kind, k.status, k.scopes, k.pages))
            .collect::<Vec<_>>()
    );

    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = config_for(&sim, &fresh_dir.path().join("fresh.db"));
    sync(&fresh, ModeRequest::Full).await.unwrap();
    let (patched, reference) = (snapshot(&config).await, snapshot(&fresh).await);
    let differing: Vec<_> = reference
        .iter()
        .filter(|(key, raw)| patched.get(*key) != Some(*raw))
        .map(|(key, _)| key.clone())
        .chain(
            patched
                .keys()
                .filter(|key| !reference.contains_key(*key))
                .cloned(),
        )
        .take(10)
        .collect();
    assert!(
        differing.is_empty(),
        "incremental and full sync differ at {differing:?}"
    );
    assert_eq!(stored_counts(&config).await, manifest_counts(&sim).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_the_credential_may_not_read_are_listed_as_skipped_and_the_rest_syncs() {
    let forbidden = vec![ResourceKind::Alerts, ResourceKind::AuditLog];
    let sim = simulator(SimConfig {
        seed: 2,
        forbidden: forbidden.clone(),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &dir.path().join("partial.db"));
    let summary = sync(&config, ModeRequest::Full).await.unwrap();
    assert_eq!(summary.status, "partial");
    let skipped: Vec<ResourceKind> = summary.skipped().map(|k| k.kind).collect();
    assert_eq!(skipped, vec![ResourceKind::AuditLog, ResourceKind::Alerts]);
    assert!(
        summary
            .skipped()
            .all(|k| k.detail.as_deref().unwrap_or_default().contains("403"))
    );
    let stored = stored_counts(&config).await;
    let expected = manifest_counts(&sim).await;
    for (kind, count) in expected.clone() {
        let forbidden_kind = forbidden.iter().any(|f| f.as_str() == kind);
        assert_eq!(
            stored[&kind],
            if forbidden_kind { 0 } else { count },
            "{kind}"
        );
    }
    // A partial sync is a base for the next incremental one. Without the audit log as a
    // changes feed, that sync re-lists configuration everywhere rather than trust silence.
    let next = sync(&config, ModeRequest::Incremental).await.unwrap();
    assert_eq!(
        (next.mode.as_str(), next.status.as_str()),
        ("incremental", "partial")
    );
    let relisted = next
        .kinds
        .iter()
        .find(|k| k.kind == ResourceKind::VariableGroups)
        .unwrap();
    assert_eq!(relisted.status, KindStatus::Synced);
    assert_eq!(stored_counts(&config).await, stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_credential_is_a_clear_error_and_writes_nothing() {
    let sim = simulator(SimConfig {
        pat: Some("the-right-pat".into()),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &dir.path().join("denied.db"));
    let error = sync(&config, ModeRequest::Full).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("401") && message.contains("credential"),
        "{message}"
    );
    assert!(
        !message.contains("test-pat"),
        "the PAT never appears in errors: {message}"
    );
    assert!(stored_counts(&config).await.values().all(|n| *n == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_principal_gets_a_token_once_and_syncs() {
    let sim = simulator(SimConfig {
        seed: 4,
        client_secret: Some("s3cret".into()),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(&sim, &dir.path().join("sp.db"));
    config.ado.pat = None;
    config.ado.auth = AdoAuth::ServicePrincipal;
    config.ado.tenant_id = Some("contoso-tenant".into());
    config.ado.client_id = Some("tollgate-app".into());
    config.ado.client_secret = Some(SecretString::new("s3cret"));
    config.ado.authority = sim.base_url.clone();
    let summary = sync(&config, ModeRequest::Full).await.unwrap();
    assert_eq!(summary.status, "ok");
    assert_eq!(stored_counts(&config).await, manifest_counts(&sim).await);

    config.ado.client_secret = Some(SecretString::new("wrong"));
    let error = format!("{:#}", sync(&config, ModeRequest::Full).await.unwrap_err());
    assert!(
        error.contains("AADSTS7000215") && !error.contains("wrong"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncing_another_organisation_into_the_same_database_starts_over_with_a_full_sync() {
    let first = simulator(SimConfig {
        seed: 8,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    sync(&config_for(&first, &db), ModeRequest::Full)
        .await
        .unwrap();
    let second = simulator(SimConfig {
        seed: 9,
        ..SimConfig::default()
    })
    .await;
    let config = config_for(&second, &db);
    let summary = sync(&config, ModeRequest::Auto).await.unwrap();
    assert_eq!(summary.mode.as_str(), "full");
    assert_eq!(stored_counts(&config).await, manifest_counts(&second).await);
    assert!(summary.kinds.iter().all(|k| k.status == KindStatus::Synced));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_definitions_are_listed_then_read_in_full_and_skipped_when_forbidden() {
    let config = SimConfig {
        seed: 6,
        ..SimConfig::default()
    };
    let simulated = Simulator::new(config.clone());
    let minimum: u64 = simulated.minimum_requests().values().sum();
    let sim = simulated
        .spawn("127.0.0.1:0")
        .await
        .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let db = config_for(&sim, &dir.path().join("release.db"));
    let summary = sync(&db, ModeRequest::Full).await.unwrap();
    assert_eq!(summary.status, "ok");
    // The list returns summaries; each definition is then read by id, and no call more.
    let expected = manifest_counts(&sim).await["release_definitions"];
    let calls = get_json(&sim, "/_sim/calls").await;
    assert_eq!(
        calls["by_endpoint"]["GET /{organization}/{project}/_apis/release/definitions/{id}"],
        expected,
        "{calls}"
    );
    assert_eq!(calls["total"].as_u64().unwrap(), minimum, "{calls}");
    let stored = snapshot(&db).await;
    let definitions: Vec<&String> = stored
        .iter()
        .filter(|((kind, _), _)| *kind == ResourceKind::ReleaseDefinitions)
        .map(|(_, raw)| raw)
        .collect();
    assert_eq!(definitions.len() as u64, expected);
    assert!(
        definitions
            .iter()
            .all(|raw| raw.contains("\"preDeployApprovals\"")),
        "stored definitions are the full ones"
    );

    let forbidden = simulator(SimConfig {
        forbidden: vec![ResourceKind::ReleaseDefinitions],
        ..config
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = config_for(&forbidden, &dir.path().join("forbidden.db"));
    let summary = sync(&db, ModeRequest::Full).await.unwrap();
    assert_eq!(summary.status, "partial");
    let skipped: Vec<ResourceKind> = summary.skipped().map(|k| k.kind).collect();
    assert_eq!(skipped, vec![ResourceKind::ReleaseDefinitions]);
    assert_eq!(stored_counts(&db).await["release_definitions"], 0);
}

/// Hints as the stored events would give them.
struct FixedHints(ChangeHints);

#[async_trait::async_trait]
impl ChangeHintSource for FixedHints {
    async fn hints_since(&self, _since: time::OffsetDateTime) -> anyhow::Result<ChangeHints> {
        Ok(self.0.clone())
    }
}

/// Pushes leave no audit entry, so only the events can say a repository's refs moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_sync_rereads_the_refs_of_repositories_the_events_name() {
    let sim = simulator(SimConfig {
        seed: 5,
        profile: Profile::Small,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &dir.path().join("hinted.db"));
    sync(&config, ModeRequest::Full).await.unwrap();
    let repository: Value = snapshot(&config)
        .await
        .into_iter()
        .find(|((kind, _), _)| *kind == ResourceKind::Repositories)
        .map(|(_, raw)| serde_json::from_str(&raw).unwrap())
        .expect("a repository");
    let repository_id = repository["id"].as_str().unwrap().to_owned();

    let pushed = reqwest::Client::new()
        .post(format!("{}/_sim/mutate", sim.base_url))
        .json(&serde_json::json!({"ops": ["push_to_repository"], "repository": repository_id}))
        .send()
        .await
        .unwrap();
    assert!(pushed.status().is_success());
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = config_for(&sim, &fresh_dir.path().join("fresh.db"));
    sync(&fresh, ModeRequest::Full).await.unwrap();
    let reference = snapshot(&fresh).await;
    let refs = |snapshot: &BTreeMap<(ResourceKind, String), String>| {
        snapshot
            .iter()
            .filter(|((kind, _), _)| *kind == ResourceKind::Refs)
            .map(|(key, raw)| (key.clone(), raw.clone()))
            .collect::<Vec<_>>()
    };

    // Without hints the incremental sync cannot know: the stored refs stay behind.
    let blind = startup::sync_service(&config).await.unwrap();
    blind
        .run(ModeRequest::Incremental, &NoProgress)
        .await
        .unwrap();
    assert_ne!(refs(&snapshot(&config).await), refs(&reference));

    // With the push's hint it re-reads that repository's refs and matches a full sync.
    let mut hints = ChangeHints::default();
    add_change_hints(
        "git.push",
        serde_json::json!({"resource": {"repository": {"id": repository_id}}})
            .to_string()
            .as_bytes(),
        &mut hints,
    );
    let hinted = startup::sync_service(&config)
        .await
        .unwrap()
        .with_change_hints(Arc::new(FixedHints(hints)));
    let summary = hinted
        .run(ModeRequest::Incremental, &NoProgress)
        .await
        .unwrap();
    let refs_outcome = summary
        .kinds
        .iter()
        .find(|k| k.kind == ResourceKind::Refs)
        .unwrap();
    assert_eq!(
        refs_outcome.scopes, 1,
        "only the pushed repository: {refs_outcome:?}"
    );
    assert_eq!(refs(&snapshot(&config).await), refs(&reference));
}
