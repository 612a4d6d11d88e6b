//! Scanning the simulated organisation: every planted misconfiguration is found, and every
//! finding is one that was planted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use time::OffsetDateTime;
use tollgate::config::{self, Config, Overrides};
use tollgate::report::{self, ScanFormat};
use tollgate::services::scan::Evaluation;
use tollgate::services::sync::{ModeRequest, NoProgress};
use tollgate::startup;
use tollgate_domain::SecretString;
use tollgate_sim::{MutationKind, Profile, RunningSimulator, SimConfig, Simulator};

async fn simulator(seed: u64, profile: Profile) -> RunningSimulator {
    Simulator::new(SimConfig {
        seed,
        profile,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap()
}

fn config_for(sim: &RunningSimulator, db: &Path) -> Config {
    let overrides = Overrides {
        db: Some(db.display().to_string()),
        org_url: Some(sim.org_url()),
        ..Overrides::default()
    };
    let mut config = config::load_from(None, &[], &overrides).unwrap().config;
    config.ado.pat = Some(SecretString::new("test-pat"));
    config
}

async fn planted(sim: &RunningSimulator) -> BTreeSet<(String, String)> {
    let manifest: Value = reqwest::get(format!("{}/_sim/manifest", sim.base_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    manifest["planted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["control"].as_str().unwrap().to_owned(),
                p["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn sync_and_scan(config: &Config) -> tollgate::services::scan::ScanReport {
    let summary = startup::sync_service(config)
        .await
        .unwrap()
        .run(ModeRequest::Auto, &NoProgress)
        .await
        .unwrap();
    assert_eq!(summary.status, "ok");
    startup::scan_service(config)
        .await
        .unwrap()
        .scan(OffsetDateTime::now_utc(), Evaluation::Auto)
        .await
        .unwrap()
}

fn found(report: &tollgate::services::scan::ScanReport) -> BTreeSet<(String, String)> {
    report
        .findings
        .iter()
        .map(|f| (f.control.clone(), f.resource_key.clone()))
        .collect()
}

fn assert_same(
    planted: &BTreeSet<(String, String)>,
    found: &BTreeSet<(String, String)>,
    context: &str,
) {
    let missed: Vec<_> = planted.difference(found).collect();
    let unexplained: Vec<_> = found.difference(planted).collect();
    assert!(
        missed.is_empty() && unexplained.is_empty(),
        "{context}: missed {missed:?}; unexplained {unexplained:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scan_finds_exactly_the_planted_misconfigurations_at_several_seeds() {
    for seed in [1, 7, 42] {
        let sim = simulator(seed, Profile::Medium).await;
        let dir = tempfile::tempdir().unwrap();
        let config = config_for(&sim, &dir.path().join("scan.db"));
        let report = sync_and_scan(&config).await;
        assert!(
            report.not_evaluated.is_empty(),
            "{:?}",
            report.not_evaluated
        );
        assert!(
            report.load_problems.is_empty(),
            "{:?}",
            report.load_problems
        );
        let expected = planted(&sim).await;
        assert!(expected.len() > 20, "seed {seed} plants a meaningful set");
        assert_same(&expected, &found(&report), &format!("seed {seed}"));
        for finding in &report.findings {
            assert!(
                !finding.message.is_empty() && !finding.evidence.is_null(),
                "{finding:?} explains itself"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_follow_mutations_through_an_incremental_sync() {
    let sim = simulator(5, Profile::Small).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &dir.path().join("life.db"));
    let first = sync_and_scan(&config).await;
    assert_eq!(first.lifecycle.opened as usize, first.findings.len());

    let ops = [
        MutationKind::WeakenPolicy,
        MutationKind::RemoveProductionApproval,
        MutationKind::ExposeVariable,
        MutationKind::DeleteRepository,
    ];
    reqwest::Client::new()
        .post(format!("{}/_sim/mutate", sim.base_url))
        .body(serde_json::json!({"ops": ops}).to_string())
        .send()
        .await
        .unwrap();
    let second = sync_and_scan(&config).await;
    assert_eq!(second.evaluation.mode, "changed", "{:?}", second.evaluation);
    assert_same(&planted(&sim).await, &found(&second), "after mutations");
    assert!(second.lifecycle.opened > 0, "{:?}", second.lifecycle);
    assert!(
        second.resources_evaluated < first.resources_evaluated / 4,
        "changed-only judged {} of {} resources",
        second.resources_evaluated,
        first.resources_evaluated
    );
}

async fn scan_only(
    config: &Config,
    evaluation: Evaluation,
) -> tollgate::services::scan::ScanReport {
    startup::scan_service(config)
        .await
        .unwrap()
        .scan(OffsetDateTime::now_utc(), evaluation)
        .await
        .unwrap()
}

/// Judging only what changed must leave exactly the findings that judging everything gives,
/// whatever changed: every kind of mutation, several rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judging_only_what_changed_agrees_with_judging_everything() {
    let sim = simulator(11, Profile::Small).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &dir.path().join("changed.db"));
    let first = sync_and_scan(&config).await;
    assert_eq!(first.evaluation.mode, "all");
    let client = reqwest::Client::new();
    for round in 0..3 {
        let ops: Vec<MutationKind> = MutationKind::ALL
            .iter()
            .copied()
            .cycle()
            .skip(round * 5)
            .take(MutationKind::ALL.len())
            .collect();
        let response = client
            .post(format!("{}/_sim/mutate", sim.base_url))
            .body(serde_json::json!({"ops": ops, "count": 10}).to_string())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let changed = sync_and_scan(&config).await;
        assert_eq!(changed.evaluation.mode, "changed", "round {round}");
        let everything = scan_only(&config, Evaluation::All).await;
        assert_eq!(everything.evaluation.mode, "all");
        assert_same(
            &found(&everything),
            &found(&changed),
            &format!("round {round}"),
        );
        assert_eq!(
            (
                everything.lifecycle.opened,
                everything.lifecycle.reopened,
                everything.lifecycle.fixed
            ),
            (0, 0, 0),
            "round {round}: a full evaluation found nothing the changed-only one missed"
        );
        assert_same(
            &planted(&sim).await,
            &found(&changed),
            &format!("round {round} vs manifest"),
        );
    }
    // With nothing changed, nothing is judged.
    let idle = sync_and_scan(&config).await;
    assert_eq!(idle.evaluation.mode, "changed");
    assert_eq!(idle.resources_evaluated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_in_policy_runs_without_a_rebuild_and_a_broken_one_is_reported() {
    let sim = simulator(2, Profile::Small).await;
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("naming.rego"),
        "# METADATA\n# title: \"Repositories are named team-service\"\n# description: \"Names carry a team prefix.\"\n# custom:\n#   id: ORG-1\n#   severity: low\n#   kind: repositories\n#   rationale: \"Ownership.\"\n#   remediation: \"Rename.\"\n#   permission: \"Code (Read)\"\n#   frameworks: [\"internal:naming\"]\npackage tollgate.controls.org_1\n\ndeny contains {\"message\": \"no team prefix\", \"evidence\": {\"name\": input.resource.name}} if not startswith(input.resource.name, \"team-\")\n",
    )
    .unwrap();
    std::fs::write(
        policies.join("broken.rego"),
        "package tollgate.controls.broken\n\ndeny contains \"x\" if {\n",
    )
    .unwrap();
    let mut config = config_for(&sim, &dir.path().join("custom.db"));
    config.policy.dirs.push(policies.clone());
    let report = sync_and_scan(&config).await;
    assert_eq!(report.load_problems.len(), 1, "{:?}", report.load_problems);
    assert!(
        report.load_problems[0].contains("broken.rego:"),
        "{:?}",
        report.load_problems
    );
    let custom = report
        .findings
        .iter()
        .filter(|f| f.control == "ORG-1")
        .count();
    let repositories = startup::inventory_service(&config)
        .await
        .unwrap()
        .counts()
        .await
        .unwrap()[&tollgate_domain::ResourceKind::Repositories];
    assert_eq!(
        custom as u64, repositories,
        "the custom control judged every repository"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_format_renders_and_sarif_validates_against_the_2_1_0_schema() {
    let sim = simulator(3, Profile::Small).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(&sim, &dir.path().join("formats.db"));
    let report = sync_and_scan(&config).await;
    assert!(!report.findings.is_empty());

    let mut schema: Value =
        serde_json::from_str(include_str!("fixtures/sarif/sarif-2.1.0-rtm.5.json")).unwrap();
    // The published schema's `language` patterns have a stray `]` and is not a valid regex,
    // so a validator that checks the schema itself refuses it. Repair those patterns in
    // memory (the fixture stays byte-for-byte); they do not constrain our output.
    fn repair(value: &mut Value) -> usize {
        match value {
            Value::Object(map) => {
                let mut fixed = 0;
                if map.get("pattern").and_then(Value::as_str)
                    == Some("^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$")
                {
                    map.insert(
                        "pattern".into(),
                        Value::from("^[a-zA-Z]{2}(-[a-zA-Z]{2})?$"),
                    );
                    fixed += 1;
                }
                fixed + map.values_mut().map(repair).sum::<usize>()
            }
            Value::Array(items) => items.iter_mut().map(repair).sum(),
            _ => 0,
        }
    }
    assert!(
        repair(&mut schema) >= 1,
        "the known-bad language pattern was found"
    );
    let validator = jsonschema::draft4::new(&schema).unwrap();
    let sarif: Value = serde_json::from_str(&report::render(&report, ScanFormat::Sarif)).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(
        sarif["runs"][0]["results"].as_array().unwrap().len(),
        report.findings.len()
    );
    let mut broken = sarif.clone();
    broken["version"] = Value::from("2.0.0");
    assert!(
        validator.iter_errors(&broken).count() > 0,
        "the validator does reject an invalid log"
    );

    let json: Value = serde_json::from_str(&report::render(&report, ScanFormat::Json)).unwrap();
    assert_eq!(
        json["findings"].as_array().unwrap().len(),
        report.findings.len()
    );
    let html = report::render(&report, ScanFormat::Html);
    assert!(
        html.starts_with("<!doctype html>")
            && !html.contains("http://")
            && !html.contains("<script"),
        "self-contained"
    );
    assert!(html.contains(&report.findings[0].control));
    let markdown = report::render(&report, ScanFormat::Markdown);
    assert!(markdown.contains("| severity | findings |"));
    let table = report::render(&report, ScanFormat::Table);
    assert!(table.contains(&report::summary_line(&report)));
}
