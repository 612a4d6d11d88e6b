//! Tenants over real HTTP (issue 5 §2). Two tenants, A and B, each synced from its own
//! simulated organisation and holding findings, a waiver, an event, a gate decision with a
//! pending approval, API keys and members. For EVERY route of the permission table, an admin
//! of A tries to read or change B's data — with `X-Tollgate-Tenant: tenant-b` (403), and with
//! B's ids in paths and bodies while acting in A (404, or only A's own data) — and B's data is
//! compared before and after. A route without a case fails the test, so a new route is covered
//! the day it is added. It runs on SQLite, and on PostgreSQL when TOLLGATE_TEST_POSTGRES_URL /
//! _OWNER_URL are set (scripts/pg-test-cluster.sh).
//!
//! The other tests: tenants and members administered through the API (who may, what a
//! membership grants, what removing a tenant ends, the audit records) and the command line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use postgres::migrated_database;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use server::{Server, WEBHOOK_SECRET};
use tollgate::http::routes::{Access, ROUTES, RouteSpec};
use tollgate_sim::{Profile, SimConfig, Simulator};

const TUESDAY: &str = "2026-11-24T10:00:00Z";
const GATE_USER: &str = "ado-check";
const A: &str = "tenant-a";
const B: &str = "tenant-b";

/// One organisation per tenant, different seeds: no id of one appears in the other.
async fn organisation(name: &str, seed: u64) -> tollgate_sim::RunningSimulator {
    Simulator::new(SimConfig {
        organization: name.to_owned(),
        seed,
        profile: Profile::Small,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap()
}

/// The configuration of a server with tenants A and B (and `default`, the operator tenant).
fn config_text(dir: &Path, database_url: &str, org_a: &str, org_b: &str) -> String {
    std::fs::write(dir.join("webhook-secret"), WEBHOOK_SECRET).unwrap();
    let mut tenants = String::new();
    for (id, org) in [(A, org_a), (B, org_b)] {
        let secret = dir.join(format!("{id}-hook"));
        std::fs::write(&secret, format!("hook-secret-of-{id}")).unwrap();
        tenants.push_str(&format!(
            "[[tenants]]\nid = \"{id}\"\n\n[tenants.ado]\norg_url = \"{org}\"\npat = \"test-pat\"\n\n\
             [tenants.webhook]\nsecret_file = \"{}\"\n\n[tenants.gate]\nusername = \"{GATE_USER}\"\npassword = \"gate-password-of-{id}\"\n\n",
            secret.display()
        ));
    }
    format!(
        "[database]\nurl = \"{database_url}\"\n\n[webhook]\nsecret_file = \"{}\"\n\n\
         [audit]\nkey_file = \"{}\"\n\n\
         [worker]\npoll_interval_ms = 100\nincremental_sync_every_secs = 0\nfull_sync_every_secs = 0\n\n\
         [gate]\ntimezone = \"Europe/London\"\n\n\
         [[gate.environments]]\nname = \"production\"\nquorum = 1\napprover_role = \"release_manager\"\nactions = {{ \"GATE-02\" = \"warn\", \"GATE-09\" = \"warn\" }}\n\n{tenants}",
        dir.join("webhook-secret").display(),
        dir.join("audit.key").display(),
    )
}

/// A client acting with one key, optionally naming the tenant to act in.
#[derive(Clone)]
struct Caller {
    client: Client,
    base: String,
    key: String,
    tenant: Option<String>,
}

impl Caller {
    fn new(server: &Server, key: &str) -> Self {
        Self {
            client: Client::new(),
            base: server.base.clone(),
            key: key.to_owned(),
            tenant: None,
        }
    }

    fn acting_in(&self, tenant: &str) -> Self {
        Self {
            tenant: Some(tenant.to_owned()),
            ..self.clone()
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (StatusCode, String) {
        let mut request = self
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .bearer_auth(&self.key);
        if let Some(tenant) = &self.tenant {
            request = request.header("X-Tollgate-Tenant", tenant);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if path == "/mcp" {
            // What a streamable-HTTP MCP client sends.
            request = request.header("Accept", "application/json, text/event-stream");
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    async fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, text) = self.send(method, path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn get(&self, path: &str) -> Value {
        self.json("GET", path, None).await
    }

    async fn wait_for_job(&self, job: i64) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let state = self.get(&format!("/api/v1/jobs/{job}")).await;
            match state["status"].as_str().unwrap() {
                "done" => return,
                "dead" => panic!("job {job} died: {state}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "job {job} did not finish");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Until every job of the caller's tenant is done and no new one appears for a while (an
    /// event's processing queues a refresh after it; approval expiry runs for ever).
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut quiet_since: Option<(usize, Instant)> = None;
        loop {
            let jobs = self.get("/api/v1/jobs?limit=1000").await;
            let jobs: Vec<&Value> = jobs["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|job| job["kind"] != "approvals.expire")
                .collect();
            if let Some(dead) = jobs.iter().find(|job| job["status"] == "dead") {
                panic!("a job died: {dead}");
            }
            let all_done = jobs.iter().all(|job| job["status"] == "done");
            quiet_since = match (all_done, quiet_since) {
                (true, Some((count, since))) if count == jobs.len() => {
                    if since.elapsed() > Duration::from_secs(1) {
                        return;
                    }
                    Some((count, since))
                }
                (true, _) => Some((jobs.len(), Instant::now())),
                (false, _) => None,
            };
            assert!(Instant::now() < deadline, "the jobs did not settle");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A full sync and an evaluation of the caller's tenant, to the end.
    async fn sync_and_scan(&self) {
        let queued = self
            .json("POST", "/api/v1/syncs", Some(&json!({"mode": "full"})))
            .await;
        self.wait_for_job(queued["job"].as_i64().unwrap()).await;
        let queued = self.json("POST", "/api/v1/scans", Some(&json!({}))).await;
        if let Some(job) = queued["job"].as_i64() {
            self.wait_for_job(job).await;
        }
    }
}

/// The operator (the bootstrap admin of `default`) makes itself admin of `tenant`, then issues
/// an admin key there.
async fn admin_key_in(operator: &Caller, tenant: &str) -> String {
    let me = operator.get("/api/v1/me").await;
    let subject = me["subject"].as_str().unwrap();
    operator
        .json(
            "PUT",
            &format!("/api/v1/admin/tenants/{tenant}/members/{subject}"),
            Some(&json!({"role": "admin"})),
        )
        .await;
    let created = operator
        .acting_in(tenant)
        .json(
            "POST",
            "/api/v1/api-keys",
            Some(&json!({"name": format!("admin of {tenant}"), "role": "admin"})),
        )
        .await;
    created["key"].as_str().unwrap().to_owned()
}

/// What B holds, for the attacks to aim at and the markers that must never reach A.
struct TenantB {
    project_key: String,
    project_id: String,
    waiver_id: i64,
    event_id: i64,
    job_id: i64,
    record_id: String,
    api_key_id: String,
    approval_id: String,
    member_subject: String,
    deployment_id: String,
    pipeline_id: u64,
    /// Strings only B's data contains.
    markers: Vec<String>,
}

async fn seed_b(b: &Caller, server: &Server, org_b: &str) -> TenantB {
    b.sync_and_scan().await;
    let projects = b.get("/api/v1/inventory/projects").await;
    let project = &projects["items"][0];
    let project_key = project["key"].as_str().unwrap().to_owned();
    let project_id = project["ado_id"].as_str().unwrap().to_owned();
    let waiver = b
        .json(
            "POST",
            "/api/v1/waivers",
            Some(&json!({
                "control": "BP-01", "scope": "*", "owner": "owner-of-tenant-b",
                "reason": "reason-of-tenant-b", "expires_at": "2099-01-01T00:00:00Z"
            })),
        )
        .await;
    // A service-hook delivery, stored with B's secret.
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/servicehooks/git.push.json"),
    )
    .unwrap();
    let mut event: Value = serde_json::from_str(&sample).unwrap();
    event["id"] = json!("bbbbbbbb-0000-4000-8000-00000000000b");
    let delivered = Client::new()
        .post(server.url(&format!("/hooks/ado/{B}")))
        .header(
            "Authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("ado:hook-secret-of-{B}"))
            ),
        )
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), 200);
    let events = b.get("/api/v1/events").await;
    let event_id = events["items"][0]["id"].as_i64().unwrap();
    // A gate check that waits for approval.
    let plan = "bbbbbbbb-0000-4000-8000-0000000000b1";
    let mut check = Client::new()
        .post(server.url(&format!("/gate/ado/{B}?mode=sync")))
        .basic_auth(GATE_USER, Some(format!("gate-password-of-{B}")))
        .json(&json!({"environment": "production", "requestedFor": "dev@b.example"}));
    for (name, value) in [
        ("PlanUrl", format!("{org_b}/")),
        ("ProjectId", project_id.clone()),
        ("HubName", "checks".to_owned()),
        ("PlanId", plan.to_owned()),
        ("JobId", "bbbbbbbb-0000-4000-8000-0000000000b2".to_owned()),
        (
            "TimelineId",
            "bbbbbbbb-0000-4000-8000-0000000000b3".to_owned(),
        ),
        (
            "TaskInstanceId",
            "bbbbbbbb-0000-4000-8000-0000000000b4".to_owned(),
        ),
        ("AuthToken", "job-token-of-tenant-b".to_owned()),
    ] {
        check = check.header(name, value);
    }
    let response = check.send().await.unwrap();
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 409, "B's deployment waits for approval: {answer}");
    let decision_id = answer["decision"].as_str().unwrap().to_owned();
    let approval_id = answer["approval"].as_str().unwrap().to_owned();
    // A deployment B queued (to test, which the gate allows on a Tuesday).
    let pipelines = b
        .get(&format!(
            "/api/v1/inventory/pipelines?project={project_id}&limit=1000"
        ))
        .await;
    let yaml = pipelines["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["resource"]["configuration"]["type"] == "yaml")
        .expect("B's first project has a YAML pipeline");
    let pipeline_id: u64 = yaml["ado_id"].as_str().unwrap().parse().unwrap();
    let deployment = b
        .json(
            "POST",
            "/api/v1/deployments",
            Some(&json!({"project": project_id, "pipelineId": pipeline_id,
                         "environment": "test", "version": "version-of-tenant-b"})),
        )
        .await;
    let deployment_id = deployment["deployment"]["id"]
        .as_str()
        .or_else(|| deployment["id"].as_str())
        .unwrap_or_else(|| panic!("B's deployment: {deployment}"))
        .to_owned();
    // A viewer key and a member of B's own.
    let viewer = b
        .json(
            "POST",
            "/api/v1/api-keys",
            Some(&json!({"name": "viewer-of-tenant-b", "role": "viewer"})),
        )
        .await;
    let api_key_id = viewer["key_id"].as_str().unwrap().to_owned();
    let member_subject = "oidc:bbbbbbbb-0000-4000-8000-000000000000:member-of-tenant-b".to_owned();
    b.json(
        "PUT",
        &format!("/api/v1/admin/tenants/{B}/members/{member_subject}"),
        Some(&json!({"role": "operator"})),
    )
    .await;
    b.json(
        "PUT",
        "/api/v1/capabilities/gate.approvals",
        Some(&json!({"enabled": false})),
    )
    .await;
    b.settle().await;
    let jobs = b.get("/api/v1/jobs").await;
    let job_id = jobs["items"][0]["id"].as_i64().unwrap();
    let records = b.get("/api/v1/audit/records?limit=5").await;
    let record_id = records["items"][1]["id"].as_str().unwrap().to_owned();
    let markers = vec![
        org_b.to_owned(),
        project_key.clone(),
        project_id.clone(),
        "owner-of-tenant-b".to_owned(),
        "bbbbbbbb-0000-4000-8000".to_owned(),
        decision_id,
        approval_id.clone(),
        api_key_id.clone(),
        "member-of-tenant-b".to_owned(),
        record_id.clone(),
        deployment_id.clone(),
        "version-of-tenant-b".to_owned(),
    ];
    TenantB {
        project_key,
        project_id,
        waiver_id: waiver["id"].as_i64().unwrap(),
        event_id,
        job_id,
        record_id,
        api_key_id,
        approval_id,
        member_subject,
        deployment_id,
        pipeline_id,
        markers,
    }
}

/// Everything B holds, as B sees it. Left out: what B's own reading changes (keys'
/// `last_used_at`) and the approval-expiry jobs the scheduler queues for every tenant.
async fn state_of_b(b: &Caller) -> Value {
    let mut keys = b.get("/api/v1/api-keys").await;
    for key in keys.as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("last_used_at");
    }
    let mut jobs = b.get("/api/v1/jobs?limit=1000").await;
    jobs["items"]
        .as_array_mut()
        .unwrap()
        .retain(|job| job["kind"] != "approvals.expire");
    let state = json!({
        "inventory": b.get("/api/v1/inventory").await,
        "projects": b.get("/api/v1/inventory/projects?limit=1000").await,
        "repositories": b.get("/api/v1/inventory/repositories?limit=1000").await,
        "findings": b.get("/api/v1/findings?limit=1000").await,
        "waivers": b.get("/api/v1/waivers").await,
        "syncs": b.get("/api/v1/syncs").await,
        "events": b.get("/api/v1/events").await,
        "jobs": jobs["items"],
        "audit": b.get("/api/v1/audit/records?limit=1000").await,
        "api_keys": keys,
        "decisions": b.get("/api/v1/gate/decisions").await,
        "approvals": b.get("/api/v1/approvals").await,
        "capabilities": b.get("/api/v1/capabilities").await,
        "members": b.get(&format!("/api/v1/admin/tenants/{B}/members")).await,
        "deployments": b.get("/api/v1/deployments").await,
    });
    for (part, value) in state.as_object().unwrap() {
        assert!(
            value.get("next_cursor").is_none_or(Value::is_null),
            "B's {part} does not fit one page: the comparison would miss a change"
        );
    }
    state
}

/// What acting in A with B's ids must come to.
enum Expect {
    /// One of these statuses.
    Refused(&'static [u16]),
    /// Any answer; a success shows none of B's data.
    OwnDataOnly,
}

use Expect::{OwnDataOnly, Refused};

/// The request an admin of A makes against `route` with B's ids, and what it must come to.
/// Every route of the table needs an arm: the catch-all fails the test.
fn attack(route: &RouteSpec, b: &TenantB) -> (String, Option<Value>, Expect) {
    let key = |path: &str| path.to_owned();
    match (route.method, route.path) {
        (
            "GET",
            "/healthz" | "/readyz" | "/metrics" | "/api/openapi.json" | "/api/docs" | "/api/docs/",
        ) => (key(route.path), None, OwnDataOnly),
        ("GET", "/api/docs/{*rest}") => (key("/api/docs/swagger-ui.css"), None, OwnDataOnly),
        // The service hook and the gate authenticate with B's secrets, which A does not hold.
        ("POST", "/hooks/ado/{tenant}") => (
            format!("/hooks/ado/{B}"),
            Some(json!({"id": "aaaaaaaa-0000-4000-8000-000000000001", "eventType": "git.push"})),
            Refused(&[401]),
        ),
        ("POST", "/gate/ado/{tenant}") => (
            format!("/gate/ado/{B}?mode=sync"),
            Some(json!({"environment": "production"})),
            Refused(&[401]),
        ),
        (
            "GET",
            "/api/v1/me"
            | "/api/v1/inventory"
            | "/api/v1/findings"
            | "/api/v1/waivers"
            | "/api/v1/policies"
            | "/api/v1/policies/settings"
            | "/api/v1/syncs"
            | "/api/v1/events"
            | "/api/v1/audit/records"
            | "/api/v1/audit/checkpoints"
            | "/api/v1/jobs"
            | "/api/v1/api-keys"
            | "/api/v1/tenants"
            | "/api/v1/gate/decisions"
            | "/api/v1/approvals"
            | "/api/v1/capabilities",
        ) => (key(route.path), None, OwnDataOnly),
        ("GET", "/api/v1/inventory/{kind}") => (
            format!("/api/v1/inventory/projects?project={}", b.project_id),
            None,
            OwnDataOnly,
        ),
        ("GET", "/api/v1/inventory/{kind}/item") => (
            format!("/api/v1/inventory/projects/item?key={}", b.project_key),
            None,
            Refused(&[404]),
        ),
        ("POST", "/api/v1/waivers") => (
            key(route.path),
            Some(json!({
                "control": "BP-01", "scope": "*", "owner": "mallory",
                "reason": "A's own waiver", "expires_at": "2099-01-01T00:00:00Z"
            })),
            OwnDataOnly,
        ),
        ("DELETE", "/api/v1/waivers/{id}") => (
            format!("/api/v1/waivers/{}", b.waiver_id),
            None,
            Refused(&[404]),
        ),
        ("GET", "/api/v1/policies/{id}") => (key("/api/v1/policies/BP-01"), None, OwnDataOnly),
        ("POST", "/api/v1/syncs") => (
            key(route.path),
            Some(json!({"mode": "incremental"})),
            OwnDataOnly,
        ),
        ("POST", "/api/v1/scans") => (key(route.path), Some(json!({})), OwnDataOnly),
        ("GET", "/api/v1/events/{id}") => (
            format!("/api/v1/events/{}", b.event_id),
            None,
            Refused(&[404]),
        ),
        ("POST", "/api/v1/events/replay") => (
            key(route.path),
            Some(json!({"ids": [b.event_id]})),
            OwnDataOnly,
        ),
        ("GET", "/api/v1/audit/records/{id}/proof") => (
            format!("/api/v1/audit/records/{}/proof", b.record_id),
            None,
            Refused(&[404]),
        ),
        ("GET", "/api/v1/audit/consistency") => (
            key("/api/v1/audit/consistency?old=1&new=2"),
            None,
            OwnDataOnly,
        ),
        ("GET", "/api/v1/jobs/{id}") => {
            (format!("/api/v1/jobs/{}", b.job_id), None, Refused(&[404]))
        }
        ("POST", "/api/v1/jobs/{id}/retry") => (
            format!("/api/v1/jobs/{}/retry", b.job_id),
            None,
            Refused(&[404, 409]),
        ),
        ("POST", "/api/v1/api-keys") => (
            key(route.path),
            Some(json!({"name": "a's own key", "role": "viewer"})),
            OwnDataOnly,
        ),
        ("DELETE", "/api/v1/api-keys/{id}") => (
            format!("/api/v1/api-keys/{}", b.api_key_id),
            None,
            Refused(&[404]),
        ),
        // Tenants are the operator tenant's to administer; members are B's admins'.
        ("GET" | "POST", "/api/v1/admin/tenants") => (
            key(route.path),
            (route.method == "POST").then(|| json!({"id": "tenant-c"})),
            Refused(&[403]),
        ),
        ("DELETE", "/api/v1/admin/tenants/{id}") => {
            (format!("/api/v1/admin/tenants/{B}"), None, Refused(&[403]))
        }
        ("GET", "/api/v1/admin/tenants/{id}/members") => (
            format!("/api/v1/admin/tenants/{B}/members"),
            None,
            Refused(&[403]),
        ),
        ("PUT", "/api/v1/admin/tenants/{id}/members/{subject}") => (
            format!("/api/v1/admin/tenants/{B}/members/{}", b.member_subject),
            Some(json!({"role": "admin"})),
            Refused(&[403]),
        ),
        ("DELETE", "/api/v1/admin/tenants/{id}/members/{subject}") => (
            format!("/api/v1/admin/tenants/{B}/members/{}", b.member_subject),
            None,
            Refused(&[403]),
        ),
        ("POST", "/api/v1/deployments/validate") => (
            key(route.path),
            Some(json!({"project": b.project_id, "environment": "production"})),
            OwnDataOnly,
        ),
        ("GET", "/api/v1/approvals/{id}") => (
            format!("/api/v1/approvals/{}", b.approval_id),
            None,
            Refused(&[404]),
        ),
        (
            "POST",
            "/api/v1/approvals/{id}/approve"
            | "/api/v1/approvals/{id}/reject"
            | "/api/v1/approvals/{id}/cancel",
        ) => (
            route.path.replace("{id}", &b.approval_id),
            Some(json!({"comment": "mallory was here"})),
            Refused(&[404]),
        ),
        ("PUT", "/api/v1/capabilities/{name}") => (
            key("/api/v1/capabilities/gate.approvals"),
            Some(json!({"enabled": true})),
            OwnDataOnly,
        ),
        ("GET", "/api/v1/deployments") => (key(route.path), None, OwnDataOnly),
        ("GET", "/api/v1/gate/backtest") => {
            (key("/api/v1/gate/backtest?since=30d"), None, OwnDataOnly)
        }
        ("GET", "/api/v1/deployments/{id}") => (
            format!("/api/v1/deployments/{}", b.deployment_id),
            None,
            Refused(&[404]),
        ),
        // B's project and pipeline are not in A's inventory: nothing is queued anywhere.
        ("POST", "/api/v1/deployments") => (
            key(route.path),
            Some(json!({"project": b.project_id, "pipelineId": b.pipeline_id,
                        "environment": "test"})),
            Refused(&[404]),
        ),
        ("POST", "/api/v1/deployments/rollback") => (
            key(route.path),
            Some(json!({"project": b.project_id, "pipelineId": b.pipeline_id,
                        "environment": "test"})),
            Refused(&[404, 409]),
        ),
        // MCP tools run in the caller's acting tenant, as the API does.
        ("POST", "/mcp") => (
            key(route.path),
            Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "approvals", "arguments": {}}})),
            OwnDataOnly,
        ),
        ("GET" | "DELETE", "/mcp") => (key(route.path), None, Refused(&[405, 406])),
        (method, path) => panic!(
            "no cross-tenant case for {method} {path}: add one to `attack` in tests/tenancy.rs"
        ),
    }
}

/// The text around `needle`, for a failure message that stays readable.
fn excerpt(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let start = text.floor_char_boundary(at.saturating_sub(300));
    let end = text.ceil_char_boundary((at + needle.len() + 300).min(text.len()));
    format!("…{}…", &text[start..end])
}

/// A's audit log without A's own refused attempts to act in B: those name B because A did.
fn without_own_denials(text: &str) -> String {
    let Ok(mut page) = serde_json::from_str::<Value>(text) else {
        return text.to_owned();
    };
    if let Some(items) = page.get_mut("items").and_then(Value::as_array_mut) {
        items.retain(|item| item["event_type"] != "auth.denied");
    }
    page.to_string()
}

/// A concrete path for the header attack: any ids will do, the tenant is refused first.
fn any_path(route: &RouteSpec) -> String {
    route
        .path
        .replace("{kind}", "projects")
        .replace("{id}", "1")
        .replace("{subject}", "apikey:AAAAAAAAAAAA")
        .replace("{name}", "gate.approvals")
        .replace("{tenant}", B)
        .replace("{*rest}", "swagger-ui.css")
}

async fn a_principal_of_a_can_neither_read_nor_change_bs_data(database_url: Option<String>) {
    let org_a = organisation("tenant-a-org", 11).await;
    let org_b = organisation("tenant-b-org", 22).await;
    let dir = tempfile::tempdir().unwrap();
    let database_url =
        database_url.unwrap_or_else(|| dir.path().join("tollgate.db").display().to_string());
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        config_text(
            dir.path(),
            &database_url,
            &org_a.org_url(),
            &org_b.org_url(),
        ),
    )
    .unwrap();
    let server = Server::spawn_with_env(dir, config, &[], &[("TOLLGATE_FAKE_NOW", TUESDAY)]).await;
    let operator = Caller::new(&server, server.admin_key());
    let a = Caller::new(&server, &admin_key_in(&operator, A).await);
    let b = Caller::new(&server, &admin_key_in(&operator, B).await);
    a.sync_and_scan().await;
    let tenant_b = seed_b(&b, &server, &org_b.org_url()).await;
    // A holds data of its own too.
    assert!(
        a.get("/api/v1/inventory/projects").await["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    );
    let before = state_of_b(&b).await;
    let b_sync_ids: Vec<i64> = before["syncs"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_i64().unwrap())
        .collect();

    // B's ids A put in its own requests: their echo in A's own data (a dry-run decision A
    // asked for names the project A named) shows A nothing it did not already have.
    let mut sent: Vec<&str> = Vec::new();
    let mut cases = 0;
    for route in ROUTES {
        // 1. Naming B in the header: refused before any handler runs, whatever the route.
        if matches!(route.access, Access::Authenticated | Access::Requires(_)) {
            let (status, body) = a
                .acting_in(B)
                .send(route.method, &any_path(route), Some(&json!({})))
                .await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{} {} as A acting in B: {body}",
                route.method,
                route.path
            );
            // The same answer for a tenant that does not exist: no hint either way.
            let (status, _) = a
                .acting_in("no-such-tenant")
                .send(route.method, &any_path(route), Some(&json!({})))
                .await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{} {}",
                route.method,
                route.path
            );
        }
        // 2. Acting in A with B's ids.
        let (path, body, expect) = attack(route, &tenant_b);
        let request = format!(
            "{path} {}",
            body.as_ref().map(Value::to_string).unwrap_or_default()
        );
        sent.extend(
            tenant_b
                .markers
                .iter()
                .filter(|marker| request.contains(marker.as_str()))
                .map(String::as_str),
        );
        let (status, text) = a.send(route.method, &path, body.as_ref()).await;
        match expect {
            Refused(statuses) => assert!(
                statuses.contains(&status.as_u16()),
                "{} {path} as A: expected one of {statuses:?}, got {status}: {text}",
                route.method
            ),
            OwnDataOnly => {
                assert!(
                    !status.is_server_error(),
                    "{} {path} as A: {status} {text}",
                    route.method
                );
                if status.is_success() {
                    for marker in tenant_b
                        .markers
                        .iter()
                        .filter(|marker| !sent.contains(&marker.as_str()))
                    {
                        assert!(
                            !text.contains(marker.as_str()),
                            "{} {path} as A shows B's {marker:?}: {}",
                            route.method,
                            excerpt(&text, marker)
                        );
                    }
                    if matches!(route.access, Access::Authenticated | Access::Requires(_)) {
                        let text = without_own_denials(&text);
                        assert!(
                            !text.contains(B),
                            "{} {path} as A names tenant B: {}",
                            route.method,
                            excerpt(&text, B)
                        );
                    }
                    if route.path == "/api/v1/syncs" && route.method == "GET" {
                        let listed: Value = serde_json::from_str(&text).unwrap();
                        for run in listed["items"].as_array().unwrap() {
                            assert!(!b_sync_ids.contains(&run["id"].as_i64().unwrap()));
                        }
                    }
                }
            }
        }
        cases += 1;
    }
    assert_eq!(cases, ROUTES.len());

    // Whatever A started (its own sync and scan) has finished before B is compared.
    a.settle().await;
    b.settle().await;
    let mut after = state_of_b(&b).await;
    // A's wrong secrets at B's service-hook and gate endpoints are B's security records, by
    // design: B learns that someone knocked. Nothing else may appear in B's log.
    let knocks: Vec<Value> = after["audit"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|record| {
            !before["audit"]["items"]
                .as_array()
                .unwrap()
                .contains(record)
        })
        .map(|record| json!([record["event_type"], record["record"]["actor"]["id"]]))
        .collect();
    assert_eq!(
        knocks,
        [
            json!(["webhook.rejected", "anonymous"]),
            json!(["auth.failed", "anonymous"])
        ],
        "B's audit log holds only the refused deliveries"
    );
    after["audit"]["items"]
        .as_array_mut()
        .unwrap()
        .retain(|record| {
            before["audit"]["items"]
                .as_array()
                .unwrap()
                .contains(record)
        });
    for (part, value) in before.as_object().unwrap() {
        assert_eq!(&after[part], value, "B's {part} changed while A attacked");
    }
    // B's keys still work, and the pending approval is still B's to decide.
    assert_eq!(b.get("/api/v1/me").await["tenant"], B);
    assert_eq!(
        b.get(&format!("/api/v1/approvals/{}", tenant_b.approval_id))
            .await["state"],
        "pending"
    );
    drop((org_a, org_b));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_of_a_can_neither_read_nor_change_bs_data_on_sqlite() {
    a_principal_of_a_can_neither_read_nor_change_bs_data(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_of_a_can_neither_read_nor_change_bs_data_on_postgresql() {
    if let Some(url) = migrated_database("tenancy").await {
        a_principal_of_a_can_neither_read_nor_change_bs_data(Some(url)).await;
    }
}

fn audit_types(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["event_type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_create_tenants_and_members_act_in_them_until_removed() {
    let server = Server::start("").await;
    let operator = Caller::new(&server, server.admin_key());
    let operator_subject = operator.get("/api/v1/me").await["subject"]
        .as_str()
        .unwrap()
        .to_owned();

    // The operator tenant's admin creates a tenant; it exists at once, empty.
    let created = operator
        .json(
            "POST",
            "/api/v1/admin/tenants",
            Some(&json!({"id": "contoso"})),
        )
        .await;
    assert_eq!(created["id"], "contoso");
    assert_eq!(created["registered"], true);
    assert_eq!(created["configured"], false);
    let (status, _) = operator
        .send(
            "POST",
            "/api/v1/admin/tenants",
            Some(&json!({"id": "contoso"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "a tenant is created once");
    let (status, _) = operator
        .send(
            "POST",
            "/api/v1/admin/tenants",
            Some(&json!({"id": "Not A Tenant"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let listed = operator.get("/api/v1/admin/tenants").await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["contoso", "default"]);

    // Not a member yet: the operator itself may not act in it (it may manage its members).
    let (status, _) = operator
        .acting_in("contoso")
        .send("GET", "/api/v1/me", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let put = operator
        .json(
            "PUT",
            &format!("/api/v1/admin/tenants/contoso/members/{operator_subject}"),
            Some(&json!({"role": "admin"})),
        )
        .await;
    assert_eq!(put["role"], "admin");
    assert_eq!(put["previous_role"], Value::Null);
    let in_contoso = operator.acting_in("contoso");
    assert_eq!(in_contoso.get("/api/v1/me").await["role"], "admin");
    let contoso_admin = in_contoso
        .json(
            "POST",
            "/api/v1/api-keys",
            Some(&json!({"name": "contoso admin", "role": "admin"})),
        )
        .await;
    let contoso_admin = Caller::new(&server, contoso_admin["key"].as_str().unwrap());
    let me = contoso_admin.get("/api/v1/me").await;
    assert_eq!(
        me["tenant"], "contoso",
        "a key acts in the tenant it was issued in"
    );
    assert_eq!(me["home_tenant"], "contoso");

    // Contoso's admin manages contoso's members, not the operator's, and no tenants.
    let viewer_subject = "oidc:72f988bf-86f1-41af-91ab-2d7cd011db47:some-viewer";
    let (status, _) = contoso_admin
        .send(
            "PUT",
            &format!("/api/v1/admin/tenants/contoso/members/{viewer_subject}"),
            Some(&json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = contoso_admin
        .send(
            "PUT",
            &format!("/api/v1/admin/tenants/contoso/members/{viewer_subject}"),
            Some(&json!({"role": "operator"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a second put changes the role");
    let (status, _) = contoso_admin
        .send(
            "PUT",
            "/api/v1/admin/tenants/contoso/members/not-a-subject",
            Some(&json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for (method, path) in [
        ("GET", "/api/v1/admin/tenants/default/members"),
        ("GET", "/api/v1/admin/tenants"),
        ("POST", "/api/v1/admin/tenants"),
        ("DELETE", "/api/v1/admin/tenants/contoso"),
    ] {
        let (status, body) = contoso_admin
            .send(method, path, Some(&json!({"id": "fabrikam"})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
    }
    let members = contoso_admin
        .get("/api/v1/admin/tenants/contoso/members")
        .await;
    let roles: Vec<(&str, &str)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["subject"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            (operator_subject.as_str(), "admin"),
            (viewer_subject, "operator")
        ]
    );
    // The operator's home stays the operator tenant, and it may act in both.
    let me = operator.get("/api/v1/me").await;
    assert_eq!(me["tenant"], "default");
    assert_eq!(
        me["tenants"],
        json!([{"tenant": "contoso", "role": "admin"}, {"tenant": "default", "role": "admin"}])
    );

    // Contoso's log holds its creation and its membership changes.
    let contoso_log = audit_types(&in_contoso.get("/api/v1/audit/records?limit=1000").await);
    assert_eq!(
        contoso_log
            .iter()
            .filter(|t| !t.starts_with("auth.") && *t != "log.genesis")
            .collect::<Vec<_>>(),
        [
            "tenant.added",
            "membership.changed",
            "api_key.created",
            "membership.changed",
            "membership.changed"
        ],
        "{contoso_log:?}"
    );

    // Configured tenants and the operator tenant cannot be removed through the API.
    let (status, _) = operator
        .send("DELETE", "/api/v1/admin/tenants/default", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = operator
        .send("DELETE", "/api/v1/admin/tenants/nowhere", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Removing contoso ends every way in: memberships and keys.
    let removed = operator
        .json("DELETE", "/api/v1/admin/tenants/contoso", None)
        .await;
    assert_eq!(removed["memberships_removed"], 2);
    assert_eq!(removed["api_keys_revoked"], 1);
    let (status, _) = contoso_admin.send("GET", "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "its keys are revoked");
    let (status, _) = in_contoso.send("GET", "/api/v1/me", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "its members are gone");

    // Every step is in the logs: contoso's own, and the operator tenant's.
    let operator_memberships = audit_types(
        &operator
            .get("/api/v1/audit/records?type=membership.changed")
            .await,
    );
    assert!(
        operator_memberships.is_empty(),
        "membership changes stay in their tenant's log"
    );
    let operator_log = audit_types(&operator.get("/api/v1/audit/records?limit=1000").await);
    assert!(
        operator_log.contains(&"tenant.added".to_owned())
            && operator_log.contains(&"tenant.removed".to_owned()),
        "{operator_log:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_tenant_is_served_after_a_restart() {
    let server = Server::start("").await;
    let operator = Caller::new(&server, server.admin_key());
    operator
        .json(
            "POST",
            "/api/v1/admin/tenants",
            Some(&json!({"id": "contoso"})),
        )
        .await;
    let subject = operator.get("/api/v1/me").await["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    operator
        .json(
            "PUT",
            &format!("/api/v1/admin/tenants/contoso/members/{subject}"),
            Some(&json!({"role": "viewer"})),
        )
        .await;
    let key = server.admin_key().to_owned();
    let dir = {
        let Server { mut child, dir, .. } = server;
        child.kill().await.unwrap();
        dir
    };
    let config = dir.path().join("tollgate.toml");
    let server = Server::spawn(dir, config, &[]).await;
    let in_contoso = Caller::new(&server, &key).acting_in("contoso");
    let inventory = in_contoso.get("/api/v1/inventory").await;
    assert_eq!(inventory["tenant"], "contoso");
    // A viewer there: reading yes, administering no.
    let (status, _) = in_contoso.send("GET", "/api/v1/api-keys", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let records = in_contoso.send("GET", "/api/v1/audit/records", None).await;
    assert_eq!(
        records.0,
        StatusCode::FORBIDDEN,
        "audit.read is an operator's"
    );
    server.stop().await;
}

#[test]
fn members_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tollgate.toml"),
        "[database]\nurl = \"t.db\"\n",
    )
    .unwrap();
    let tollgate = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .current_dir(dir.path())
            .env_remove("TOLLGATE_DB")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let subject = "oidc:72f988bf-86f1-41af-91ab-2d7cd011db47:alice";
    let (code, stdout, stderr) = tollgate(&[
        "tenant",
        "members",
        "add",
        "--tenant",
        "default",
        "--subject",
        subject,
        "--role",
        "operator",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("now a member"), "{stdout}");
    let (code, stdout, _) = tollgate(&[
        "tenant",
        "members",
        "add",
        "--tenant",
        "default",
        "--subject",
        subject,
        "--role",
        "admin",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("(was operator)"), "{stdout}");
    let (code, stdout, _) = tollgate(&["tenant", "members", "list", "--tenant", "default"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with(&format!("{subject}\tadmin\t")),
        "{stdout}"
    );
    // Bad input is refused with the reason, and changes nothing.
    for (args, reason) in [
        (
            vec![
                "--tenant",
                "default",
                "--subject",
                "alice",
                "--role",
                "admin",
            ],
            "is not a subject",
        ),
        (
            vec![
                "--tenant",
                "default",
                "--subject",
                subject,
                "--role",
                "root",
            ],
            "unknown role",
        ),
        (
            vec![
                "--tenant",
                "nowhere",
                "--subject",
                subject,
                "--role",
                "admin",
            ],
            "no tenant nowhere",
        ),
    ] {
        let mut full = vec!["tenant", "members", "add"];
        full.extend(args);
        let (code, _, stderr) = tollgate(&full);
        assert_ne!(code, 0);
        assert!(stderr.contains(reason), "{reason}: {stderr}");
    }
    let (code, _, stderr) = tollgate(&[
        "tenant",
        "members",
        "remove",
        "--tenant",
        "default",
        "--subject",
        subject,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = tollgate(&[
        "tenant",
        "members",
        "remove",
        "--tenant",
        "default",
        "--subject",
        subject,
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("is not a member"), "{stderr}");
    let (_, stdout, _) = tollgate(&["tenant", "members", "list", "--tenant", "default"]);
    assert!(stdout.contains("no members"), "{stdout}");
}
