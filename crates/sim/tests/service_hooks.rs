//! Service hooks end to end: subscriptions made through the Subscriptions API, changes made
//! through `/_sim/mutate`, and a real loopback receiver that gets (or refuses) the events.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected values"
)]

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use serde_json::{Value, json};
use tollgate_sim::{HookDelivery, Profile, RunningSimulator, SimConfig, Simulator};

const API: &str = "api-version=7.1";
const MINIMUM_REVIEWERS: &str = "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd";

// ---------------------------------------------------------------------------------------------
// A receiver: answers from a script of statuses (then 200) and keeps every request.

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone, Default)]
struct ReceiverState {
    script: Arc<Mutex<VecDeque<u16>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

struct Receiver {
    url: String,
    state: ReceiverState,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
    });
    StatusCode::from_u16(status).unwrap()
}

async fn receiver(script: &[u16]) -> Receiver {
    let state = ReceiverState::default();
    state.script.lock().unwrap().extend(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .fallback(receive)
        .with_state(state.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Receiver { url, state, task }
}

impl Receiver {
    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The simulator and its APIs.

fn fast(retries: &[u64], probation: &[u64]) -> HookDelivery {
    HookDelivery {
        retry_delays: retries
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        probation_delays: probation
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect(),
        timeout: Duration::from_secs(5),
    }
}

/// A probation retry that never comes within a test.
const NEVER: u64 = 3_600_000;

async fn simulator(hooks: HookDelivery) -> RunningSimulator {
    Simulator::new(SimConfig {
        seed: 5,
        profile: Profile::Small,
        hooks,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap()
}

struct Api {
    http: reqwest::Client,
    sim: RunningSimulator,
}

impl Api {
    async fn new(hooks: HookDelivery) -> Self {
        Self {
            http: reqwest::Client::new(),
            sim: simulator(hooks).await,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = if path.starts_with("/_sim") {
            format!("{}{path}", self.sim.base_url)
        } else {
            format!("{}{path}{separator}{API}", self.sim.org_url())
        };
        let mut request = self.http.request(method, url).basic_auth("", Some("pat"));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn subscribe(&self, body: Value) -> Value {
        let (status, created) = self
            .call(
                reqwest::Method::POST,
                "/_apis/hooks/subscriptions",
                Some(&body),
            )
            .await;
        assert_eq!(status, 200, "{created}");
        created
    }

    async fn web_hook(
        &self,
        publisher: &str,
        event_type: &str,
        url: &str,
        publisher_inputs: Value,
    ) -> String {
        let created = self
            .subscribe(json!({
                "publisherId": publisher, "eventType": event_type, "resourceVersion": "1.0",
                "consumerId": "webHooks", "consumerActionId": "httpRequest",
                "publisherInputs": publisher_inputs, "consumerInputs": {"url": url},
            }))
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    async fn mutate(&self, body: Value) -> Value {
        let (status, answer) = self
            .call(reqwest::Method::POST, "/_sim/mutate", Some(&body))
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    async fn deliveries(&self) -> Vec<Value> {
        self.get("/_sim/deliveries").await["value"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn deliveries_to(&self, subscription: &str) -> Vec<Value> {
        self.deliveries()
            .await
            .into_iter()
            .filter(|d| d["subscription_id"] == subscription)
            .collect()
    }

    async fn projects(&self) -> Vec<Value> {
        self.get("/_apis/projects").await["value"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn repositories(&self, project: &str) -> Vec<Value> {
        self.get(&format!("/{project}/_apis/git/repositories"))
            .await["value"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn main_object_id(&self, project: &str, repository: &str) -> String {
        let refs = self
            .get(&format!(
                "/{project}/_apis/git/repositories/{repository}/refs"
            ))
            .await;
        refs["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "refs/heads/main")
            .map(|r| r["objectId"].as_str().unwrap().to_owned())
            .unwrap()
    }

    async fn status_of(&self, subscription: &str) -> String {
        self.get(&format!("/_apis/hooks/subscriptions/{subscription}"))
            .await["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Wait for a condition the simulator reaches in the background; fail after a generous bound.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..750 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
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

fn event_ids(answer: &Value) -> Vec<String> {
    answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_push_reaches_the_receiver_with_the_repository_pushed_to_and_the_configured_credentials()
{
    let api = Api::new(fast(&[20], &[NEVER])).await;
    let hook = receiver(&[]).await;
    let project = api.projects().await[0].clone();
    let project_id = project["id"].as_str().unwrap();
    let repository = api.repositories(project_id).await[1].clone();
    let repository_id = repository["id"].as_str().unwrap();
    let before = api.main_object_id(project_id, repository_id).await;
    let subscription = api
        .subscribe(json!({
            "publisherId": "tfs", "eventType": "git.push", "resourceVersion": "1.0",
            "consumerId": "webHooks", "consumerActionId": "httpRequest",
            "publisherInputs": {"projectId": project_id, "repository": "", "branch": ""},
            "consumerInputs": {"url": format!("{}/ado/events", hook.url), "basicAuthUsername": "ado-hooks",
                               "basicAuthPassword": "correct-horse", "httpHeaders": "X-Tenant: t-1\nX-Hook-Secret:abc123",
                               "resourceDetailsToSend": "all"},
        }))
        .await;
    assert_eq!(
        subscription["consumerInputs"]["basicAuthPassword"],
        "********"
    );
    let subscription_id = subscription["id"].as_str().unwrap();

    let answer = api
        .mutate(json!({"ops": ["push_to_repository"], "repository": repository["name"]}))
        .await;
    assert_eq!(answer["applied"][0]["op"], "push_to_repository");
    let event_id = event_ids(&answer)[0].clone();
    let got = eventually("the push event", async || hook.received().first().cloned()).await;

    let after = api.main_object_id(project_id, repository_id).await;
    assert_ne!(before, after, "the push moves main");
    assert_eq!(got.path, "/ado/events");
    let event = &got.body;
    assert_eq!(event["id"], event_id.as_str());
    assert_eq!(event["eventType"], "git.push");
    assert_eq!(event["publisherId"], "tfs");
    assert_eq!(event["resource"]["repository"]["id"], repository_id);
    assert_eq!(event["resource"]["repository"]["name"], repository["name"]);
    assert_eq!(event["resource"]["repository"]["project"]["id"], project_id);
    assert_eq!(event["resourceContainers"]["project"]["id"], project_id);
    assert_eq!(
        event["resource"]["refUpdates"][0],
        json!({"name": "refs/heads/main", "oldObjectId": before, "newObjectId": after})
    );
    assert_eq!(event["resource"]["commits"][0]["commitId"], after.as_str());
    let expected = base64::engine::general_purpose::STANDARD.encode("ado-hooks:correct-horse");
    assert_eq!(
        got.headers["authorization"],
        format!("Basic {expected}").as_str()
    );
    assert_eq!(got.headers["x-tenant"], "t-1");
    assert_eq!(got.headers["x-hook-secret"], "abc123");
    assert!(
        got.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );

    let deliveries = eventually("the delivery record", async || {
        let records = api.deliveries_to(subscription_id).await;
        (!records.is_empty()).then_some(records)
    })
    .await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let record = &deliveries[0];
    assert_eq!(record["event_id"], event_id.as_str());
    assert_eq!(record["event_type"], "git.push");
    assert_eq!(record["url"], format!("{}/ado/events", hook.url).as_str());
    assert_eq!(
        (record["attempt"].clone(), record["status"].clone()),
        (json!(1), json!(200))
    );
    assert_eq!(record["outcome"], "delivered");
    assert!(record["time"].as_str().unwrap().contains('T'));

    let (status, _) = api
        .call(reqwest::Method::DELETE, "/_sim/deliveries", None)
        .await;
    assert_eq!(status, 204);
    assert!(api.deliveries().await.is_empty());
}

#[tokio::test]
async fn subscriptions_get_only_the_events_of_their_project_and_repository() {
    let api = Api::new(fast(&[20], &[NEVER])).await;
    let hook = receiver(&[]).await;
    let projects = api.projects().await;
    let (first, second) = (
        projects[0]["id"].as_str().unwrap(),
        projects[1]["id"].as_str().unwrap(),
    );
    api.web_hook(
        "tfs",
        "workitem.created",
        &format!("{}/first", hook.url),
        json!({"projectId": first}),
    )
    .await;
    api.web_hook(
        "tfs",
        "workitem.created",
        &format!("{}/second", hook.url),
        json!({"projectId": second.to_uppercase()}),
    )
    .await;

    let answer = api
        .mutate(json!({"ops": vec!["create_work_item"; 8]}))
        .await;
    let raised = event_ids(&answer);
    assert_eq!(raised.len(), 8);
    let both = eventually("every work item event", async || {
        (hook.received().len() == raised.len()).then(|| hook.received())
    })
    .await;
    let delivered: BTreeSet<&str> = both
        .iter()
        .map(|r| r.body["id"].as_str().unwrap())
        .collect();
    assert_eq!(delivered, raised.iter().map(String::as_str).collect());
    for (path, project) in [("/first", first), ("/second", second)] {
        let events = hook.at(path);
        assert!(
            !events.is_empty(),
            "the seed creates work items in both projects"
        );
        for event in events {
            assert_eq!(event.body["resourceContainers"]["project"]["id"], project);
            let name = projects.iter().find(|p| p["id"] == project).unwrap()["name"].clone();
            assert_eq!(event.body["resource"]["fields"]["System.TeamProject"], name);
        }
    }

    // Per subscription, events arrive in the order they were raised: had the push to the
    // other repository passed the filter, it would have arrived before this one.
    let repositories = api.repositories(first).await;
    let (wanted, other) = (
        repositories[0]["id"].as_str().unwrap(),
        repositories[1]["id"].as_str().unwrap(),
    );
    let push_hook = receiver(&[]).await;
    api.web_hook(
        "tfs",
        "git.push",
        &push_hook.url,
        json!({"repository": wanted, "branch": "main"}),
    )
    .await;
    api.mutate(json!({"ops": ["push_to_repository"], "repository": other}))
        .await;
    let answer = api
        .mutate(json!({"ops": ["push_to_repository"], "repository": wanted}))
        .await;
    let got = eventually("the push to the wanted repository", async || {
        push_hook.received().first().cloned()
    })
    .await;
    assert_eq!(got.body["id"], event_ids(&answer)[0].as_str());
    assert_eq!(got.body["resource"]["repository"]["id"], wanted);
    assert_eq!(push_hook.received().len(), 1);
}

#[tokio::test]
async fn a_503_is_retried_and_the_same_event_is_delivered_again() {
    let api = Api::new(fast(&[10, 20, 40], &[NEVER])).await;
    let hook = receiver(&[503, 503]).await;
    let subscription = api.web_hook("tfs", "git.push", &hook.url, json!({})).await;
    let answer = api.mutate(json!({"ops": ["push_to_repository"]})).await;
    let event_id = event_ids(&answer)[0].clone();

    let records = eventually("a delivered attempt", async || {
        let records = api.deliveries_to(&subscription).await;
        records
            .iter()
            .any(|r| r["outcome"] == "delivered")
            .then_some(records)
    })
    .await;
    let attempts: Vec<(Value, Value, Value)> = records
        .iter()
        .map(|r| {
            (
                r["attempt"].clone(),
                r["status"].clone(),
                r["outcome"].clone(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        vec![
            (json!(1), json!(503), json!("retrying")),
            (json!(2), json!(503), json!("retrying")),
            (json!(3), json!(200), json!("delivered")),
        ]
    );
    let received = hook.received();
    assert_eq!(received.len(), 3);
    assert!(
        received.iter().all(|r| r.body["id"] == event_id.as_str()),
        "one event, sent three times"
    );
    assert!(received.iter().all(|r| r.body == received[0].body));
    assert_eq!(api.status_of(&subscription).await, "enabled");
}

#[tokio::test]
async fn connection_failures_are_retried_then_put_the_subscription_on_probation() {
    let api = Api::new(fast(&[10, 10], &[NEVER])).await;
    // A port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", closed.local_addr().unwrap());
    drop(closed);
    let subscription = api.web_hook("tfs", "git.push", &url, json!({})).await;
    api.mutate(json!({"ops": ["push_to_repository"]})).await;
    let records = eventually("probation", async || {
        let records = api.deliveries_to(&subscription).await;
        records
            .iter()
            .any(|r| r["outcome"] == "on_probation")
            .then_some(records)
    })
    .await;
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retrying", "retrying", "on_probation"]);
    assert!(
        records
            .iter()
            .all(|r| r["status"].is_null() && r["error"].as_str().is_some_and(|e| !e.is_empty()))
    );
    assert_eq!(api.status_of(&subscription).await, "onProbation");
}

#[tokio::test]
async fn an_enduring_failure_puts_the_subscription_on_probation_and_new_events_are_lost() {
    for refusal in [500u16, 429, 401, 404] {
        let api = Api::new(fast(&[10], &[NEVER])).await;
        let hook = receiver(&[refusal]).await;
        let subscription = api.web_hook("tfs", "git.push", &hook.url, json!({})).await;
        let first = event_ids(&api.mutate(json!({"ops": ["push_to_repository"]})).await)[0].clone();
        eventually("probation", async || {
            (api.status_of(&subscription).await == "onProbation").then_some(())
        })
        .await;
        let shown = api
            .get(&format!("/_apis/hooks/subscriptions/{subscription}"))
            .await;
        assert_eq!(shown["probationRetries"], 0);

        let second =
            event_ids(&api.mutate(json!({"ops": ["push_to_repository"]})).await)[0].clone();
        let records = api.deliveries_to(&subscription).await;
        let summary: Vec<(String, Value, Value, String)> = records
            .iter()
            .map(|r| {
                (
                    r["event_id"].as_str().unwrap().to_owned(),
                    r["attempt"].clone(),
                    r["status"].clone(),
                    r["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    first.clone(),
                    json!(1),
                    json!(refusal),
                    "on_probation".to_owned()
                ),
                (second, json!(0), Value::Null, "dropped".to_owned()),
            ],
            "{refusal} is not retried; the event after it is lost"
        );
        let received = hook.received();
        assert_eq!(received.len(), 1, "{refusal}");
        assert_eq!(received[0].body["id"], first.as_str());
    }
}

#[tokio::test]
async fn a_probation_retry_that_succeeds_restores_the_subscription() {
    let api = Api::new(fast(&[10], &[30, 30])).await;
    let hook = receiver(&[500]).await;
    let subscription = api.web_hook("tfs", "git.push", &hook.url, json!({})).await;
    let first = event_ids(&api.mutate(json!({"ops": ["push_to_repository"]})).await)[0].clone();
    let records = eventually("the probation retry", async || {
        let records = api.deliveries_to(&subscription).await;
        records
            .iter()
            .any(|r| r["outcome"] == "delivered")
            .then_some(records)
    })
    .await;
    let outcomes: Vec<(Value, Value)> = records
        .iter()
        .map(|r| (r["attempt"].clone(), r["outcome"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (json!(1), json!("on_probation")),
            (json!(2), json!("delivered"))
        ]
    );
    let shown = api
        .get(&format!("/_apis/hooks/subscriptions/{subscription}"))
        .await;
    assert_eq!(shown["status"], "enabled");
    assert!(shown["lastProbationRetryDate"].is_string());
    assert!(
        hook.received()
            .iter()
            .all(|r| r.body["id"] == first.as_str())
    );

    let next = event_ids(&api.mutate(json!({"ops": ["push_to_repository"]})).await)[0].clone();
    eventually("the next event", async || {
        (hook.received().len() == 3).then_some(())
    })
    .await;
    assert_eq!(hook.received()[2].body["id"], next.as_str());
}

#[tokio::test]
async fn failing_every_probation_retry_or_answering_410_disables_the_subscription() {
    let api = Api::new(fast(&[10], &[10, 10])).await;
    let failing = receiver(&[500, 500, 500]).await;
    let gone = receiver(&[410]).await;
    let worn_out = api
        .web_hook("tfs", "git.push", &failing.url, json!({}))
        .await;
    let removed = api.web_hook("tfs", "git.push", &gone.url, json!({})).await;
    api.mutate(json!({"ops": ["push_to_repository"]})).await;
    for subscription in [&worn_out, &removed] {
        eventually("disabledBySystem", async || {
            (api.status_of(subscription).await == "disabledBySystem").then_some(())
        })
        .await;
    }
    let outcomes = |records: Vec<Value>| -> Vec<String> {
        records
            .iter()
            .map(|r| r["outcome"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        outcomes(api.deliveries_to(&worn_out).await),
        ["on_probation", "on_probation", "disabled_by_system"]
    );
    assert_eq!(
        outcomes(api.deliveries_to(&removed).await),
        ["disabled_by_system"]
    );

    // A disabled subscription is not notified at all; enabling it again (PUT) restores it.
    api.mutate(json!({"ops": ["push_to_repository"]})).await;
    assert_eq!(api.deliveries_to(&removed).await.len(), 1);
    let mut body = api
        .get(&format!("/_apis/hooks/subscriptions/{removed}"))
        .await;
    body["status"] = json!("enabled");
    let (status, replaced) = api
        .call(
            reqwest::Method::PUT,
            &format!("/_apis/hooks/subscriptions/{removed}"),
            Some(&body),
        )
        .await;
    assert_eq!(
        (status, replaced["status"].clone()),
        (200, json!("enabled"))
    );
    let next = event_ids(&api.mutate(json!({"ops": ["push_to_repository"]})).await)[0].clone();
    let got = eventually("delivery after re-enabling", async || {
        gone.received().get(1).cloned()
    })
    .await;
    assert_eq!(got.body["id"], next.as_str());
}

#[tokio::test]
async fn the_published_subscription_bodies_round_trip_through_the_api() {
    let api = Api::new(HookDelivery::default()).await;
    let project_id = api.projects().await[0]["id"].as_str().unwrap().to_owned();
    let published = fixture("api/subscriptions/POST__hooks_subscriptions.json");
    let request = &published["parameters"]["body"];
    let answer = &published["responses"]["200"]["body"];

    // As published, the body names a project this organisation does not have.
    let (status, refusal) = api
        .call(
            reqwest::Method::POST,
            "/_apis/hooks/subscriptions",
            Some(request),
        )
        .await;
    assert_eq!(status, 400, "{refusal}");
    assert!(refusal["message"].as_str().unwrap().contains("projectId"));

    let mut request = request.clone();
    request["publisherInputs"]["projectId"] = json!(project_id);
    let created = api.subscribe(request.clone()).await;
    let mut expected_keys = keys(answer);
    expected_keys.insert("status".to_owned());
    assert_eq!(keys(&created), expected_keys);
    assert_eq!(
        keys(&created["publisherInputs"]),
        keys(&answer["publisherInputs"])
    );
    assert_eq!(keys(&created["createdBy"]), keys(&answer["createdBy"]));
    for field in [
        "publisherId",
        "eventType",
        "resourceVersion",
        "consumerId",
        "consumerActionId",
        "consumerInputs",
    ] {
        assert_eq!(created[field], request[field], "{field}");
    }
    assert_eq!(created["status"], "enabled");
    assert_eq!(created["actionDescription"], answer["actionDescription"]);
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        created["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/_apis/hooks/subscriptions/{id}"))
    );

    let read = api.get(&format!("/_apis/hooks/subscriptions/{id}")).await;
    assert_eq!(read, created);
    let listed = api.get("/_apis/hooks/subscriptions").await;
    assert_eq!(
        keys(&listed),
        keys(
            &fixture("api/subscriptions/GET__hooks_subscriptions_.json")["responses"]["200"]["body"]
        )
    );
    assert_eq!(listed["value"], json!([created]));

    let replacing = fixture("api/subscriptions/PUT__hooks_subscriptions__newSubscriptionId_.json");
    let mut body = replacing["parameters"]["body"].clone();
    body["publisherInputs"]["projectId"] = json!(project_id);
    let (status, replaced) = api
        .call(
            reqwest::Method::PUT,
            &format!("/_apis/hooks/subscriptions/{id}"),
            Some(&body),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(keys(&replaced), expected_keys);
    assert_eq!(
        replaced["consumerInputs"]["url"],
        "https://myservice/newreceiver"
    );
    for kept in ["id", "createdDate", "createdBy"] {
        assert_eq!(replaced[kept], created[kept], "{kept}");
    }
    for kept in ["hostId", "tfsSubscriptionId"] {
        assert_eq!(
            replaced["publisherInputs"][kept], created["publisherInputs"][kept],
            "{kept}"
        );
    }

    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/_apis/hooks/subscriptions/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call(
            reqwest::Method::GET,
            &format!("/_apis/hooks/subscriptions/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Every subscription of the published list, whatever its consumer and status, is taken
    // back as it was shown, and shown again with the same fields (status always present,
    // probation retries only on probation).
    let list = fixture("api/subscriptions/GET__hooks_subscriptions_.json");
    for shown in list["responses"]["200"]["body"]["value"]
        .as_array()
        .unwrap()
    {
        let mut body = shown.clone();
        body["publisherInputs"]["projectId"] = json!(project_id);
        let created = api.subscribe(body).await;
        let mut expected = keys(shown);
        expected.insert("status".to_owned());
        expected.remove("probationRetries");
        assert_eq!(keys(&created), expected, "{}", shown["id"]);
        assert_eq!(created["eventType"], shown["eventType"]);
        assert_eq!(created["consumerId"], shown["consumerId"]);
    }
    assert_eq!(api.get("/_apis/hooks/subscriptions").await["count"], 12);
    let webhooks = api
        .get("/_apis/hooks/subscriptions?consumerId=webHooks&eventType=build.complete")
        .await;
    assert_eq!(webhooks["count"], 2);
}

#[tokio::test]
async fn the_subscriptions_api_checks_like_the_other_routes() {
    let api = Api::new(HookDelivery::default()).await;
    let url = format!("{}/_apis/hooks/subscriptions", api.sim.org_url());
    let unauthenticated = api.http.get(format!("{url}?{API}")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let unversioned = api
        .http
        .get(&url)
        .basic_auth("", Some("pat"))
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), 400);
    let other_org = api
        .http
        .get(format!(
            "{}/contoso/_apis/hooks/subscriptions?{API}",
            api.sim.base_url
        ))
        .basic_auth("", Some("pat"))
        .send()
        .await
        .unwrap();
    assert_eq!(other_org.status(), 404);
    for bad in [
        json!("not an object"),
        json!({"publisherId": "tfs", "eventType": "git.push", "consumerId": "webHooks", "consumerActionId": "httpRequest",
               "consumerInputs": {"url": "mailto:someone"}}),
        json!({"publisherId": "tfs", "eventType": "git.push", "consumerId": "webHooks", "consumerActionId": "httpRequest",
               "consumerInputs": {"url": "http://x/", "httpHeaders": "no colon here"}}),
    ] {
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                "/_apis/hooks/subscriptions",
                Some(&bad),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(
        api.get("/_apis/hooks/subscriptions").await["count"],
        0,
        "nothing half-made"
    );
    let (status, _) = api
        .call(
            reqwest::Method::PUT,
            "/_apis/hooks/subscriptions/8dea9aba-3a9a-4ad0-860f-2a5c7379e3eb",
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, 404);
}

/// The event type of each sample and the fixture it was published in.
const SAMPLES: &[(&str, &str, &str)] = &[
    ("tfs", "git.push", "events/git.push.json"),
    (
        "tfs",
        "git.pullrequest.updated",
        "events/git.pullrequest.updated.json",
    ),
    (
        "tfs",
        "git.repo.created",
        "events/docs-2025/git.repo.created.json",
    ),
    (
        "tfs",
        "git.repo.deleted",
        "events/docs-2025/git.repo.deleted.json",
    ),
    ("tfs", "workitem.created", "events/workitem.created.json"),
    (
        "tfs",
        "workitem.updated",
        "events/workitem.updated.field-deltas.json",
    ),
    ("tfs", "workitem.deleted", "events/workitem.deleted.json"),
    ("tfs", "build.complete", "events/build.complete.json"),
    (
        "pipelines",
        "ms.vss-pipelines.run-state-changed-event",
        "events/ms.vss-pipelines.run-state-changed-event.json",
    ),
];

#[tokio::test]
async fn every_event_raised_has_the_top_level_fields_of_its_published_sample() {
    let api = Api::new(fast(&[20], &[NEVER])).await;
    let hook = receiver(&[]).await;
    let mut subscriptions = Vec::new();
    for (publisher, event_type, _) in SAMPLES {
        let id = api
            .web_hook(
                publisher,
                event_type,
                &format!("{}/{event_type}", hook.url),
                json!({}),
            )
            .await;
        subscriptions.push(id);
    }

    // Configuration changes raise audit entries, never service-hook events.
    let quiet = api
        .mutate(json!({"ops": ["weaken_policy", "dismiss_alert", "expose_variable", "remove_production_approval", "delete_pipeline"]}))
        .await;
    assert!(!quiet["applied"].as_array().unwrap().is_empty());
    assert_eq!(quiet["events"], json!([]));

    let ops = [
        "create_repository",
        "delete_repository",
        "update_work_items",
        "create_work_item",
        "delete_work_item",
        "run_pipeline",
        "vote_pull_request",
        "push_to_repository",
    ];
    let answer = api.mutate(json!({"ops": ops})).await;
    let applied = answer["applied"].as_array().unwrap();
    assert_eq!(applied.len(), ops.len(), "{answer}");
    let raised: Vec<(String, String)> = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["event_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let raised_types: BTreeSet<&str> = raised.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(raised_types, SAMPLES.iter().map(|(_, t, _)| *t).collect());
    assert_eq!(
        raised.len(),
        SAMPLES.len(),
        "one event per change, two for a run"
    );

    eventually("every event", async || {
        (hook.received().len() == raised.len()).then_some(())
    })
    .await;
    let applied_id = |op: &str| {
        applied.iter().find(|a| a["op"] == op).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (_, event_type, sample) in SAMPLES {
        let got = hook.at(&format!("/{event_type}"));
        assert_eq!(got.len(), 1, "{event_type}");
        let event = &got[0].body;
        assert_eq!(
            keys(event),
            keys(&fixture(sample)),
            "{event_type} against {sample}"
        );
        assert_eq!(event["eventType"], *event_type);
        assert!(raised.iter().any(|(id, _)| event["id"] == id.as_str()));
        assert_eq!(keys(&event["message"]), keys(&fixture(sample)["message"]));
        assert_eq!(
            keys(&event["resourceContainers"]),
            keys(&fixture(sample)["resourceContainers"])
        );
        let resource = &event["resource"];
        match *event_type {
            "git.repo.created" => assert_eq!(
                resource["repository"]["id"],
                applied_id("create_repository").as_str()
            ),
            "git.repo.deleted" => assert_eq!(
                resource["repositoryId"],
                applied_id("delete_repository").as_str()
            ),
            "workitem.created" => {
                assert_eq!(resource["id"].to_string(), applied_id("create_work_item"))
            }
            "workitem.deleted" => {
                assert_eq!(resource["id"].to_string(), applied_id("delete_work_item"))
            }
            "workitem.updated" => {
                assert_eq!(
                    resource["workItemId"].to_string(),
                    applied_id("update_work_items")
                );
                assert_eq!(resource["revision"]["fields"]["System.State"], "Active");
                assert_eq!(
                    resource["fields"]["System.Rev"]["newValue"],
                    resource["rev"]
                );
                assert!(resource["fields"]["System.ChangedDate"]["newValue"].is_string());
                assert_eq!(keys(resource), keys(&fixture(sample)["resource"]));
            }
            "build.complete" => {
                assert_eq!(resource["id"].to_string(), applied_id("run_pipeline"));
                assert_eq!(event["subscriptionId"], subscriptions[7].as_str());
                assert!(event["notificationId"].is_u64());
            }
            "ms.vss-pipelines.run-state-changed-event" => {
                assert_eq!(
                    resource["run"]["id"].to_string(),
                    applied_id("run_pipeline")
                );
            }
            "git.pullrequest.updated" => {
                assert_eq!(
                    resource["pullRequestId"].to_string(),
                    applied_id("vote_pull_request")
                );
                assert_eq!(resource["reviewers"][0]["vote"], -5);
            }
            "git.push" => assert_eq!(
                resource["refUpdates"][0]["name"],
                applied_id("push_to_repository").as_str()
            ),
            other => panic!("unexpected {other}"),
        }
    }
    // The objects the events name are the simulator's: the created repository is listed.
    let created = &hook.at("/git.repo.created")[0].body["resource"]["repository"];
    let project = created["project"]["id"].as_str().unwrap();
    assert!(
        api.repositories(project)
            .await
            .iter()
            .any(|r| r["id"] == created["id"])
    );
}

#[tokio::test]
async fn a_policy_weakened_on_a_named_repository_and_a_push_to_it_act_on_that_repository() {
    let api = Api::new(fast(&[20], &[NEVER])).await;
    let project = api.projects().await[0]["id"].as_str().unwrap().to_owned();
    let policies = api
        .get(&format!("/{project}/_apis/policy/configurations"))
        .await;
    let strict = policies["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["type"]["id"] == MINIMUM_REVIEWERS && p["settings"]["minimumApproverCount"] == 2
        })
        .cloned()
        .unwrap();
    let repository = strict["settings"]["scope"][0]["repositoryId"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = api.main_object_id(&project, &repository).await;

    let answer = api
        .mutate(json!({"ops": ["weaken_policy", "push_to_repository"], "repository": repository}))
        .await;
    let applied = answer["applied"].as_array().unwrap();
    assert_eq!(applied.len(), 2, "{answer}");
    assert_eq!(applied[0]["op"], "weaken_policy");
    let policies = api
        .get(&format!("/{project}/_apis/policy/configurations"))
        .await;
    let weakened = policies["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == applied[0]["id"].as_str().unwrap().parse::<u64>().unwrap())
        .unwrap();
    assert_eq!(
        weakened["settings"]["scope"][0]["repositoryId"],
        repository.as_str()
    );
    assert_eq!(weakened["settings"]["minimumApproverCount"], 1);
    assert_eq!(applied[1]["op"], "push_to_repository");
    assert!(applied[1]["detail"].as_str().unwrap().contains(&repository));
    assert_ne!(api.main_object_id(&project, &repository).await, before);
    assert_eq!(
        answer["events"].as_array().unwrap().len(),
        1,
        "the push only"
    );

    for (bad, why) in [
        (
            json!({"ops": ["push_to_repository"], "repository": "no-such-repo"}),
            "no-such-repo",
        ),
        (
            json!({"ops": ["create_work_item"], "repository": repository}),
            "push_to_repository",
        ),
        (
            json!({"ops": ["push_to_repository"], "repo": repository}),
            "unknown field",
        ),
    ] {
        let (status, body) = api
            .call(reqwest::Method::POST, "/_sim/mutate", Some(&bad))
            .await;
        assert_eq!(status, 400, "{bad}");
        assert!(body.as_str().unwrap().contains(why), "{body}");
    }
}

#[tokio::test]
async fn random_mutations_never_push_and_stay_the_same_for_a_seed() {
    let first = Api::new(HookDelivery::default()).await;
    let second = Api::new(HookDelivery::default()).await;
    let one = first.mutate(json!({"count": 40})).await;
    let two = second.mutate(json!({"count": 40})).await;
    assert_eq!(one["applied"], two["applied"]);
    assert!(
        one["applied"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["op"] != "push_to_repository")
    );
}
