//! Pipeline runs queued through the Runs API and driven through stages that call environment
//! checks over real loopback HTTP: a tiny gate server stands in for tollgate's
//! `POST /gate/ado/{tenant}`, answering synchronously or calling back through Post Event.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected values"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use serde_json::{Value, json};
use tollgate_sim::{HookDelivery, Profile, RunSettings, RunningSimulator, SimConfig, Simulator};

const API: &str = "api-version=7.1";
const CALLBACK_API: &str = "api-version=2.0-preview.1";
const GATE_USER: &str = "ado-gate";
const GATE_PASSWORD: &str = "s3cret-gate";
/// The headers the Invoke REST API check documentation names (lower case, as on the wire).
const DOCUMENTED_HEADERS: &[&str] = &[
    "content-type",
    "planurl",
    "projectid",
    "hubname",
    "planid",
    "jobid",
    "timelineid",
    "taskinstanceid",
    "authtoken",
    "buildid",
];
/// What the HTTP client adds on its own, and the basic-auth credential (checked separately).
const TRANSPORT_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "accept",
    "accept-encoding",
    "user-agent",
    "authorization",
];

// ---------------------------------------------------------------------------------------------
// The gate: answers every check call as told and keeps what it received.

#[derive(Clone, Copy, Debug)]
enum Reply {
    /// 200 `{"status":"approved"}`.
    Approve,
    /// 403 `{"status":"rejected"}`, as tollgate denies.
    Deny,
    /// 200 `{"status":"pending"}`: a 200 that is no approval.
    Pending,
    /// 200 with no decision; the decision is the test's to send.
    Acknowledge,
    /// 200, then a TaskCompleted with this result, sent through Post Event with the AuthToken.
    CallBack(&'static str),
}

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    /// Where Post Event is for this evaluation, from the run information in the headers.
    fn events_url(&self) -> String {
        format!(
            "{}{}/_apis/distributedtask/hubs/{}/plans/{}/events?{CALLBACK_API}",
            self.header("planurl"),
            self.header("projectid"),
            self.header("hubname"),
            self.header("planid")
        )
    }

    fn task_completed(&self, result: &str) -> Value {
        json!({"name": "TaskCompleted", "taskId": self.header("taskinstanceid"),
               "jobId": self.header("jobid"), "result": result})
    }
}

#[derive(Clone)]
struct GateState {
    reply: Reply,
    received: Arc<Mutex<Vec<Received>>>,
    /// The statuses Post Event answered the gate's own callbacks.
    callbacks: Arc<Mutex<Vec<u16>>>,
    http: reqwest::Client,
}

struct Gate {
    url: String,
    state: GateState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn post_event(http: &reqwest::Client, url: &str, token: &str, body: &Value) -> u16 {
    http.post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn answer(
    State(gate): State<GateState>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let received = Received {
        headers,
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
    };
    gate.received.lock().unwrap().push(received.clone());
    match gate.reply {
        Reply::Approve => (StatusCode::OK, json!({"status": "approved"}).to_string()),
        Reply::Deny => (
            StatusCode::FORBIDDEN,
            json!({"status": "rejected", "reason": "not on a Friday"}).to_string(),
        ),
        Reply::Pending => (StatusCode::OK, json!({"status": "pending"}).to_string()),
        Reply::Acknowledge => (StatusCode::OK, String::new()),
        Reply::CallBack(result) => {
            // The decision may come before the acknowledgement does: the simulator must be
            // waiting for it already.
            tokio::spawn(async move {
                let status = post_event(
                    &gate.http,
                    &received.events_url(),
                    &received.header("authtoken"),
                    &received.task_completed(result),
                )
                .await;
                gate.callbacks.lock().unwrap().push(status);
            });
            (StatusCode::OK, String::new())
        }
    }
}

async fn gate(reply: Reply) -> Gate {
    let state = GateState {
        reply,
        received: Arc::default(),
        callbacks: Arc::default(),
        http: reqwest::Client::new(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/gate/ado/default", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/gate/ado/default", axum::routing::post(answer))
        .with_state(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Gate { url, state, task }
}

impl Gate {
    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn callbacks(&self) -> Vec<u16> {
        self.state.callbacks.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// A receiver for service-hook deliveries.

struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep(State(received): State<Arc<Mutex<Vec<Value>>>>, body: String) -> StatusCode {
    received
        .lock()
        .unwrap()
        .push(serde_json::from_str(&body).unwrap());
    StatusCode::OK
}

async fn receiver() -> Receiver {
    let received = Arc::<Mutex<Vec<Value>>>::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .fallback(keep)
        .with_state(received.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Receiver {
        url,
        received,
        task,
    }
}

// ---------------------------------------------------------------------------------------------
// The simulator and its APIs.

struct Api {
    http: reqwest::Client,
    sim: RunningSimulator,
}

async fn simulator(runs: RunSettings) -> Api {
    let sim = Simulator::new(SimConfig {
        seed: 5,
        profile: Profile::Small,
        hooks: HookDelivery {
            retry_delays: vec![Duration::from_millis(20)],
            probation_delays: vec![Duration::from_secs(3600)],
            timeout: Duration::from_secs(5),
        },
        runs,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap();
    Api {
        http: reqwest::Client::new(),
        sim,
    }
}

/// Stages take 10 ms: the runs of a test finish in well under a second unless a check waits.
fn quick() -> RunSettings {
    RunSettings {
        stage_duration: Duration::from_millis(10),
        ..RunSettings::default()
    }
}

impl Api {
    fn url(&self, path: &str) -> String {
        if path.starts_with("/_sim") {
            format!("{}{path}", self.sim.base_url)
        } else {
            let separator = if path.contains('?') { '&' } else { '?' };
            format!("{}{path}{separator}{API}", self.sim.org_url())
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .basic_auth("", Some("pat"));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body.to_string()))
            .await
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn values(&self, path: &str) -> Vec<Value> {
        self.get(path).await["value"].as_array().unwrap().clone()
    }

    async fn project(&self, index: usize) -> Value {
        self.values("/_apis/projects").await[index].clone()
    }

    /// A YAML pipeline of a project (classic ones cannot be run through the Runs API).
    async fn yaml_pipeline(&self, project: &str) -> Value {
        self.values(&format!("/{project}/_apis/pipelines"))
            .await
            .into_iter()
            .find(|p| p["configuration"]["type"] == "yaml")
            .unwrap()
    }

    async fn environment_id(&self, project: &str, name: &str) -> String {
        self.values(&format!("/{project}/_apis/pipelines/environments"))
            .await
            .into_iter()
            .find(|e| e["name"] == name)
            .map(|e| e["id"].to_string())
            .unwrap()
    }

    async fn register(&self, check: Value) -> Value {
        let (status, created) = self.post("/_sim/checks/rest", &check).await;
        assert_eq!(status, 201, "{created}");
        created
    }

    async fn queue(&self, project: &str, pipeline: &Value, body: Value) -> Value {
        let (status, run) = self
            .post(
                &format!("/{project}/_apis/pipelines/{}/runs", pipeline["id"]),
                &body,
            )
            .await;
        assert_eq!(status, 200, "{run}");
        run
    }

    /// The controls the manifest plants on an object (by its inventory key).
    async fn planted_on(&self, key: &str) -> BTreeSet<String> {
        self.get("/_sim/manifest").await["planted"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["id"] == key)
            .map(|p| text(&p["control"]))
            .collect()
    }

    async fn detail(&self, run: &Value) -> Value {
        self.get(&format!("/_sim/runs/{}", run["id"])).await
    }

    /// The run as the Runs API shows it, once it completed.
    async fn completed(&self, project: &str, run: &Value) -> Value {
        let path = format!(
            "/{project}/_apis/pipelines/{}/runs/{}",
            run["pipeline"]["id"], run["id"]
        );
        eventually("the run to complete", async || {
            let current = self.get(&path).await;
            (current["state"] == "completed").then_some(current)
        })
        .await
    }

    /// Every audit-log entry (the audit log pages by a body continuation token).
    async fn audit_log(&self) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let path = match &token {
                Some(token) => format!("/_apis/audit/auditlog?continuationToken={token}"),
                None => "/_apis/audit/auditlog".to_owned(),
            };
            let page = self.get(&path).await;
            entries.extend(page["decoratedAuditLogEntries"].as_array().unwrap().clone());
            match page["continuationToken"].as_str() {
                Some(next) if page["hasMore"] == true => token = Some(next.to_owned()),
                _ => return entries,
            }
        }
    }

    async fn deployments_of(&self, project: &str, environment: &str, run: &Value) -> Vec<Value> {
        self.values(&format!(
            "/{project}/_apis/pipelines/environments/{environment}/environmentdeploymentrecords"
        ))
        .await
        .into_iter()
        .filter(|d| d["owner"]["id"] == run["id"])
        .collect()
    }
}

/// Wait for a condition the simulator reaches in the background; fail after a generous bound.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..1_500 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn stage<'a>(detail: &'a Value, name: &str) -> &'a Value {
    detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {detail}"))
}

fn stage_results(detail: &Value) -> Vec<(String, String)> {
    detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["result"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

fn rest_check(stage: &Value) -> &Value {
    stage["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "invokeRESTAPI")
        .unwrap_or_else(|| panic!("no Invoke REST API check on {stage}"))
}

fn fixture(path: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/servicehooks")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

const EVERY_MACRO: &str = "$(System.StageName)|$(Environment.Name)|$(Build.BuildId)|$(System.DefinitionId)|$(Build.RequestedFor)|$(Build.RequestedForEmail)|$(Build.SourceBranch)|$(Build.SourceVersion)|$(Build.Repository.Name)|$(System.TeamProject)|$(System.TeamProjectId)|$(System.PlanId)|$(System.JobId)|$(System.TaskInstanceId)|$(System.CollectionUri)";

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_gate_that_approves_lets_the_run_deploy_and_gets_the_documented_headers_and_body() {
    let api = simulator(quick()).await;
    let gate = gate(Reply::Approve).await;
    let project = api.project(0).await;
    let (project_id, project_name) = (
        project["id"].as_str().unwrap(),
        project["name"].as_str().unwrap(),
    );
    let pipeline = api.yaml_pipeline(project_id).await;
    api.register(json!({
        "project": project_name, "environment": "production", "url": gate.url, "mode": "sync",
        "username": GATE_USER, "password": GATE_PASSWORD, "timeoutSecs": 30, "intervalSecs": 1,
        "body": {"all": EVERY_MACRO, "nested": {"stage": ["$(system.stagename)"]}, "unknown": "$(Not.AVariable)", "count": 3},
    }))
    .await;

    let queued = api
        .queue(
            project_name,
            &pipeline,
            json!({"resources": {"repositories": {"self": {"refName": "refs/heads/main"}}},
                   "templateParameters": {"reason": "release 7"}, "stagesToSkip": []}),
        )
        .await;
    assert_eq!(queued["state"], "inProgress");
    assert!(queued.get("result").is_none(), "{queued}");
    assert_eq!(queued["pipeline"]["id"], pipeline["id"]);
    assert_eq!(queued["pipeline"]["name"], pipeline["name"]);
    assert_eq!(
        queued["resources"]["repositories"]["self"]["refName"],
        "refs/heads/main"
    );
    assert_eq!(queued["templateParameters"]["reason"], "release 7");
    for field in ["id", "name", "createdDate", "url", "_links"] {
        assert!(!queued[field].is_null(), "{field} in {queued}");
    }

    let run = api.completed(project_id, &queued).await;
    assert_eq!(run["result"], "succeeded", "{}", api.detail(&queued).await);
    assert!(run["finishedDate"].is_string());
    let version = run["resources"]["repositories"]["self"]["version"].clone();
    assert_eq!(version.as_str().unwrap().len(), 40);

    // The run is a build: the same id, listed by the Builds API with what it ran.
    let build = api
        .values(&format!("/{project_id}/_apis/build/builds"))
        .await
        .into_iter()
        .find(|b| b["id"] == run["id"])
        .unwrap();
    assert_eq!(build["status"], "completed");
    assert_eq!(build["result"], "succeeded");
    assert_eq!(build["sourceBranch"], "refs/heads/main");
    assert_eq!(build["sourceVersion"], version);
    assert_eq!(build["definition"]["id"], pipeline["id"]);
    assert_eq!(
        build["repository"]["id"],
        pipeline["configuration"]["repository"]["id"]
    );
    let requester = build["requestedFor"].clone();
    assert!(requester["uniqueName"].is_string());
    // Queued by hand on main, as the Runs API queues: the manifest says what a scan will find.
    assert_eq!(build["reason"], "manual");
    assert_eq!(
        api.planted_on(&format!("{project_id}/{}", run["id"])).await,
        BTreeSet::from(["PL-06".to_owned()])
    );
    // Listed among the pipeline's runs too.
    assert!(
        api.values(&format!(
            "/{project_id}/_apis/pipelines/{}/runs",
            pipeline["id"]
        ))
        .await
        .iter()
        .any(|r| r["id"] == run["id"] && r["result"] == "succeeded")
    );

    // Every environment got a deployment record owned by the run.
    for environment in ["dev", "test", "staging", "production"] {
        let id = api.environment_id(project_id, environment).await;
        let records = api.deployments_of(project_id, &id, &run).await;
        assert_eq!(records.len(), 1, "{environment}");
        let record = &records[0];
        assert_eq!(record["result"], "succeeded");
        assert_eq!(record["definition"]["id"], pipeline["id"]);
        assert_eq!(record["owner"]["name"], run["name"]);
        assert_eq!(record["stageName"], environment);
        for time in ["queueTime", "startTime", "finishTime"] {
            assert!(record[time].is_string(), "{time} in {record}");
        }
    }

    // The gate was called once, for production, with the documented headers and no others.
    let calls = gate.received();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    let sent: BTreeSet<String> = call
        .headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| !TRANSPORT_HEADERS.contains(&k.as_str()))
        .collect();
    let documented: BTreeSet<String> = DOCUMENTED_HEADERS.iter().map(|h| (*h).to_owned()).collect();
    assert_eq!(sent, documented);
    let plan_url = format!("{}/", api.sim.org_url());
    assert_eq!(call.header("planurl"), plan_url);
    assert_eq!(call.header("projectid"), project_id);
    assert_eq!(call.header("hubname"), "checks");
    assert_eq!(call.header("buildid"), run["id"].to_string());
    assert_eq!(call.header("content-type"), "application/json");
    let token = call.header("authtoken");
    assert!(token.len() >= 32, "{token}");
    let credential =
        base64::engine::general_purpose::STANDARD.encode(format!("{GATE_USER}:{GATE_PASSWORD}"));
    assert_eq!(call.header("authorization"), format!("Basic {credential}"));
    for id in ["planid", "jobid", "timelineid", "taskinstanceid"] {
        assert_eq!(call.header(id).len(), 36, "{id} is a GUID");
    }

    // The body template, with its macros expanded (names match case-insensitively).
    let repository_name = api
        .values(&format!("/{project_id}/_apis/git/repositories"))
        .await
        .into_iter()
        .find(|r| r["id"] == build["repository"]["id"])
        .map(|r| text(&r["name"]))
        .unwrap();
    let expanded: Vec<String> = call.body["all"]
        .as_str()
        .unwrap()
        .split('|')
        .map(str::to_owned)
        .collect();
    let expected = vec![
        "production".to_owned(),
        "production".to_owned(),
        run["id"].to_string(),
        pipeline["id"].to_string(),
        text(&requester["displayName"]),
        text(&requester["uniqueName"]),
        "refs/heads/main".to_owned(),
        text(&version),
        repository_name,
        project_name.to_owned(),
        project_id.to_owned(),
        call.header("planid"),
        call.header("jobid"),
        call.header("taskinstanceid"),
        plan_url.clone(),
    ];
    assert_eq!(expanded, expected);
    assert_eq!(call.body["nested"]["stage"], json!(["production"]));
    assert_eq!(call.body["unknown"], "$(Not.AVariable)");
    assert_eq!(call.body["count"], 3);

    // The run detail shows the call, the AuthToken redacted, and the approvals granted.
    let detail = api.detail(&run).await;
    assert_eq!(detail["result"], "succeeded");
    assert_eq!(detail["planId"], call.header("planid").as_str());
    let production = stage(&detail, "production");
    assert_eq!(production["state"], "completed");
    assert!(production["deploymentRecordId"].is_u64());
    let check = rest_check(production);
    assert_eq!(check["mode"], "sync");
    assert_eq!(check["state"], "passed");
    let evaluation = &check["evaluations"][0];
    assert_eq!(evaluation["decision"], "approved");
    assert_eq!(evaluation["responseStatus"], 200);
    assert_eq!(evaluation["responseBody"]["status"], "approved");
    assert_eq!(evaluation["requestHeaders"]["AuthToken"], "********");
    assert_eq!(evaluation["requestHeaders"]["PlanUrl"], plan_url.as_str());
    assert_eq!(evaluation["requestBody"], call.body);
    assert!(
        !detail.to_string().contains(&token),
        "the AuthToken never shows"
    );
    assert!(!detail.to_string().contains(GATE_PASSWORD));
    let approvals: Vec<&Value> = detail["stages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap())
        .filter(|c| c["type"] == "approval")
        .collect();
    assert!(
        !approvals.is_empty(),
        "the generated organisation has approvals"
    );
    assert!(approvals.iter().all(|a| a["state"] == "approved"));

    // The AuthToken is a job token: it reads the run it was issued for.
    let read = api
        .http
        .get(api.url(&format!(
            "/{project_id}/_apis/pipelines/{}/runs/{}",
            pipeline["id"], run["id"]
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
}

#[tokio::test]
async fn a_gate_that_denies_or_answers_200_without_approving_keeps_the_stage_from_running() {
    let api = simulator(quick()).await;
    // Project 0's gate denies as tollgate does; project 1's answers 200 without approving.
    let deny = gate(Reply::Deny).await;
    let pending = gate(Reply::Pending).await;
    let mut queued = Vec::new();
    for (index, gate) in [(0, &deny), (1, &pending)] {
        let project = api.project(index).await;
        let project_id = project["id"].as_str().unwrap().to_owned();
        api.register(json!({
            "project": project_id, "environment": "staging", "url": gate.url, "mode": "sync",
            "timeoutSecs": 2, "intervalSecs": 1,
        }))
        .await;
        let pipeline = api.yaml_pipeline(&project_id).await;
        let run = api.queue(&project_id, &pipeline, json!({})).await;
        queued.push((project_id, run));
    }
    for ((project_id, queued), gate) in queued.iter().zip([&deny, &pending]) {
        let run = api.completed(project_id, queued).await;
        assert_eq!(run["result"], "failed");
        let detail = api.detail(&run).await;
        assert_eq!(
            stage_results(&detail),
            [
                ("build", "succeeded"),
                ("dev", "succeeded"),
                ("test", "succeeded"),
                ("staging", "skipped"),
                ("production", "skipped"),
            ]
            .map(|(s, r)| (s.to_owned(), r.to_owned()))
        );
        let staging = stage(&detail, "staging");
        assert!(
            staging["reason"]
                .as_str()
                .unwrap()
                .contains("no positive decision")
        );
        assert!(staging["startTime"].is_null(), "staging never ran");
        assert!(staging["deploymentRecordId"].is_null());
        assert_eq!(stage(&detail, "production")["state"], "completed");
        assert!(stage(&detail, "production")["startTime"].is_null());
        let check = rest_check(staging);
        assert_eq!(check["state"], "timedOut");

        // Re-evaluated every interval: each evaluation its own task and token.
        let calls = gate.received();
        assert!(calls.len() >= 2, "{} evaluations", calls.len());
        let tasks: BTreeSet<String> = calls.iter().map(|c| c.header("taskinstanceid")).collect();
        let tokens: BTreeSet<String> = calls.iter().map(|c| c.header("authtoken")).collect();
        assert_eq!(tasks.len(), calls.len());
        assert_eq!(tokens.len(), calls.len());
        assert!(calls.iter().all(|c| c.body["stageName"] == "staging"));
        assert!(
            calls.iter().all(|c| c.body["environmentName"] == "staging"),
            "the default body"
        );
        let evaluations = check["evaluations"].as_array().unwrap();
        assert_eq!(evaluations.len(), calls.len());
        assert!(evaluations.iter().all(|e| e["decision"] == "notApproved"));

        // Neither staging nor production was deployed; dev was.
        for (environment, deployed) in [("dev", 1), ("staging", 0), ("production", 0)] {
            let id = api.environment_id(project_id, environment).await;
            assert_eq!(
                api.deployments_of(project_id, &id, &run).await.len(),
                deployed,
                "{environment}"
            );
        }
        let build = api
            .values(&format!("/{project_id}/_apis/build/builds"))
            .await
            .into_iter()
            .find(|b| b["id"] == run["id"])
            .unwrap();
        assert_eq!(build["result"], "failed");
        assert_eq!(
            api.planted_on(&format!("{project_id}/{}", run["id"])).await,
            BTreeSet::from(["PL-05".to_owned(), "PL-06".to_owned()])
        );
    }
    assert_eq!(deny.received()[0].header("hubname"), "checks");
}

#[tokio::test]
async fn a_callback_that_succeeds_lets_the_run_deploy_and_a_second_one_is_ignored() {
    let api = simulator(quick()).await;
    let gate = gate(Reply::CallBack("succeeded")).await;
    let project = api.project(0).await;
    let project_id = project["id"].as_str().unwrap();
    api.register(json!({
        "project": project_id, "environment": "production", "url": gate.url, "mode": "callback",
        "username": GATE_USER, "password": GATE_PASSWORD, "timeoutSecs": 30,
    }))
    .await;
    let pipeline = api.yaml_pipeline(project_id).await;
    let run = api.queue(project_id, &pipeline, json!({})).await;
    let run = api.completed(project_id, &run).await;
    assert_eq!(run["result"], "succeeded", "{}", api.detail(&run).await);
    assert_eq!(gate.callbacks(), vec![204]);
    let production = api.environment_id(project_id, "production").await;
    assert_eq!(
        api.deployments_of(project_id, &production, &run)
            .await
            .len(),
        1
    );

    let detail = api.detail(&run).await;
    let check = rest_check(stage(&detail, "production"));
    assert_eq!(check["mode"], "callback");
    assert_eq!(check["state"], "passed");
    let evaluation = &check["evaluations"][0];
    assert_eq!(evaluation["decision"], "acknowledged");
    assert_eq!(evaluation["callback"]["result"], "succeeded");
    let events = detail["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["status"], 204);
    assert_eq!(events[0]["outcome"], "accepted");
    assert_eq!(events[0]["taskId"], evaluation["taskInstanceId"]);

    // The same decision again: 204, recorded as a duplicate, nothing changes.
    let call = &gate.received()[0];
    let status = post_event(
        &api.http,
        &call.events_url(),
        &call.header("authtoken"),
        &call.task_completed("failed"),
    )
    .await;
    assert_eq!(status, 204);
    let detail = api.detail(&run).await;
    assert_eq!(detail["events"][1]["outcome"], "duplicate");
    assert_eq!(detail["result"], "succeeded");
}

#[tokio::test]
async fn a_callback_that_fails_fails_the_stage_and_skips_the_rest() {
    let api = simulator(quick()).await;
    let gate = gate(Reply::CallBack("failed")).await;
    let project = api.project(1).await;
    let project_id = project["id"].as_str().unwrap();
    api.register(json!({
        "project": project["name"], "environment": "test", "url": gate.url, "mode": "callback",
        "timeoutSecs": 30,
    }))
    .await;
    let pipeline = api.yaml_pipeline(project_id).await;
    let run = api.queue(project_id, &pipeline, json!({})).await;
    let run = api.completed(project_id, &run).await;
    assert_eq!(run["result"], "failed");
    let detail = api.detail(&run).await;
    assert_eq!(
        stage_results(&detail),
        [
            ("build", "succeeded"),
            ("dev", "succeeded"),
            ("test", "failed"),
            ("staging", "skipped"),
            ("production", "skipped"),
        ]
        .map(|(s, r)| (s.to_owned(), r.to_owned()))
    );
    assert_eq!(rest_check(stage(&detail, "test"))["state"], "failed");
    assert!(
        stage(&detail, "test")["reason"]
            .as_str()
            .unwrap()
            .contains("decided failed")
    );
    assert!(
        stage(&detail, "staging")["reason"]
            .as_str()
            .unwrap()
            .contains("stage test failed")
    );
    for environment in ["test", "staging", "production"] {
        let id = api.environment_id(project_id, environment).await;
        assert!(
            api.deployments_of(project_id, &id, &run).await.is_empty(),
            "{environment}"
        );
    }
}

#[tokio::test]
async fn callbacks_with_a_wrong_token_or_plan_are_refused_and_the_stage_keeps_waiting() {
    let api = simulator(quick()).await;
    let gate = gate(Reply::Acknowledge).await;
    let project = api.project(0).await;
    let project_id = project["id"].as_str().unwrap();
    api.register(json!({
        "project": project_id, "environment": "staging", "url": gate.url, "mode": "callback",
        "timeoutSecs": 60,
    }))
    .await;
    let pipeline = api.yaml_pipeline(project_id).await;
    let first = api.queue(project_id, &pipeline, json!({})).await;
    let second = api.queue(project_id, &pipeline, json!({})).await;
    let calls = eventually("both runs to call the gate", async || {
        let calls = gate.received();
        (calls.len() == 2).then_some(calls)
    })
    .await;
    let first_call = calls
        .iter()
        .find(|c| c.header("buildid").parse::<u64>().ok() == first["id"].as_u64())
        .unwrap();
    let second_call = calls
        .iter()
        .find(|c| c.header("buildid").parse::<u64>().ok() == second["id"].as_u64())
        .unwrap();
    let url = first_call.events_url();
    let decision = first_call.task_completed("succeeded");

    let wrong = [
        (
            first_call.header("authtoken") + "x",
            url.clone(),
            401,
            "a wrong token",
        ),
        (
            second_call.header("authtoken"),
            url.clone(),
            401,
            "another plan's token",
        ),
        (
            first_call.header("authtoken"),
            url.replace(
                &first_call.header("planid"),
                "00000000-0000-4000-8000-000000000000",
            ),
            404,
            "an unknown plan",
        ),
    ];
    for (token, url, expected, what) in &wrong {
        assert_eq!(
            post_event(&api.http, url, token, &decision).await,
            *expected,
            "{what}"
        );
    }
    // Without a token, with a PAT instead, or with a body that is not an event.
    let no_token = api.http.post(&url).json(&decision).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    let with_pat = api
        .http
        .post(&url)
        .basic_auth("", Some("pat"))
        .json(&decision)
        .send()
        .await
        .unwrap();
    assert_eq!(with_pat.status(), 401);
    let malformed = api
        .http
        .post(&url)
        .bearer_auth(first_call.header("authtoken"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let mut wrong_job = decision.clone();
    wrong_job["jobId"] = json!("00000000-0000-4000-8000-000000000000");
    assert_eq!(
        post_event(&api.http, &url, &first_call.header("authtoken"), &wrong_job).await,
        400
    );

    // The stage still waits for its decision, and the run recorded every refusal.
    let detail = api.detail(&first).await;
    assert_eq!(detail["state"], "inProgress");
    let staging = stage(&detail, "staging");
    assert_eq!(staging["state"], "waiting");
    assert_eq!(rest_check(staging)["state"], "evaluating");
    assert!(rest_check(staging)["evaluations"][0]["callback"].is_null());
    let refused: Vec<u64> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["outcome"], "rejected");
            assert!(e["reason"].is_string(), "{e}");
            e["status"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(refused, vec![401, 401, 401, 401, 400, 400]);

    // The right token decides.
    assert_eq!(
        post_event(&api.http, &url, &first_call.header("authtoken"), &decision).await,
        204
    );
    assert_eq!(
        api.completed(project_id, &first).await["result"],
        "succeeded"
    );
    assert_eq!(
        post_event(
            &api.http,
            &second_call.events_url(),
            &second_call.header("authtoken"),
            &second_call.task_completed("succeeded"),
        )
        .await,
        204
    );
    assert_eq!(
        api.completed(project_id, &second).await["result"],
        "succeeded"
    );
}

#[tokio::test]
async fn no_callback_within_the_timeout_skips_the_stage_and_a_late_one_is_ignored() {
    let api = simulator(quick()).await;
    let gate = gate(Reply::Acknowledge).await;
    let project = api.project(0).await;
    let project_id = project["id"].as_str().unwrap();
    api.register(json!({
        "project": project_id, "environment": "production", "url": gate.url, "mode": "callback",
        "timeoutSecs": 1,
    }))
    .await;
    let pipeline = api.yaml_pipeline(project_id).await;
    let run = api.queue(project_id, &pipeline, json!({})).await;
    let run = api.completed(project_id, &run).await;
    assert_eq!(run["result"], "failed");
    let detail = api.detail(&run).await;
    let production = stage(&detail, "production");
    assert_eq!(production["result"], "skipped");
    assert_eq!(rest_check(production)["state"], "timedOut");
    assert_eq!(
        rest_check(production)["evaluations"][0]["decision"],
        "acknowledged"
    );
    let environment = api.environment_id(project_id, "production").await;
    assert!(
        api.deployments_of(project_id, &environment, &run)
            .await
            .is_empty()
    );

    let call = &gate.received()[0];
    let late = post_event(
        &api.http,
        &call.events_url(),
        &call.header("authtoken"),
        &call.task_completed("succeeded"),
    )
    .await;
    assert_eq!(late, 204);
    let detail = api.detail(&run).await;
    assert_eq!(detail["events"][0]["outcome"], "ignored");
    assert_eq!(detail["result"], "failed");
}

#[tokio::test]
async fn an_expired_auth_token_is_refused() {
    let api = simulator(RunSettings {
        stage_duration: Duration::from_millis(10),
        token_lifetime: Duration::ZERO,
    })
    .await;
    let gate = gate(Reply::Acknowledge).await;
    let project = api.project(0).await;
    let project_id = project["id"].as_str().unwrap();
    api.register(json!({
        "project": project_id, "environment": "dev", "url": gate.url, "mode": "callback",
        "timeoutSecs": 1,
    }))
    .await;
    let pipeline = api.yaml_pipeline(project_id).await;
    let run = api.queue(project_id, &pipeline, json!({})).await;
    let call = eventually("the gate to be called", async || {
        gate.received().first().cloned()
    })
    .await;
    let status = post_event(
        &api.http,
        &call.events_url(),
        &call.header("authtoken"),
        &call.task_completed("succeeded"),
    )
    .await;
    assert_eq!(status, 401);
    let run = api.completed(project_id, &run).await;
    assert_eq!(run["result"], "failed");
    let detail = api.detail(&run).await;
    assert_eq!(detail["events"][0]["status"], 401);
    assert!(
        detail["events"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert_eq!(stage(&detail, "dev")["result"], "skipped");
}

#[tokio::test]
async fn stage_and_run_state_events_reach_a_subscriber() {
    let api = simulator(quick()).await;
    let hooks = receiver().await;
    let project = api.project(0).await;
    let project_id = project["id"].as_str().unwrap();
    for event_type in [
        "ms.vss-pipelines.stage-state-changed-event",
        "ms.vss-pipelines.run-state-changed-event",
    ] {
        let (status, created) = api
            .post(
                "/_apis/hooks/subscriptions",
                &json!({"publisherId": "pipelines", "eventType": event_type, "resourceVersion": "5.1-preview.1",
                        "consumerId": "webHooks", "consumerActionId": "httpRequest",
                        "publisherInputs": {"projectId": project_id}, "consumerInputs": {"url": hooks.url}}),
            )
            .await;
        assert_eq!(status, 200, "{created}");
    }
    let pipeline = api.yaml_pipeline(project_id).await;
    let run = api.queue(project_id, &pipeline, json!({})).await;
    let run = api.completed(project_id, &run).await;
    let received = eventually("the run event", async || {
        let received = hooks.received.lock().unwrap().clone();
        received
            .iter()
            .any(|e| e["eventType"] == "ms.vss-pipelines.run-state-changed-event")
            .then_some(received)
    })
    .await;

    let run_events: Vec<&Value> = received
        .iter()
        .filter(|e| e["eventType"] == "ms.vss-pipelines.run-state-changed-event")
        .collect();
    assert_eq!(run_events.len(), 1, "raised once, when the run completes");
    let run_event = run_events[0];
    let sample = fixture("events/ms.vss-pipelines.run-state-changed-event.json");
    assert_eq!(keys(run_event), keys(&sample));
    assert_eq!(keys(&run_event["resource"]), keys(&sample["resource"]));
    assert_eq!(run_event["resource"]["run"]["id"], run["id"]);
    assert_eq!(run_event["resource"]["run"]["state"], "completed");
    assert_eq!(run_event["resource"]["run"]["result"], "succeeded");
    assert_eq!(run_event["resource"]["pipeline"]["id"], pipeline["id"]);

    let sample = fixture("events/ms.vss-pipelines.stage-state-changed-event.json");
    let stage_events: Vec<&Value> = received
        .iter()
        .filter(|e| e["eventType"] == "ms.vss-pipelines.stage-state-changed-event")
        .collect();
    for event in &stage_events {
        assert_eq!(keys(event), keys(&sample));
        assert_eq!(keys(&event["resource"]), keys(&sample["resource"]));
        assert_eq!(
            keys(&event["resource"]["stage"]),
            keys(&sample["resource"]["stage"])
        );
        assert_eq!(event["resource"]["run"]["id"], run["id"]);
        assert_eq!(event["resourceContainers"]["project"]["id"], project_id);
    }
    // Per stage, in order: waiting (when the environment has approvals), running, completed.
    let detail = api.detail(&run).await;
    for stage in detail["stages"].as_array().unwrap() {
        let name = stage["name"].as_str().unwrap();
        let states: Vec<(String, String)> = stage_events
            .iter()
            .filter(|e| e["resource"]["stage"]["name"] == name)
            .map(|e| {
                (
                    text(&e["resource"]["stage"]["state"]),
                    e["resource"]["stage"]["result"]
                        .as_str()
                        .unwrap_or("-")
                        .to_owned(),
                )
            })
            .collect();
        let waits = stage["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "approval");
        let mut expected = Vec::new();
        if waits {
            expected.push(("waiting".to_owned(), "-".to_owned()));
        }
        expected.push(("running".to_owned(), "-".to_owned()));
        expected.push(("completed".to_owned(), "succeeded".to_owned()));
        assert_eq!(states, expected, "{name}");
    }
    assert!(
        stage_events
            .iter()
            .any(|e| e["resource"]["stage"]["state"] == "waiting"),
        "the generated environments have approvals"
    );
}

#[tokio::test]
async fn the_environment_template_parameter_stops_the_run_after_that_stage() {
    let api = simulator(quick()).await;
    let project = api.project(0).await;
    let project_id = project["id"].as_str().unwrap();
    let pipeline = api.yaml_pipeline(project_id).await;
    let run = api
        .queue(
            project_id,
            &pipeline,
            json!({"templateParameters": {"environment": "staging"}}),
        )
        .await;
    let run = api.completed(project_id, &run).await;
    assert_eq!(run["result"], "succeeded");
    let detail = api.detail(&run).await;
    assert_eq!(
        stage_results(&detail),
        [
            ("build", "succeeded"),
            ("dev", "succeeded"),
            ("test", "succeeded"),
            ("staging", "succeeded"),
        ]
        .map(|(s, r)| (s.to_owned(), r.to_owned()))
    );
    let staging = api.environment_id(project_id, "staging").await;
    let production = api.environment_id(project_id, "production").await;
    assert_eq!(
        api.deployments_of(project_id, &staging, &run).await.len(),
        1
    );
    assert!(
        api.deployments_of(project_id, &production, &run)
            .await
            .is_empty()
    );

    // A stage named in stagesToSkip is skipped and the run goes on past it.
    let run = api
        .queue(project_id, &pipeline, json!({"stagesToSkip": ["test"]}))
        .await;
    let run = api.completed(project_id, &run).await;
    assert_eq!(run["result"], "succeeded");
    let detail = api.detail(&run).await;
    assert_eq!(stage(&detail, "test")["result"], "skipped");
    assert_eq!(stage(&detail, "production")["result"], "succeeded");
}

#[tokio::test]
async fn a_held_approval_keeps_its_stage_waiting_until_released() {
    let api = simulator(quick()).await;
    let project = api.project(0).await;
    let project_id = project["id"].as_str().unwrap();
    let (status, held) = api
        .post("/_sim/approvals/hold", &json!({"environment": "staging"}))
        .await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["held"], json!(["staging"]));
    assert!(held["approvalChecks"].as_u64().unwrap() >= 1, "{held}");
    let pipeline = api.yaml_pipeline(project_id).await;
    let run = api.queue(project_id, &pipeline, json!({})).await;
    let detail = eventually("staging to wait for its approval", async || {
        let detail = api.detail(&run).await;
        (stage(&detail, "staging")["state"] == "waiting"
            && stage(&detail, "staging")["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["state"] == "waitingForRelease"))
        .then_some(detail)
    })
    .await;
    assert_eq!(detail["state"], "inProgress");
    assert_eq!(stage(&detail, "production")["state"], "notStarted");
    let staging = api.environment_id(project_id, "staging").await;
    assert!(
        api.deployments_of(project_id, &staging, &run)
            .await
            .is_empty()
    );

    let (status, released) = api
        .post(
            "/_sim/approvals/release",
            &json!({"environment": "staging"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(released["held"], json!([]));
    let run = api.completed(project_id, &run).await;
    assert_eq!(run["result"], "succeeded");
    let detail = api.detail(&run).await;
    let approval = stage(&detail, "staging")["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "approval")
        .unwrap()
        .clone();
    assert_eq!(approval["state"], "approved");
    assert_eq!(approval["held"], true);
    assert_eq!(
        api.deployments_of(project_id, &staging, &run).await.len(),
        1
    );
}

#[tokio::test]
async fn a_registered_check_is_an_invoke_rest_api_task_check_until_deleted() {
    let api = simulator(quick()).await;
    let project = api.project(1).await;
    let project_id = project["id"].as_str().unwrap();
    let environment = api.environment_id(project_id, "production").await;
    let created = api
        .register(json!({
            "project": project["name"], "environment": "Production", "url": "http://127.0.0.1:9/gate/ado/default",
            "mode": "callback", "username": GATE_USER, "password": GATE_PASSWORD,
        }))
        .await;
    let id = created["id"].clone();
    assert_eq!(created["environment"]["id"], environment.as_str());
    assert!(!created.to_string().contains(GATE_PASSWORD));

    let configurations =
        format!("/{project_id}/_apis/pipelines/checks/configurations?$expand=settings");
    let listed = api
        .values(&configurations)
        .await
        .into_iter()
        .find(|c| c["id"] == id)
        .unwrap();
    assert_eq!(listed["type"]["name"], "Task Check");
    assert_eq!(listed["type"]["id"], "fe1de3ee-a436-41b4-bb20-f6eb4cb879a7");
    assert_eq!(listed["settings"]["definitionRef"]["name"], "invokeRESTAPI");
    assert_eq!(
        listed["settings"]["definitionRef"]["id"],
        "9c3e8943-130d-4c78-ac63-8af81df62dfb"
    );
    assert_eq!(listed["settings"]["inputs"]["waitForCompletion"], "true");
    assert_eq!(listed["resource"]["type"], "environment");
    assert_eq!(listed["resource"]["id"], environment.as_str());
    assert!(!listed.to_string().contains(GATE_PASSWORD));
    let audit = api.audit_log().await;
    let added = audit
        .iter()
        .find(|e| e["actionId"] == "CheckConfiguration.Created")
        .unwrap();
    assert_eq!(added["projectId"], project_id);

    let (status, listed) = api
        .send(reqwest::Method::GET, "/_sim/checks/rest", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["value"][0]["id"], id);

    let (status, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("/_sim/checks/rest/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(
        !api.values(&configurations)
            .await
            .iter()
            .any(|c| c["id"] == id)
    );
    let (status, error) = api
        .send(
            reqwest::Method::DELETE,
            &format!("/_sim/checks/rest/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert!(error["message"].is_string());
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_writes_nothing() {
    let api = simulator(quick()).await;
    let project = api.project(0).await;
    let project_id = project["id"].as_str().unwrap();
    let pipeline = api.yaml_pipeline(project_id).await;
    let builds = api
        .values(&format!("/{project_id}/_apis/build/builds"))
        .await
        .len();
    let runs_path = format!("/{project_id}/_apis/pipelines/{}/runs", pipeline["id"]);

    let cases: Vec<(String, String, u16, &str)> = vec![
        (
            format!("/{project_id}/_apis/pipelines/999999/runs"),
            "{}".to_owned(),
            404,
            "PipelineNotFoundException",
        ),
        (
            "/NoSuchProject/_apis/pipelines/1/runs".to_owned(),
            "{}".to_owned(),
            404,
            "ProjectDoesNotExistWithNameException",
        ),
        (
            runs_path.clone(),
            "{not json".to_owned(),
            400,
            "InvalidArgumentValueException",
        ),
        (
            runs_path.clone(),
            json!({"templateParameters": {"environment": "moon"}}).to_string(),
            404,
            "EnvironmentNotFoundException",
        ),
        (
            runs_path.clone(),
            json!({"templateParameters": {"environment": 3}}).to_string(),
            400,
            "InvalidArgumentValueException",
        ),
        (
            runs_path.clone(),
            json!({"stagesToSkip": ["deploy-to-mars"]}).to_string(),
            400,
            "InvalidArgumentValueException",
        ),
        (
            runs_path.clone(),
            json!({"previewRun": true}).to_string(),
            400,
            "InvalidArgumentValueException",
        ),
    ];
    for (path, body, status, type_key) in &cases {
        let (got, error) = api
            .send(reqwest::Method::POST, path, Some(body.clone()))
            .await;
        assert_eq!(got, *status, "{path} {body}: {error}");
        assert_eq!(error["typeKey"], *type_key, "{path} {body}");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    let no_version = api
        .http
        .post(format!("{}{runs_path}", api.sim.org_url()))
        .basic_auth("", Some("pat"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let (status, _) = api
        .send(reqwest::Method::GET, &format!("{runs_path}/999999"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        api.values(&format!("/{project_id}/_apis/build/builds"))
            .await
            .len(),
        builds,
        "no run was written"
    );
    assert_eq!(api.get("/_sim/runs").await["count"], 0);

    let check = |change: Value| {
        let mut check = json!({"project": project_id, "environment": "production",
                               "url": "http://127.0.0.1:9/gate", "mode": "sync"});
        for (key, value) in change.as_object().unwrap() {
            check[key] = value.clone();
        }
        check.to_string()
    };
    let checks: Vec<(String, u16)> = vec![
        (check(json!({"project": "NoSuchProject"})), 404),
        (check(json!({"environment": "moon"})), 404),
        (check(json!({"url": "ftp://127.0.0.1/"})), 400),
        (check(json!({"url": "not a url"})), 400),
        (check(json!({"mode": "sometimes"})), 400),
        (check(json!({"timeoutSecs": 0})), 400),
        (check(json!({"password": "p"})), 400),
        (check(json!({"retries": 3})), 400),
        ("{not json".to_owned(), 400),
    ];
    for (body, status) in &checks {
        let (got, error) = api
            .send(
                reqwest::Method::POST,
                "/_sim/checks/rest",
                Some(body.clone()),
            )
            .await;
        assert_eq!(got, *status, "{body}: {error}");
        assert!(error["message"].is_string(), "{body}: {error}");
    }
    assert_eq!(api.get("/_sim/checks/rest").await["count"], 0);
    let (status, _) = api
        .post("/_sim/approvals/hold", &json!({"environment": "moon"}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .post("/_sim/approvals/hold", &json!({"env": "staging"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = api
        .send(reqwest::Method::GET, "/_sim/runs/12345", None)
        .await;
    assert_eq!(status, 404);

    // The timing knob takes what it names and refuses what it does not.
    let (status, settings) = api
        .post("/_sim/runs/settings", &json!({"stageMs": 5}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(settings["stageMs"], 5);
    assert_eq!(settings["tokenLifetimeSecs"], 48 * 3600);
    let (status, _) = api.post("/_sim/runs/settings", &json!({"stage": 5})).await;
    assert_eq!(status, 400);
}
