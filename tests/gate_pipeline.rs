//! End to end on the simulator: pipeline runs to production call our gate over HTTP the way
//! ADO's "Invoke REST API" check does. On a Saturday the check denies and the stage fails; on a
//! Tuesday the run waits for approval, an operator's approval is refused, a release manager's
//! is accepted, the callback reaches the simulated plan and the run deploys — and every step is
//! an audit record whose inclusion proof verifies against a signed checkpoint.

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
use tollgate_audit::checkpoint::Checkpoint;
use tollgate_audit::merkle::{self, Hash};
use tollgate_audit::{bundle, keys, note};
use tollgate_sim::{Profile, RunningSimulator, SimConfig, Simulator};

const SATURDAY: &str = "2026-11-28T10:00:00Z";
const TUESDAY: &str = "2026-11-24T10:00:00Z";
const GATE_USER: &str = "ado-check";
const GATE_PASSWORD: &str = "gate-pw";

struct Pipeline {
    sim: RunningSimulator,
    server: Server,
    client: Client,
    project: String,
    pipeline: u64,
}

async fn get(client: &Client, url: &str, key: &str) -> Value {
    let response = client.get(url).bearer_auth(key).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn sim_get(client: &Client, url: &str) -> Value {
    client
        .get(url)
        .basic_auth("", Some("test-pat"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A synced tollgate at `now`, and the simulator's first project that has a production
/// environment and a YAML pipeline, with our gate registered on production in callback mode.
async fn pipeline_at(now: &str) -> Pipeline {
    let sim = Simulator::new(SimConfig {
        seed: 7,
        profile: Profile::Small,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap();
    let config = format!(
        "[ado]\norg_url = \"{org}\"\npat = \"test-pat\"\n\n\
         [worker]\npoll_interval_ms = 100\nincremental_sync_every_secs = 0\nfull_sync_every_secs = 0\n\n\
         [gate]\nusername = \"{GATE_USER}\"\npassword = \"{GATE_PASSWORD}\"\ntimezone = \"Europe/London\"\n\n\
         [[gate.environments]]\nname = \"production\"\nquorum = 1\napprover_role = \"release_manager\"\n\
         actions = {{ \"GATE-02\" = \"warn\", \"GATE-07\" = \"warn\", \"GATE-08\" = \"warn\", \"GATE-09\" = \"warn\" }}\n",
        org = sim.org_url()
    );
    let server = Server::start_with_env(&config, &[("TOLLGATE_FAKE_NOW", now)]).await;
    let client = Client::new();
    let admin = server.admin_key().to_owned();
    let queued: Value = client
        .post(server.url("/api/v1/syncs"))
        .bearer_auth(&admin)
        .json(&json!({"mode": "full"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server
        .wait_for_job(&client, queued["job"].as_i64().unwrap())
        .await;

    let org = sim.org_url();
    let projects = sim_get(&client, &format!("{org}/_apis/projects?api-version=7.1")).await;
    let mut chosen = None;
    for project in projects["value"].as_array().unwrap() {
        let id = project["id"].as_str().unwrap();
        let environments = sim_get(
            &client,
            &format!("{org}/{id}/_apis/pipelines/environments?api-version=7.1"),
        )
        .await;
        let has_production = environments["value"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["name"] == "production");
        let pipelines = sim_get(
            &client,
            &format!("{org}/{id}/_apis/pipelines?api-version=7.1"),
        )
        .await;
        let yaml = pipelines["value"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["configuration"]["type"] == "yaml");
        if let (true, Some(pipeline)) = (has_production, yaml) {
            chosen = Some((id.to_owned(), pipeline["id"].as_u64().unwrap()));
            break;
        }
    }
    let (project, pipeline) = chosen.expect("a project with production and a pipeline");

    let registered = client
        .post(format!("{}/_sim/checks/rest", sim.base_url))
        .json(&json!({"project": project, "environment": "production",
            "url": server.url("/gate/ado/default?mode=callback"), "mode": "callback",
            "username": GATE_USER, "password": GATE_PASSWORD, "timeoutSecs": 120}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        registered.status(),
        201,
        "{}",
        registered.text().await.unwrap()
    );
    Pipeline {
        sim,
        server,
        client,
        project,
        pipeline,
    }
}

impl Pipeline {
    async fn queue_production_run(&self) -> u64 {
        let run: Value = self
            .client
            .post(format!(
                "{}/{}/_apis/pipelines/{}/runs?api-version=7.1",
                self.sim.org_url(),
                self.project,
                self.pipeline
            ))
            .basic_auth("", Some("test-pat"))
            .json(&json!({"templateParameters": {"environment": "production"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        run["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("a queued run: {run}"))
    }

    async fn sim_run(&self, run: u64) -> Value {
        sim_get(
            &self.client,
            &format!("{}/_sim/runs/{run}", self.sim.base_url),
        )
        .await
    }

    async fn finished_run(&self, run: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let detail = self.sim_run(run).await;
            if detail["state"] == "completed" {
                return detail;
            }
            assert!(
                Instant::now() < deadline,
                "the run did not finish: {detail}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn stage<'a>(detail: &'a Value, name: &str) -> &'a Value {
        detail["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no stage {name}: {detail}"))
    }

    async fn audit_records(&self) -> Vec<Value> {
        let page = get(
            &self.client,
            &self.server.url("/api/v1/audit/records?limit=1000"),
            self.server.admin_key(),
        )
        .await;
        page["items"].as_array().unwrap().clone()
    }

    /// The record's inclusion proof, checked the way an auditor does it offline: the
    /// checkpoint's signature with the instance's public key, the record's canonical bytes to
    /// the leaf hash, the audit path to the signed root.
    async fn verify_inclusion(&self, record: &Value) {
        let id = record["id"].as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let proof: Value = loop {
            let response = self
                .client
                .get(
                    self.server
                        .url(&format!("/api/v1/audit/records/{id}/proof")),
                )
                .bearer_auth(self.server.admin_key())
                .send()
                .await
                .unwrap();
            if response.status() == 200 {
                break response.json().await.unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no checkpoint covers {id}: {}",
                response.status()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let trusted =
            keys::read_trusted(&self.server.dir.path().join("tollgate.db.audit-key.pub")).unwrap();
        let (signed, _) = note::open(
            proof["checkpoint"].as_str().unwrap(),
            &bundle::bind_to_origin(&trusted, "tollgate/default"),
        )
        .unwrap();
        let checkpoint = Checkpoint::parse(&signed.text).unwrap();
        let path: Vec<Hash> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| unhex(h.as_str().unwrap()))
            .collect();
        let leaf =
            merkle::leaf_hash(&tollgate_audit::record::canonical(&record["record"]).unwrap());
        assert_eq!(unhex(proof["leaf_hash"].as_str().unwrap()), leaf);
        merkle::verify_inclusion(
            proof["seq"].as_u64().unwrap(),
            checkpoint.size,
            &leaf,
            &path,
            &checkpoint.root,
        )
        .unwrap();
    }
}

fn unhex(text: &str) -> Hash {
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn first_of<'a>(records: &'a [Value], event_type: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["event_type"] == event_type)
        .unwrap_or_else(|| panic!("no {event_type} record"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturday_run_to_production_is_stopped_by_our_check() {
    let pipeline = pipeline_at(SATURDAY).await;
    let run = pipeline.queue_production_run().await;
    let detail = pipeline.finished_run(run).await;

    assert_eq!(detail["result"], "failed", "{detail}");
    let staging = Pipeline::stage(&detail, "staging");
    assert_eq!(
        staging["result"], "succeeded",
        "earlier stages ran: {detail}"
    );
    let production = Pipeline::stage(&detail, "production");
    assert_eq!(production["result"], "failed", "{production}");
    assert!(
        production["deploymentRecordId"].is_null(),
        "nothing deployed"
    );
    let check = production["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "invokeRESTAPI")
        .expect("our check ran");
    assert_eq!(check["state"], "failed", "{check}");
    let evaluation = &check["evaluations"][0];
    assert_eq!(
        evaluation["responseStatus"], 200,
        "callback mode acknowledges"
    );
    assert_eq!(evaluation["callback"]["result"], "failed", "{evaluation}");

    let records = pipeline.audit_records().await;
    let decided = first_of(&records, "gate.decided");
    let details = &decided["record"]["details"];
    assert_eq!(details["verdict"], "deny", "{decided}");
    assert!(decided.to_string().contains("GATE-03"), "{decided}");
    assert_eq!(details["runId"].as_u64(), Some(run), "{decided}");
    pipeline.verify_inclusion(decided).await;
    pipeline
        .verify_inclusion(first_of(&records, "gate.callback"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tuesday_run_to_production_waits_for_a_release_manager_and_proceeds_by_callback() {
    let pipeline = pipeline_at(TUESDAY).await;
    let (client, server) = (&pipeline.client, &pipeline.server);
    let admin = server.admin_key().to_owned();
    let run = pipeline.queue_production_run().await;

    // The gate opens an approval for the run; the stage waits.
    let deadline = Instant::now() + Duration::from_secs(60);
    let approval = loop {
        let pending = get(
            client,
            &server.url("/api/v1/approvals?state=pending"),
            &admin,
        )
        .await;
        if let Some(first) = pending["items"].as_array().and_then(|a| a.first()) {
            break first.clone();
        }
        assert!(Instant::now() < deadline, "no approval opened");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let detail = pipeline.sim_run(run).await;
    assert_eq!(detail["state"], "inProgress", "the run waits: {detail}");
    assert_eq!(
        Pipeline::stage(&detail, "production")["state"],
        "waiting",
        "{detail}"
    );

    let operator = server.key_for(client, "operator").await;
    let manager = server.key_for(client, "release_manager").await;
    let id = approval["id"].as_str().unwrap();
    let refused = client
        .post(server.url(&format!("/api/v1/approvals/{id}/approve")))
        .bearer_auth(&operator)
        .json(&json!({"comment": "looks fine to me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        pipeline.sim_run(run).await["state"],
        "inProgress",
        "an operator's approval moves nothing"
    );
    let approved = client
        .post(server.url(&format!("/api/v1/approvals/{id}/approve")))
        .bearer_auth(&manager)
        .json(&json!({"comment": "change CHG-1 approved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap());

    // The callback reaches the plan and the run deploys to production.
    let detail = pipeline.finished_run(run).await;
    assert_eq!(detail["result"], "succeeded", "{detail}");
    let production = Pipeline::stage(&detail, "production");
    assert_eq!(production["result"], "succeeded", "{production}");
    assert!(!production["deploymentRecordId"].is_null(), "{production}");
    let accepted: Vec<&Value> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "one TaskCompleted: {detail}");
    assert_eq!(accepted[0]["result"], "succeeded");

    // Every step is in the audit log and each proof verifies.
    let records = pipeline.audit_records().await;
    for step in [
        "gate.decided",
        "approval.requested",
        "auth.denied",
        "approval.decided",
        "gate.callback",
    ] {
        pipeline.verify_inclusion(first_of(&records, step)).await;
    }
    let decided = first_of(&records, "approval.decided");
    assert!(decided.to_string().contains("approved"), "{decided}");
}
