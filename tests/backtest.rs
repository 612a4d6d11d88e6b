//! `tollgate gate backtest` and GATE-10 (deployments that ran without a verdict), end to end:
//! the real binary against a simulated organisation.
//!
//! - The backtest replays the synced deployment records at the time each started: weekend
//!   production deployments are denied (GATE-03), weekday ones wait for approval (GATE-01);
//!   its counts add up, and `tollgate gate check` at a record's start time gives the same
//!   verdict for the same rules.
//! - A pipeline run that deployed to production through tollgate's check leaves no finding; one
//!   that ran after the check was removed gets a GATE-10 finding, once, however often the
//!   inventory is synced and judged again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use server::Server;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_sim::{Profile, RunSettings, SimConfig, Simulator};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
/// The simulated organisation's today (its records fall in the 60 days before) and the gate's
/// clock: a Tuesday morning.
const SIM_TODAY_MS: i64 = 1_795_478_400_000; // 2026-11-24T00:00:00Z
const NOW: &str = "2026-11-24T10:00:00Z";
const GATE_USER: &str = "ado-check";
const GATE_PASSWORD: &str = "gate-password-for-tests";

/// `tollgate` with no TOLLGATE_* from the developer's shell, in the test's directory.
fn tollgate(dir: &tempfile::TempDir) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir.path());
    for (name, _) in std::env::vars() {
        if name.starts_with("TOLLGATE_") {
            command.env_remove(name);
        }
    }
    command
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is JSON ({error}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap()
}

struct Synced {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    _sim: tollgate_sim::RunningSimulator,
}

impl Synced {
    fn run(&self, now: &str, args: &[&str]) -> Output {
        tollgate(&self.dir)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("TOLLGATE_FAKE_NOW", now)
            .output()
            .unwrap()
    }

    fn backtest(&self, args: &[&str]) -> Value {
        let mut all = vec!["gate", "backtest", "--format", "json"];
        all.extend_from_slice(args);
        let output = self.run(NOW, &all);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        json_of(&output)
    }
}

/// A simulated organisation synced into a fresh database by `tollgate sync`, with a gate
/// configured for production: approvals and weekends enforced, the rules that need facts the
/// simulator does not plant (staging first, work items) only warning.
async fn synced() -> Synced {
    let sim = Simulator::new(SimConfig {
        seed: 11,
        profile: Profile::Small,
        now_ms: Some(SIM_TODAY_MS),
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{db}\"\n\n[ado]\norg_url = \"{org}\"\npat = \"test-pat\"\n\n\
             [gate]\nusername = \"{GATE_USER}\"\npassword = \"{GATE_PASSWORD}\"\ntimezone = \"UTC\"\n\n\
             [[gate.environments]]\nname = \"production\"\nquorum = 1\n\
             actions = {{ \"GATE-02\" = \"warn\", \"GATE-04\" = \"warn\", \"GATE-06\" = \"warn\", \"GATE-07\" = \"warn\", \"GATE-08\" = \"warn\", \"GATE-09\" = \"warn\" }}\n",
            db = dir.path().join("tollgate.db").display(),
            org = sim.org_url(),
        ),
    )
    .unwrap();
    let output = tollgate(&dir)
        .arg("--config")
        .arg(&config)
        .args(["sync", "--full"])
        .env("TOLLGATE_ADO_PAT", "test-pat")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sync: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Synced {
        dir,
        config,
        _sim: sim,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtest_reports_what_the_gate_would_have_stopped_as_gate_check_judges_it() {
    let synced = synced().await;
    let report = synced.backtest(&["--since", "30d"]);
    assert_eq!(report["since"], "2026-10-25T10:00:00Z");
    assert_eq!(report["until"], NOW);
    assert_eq!(report["team_basis"], "project");

    // The totals add up, by verdict and by team.
    let totals = &report["totals"];
    let replayed = count(&totals["replayed"]);
    assert!(replayed > 0, "{report}");
    assert_eq!(
        replayed,
        count(&totals["would_allow"])
            + count(&totals["would_deny"])
            + count(&totals["would_need_approval"])
            + count(&totals["could_not_judge"]),
        "{totals}"
    );
    let not_judged: u64 = totals["could_not_judge_because"]
        .as_object()
        .unwrap()
        .values()
        .map(count)
        .sum();
    assert_eq!(not_judged, count(&totals["could_not_judge"]));
    for field in [
        "replayed",
        "would_allow",
        "would_deny",
        "would_need_approval",
        "could_not_judge",
    ] {
        let by_team: u64 = report["by_team"]
            .as_array()
            .unwrap()
            .iter()
            .map(|team| count(&team[field]))
            .sum();
        assert_eq!(by_team, count(&totals[field]), "{field} by team");
    }
    assert!(count(&totals["would_allow"]) > 0, "{totals}");
    assert!(count(&totals["would_deny"]) > 0, "{totals}");
    assert!(count(&totals["would_need_approval"]) > 0, "{totals}");

    // Every stopped deployment is listed with the rules that stopped it; the rules' counts are
    // the listed deployments they appear in.
    let blocked = report["blocked"].as_array().unwrap();
    assert_eq!(
        blocked.len() as u64,
        count(&totals["would_deny"]) + count(&totals["would_need_approval"])
    );
    let mut per_rule: BTreeMap<String, u64> = BTreeMap::new();
    for deployment in blocked {
        let rules = deployment["rules"].as_array().unwrap();
        assert!(!rules.is_empty(), "{deployment}");
        for field in [
            "time",
            "project",
            "pipeline",
            "run",
            "environment",
            "requester",
        ] {
            assert!(deployment[field].is_string(), "{field}: {deployment}");
        }
        assert!(deployment["run_id"].is_u64(), "{deployment}");
        for rule in rules {
            *per_rule
                .entry(rule.as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        // Weekends are judged at the time the deployment ran, not at the gate's Tuesday.
        let started =
            OffsetDateTime::parse(deployment["time"].as_str().unwrap(), &Rfc3339).unwrap();
        let weekend = matches!(
            started.weekday(),
            time::Weekday::Saturday | time::Weekday::Sunday
        );
        assert_eq!(
            rules.iter().any(|r| r == "GATE-03"),
            weekend && deployment["environment"] == "production",
            "{deployment}"
        );
    }
    let by_rule: BTreeMap<String, u64> = report["by_rule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_owned(),
                count(&r["deployments"]),
            )
        })
        .collect();
    assert_eq!(by_rule, per_rule);
    assert!(by_rule.contains_key("GATE-03"), "{by_rule:?}");
    assert!(by_rule.contains_key("GATE-01"), "{by_rule:?}");

    // `gate check` at a stopped deployment's start time judges it the same way.
    let denied = blocked.iter().find(|d| d["verdict"] == "deny").unwrap();
    let waiting = blocked.iter().find(|d| d["verdict"] == "approval").unwrap();
    for (deployment, exit) in [(denied, 4), (waiting, 5)] {
        let run = deployment["run_id"].to_string();
        let output = synced.run(
            deployment["time"].as_str().unwrap(),
            &[
                "gate",
                "check",
                "--project",
                deployment["project"].as_str().unwrap(),
                "--environment",
                deployment["environment"].as_str().unwrap(),
                "--run",
                &run,
                "--format",
                "json",
            ],
        );
        assert_eq!(output.status.code(), Some(exit), "{deployment}");
        let answer = json_of(&output);
        let stopped_by: Vec<Value> = answer["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["enforced"] == "deny" || f["enforced"] == "approval")
            .map(|f| f["rule"].clone())
            .collect();
        assert_eq!(
            Value::Array(stopped_by),
            deployment["rules"],
            "{deployment}"
        );
    }

    // Filters and a limit narrow the replay; a limit keeps the newest and says what it left out.
    let production = synced.backtest(&["--since", "30d", "--environment", "prod*"]);
    let production_blocked = production["blocked"].as_array().unwrap();
    assert!(!production_blocked.is_empty());
    assert!(
        production_blocked
            .iter()
            .all(|d| d["environment"] == "production")
    );
    assert_eq!(
        production_blocked.len(),
        blocked
            .iter()
            .filter(|d| d["environment"] == "production")
            .count()
    );
    assert!(count(&production["totals"]["replayed"]) < replayed);
    let limited = synced.backtest(&["--since", "30d", "--limit", "3"]);
    assert_eq!(count(&limited["totals"]["replayed"]), 3);
    assert_eq!(count(&limited["totals"]["left_out"]), replayed - 3);
    let since_date = synced.backtest(&["--since", "2026-10-25"]);
    assert!(count(&since_date["totals"]["replayed"]) >= replayed);

    // People get the same report as a table.
    let table = synced.run(NOW, &["gate", "backtest", "--since", "30d"]);
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    for expected in [
        "By team (project):",
        "By rule:",
        "GATE-03",
        "Would have been stopped:",
    ] {
        assert!(table.contains(expected), "{expected:?} in\n{table}");
    }

    // Windows it cannot read are refused with the forms it takes.
    for bad in ["30m", "yesterday", "-3d", "2026-13-01"] {
        let output = synced.run(NOW, &["gate", "backtest", &format!("--since={bad}")]);
        assert_eq!(output.status.code(), Some(1), "--since {bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("30d, 12h") && stderr.contains("2026-10-01"),
            "{stderr}"
        );
    }
    let output = synced.run(NOW, &["gate", "backtest", "--format", "xml"]);
    assert_eq!(output.status.code(), Some(1));
}

struct Sim {
    http: Client,
    sim: tollgate_sim::RunningSimulator,
}

impl Sim {
    fn url(&self, path: &str) -> String {
        if path.starts_with("/_sim") {
            format!("{}{path}", self.sim.base_url)
        } else {
            let separator = if path.contains('?') { '&' } else { '?' };
            format!("{}{path}{separator}api-version=7.1", self.sim.org_url())
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .basic_auth("", Some("test-pat"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn values(&self, path: &str) -> Vec<Value> {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body["value"].as_array().unwrap().clone()
    }

    /// Queue a run of a pipeline and wait until it completed.
    async fn run(&self, project: &str, pipeline: &Value) -> Value {
        let (status, run) = self
            .send(
                reqwest::Method::POST,
                &format!("/{project}/_apis/pipelines/{}/runs", pipeline["id"]),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 200, "{run}");
        let path = format!("/_sim/runs/{}", run["id"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, detail) = self.send(reqwest::Method::GET, &path, None).await;
            if detail["state"] == "completed" {
                return detail;
            }
            assert!(
                Instant::now() < deadline,
                "run {} did not complete",
                run["id"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn two_days_ago_ms() -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    (now_ms.div_euclid(DAY_MS) - 2) * DAY_MS
}

async fn gate10_findings(client: &Client, server: &Server) -> Vec<Value> {
    let page: Value = client
        .get(server.url("/api/v1/findings?control=GATE-10&limit=1000"))
        .bearer_auth(server.admin_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

async fn sync(client: &Client, server: &Server, mode: &str) {
    let queued: Value = client
        .post(server.url("/api/v1/syncs"))
        .bearer_auth(server.admin_key())
        .json(&json!({"mode": mode}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server
        .wait_for_job(client, queued["job"].as_i64().unwrap())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_deployment_without_our_verdict_is_a_gate_10_finding_and_one_with_it_is_not() {
    let sim = Sim {
        http: Client::new(),
        sim: Simulator::new(SimConfig {
            seed: 7,
            profile: Profile::Small,
            // The generated history ends two days ago, before anything this test deploys.
            now_ms: Some(two_days_ago_ms()),
            runs: RunSettings {
                stage_duration: Duration::from_millis(10),
                ..RunSettings::default()
            },
            ..SimConfig::default()
        })
        .spawn("127.0.0.1:0")
        .await
        .unwrap(),
    };
    // Every rule only warns in production, so the verdict is allow whatever day the test runs
    // on: what matters here is whether a verdict exists, not what it says.
    let actions: Vec<String> = (1..=9)
        .map(|n| format!("\"GATE-0{n}\" = \"warn\""))
        .collect();
    let config = format!(
        "[ado]\norg_url = \"{org}\"\npat = \"test-pat\"\n\n[worker]\npoll_interval_ms = 100\nincremental_sync_every_secs = 0\nfull_sync_every_secs = 0\n\n\
         [gate]\nusername = \"{GATE_USER}\"\npassword = \"{GATE_PASSWORD}\"\n\n\
         [[gate.environments]]\nname = \"production\"\nactions = {{ {actions} }}\n",
        org = sim.sim.org_url(),
        actions = actions.join(", "),
    );
    let server = Server::start_with_env(&config, &[]).await;
    let client = Client::new();
    sync(&client, &server, "full").await;
    // The generated history predates the gate: nothing to report.
    assert!(gate10_findings(&client, &server).await.is_empty());

    let project = sim.values("/_apis/projects").await[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let pipeline = sim
        .values(&format!("/{project}/_apis/pipelines"))
        .await
        .into_iter()
        .find(|p| p["configuration"]["type"] == "yaml")
        .unwrap();
    let (status, check) = sim
        .send(
            reqwest::Method::POST,
            "/_sim/checks/rest",
            Some(json!({
                "project": project, "environment": "production",
                "url": server.url("/gate/ado/default"), "mode": "sync",
                "username": GATE_USER, "password": GATE_PASSWORD,
                // The documented body: ADO expands the run id inside a string.
                "body": {"environment": "$(Environment.Name)", "stage": "$(System.StageName)",
                         "runId": "$(Build.BuildId)", "pipelineId": "$(System.DefinitionId)"},
                "timeoutSecs": 30, "intervalSecs": 1,
            })),
        )
        .await;
    assert_eq!(status, 201, "{check}");
    let gated = sim.run(&project, &pipeline).await;
    assert_eq!(gated["result"], "succeeded", "{gated}");

    // Someone removes the check; the next run deploys to production unseen.
    let (status, _) = sim
        .send(
            reqwest::Method::DELETE,
            &format!("/_sim/checks/rest/{}", check["id"]),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let unseen = sim.run(&project, &pipeline).await;
    assert_eq!(unseen["result"], "succeeded", "{unseen}");
    let production_record = |run: &Value| {
        run["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "production")
            .and_then(|s| s["deploymentRecordId"].as_u64())
            .unwrap()
    };
    let unseen_record = production_record(&unseen);
    let gated_record = production_record(&gated);

    // An incremental sync (what a run's service-hook events trigger) judges the new records.
    sync(&client, &server, "incremental").await;
    let findings = gate10_findings(&client, &server).await;
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let finding = &findings[0];
    assert!(
        finding["resource_key"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{unseen_record}")),
        "{finding}"
    );
    assert_eq!(finding["resource_kind"], "environment_deployments");
    assert_eq!(finding["severity"], "high");
    assert_eq!(finding["status"], "open");
    assert_eq!(finding["evidence"]["run"]["id"], unseen["id"]);
    assert_eq!(finding["evidence"]["environment"], "production");
    assert_eq!(finding["evidence"]["deployment"]["id"], unseen_record);
    assert!(
        finding["evidence"]["decision"]
            .as_str()
            .unwrap()
            .contains(&format!("run {}", unseen["id"])),
        "{finding}"
    );
    assert!(!findings.iter().any(|f| {
        f["resource_key"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{gated_record}"))
    }));

    // Judged again, in full, it is the same one finding.
    sync(&client, &server, "full").await;
    let again = gate10_findings(&client, &server).await;
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0]["first_seen"], finding["first_seen"]);
    assert_eq!(again[0]["status"], "open");

    // The backtest over the API: the gated run was allowed, as it was live.
    let response = client
        .get(server.url("/api/v1/gate/backtest?since=1d&environment=production"))
        .bearer_auth(server.admin_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(count(&report["totals"]["replayed"]), 2, "{report}");
    assert_eq!(count(&report["totals"]["would_allow"]), 2, "{report}");
    assert_eq!(report["team_basis"], "project");
    let response = client
        .get(server.url("/api/v1/gate/backtest?since=30m"))
        .bearer_auth(server.admin_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
