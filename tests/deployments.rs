//! Deployments over real HTTP: the spawned `tollgate serve`, a simulated organisation it
//! synced, runs queued through the simulator's Pipelines Runs API. A deployment the gate
//! denies queues nothing and writes no row; an allowed one is queued, followed to its end and
//! audited; a production one waits at its stage for the gate's approval; a rollback re-runs
//! the last successful run's commit; RBAC decides who may queue.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/server.rs"]
mod server;

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use server::Server;
use tollgate_sim::{Profile, SimConfig, Simulator};

const GATE_USER: &str = "ado-check";
const GATE_PASSWORD: &str = "gate-password-for-tests";
const SATURDAY: &str = "2026-11-28T10:00:00Z";
const TUESDAY: &str = "2026-11-24T10:00:00Z";
/// A Tuesday in the past: the gate schedules its callback at its own (fixed) clock, so a
/// fixed time still to come would hold the callback until then.
const PAST_TUESDAY: &str = "2024-11-19T10:00:00Z";

struct Setup {
    sim: tollgate_sim::RunningSimulator,
    server: Server,
    client: Client,
    project_id: String,
    /// A YAML pipeline of the first project: (id, name).
    pipeline: (u64, String),
}

async fn get(setup: &Setup, path: &str, key: &str) -> (u16, Value) {
    let response = setup
        .client
        .get(setup.server.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(setup: &Setup, path: &str, key: &str, body: Value) -> (u16, Value) {
    let response = setup
        .client
        .post(setup.server.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn sim(setup: &Setup, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = setup
        .client
        .request(method, format!("{}{path}", setup.sim.base_url))
        .basic_auth("", Some("test-pat"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn sim_runs(setup: &Setup) -> Vec<Value> {
    sim(setup, reqwest::Method::GET, "/_sim/runs", None).await["value"]
        .as_array()
        .unwrap()
        .clone()
}

async fn setup(now: &str) -> Setup {
    let sim = Simulator::new(SimConfig {
        seed: 7,
        profile: Profile::Small,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap();
    let config = format!(
        "[ado]\norg_url = \"{org}\"\npat = \"test-pat\"\nmax_attempts = 1\n\n[worker]\npoll_interval_ms = 100\nincremental_sync_every_secs = 0\nfull_sync_every_secs = 0\n\n\
         [gate]\nusername = \"{GATE_USER}\"\npassword = \"{GATE_PASSWORD}\"\ntimezone = \"Europe/London\"\n\n\
         [[gate.environments]]\nname = \"production\"\nquorum = 1\napprover_role = \"release_manager\"\nactions = {{ \"GATE-02\" = \"warn\", \"GATE-09\" = \"warn\" }}\n",
        org = sim.org_url()
    );
    let server = Server::start_with_env(&config, &[("TOLLGATE_FAKE_NOW", now)]).await;
    let client = Client::new();
    let mut setup = Setup {
        sim,
        server,
        client,
        project_id: String::new(),
        pipeline: (0, String::new()),
    };
    let (status, queued) = post(
        &setup,
        "/api/v1/syncs",
        setup.server.admin_key(),
        json!({"mode": "full"}),
    )
    .await;
    assert_eq!(status, 202, "{queued}");
    setup
        .server
        .wait_for_job(&setup.client, queued["job"].as_i64().unwrap())
        .await;
    let (_, projects) = get(
        &setup,
        "/api/v1/inventory/projects",
        setup.server.admin_key(),
    )
    .await;
    setup.project_id = projects["items"][0]["ado_id"].as_str().unwrap().to_owned();
    let (_, pipelines) = get(
        &setup,
        &format!(
            "/api/v1/inventory/pipelines?project={}&limit=1000",
            setup.project_id
        ),
        setup.server.admin_key(),
    )
    .await;
    let yaml = pipelines["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["resource"]["configuration"]["type"] == "yaml")
        .expect("the first project has a YAML pipeline");
    setup.pipeline = (
        yaml["ado_id"].as_str().unwrap().parse().unwrap(),
        yaml["name"].as_str().unwrap().to_owned(),
    );
    setup
}

/// Follow a deployment through the API until its run completes.
async fn completed(setup: &Setup, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let (status, body) = get(setup, &format!("/api/v1/deployments/{id}"), key).await;
        assert_eq!(status, 200, "{body}");
        let state = body["deployment"]["state"].as_str().unwrap().to_owned();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "completed" {
            return body;
        }
        if Instant::now() >= deadline {
            let run = sim(
                setup,
                reqwest::Method::GET,
                &format!("/_sim/runs/{}", body["deployment"]["run_id"]),
                None,
            )
            .await;
            let (_, jobs) = get(setup, "/api/v1/jobs", setup.server.admin_key()).await;
            panic!("{id} did not complete: {seen:?}\nrun: {run}\njobs: {jobs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn audit_records(setup: &Setup, event_type: &str) -> Vec<Value> {
    let (_, records) = get(
        setup,
        "/api/v1/audit/records?limit=1000",
        setup.server.admin_key(),
    )
    .await;
    records["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event_type"] == event_type)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_is_queued_followed_and_rolled_back_by_those_allowed_to() {
    let setup = setup(TUESDAY).await;
    let (pipeline_id, pipeline) = setup.pipeline.clone();
    let release_manager = setup.server.key_for(&setup.client, "release_manager").await;
    let developer = setup.server.key_for(&setup.client, "developer").await;
    let viewer = setup.server.key_for(&setup.client, "viewer").await;

    // Only release managers (and admins) queue deployments; nothing reaches ADO otherwise.
    let first = json!({"project": setup.project_id, "pipeline": pipeline.to_uppercase(),
                       "environment": "test", "branch": "release/1.0", "version": "1.0.0"});
    for key in [&viewer, &developer] {
        let (status, body) = post(&setup, "/api/v1/deployments", key, first.clone()).await;
        assert_eq!(status, 403, "{body}");
        let (status, _) = post(
            &setup,
            "/api/v1/deployments/rollback",
            key,
            json!({"project": setup.project_id, "environment": "test"}),
        )
        .await;
        assert_eq!(status, 403);
    }
    assert!(sim_runs(&setup).await.is_empty());

    // The pipeline's name matches case-insensitively; the run carries both template parameters.
    let (status, queued) = post(&setup, "/api/v1/deployments", &release_manager, first).await;
    assert_eq!(status, 201, "{queued}");
    let first_run = queued["run_id"].as_u64().unwrap();
    let first_id = queued["deployment"]["id"].as_str().unwrap().to_owned();
    assert_eq!(queued["deployment"]["pipeline_id"], pipeline_id);
    assert_eq!(queued["deployment"]["pipeline"], pipeline.as_str());
    assert_eq!(queued["deployment"]["kind"], "deploy");
    assert_eq!(queued["gate"]["outcome"], "allowed");
    let run = sim(
        &setup,
        reqwest::Method::GET,
        &format!("/_sim/runs/{first_run}"),
        None,
    )
    .await;
    assert_eq!(run["pipeline"]["id"], pipeline_id);
    assert_eq!(run["sourceBranch"], "refs/heads/release/1.0");
    assert_eq!(
        run["templateParameters"],
        json!({"environment": "test", "version": "1.0.0"})
    );

    // A viewer may follow it; status follows the run to its end.
    let done = completed(&setup, &viewer, &first_id).await;
    assert_eq!(done["deployment"]["result"], "succeeded", "{done}");
    let first_commit = done["deployment"]["source_version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(run["sourceVersion"], first_commit.as_str());
    assert!(done["deployment"]["finished_at"].is_string());

    // A second deployment, of main.
    let (status, second) = post(
        &setup,
        "/api/v1/deployments",
        &release_manager,
        json!({"project": setup.project_id, "pipelineId": pipeline_id, "environment": "test",
               "branch": "main", "version": "1.1.0"}),
    )
    .await;
    assert_eq!(status, 201, "{second}");
    let second_id = second["deployment"]["id"].as_str().unwrap().to_owned();
    let second_done = completed(&setup, &release_manager, &second_id).await;
    assert_eq!(second_done["deployment"]["result"], "succeeded");
    assert_ne!(
        second_done["deployment"]["source_version"],
        first_commit.as_str()
    );

    // Rolling back re-runs the first run's branch and commit.
    let (status, rolled) = post(
        &setup,
        "/api/v1/deployments/rollback",
        &release_manager,
        json!({"pipeline": pipeline, "project": setup.project_id, "environment": "test"}),
    )
    .await;
    assert_eq!(status, 201, "{rolled}");
    assert_eq!(rolled["deployment"]["kind"], "rollback");
    assert_eq!(rolled["deployment"]["rollback_of"], first_run);
    let rollback_run = sim(
        &setup,
        reqwest::Method::GET,
        &format!("/_sim/runs/{}", rolled["run_id"]),
        None,
    )
    .await;
    assert_eq!(rollback_run["sourceVersion"], first_commit.as_str());
    assert_eq!(rollback_run["sourceBranch"], "refs/heads/release/1.0");
    assert_eq!(rollback_run["templateParameters"]["version"], "1.0.0");

    // Listed newest first, filtered by environment and project.
    let (status, listed) = get(&setup, "/api/v1/deployments?environment=test", &viewer).await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["rollback", "deploy", "deploy"]);
    let (_, production) = get(
        &setup,
        "/api/v1/deployments?environment=production",
        &viewer,
    )
    .await;
    assert_eq!(production["items"], json!([]));
    let (_, by_project) = get(
        &setup,
        &format!("/api/v1/deployments?project={}", setup.project_id),
        &viewer,
    )
    .await;
    assert_eq!(by_project["items"].as_array().unwrap().len(), 3);

    // Every queued run is in the audit log, with who asked.
    let queued_records = audit_records(&setup, "deployment.queued").await;
    assert_eq!(queued_records.len(), 3, "{queued_records:?}");
    let record = queued_records
        .iter()
        .map(|r| &r["record"])
        .find(|r| r["target"]["id"] == first_id.as_str())
        .unwrap();
    assert_eq!(record["details"]["runId"], first_run);
    assert_eq!(record["details"]["kind"], "deploy");
    assert_eq!(record["details"]["environment"], "test");
    assert_eq!(record["actor"]["kind"], "service", "{record}");
    assert!(
        record["actor"]["id"]
            .as_str()
            .unwrap()
            .starts_with("apikey:"),
        "{record}"
    );

    // Mistakes are explained and write nothing.
    let runs_before = sim_runs(&setup).await.len();
    let typo = format!("{}x", &pipeline[..pipeline.len() - 1]);
    let (status, body) = post(
        &setup,
        "/api/v1/deployments",
        &release_manager,
        json!({"project": setup.project_id, "pipeline": typo, "environment": "test"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&pipeline),
        "the close name is suggested: {body}"
    );
    // ADO does not know the environment: its 404, nothing queued, no row.
    let (status, body) = post(
        &setup,
        "/api/v1/deployments",
        &release_manager,
        json!({"project": setup.project_id, "pipelineId": pipeline_id, "environment": "moon"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Azure DevOps"),
        "{body}"
    );
    for bad in [
        json!({"pipelineId": pipeline_id}),
        json!({"pipelineId": pipeline_id, "environment": "test", "parameters": {"version": "9"}}),
        json!({"pipelineId": pipeline_id, "environment": "test", "surprise": true}),
        json!({"project": setup.project_id, "environment": "test"}),
    ] {
        let (status, body) =
            post(&setup, "/api/v1/deployments", &release_manager, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // No earlier successful deployment to dev: nothing to roll back to.
    let (status, body) = post(
        &setup,
        "/api/v1/deployments/rollback",
        &release_manager,
        json!({"project": setup.project_id, "pipelineId": pipeline_id, "environment": "dev"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "nothing_to_roll_back");
    // ADO failing (every request a 5xx; the client is configured to try once): 503 with
    // Retry-After, and still no row.
    sim(
        &setup,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({"error_rate": 1.0})),
    )
    .await;
    let response = setup
        .client
        .post(setup.server.url("/api/v1/deployments"))
        .bearer_auth(&release_manager)
        .json(
            &json!({"project": setup.project_id, "pipelineId": pipeline_id, "environment": "test"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{body}"
    );
    sim(
        &setup,
        reqwest::Method::POST,
        "/_sim/faults",
        Some(json!({})),
    )
    .await;
    assert_eq!(sim_runs(&setup).await.len(), runs_before);
    let (_, listed) = get(&setup, "/api/v1/deployments", &viewer).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    let (status, _) = get(&setup, "/api/v1/deployments/dp_nothing", &viewer).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_the_gate_denies_queues_nothing() {
    let setup = setup(SATURDAY).await;
    let (pipeline_id, _) = setup.pipeline.clone();
    let (status, body) = post(
        &setup,
        "/api/v1/deployments",
        setup.server.admin_key(),
        json!({"project": setup.project_id, "pipelineId": pipeline_id, "environment": "production",
               "version": "1.4.2"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "denied");
    assert_eq!(body["outcome"], "denied");
    let reasons = body["reasons"].to_string();
    assert!(
        reasons.contains("GATE-03") && reasons.contains("Saturday"),
        "{reasons}"
    );
    assert!(body["decision_id"].is_string());

    assert!(sim_runs(&setup).await.is_empty(), "no run was queued");
    let (_, listed) = get(&setup, "/api/v1/deployments", setup.server.admin_key()).await;
    assert_eq!(listed["items"], json!([]));
    assert!(audit_records(&setup, "deployment.queued").await.is_empty());
    // The refusal itself is on record, as the gate's dry run.
    assert!(!audit_records(&setup, "gate.decided").await.is_empty());
    // Nothing to roll back either.
    let (status, body) = post(
        &setup,
        "/api/v1/deployments/rollback",
        setup.server.admin_key(),
        json!({"project": setup.project_id, "environment": "production"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_deployment_waits_at_its_stage_until_approved() {
    let setup = setup(PAST_TUESDAY).await;
    let (pipeline_id, _) = setup.pipeline.clone();
    // Production's check is tollgate's gate, in callback mode, as docs/GATE.md configures it.
    let check = format!("{}?mode=callback", setup.server.url("/gate/ado/default"));
    sim(
        &setup,
        reqwest::Method::POST,
        "/_sim/checks/rest",
        Some(
            json!({"project": setup.project_id, "environment": "production", "url": check,
                    "mode": "callback", "username": GATE_USER, "password": GATE_PASSWORD,
                    "body": {"environment": "$(Environment.Name)", "stage": "$(System.StageName)",
                             "requestedFor": "$(Build.RequestedForEmail)"},
                    "timeoutSecs": 120}),
        ),
    )
    .await;
    let release_manager = setup.server.key_for(&setup.client, "release_manager").await;
    let (status, queued) = post(
        &setup,
        "/api/v1/deployments",
        &release_manager,
        json!({"project": setup.project_id, "pipelineId": pipeline_id, "environment": "production"}),
    )
    .await;
    assert_eq!(status, 201, "{queued}");
    assert_eq!(queued["gate"]["outcome"], "pending");
    assert!(
        queued["note"].as_str().unwrap().contains("approv"),
        "{queued}"
    );
    let id = queued["deployment"]["id"].as_str().unwrap().to_owned();

    // The run reaches production and the gate holds it there.
    let deadline = Instant::now() + Duration::from_secs(60);
    let approval = loop {
        let (_, status) = get(
            &setup,
            &format!("/api/v1/deployments/{id}"),
            &release_manager,
        )
        .await;
        let waiting = status["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["source"] == "ado-check" && d["approval"]["state"] == "pending");
        if let Some(decision) = waiting {
            assert_eq!(status["waiting_for_approval"], true, "{status}");
            assert_eq!(status["deployment"]["state"], "inProgress");
            break decision["approval"]["id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "never held for approval: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (status, body) = post(
        &setup,
        &format!("/api/v1/approvals/{approval}/approve"),
        &release_manager,
        json!({"comment": "go"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let done = completed(&setup, &release_manager, &id).await;
    assert_eq!(done["deployment"]["result"], "succeeded", "{done}");
    assert_eq!(done["waiting_for_approval"], false);
    let approved = done["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["approval"]["state"] == "approved");
    assert!(approved, "{done}");
}

/// `tollgate` against the server's configuration and database, as an operator on that
/// machine would run it (no terminal: stdin is empty).
async fn cli(setup: &Setup, now: &str, args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("--config")
        .arg(setup.server.dir.path().join("tollgate.toml"))
        .args(args)
        .current_dir(setup.server.dir.path())
        .env_remove("TOLLGATE_DB")
        .env_remove("TOLLGATE_ADO_PAT")
        .env("TOLLGATE_LOG", "error")
        .env("TOLLGATE_FAKE_NOW", now)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_deploys_follows_rolls_back_and_asks() {
    let setup = setup(TUESDAY).await;
    let (pipeline_id, pipeline) = setup.pipeline.clone();
    let project = setup.project_id.clone();
    let pipeline_id = pipeline_id.to_string();

    // Not understood: exit 2 with example sentences; nothing is opened or queued.
    let (code, _, stderr) = cli(&setup, TUESDAY, &["ask", "dance with payments-api"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("deploy payments-api 1.4.2 to staging"),
        "{stderr}"
    );
    let (code, _, stderr) = cli(&setup, TUESDAY, &["ask", "deploy", &pipeline]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("which environment"), "{stderr}");

    // Understood, planned, but no terminal and no --yes: refused, nothing queued.
    let sentence = format!("deploy {pipeline} 2.0.0 to test from main");
    let (code, stdout, stderr) =
        cli(&setup, TUESDAY, &["ask", &sentence, "--project", &project]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("Plan:") && stdout.contains("ALLOWED"),
        "{stdout}"
    );
    assert!(stdout.contains("version=2.0.0"), "{stdout}");
    assert!(stderr.contains("--yes"), "{stderr}");
    assert!(sim_runs(&setup).await.is_empty());

    // With --yes it runs the deployment.
    let (code, stdout, stderr) = cli(
        &setup,
        TUESDAY,
        &[
            "ask",
            &sentence,
            "--project",
            &project,
            "--yes",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let asked: Value = serde_json::from_str(&stdout).unwrap();
    let first_id = asked["deployment"]["id"].as_str().unwrap().to_owned();
    let first_run = asked["run_id"].as_u64().unwrap();
    assert_eq!(asked["deployment"]["ref_name"], "refs/heads/main");
    assert_eq!(asked["deployment"]["version"], "2.0.0");

    // status --wait follows it to the end, printing the changes.
    let (code, stdout, stderr) = cli(
        &setup,
        TUESDAY,
        &["status", &first_id, "--wait", "--interval-secs", "1"],
    )
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("run {first_run} succeeded")),
        "{stdout}"
    );

    // A deployment of another branch, by pipeline id.
    let (code, stdout, stderr) = cli(
        &setup,
        TUESDAY,
        &[
            "deploy",
            "--pipeline",
            &pipeline_id,
            "--project",
            &project,
            "--environment",
            "test",
            "--branch",
            "release/9",
            "--version",
            "0.9.0",
            "--param",
            "region=westeurope",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("QUEUED"), "{stdout}");
    let second_id = stdout
        .split_whitespace()
        .find(|w| w.starts_with("dp_"))
        .unwrap()
        .to_owned();
    let (code, stdout, _) = cli(
        &setup,
        TUESDAY,
        &[
            "status",
            &second_id,
            "--wait",
            "--interval-secs",
            "1",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}");
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["deployment"]["result"], "succeeded");
    assert_eq!(last["deployment"]["parameters"]["region"], "westeurope");

    // Rolling back by asking: refused without --yes, then through the rollback command.
    let rollback_sentence = format!("roll back {pipeline} in test");
    let (code, stdout, _) = cli(
        &setup,
        TUESDAY,
        &["ask", &rollback_sentence, "--project", &project],
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("run {first_run}")),
        "the plan names the run it re-deploys: {stdout}"
    );
    let runs_before = sim_runs(&setup).await.len();
    let (code, stdout, stderr) = cli(
        &setup,
        TUESDAY,
        &[
            "rollback",
            "--pipeline",
            &pipeline,
            "--project",
            &project,
            "--environment",
            "test",
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let rolled: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rolled["deployment"]["kind"], "rollback");
    assert_eq!(rolled["deployment"]["rollback_of"], first_run);
    assert_eq!(rolled["deployment"]["ref_name"], "refs/heads/main");
    assert_eq!(sim_runs(&setup).await.len(), runs_before + 1);

    // Production needs approval: validate says so (5), deploy queues and says so (5).
    let (code, stdout, _) = cli(
        &setup,
        TUESDAY,
        &[
            "validate",
            "--pipeline",
            &pipeline,
            "--project",
            &project,
            "--environment",
            "production",
        ],
    )
    .await;
    assert_eq!(code, 5, "{stdout}");
    assert!(
        stdout.contains("NEEDS APPROVAL") && stdout.contains("GATE-01"),
        "{stdout}"
    );
    let (code, stdout, _) = cli(
        &setup,
        TUESDAY,
        &[
            "deploy",
            "--pipeline",
            &pipeline,
            "--project",
            &project,
            "--environment",
            "production",
        ],
    )
    .await;
    assert_eq!(code, 5, "{stdout}");
    assert!(stdout.contains("needs approval"), "{stdout}");

    // On a Saturday the gate denies production: 4, and nothing is queued.
    let runs_before = sim_runs(&setup).await.len();
    let (code, stdout, _) = cli(
        &setup,
        SATURDAY,
        &[
            "deploy",
            "--pipeline",
            &pipeline,
            "--project",
            &project,
            "--environment",
            "production",
        ],
    )
    .await;
    assert_eq!(code, 4, "{stdout}");
    assert!(
        stdout.contains("nothing was queued") && stdout.contains("GATE-03"),
        "{stdout}"
    );
    let sentence = format!("ship {pipeline} to production");
    let (code, stdout, _) = cli(
        &setup,
        SATURDAY,
        &["ask", &sentence, "--project", &project, "--yes"],
    )
    .await;
    assert_eq!(code, 4, "{stdout}");
    assert_eq!(sim_runs(&setup).await.len(), runs_before);

    // Status of something unknown is an error naming it.
    let (code, _, stderr) = cli(&setup, TUESDAY, &["status", "dp_nothing"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("dp_nothing"), "{stderr}");
}
