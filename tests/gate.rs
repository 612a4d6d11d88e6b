//! The deployment gate over real HTTP, as ADO's Invoke REST API check calls it: the spawned
//! `tollgate serve`, a simulated organisation it synced, and the documented headers.
//! A deny is never a 2xx; the job token never leaves for a host that is not the tenant's
//! registered organisation; approvals follow RBAC; every step is in the audit log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};
use server::Server;
use sqlx::Connection as _;
use tollgate_sim::{Profile, SimConfig, Simulator};

const GATE_USER: &str = "ado-check";
const GATE_PASSWORD: &str = "gate-password-for-tests";
const SATURDAY: &str = "2026-11-28T10:00:00Z";
const TUESDAY: &str = "2026-11-24T10:00:00Z";

struct Setup {
    sim: tollgate_sim::RunningSimulator,
    server: Server,
    client: Client,
    project_id: String,
}

async fn setup(now: &str) -> Setup {
    setup_with(now, "").await
}

async fn setup_with(now: &str, extra: &str) -> Setup {
    let sim = Simulator::new(SimConfig {
        seed: 7,
        profile: Profile::Small,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap();
    let dir_config = format!(
        "[ado]\norg_url = \"{org}\"\npat = \"test-pat\"\n\n[worker]\npoll_interval_ms = 100\nincremental_sync_every_secs = 0\nfull_sync_every_secs = 0\n\n\
         [gate]\nusername = \"{GATE_USER}\"\npassword = \"{GATE_PASSWORD}\"\ntimezone = \"Europe/London\"\n\n\
         [[gate.environments]]\nname = \"production\"\nquorum = 1\napprover_role = \"release_manager\"\nactions = {{ \"GATE-02\" = \"warn\", \"GATE-09\" = \"warn\" }}\n\n{extra}\n",
        org = sim.org_url()
    );
    let server = Server::start_with_env(&dir_config, &[("TOLLGATE_FAKE_NOW", now)]).await;
    let client = Client::new();
    let queued: Value = client
        .post(server.url("/api/v1/syncs"))
        .bearer_auth(server.admin_key())
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
    let projects: Value = client
        .get(server.url("/api/v1/inventory/projects"))
        .bearer_auth(server.admin_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project_id = projects["items"][0]["ado_id"].as_str().unwrap().to_owned();
    Setup {
        sim,
        server,
        client,
        project_id,
    }
}

fn check_headers(plan_url: &str, project_id: &str, plan: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PlanUrl", plan_url.to_owned()),
        ("ProjectId", project_id.to_owned()),
        ("HubName", "checks".to_owned()),
        ("PlanId", plan.to_owned()),
        ("JobId", "2b8a9a8c-0000-4000-8000-000000000001".to_owned()),
        (
            "TimelineId",
            "2b8a9a8c-0000-4000-8000-000000000002".to_owned(),
        ),
        ("TaskInstanceId", format!("task-{plan}")),
        ("AuthToken", "job-access-token-secret".to_owned()),
    ]
}

async fn call_gate(
    setup: &Setup,
    mode: &str,
    headers: &[(&'static str, String)],
    body: Value,
    password: &str,
) -> (u16, Value) {
    let mut request = setup
        .client
        .post(setup.server.url(&format!("/gate/ado/default?mode={mode}")))
        .basic_auth(GATE_USER, Some(password))
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// ADO's check, in `mode`, for a production deployment of the plan named `plan`.
async fn check_production(setup: &Setup, mode: &str, plan: &str) -> (u16, Value) {
    let headers = check_headers(&org_plan_url(setup), &setup.project_id, plan);
    call_gate(
        setup,
        mode,
        &headers,
        json!({"environment": "production"}),
        GATE_PASSWORD,
    )
    .await
}

fn org_plan_url(setup: &Setup) -> String {
    format!("{}/", setup.sim.org_url())
}

/// GET an API path with the admin key, as JSON.
async fn admin_get(setup: &Setup, path: &str) -> Value {
    setup
        .client
        .get(setup.server.url(path))
        .bearer_auth(setup.server.admin_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn audit_types(setup: &Setup) -> Vec<String> {
    let records = admin_get(setup, "/api/v1/audit/records?limit=1000").await;
    records["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturday_deploy_to_production_is_denied_and_never_with_a_2xx() {
    let setup = setup(SATURDAY).await;
    let headers = check_headers(&org_plan_url(&setup), &setup.project_id, "plan-sat");
    let (status, body) = call_gate(
        &setup,
        "sync",
        &headers,
        json!({"environment": "production", "stage": "production"}),
        GATE_PASSWORD,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["status"], "rejected");
    let reasons = body["reasons"].to_string();
    assert!(
        reasons.contains("GATE-03") && reasons.contains("Saturday"),
        "{reasons}"
    );
    // The same check again gets the same decision, not a second one.
    let (again, again_body) = call_gate(
        &setup,
        "sync",
        &headers,
        json!({"environment": "production"}),
        GATE_PASSWORD,
    )
    .await;
    assert_eq!(again, 403);
    assert_eq!(again_body["decision"], body["decision"]);

    // Test on the same Saturday is allowed: weekends block production only.
    let (status, body) = call_gate(
        &setup,
        "sync",
        &check_headers(&org_plan_url(&setup), &setup.project_id, "plan-test"),
        json!({"environment": "test"}),
        GATE_PASSWORD,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved");

    // Wrong credential, missing headers, bad mode, unknown tenant: refused, never 2xx.
    let (status, _) = call_gate(
        &setup,
        "sync",
        &headers,
        json!({"environment": "production"}),
        "wrong",
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = call_gate(
        &setup,
        "sync",
        &headers[..3],
        json!({"environment": "production"}),
        GATE_PASSWORD,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["reasons"].to_string().contains("PlanId"), "{body}");
    let (status, _) = call_gate(
        &setup,
        "later",
        &headers,
        json!({"environment": "production"}),
        GATE_PASSWORD,
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = call_gate(
        &setup,
        "sync",
        &check_headers(&org_plan_url(&setup), &setup.project_id, "plan-nobody"),
        json!({"nothing": true}),
        GATE_PASSWORD,
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let types = audit_types(&setup).await;
    assert!(
        types.iter().filter(|t| *t == "gate.decided").count() >= 2,
        "{types:?}"
    );
    assert!(types.iter().any(|t| t == "auth.failed"), "{types:?}");
}

/// Serve `app` on a loopback port of its own, in the background.
async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// A loopback receiver that keeps every JSON body posted to it.
async fn receiver() -> (String, Shared<Value>) {
    let (url, received, _) = receiver_failing(0, axum::http::StatusCode::SERVICE_UNAVAILABLE).await;
    (url, received)
}

/// A loopback receiver that answers `refusal` to its first `failures` requests and keeps the
/// JSON bodies it accepts after that; the last list holds every request's `webhook-id`.
async fn receiver_failing(
    failures: usize,
    refusal: axum::http::StatusCode,
) -> (String, Shared<Value>, Shared<String>) {
    let received = Shared::default();
    let requests = Shared::default();
    let (store, seen) = (received.clone(), requests.clone());
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (store, seen) = (store.clone(), seen.clone());
            async move {
                let id = headers
                    .get("webhook-id")
                    .and_then(|id| id.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let earlier = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(id);
                    seen.len() - 1
                };
                if earlier < failures {
                    return refusal;
                }
                if let Ok(value) = serde_json::from_slice::<Value>(&body) {
                    store.lock().unwrap().push(value);
                }
                axum::http::StatusCode::NO_CONTENT
            }
        },
    );
    let address = serve_on_loopback(app).await;
    (format!("http://{address}/hook"), received, requests)
}

/// A list the test and a loopback server both reach.
type Shared<T> = Arc<std::sync::Mutex<Vec<T>>>;

/// A loopback server that counts every request it gets.
async fn trap() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let address = serve_on_loopback(app).await;
    (format!("http://{address}/fabrikam/"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_token_never_leaves_for_an_unregistered_host() {
    let setup = setup(TUESDAY).await;
    let (evil, hits) = trap().await;
    for mode in ["sync", "callback"] {
        for plan_url in [
            evil.clone(),
            format!("{}?next={}", setup.sim.org_url(), evil),
            setup.sim.org_url().replace("127.0.0.1", "localhost"),
        ] {
            let headers = check_headers(&plan_url, &setup.project_id, &format!("plan-evil-{mode}"));
            let (status, body) = call_gate(
                &setup,
                mode,
                &headers,
                json!({"environment": "dev"}),
                GATE_PASSWORD,
            )
            .await;
            assert_eq!(status, 403, "{plan_url} ({mode}): {body}");
            assert_eq!(body["status"], "rejected");
        }
    }
    // Give any queued callback time to run: none may reach the trap.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let types = audit_types(&setup).await;
    assert_eq!(
        types.iter().filter(|t| *t == "gate.refused").count(),
        6,
        "{types:?}"
    );
    assert!(!types.iter().any(|t| t == "gate.decided"), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_token_is_kept_only_for_a_callback_and_then_sealed() {
    let setup = setup(TUESDAY).await;
    let (status, body) = check_production(&setup, "callback", "plan-sealed").await;
    assert_eq!(status, 200, "callback mode acknowledges: {body}");
    // A sync check is answered by its response: its token is not kept at all.
    let (status, body) = check_production(&setup, "sync", "plan-sync").await;
    assert_eq!(status, 409, "{body}");

    // The approval keeps the callback's token until it is decided: sealed, under a key kept
    // beside the database (owner-only), and in clear nowhere in the database's files.
    let database = setup.server.dir.path().join("tollgate.db");
    let mut connection =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", database.display()))
            .await
            .unwrap();
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT callback_token FROM gate_decisions WHERE callback_token IS NOT NULL",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].starts_with("tg1."), "{stored:?}");
    let secret = b"job-access-token-secret";
    for entry in std::fs::read_dir(setup.server.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("tollgate.db") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|window| window == secret),
            "{name} holds the job token in clear"
        );
    }
    let key = setup.server.dir.path().join("tollgate.db.token-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
}

/// A token sealed under another key (a replica given a different key file, a key file lost)
/// does not open there: the callback is tried again and the token kept, so once the right key
/// is back the callback goes out with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_token_sealed_under_another_key_waits_for_that_key() {
    let setup = setup(TUESDAY).await;
    let manager = setup.server.key_for(&setup.client, "release_manager").await;
    let admin = setup.server.admin_key().to_owned();
    let (status, body) = check_production(&setup, "callback", "plan-rekeyed").await;
    assert_eq!(status, 200, "{body}");

    // The simulated organisation stays up while the server restarts.
    let Setup {
        server,
        client,
        sim: _sim,
        ..
    } = setup;
    let restart = |dir: tempfile::TempDir| {
        let config = dir.path().join("tollgate.toml");
        Server::spawn_with_env(dir, config, &[], &[("TOLLGATE_FAKE_NOW", TUESDAY)])
    };
    let get = |server: &Server, path: &str| {
        let request = client.get(server.url(path)).bearer_auth(&admin);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let dir = server.stop_keeping_dir().await;
    let key = dir.path().join("tollgate.db.token-key");
    let original = std::fs::read_to_string(&key).unwrap();
    std::fs::write(&key, format!("{}\n", "5a".repeat(32))).unwrap();
    let server = restart(dir).await;

    let pending = get(&server, "/api/v1/approvals?state=pending").await;
    let approval = pending["items"][0]["id"].as_str().unwrap().to_owned();
    let approved = client
        .post(server.url(&format!("/api/v1/approvals/{approval}/approve")))
        .bearer_auth(&manager)
        .json(&json!({"comment": "approved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);

    // The callback fails here for the key, and waits to be tried again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = get(&server, "/api/v1/jobs?kind=gate.callback").await;
        let job = &jobs["items"][0];
        if job["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("sealed under key"))
        {
            assert_eq!(job["status"], "queued", "{job}");
            break;
        }
        assert!(Instant::now() < deadline, "the callback never ran: {jobs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let records = get(&server, "/api/v1/audit/records?limit=1000").await;
    assert!(
        !records["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["event_type"] == "gate.callback"),
        "nothing is decided about the callback yet"
    );

    // With the key back, the next attempt opens the token and sends it (the simulator refuses
    // this test's made-up token: proof that it went out).
    let dir = server.stop_keeping_dir().await;
    std::fs::write(dir.path().join("tollgate.db.token-key"), original).unwrap();
    let server = restart(dir).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let callback = loop {
        let records = get(&server, "/api/v1/audit/records?limit=1000").await;
        let found = records["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["event_type"] == "gate.callback")
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no gate.callback record");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = callback.to_string();
    assert!(!text.contains("sealed under key"), "{text}");
    assert!(!text.contains("job-access-token-secret"), "{text}");
    assert!(
        text.contains("401"),
        "the organisation refused the token: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tuesday_deploy_waits_for_a_release_manager_and_not_an_operator() {
    // Approvers hear about it through a signed webhook.
    let (hook_url, received) = receiver().await;
    let secret_dir = tempfile::tempdir().unwrap();
    let setup = setup_with(TUESDAY, &webhook_channel(&hook_url, secret_dir.path())).await;
    let headers = check_headers(&org_plan_url(&setup), &setup.project_id, "plan-tue");
    let deployment = json!({"environment": "production", "requestedFor": "dev@fabrikam.example"});
    let (status, body) =
        call_gate(&setup, "sync", &headers, deployment.clone(), GATE_PASSWORD).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["status"], "pending");
    let approval = body["approval"].as_str().unwrap().to_owned();

    let operator = setup.server.key_for(&setup.client, "operator").await;
    let release_manager = setup.server.key_for(&setup.client, "release_manager").await;
    let developer = setup.server.key_for(&setup.client, "developer").await;
    let listed: Value = setup
        .client
        .get(setup.server.url("/api/v1/approvals?state=pending"))
        .bearer_auth(&developer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], approval.as_str());
    assert_eq!(listed["items"][0]["approver_role"], "release_manager");

    let decide = |key: String, verb: &'static str| {
        let client = setup.client.clone();
        let url = setup
            .server
            .url(&format!("/api/v1/approvals/{approval}/{verb}"));
        async move {
            let response = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"comment": "looked at it"}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // Approvers act once told: the notice that asks them comes first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no approval.requested notice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = decide(operator, "approve").await;
    assert_eq!(status, 403, "an operator may not approve: {body}");
    // Still waiting.
    let (status, _) = call_gate(&setup, "sync", &headers, deployment.clone(), GATE_PASSWORD).await;
    assert_eq!(status, 409);

    let (status, body) = decide(release_manager.clone(), "approve").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "approved");
    let (status, body) = decide(release_manager, "reject").await;
    assert_eq!(status, 409, "decided once: {body}");

    // ADO asks again and now passes.
    let (status, body) = call_gate(&setup, "sync", &headers, deployment, GATE_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved");

    let deadline = Instant::now() + Duration::from_secs(30);
    while received.lock().unwrap().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "notifications: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let notices = received.lock().unwrap().clone();
    assert_eq!(notices[0]["type"], "approval.requested", "{notices:?}");
    assert_eq!(
        notices[0]["data"]["approval_id"],
        approval.as_str(),
        "{notices:?}"
    );
    assert_eq!(notices[1]["type"], "approval.decided", "{notices:?}");

    let types = audit_types(&setup).await;
    for expected in [
        "gate.decided",
        "approval.requested",
        "approval.decided",
        "auth.denied",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} missing: {types:?}"
        );
    }
}

/// A signed-webhook channel for approval notices, with its secret file.
fn webhook_channel(hook_url: &str, secret_dir: &Path) -> String {
    let secret_file = secret_dir.join("whsec");
    std::fs::write(&secret_file, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    format!(
        "[[notifications]]\nkind = \"webhook\"\nurl = \"{hook_url}\"\nsecret_file = \"{}\"\n",
        secret_file.display()
    )
}

/// A notice is a job enqueued with the approval: when the channel's own retries all fail,
/// the queue tries again later instead of the notice being lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_the_channel_refused_is_sent_again_later() {
    // The first attempt and the channel's three retries all get 503.
    let (hook_url, received, requests) =
        receiver_failing(4, axum::http::StatusCode::SERVICE_UNAVAILABLE).await;
    let secret_dir = tempfile::tempdir().unwrap();
    let setup = setup_with(TUESDAY, &webhook_channel(&hook_url, secret_dir.path())).await;
    let headers = check_headers(&org_plan_url(&setup), &setup.project_id, "plan-later");
    let deployment = json!({"environment": "production", "requestedFor": "dev@fabrikam.example"});
    let (status, body) = call_gate(&setup, "sync", &headers, deployment, GATE_PASSWORD).await;
    assert_eq!(status, 409, "{body}");
    let approval = body["approval"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no notice after {} attempts",
            requests.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids = requests.lock().unwrap().clone();
    assert_eq!(
        ids.len(),
        5,
        "four refused, the job's second attempt delivered"
    );
    assert!(ids[0].starts_with("msg_"), "{ids:?}");
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one notice, one webhook-id on every attempt: {ids:?}"
    );
    let notices = received.lock().unwrap().clone();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["type"], "approval.requested");
    assert_eq!(notices[0]["data"]["approval_id"], approval.as_str());
}

/// A receiver that holds the first request it gets until the test ends, and logs when each
/// request arrives and when the held one ends (answered, or dropped by its client).
async fn receiver_holding_the_first() -> (String, Shared<&'static str>) {
    struct Ended(Shared<&'static str>);
    impl Drop for Ended {
        fn drop(&mut self) {
            self.0.lock().unwrap().push("first ended");
        }
    }
    let log: Shared<&'static str> = Shared::default();
    let seen = log.clone();
    let app = axum::Router::new().fallback(move || {
        let seen = seen.clone();
        async move {
            let first = {
                let mut seen = seen.lock().unwrap();
                let first = !seen.contains(&"first arrived");
                seen.push(if first {
                    "first arrived"
                } else {
                    "another arrived"
                });
                first
            };
            if first {
                let _ended = Ended(seen.clone());
                tokio::time::sleep(Duration::from_secs(3_600)).await;
            }
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let address = serve_on_loopback(app).await;
    (format!("http://{address}/hook"), log)
}

/// A notice stuck on a slow channel holds one worker slot, not the queue: a job enqueued
/// after it (here another approval's notice) runs while it is still in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_notice_does_not_hold_up_the_jobs_behind_it() {
    let (hook_url, log) = receiver_holding_the_first().await;
    let secret_dir = tempfile::tempdir().unwrap();
    let setup = setup_with(TUESDAY, &webhook_channel(&hook_url, secret_dir.path())).await;
    let deployment = json!({"environment": "production", "requestedFor": "dev@fabrikam.example"});
    let wait_for = |entry: &'static str| {
        let log = log.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !log.lock().unwrap().contains(&entry) {
                assert!(
                    Instant::now() < deadline,
                    "{entry}: {:?}",
                    log.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let first = check_headers(&org_plan_url(&setup), &setup.project_id, "plan-slow-1");
    let (status, body) = call_gate(&setup, "sync", &first, deployment.clone(), GATE_PASSWORD).await;
    assert_eq!(status, 409, "{body}");
    wait_for("first arrived").await;
    let second = check_headers(&org_plan_url(&setup), &setup.project_id, "plan-slow-2");
    let (status, body) = call_gate(&setup, "sync", &second, deployment, GATE_PASSWORD).await;
    assert_eq!(status, 409, "{body}");
    wait_for("another arrived").await;
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        ["first arrived", "another arrived"],
        "the second notice went out while the first was still in flight"
    );
}

/// With the notifications capability off, an approval queues no notice: nothing is sent,
/// and nothing waits to be sent when it is turned on again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_notifications_off_an_approval_queues_no_notice() {
    let (hook_url, received) = receiver().await;
    let secret_dir = tempfile::tempdir().unwrap();
    let setup = setup_with(TUESDAY, &webhook_channel(&hook_url, secret_dir.path())).await;
    let changed = setup
        .client
        .put(setup.server.url("/api/v1/capabilities/notifications"))
        .bearer_auth(setup.server.admin_key())
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200, "{}", changed.text().await.unwrap());
    let headers = check_headers(&org_plan_url(&setup), &setup.project_id, "plan-quiet");
    let deployment = json!({"environment": "production", "requestedFor": "dev@fabrikam.example"});
    let (status, body) = call_gate(&setup, "sync", &headers, deployment, GATE_PASSWORD).await;
    assert_eq!(status, 409, "{body}");
    // The jobs are enqueued with the decision, so the answer means the list is complete.
    let page = admin_get(&setup, "/api/v1/jobs?kind=approval.notify").await;
    assert_eq!(page["items"], json!([]), "{page}");
    assert!(received.lock().unwrap().is_empty());
}

/// A channel that rejects the notice (a 4xx) will not take it later either: the job is
/// dead-lettered after one attempt, visibly, and the channel is not asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_the_channel_rejects_is_dead_lettered_at_once() {
    let (hook_url, received, requests) =
        receiver_failing(usize::MAX, axum::http::StatusCode::BAD_REQUEST).await;
    let secret_dir = tempfile::tempdir().unwrap();
    let setup = setup_with(TUESDAY, &webhook_channel(&hook_url, secret_dir.path())).await;
    let headers = check_headers(&org_plan_url(&setup), &setup.project_id, "plan-rejected");
    let deployment = json!({"environment": "production", "requestedFor": "dev@fabrikam.example"});
    let (status, body) = call_gate(&setup, "sync", &headers, deployment, GATE_PASSWORD).await;
    assert_eq!(status, 409, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let page = admin_get(&setup, "/api/v1/jobs?kind=approval.notify&status=dead").await;
        if let Some(job) = page["items"].as_array().and_then(|items| items.first()) {
            break job.clone();
        }
        assert!(Instant::now() < deadline, "no dead notice job: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead["attempts"], 1, "{dead}");
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("400"),
        "{dead}"
    );
    assert_eq!(requests.lock().unwrap().len(), 1);
    assert!(received.lock().unwrap().is_empty());
    let types = audit_types(&setup).await;
    assert!(types.iter().any(|t| t == "job.dead"), "{types:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_are_listed_changed_by_admins_and_the_gate_never_degrades_to_allow() {
    let setup = setup(TUESDAY).await;
    let listed = admin_get(&setup, "/api/v1/capabilities").await;
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"gate.evaluate") && names.contains(&"gate.approvals"),
        "{names:?}"
    );

    let operator = setup.server.key_for(&setup.client, "operator").await;
    let denied = setup
        .client
        .put(setup.server.url("/api/v1/capabilities/gate.evaluate"))
        .bearer_auth(&operator)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let changed = setup
        .client
        .put(setup.server.url("/api/v1/capabilities/gate.evaluate"))
        .bearer_auth(setup.server.admin_key())
        .json(&json!({"enabled": false, "fallback": "skip"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let unknown = setup
        .client
        .put(setup.server.url("/api/v1/capabilities/teleport"))
        .bearer_auth(setup.server.admin_key())
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);

    // Evaluation off: even a deployment to dev (allowed before) waits for people.
    let (status, body) = call_gate(
        &setup,
        "sync",
        &check_headers(&org_plan_url(&setup), &setup.project_id, "plan-off"),
        json!({"environment": "dev"}),
        GATE_PASSWORD,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // Approvals off too: denied.
    setup
        .client
        .put(setup.server.url("/api/v1/capabilities/gate.approvals"))
        .bearer_auth(setup.server.admin_key())
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    let (status, body) = call_gate(
        &setup,
        "sync",
        &check_headers(&org_plan_url(&setup), &setup.project_id, "plan-off-2"),
        json!({"environment": "dev"}),
        GATE_PASSWORD,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let types = audit_types(&setup).await;
    assert_eq!(
        types.iter().filter(|t| *t == "capability.changed").count(),
        2,
        "{types:?}"
    );
}
