//! The MCP server, as real clients reach it: an rmcp client over stdio to a spawned
//! `tollgate mcp`, and over streamable HTTP to `/mcp` of a spawned `tollgate serve`, against a
//! simulated organisation the server synced. Tools are listed to every caller and run under
//! the caller's identity and role; a missing key never starts a session; bad arguments are
//! error results, after which the session goes on.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/server.rs"]
mod server;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Client;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{Value, json};
use server::Server;
use tollgate_sim::{Profile, SimConfig, Simulator};

const GATE_USER: &str = "ado-check";
const GATE_PASSWORD: &str = "gate-password-for-tests";
const SATURDAY: &str = "2026-11-28T10:00:00Z";
const TUESDAY: &str = "2026-11-24T10:00:00Z";

type McpClient = RunningService<RoleClient, ()>;

struct Setup {
    sim: tollgate_sim::RunningSimulator,
    server: Server,
    client: Client,
    project_id: String,
    now: &'static str,
}

/// A server with the gate configured (production needs a release manager's approval),
/// judging at `now`, that synced a small simulated organisation.
async fn setup(now: &'static str) -> Setup {
    let sim = Simulator::new(SimConfig {
        seed: 7,
        profile: Profile::Small,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap();
    let config = format!(
        "[ado]\norg_url = \"{org}\"\npat = \"test-pat\"\n\n[worker]\npoll_interval_ms = 100\nincremental_sync_every_secs = 0\nfull_sync_every_secs = 0\n\n\
         [gate]\nusername = \"{GATE_USER}\"\npassword = \"{GATE_PASSWORD}\"\ntimezone = \"Europe/London\"\n\n\
         [[gate.environments]]\nname = \"production\"\nquorum = 1\napprover_role = \"release_manager\"\nactions = {{ \"GATE-02\" = \"warn\", \"GATE-09\" = \"warn\" }}\n",
        org = sim.org_url()
    );
    let server = Server::start_with_env(&config, &[("TOLLGATE_FAKE_NOW", now)]).await;
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
        now,
    }
}

fn config_path(server: &Server) -> PathBuf {
    server.dir.path().join("tollgate.toml")
}

/// `tollgate mcp` over the server's configuration and database, as an MCP client starts it.
fn mcp_command(
    server: &Server,
    key_file: Option<&PathBuf>,
    now: Option<&str>,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command
        .arg("--config")
        .arg(config_path(server))
        .arg("mcp")
        .env_remove("TOLLGATE_DB")
        .env_remove("TOLLGATE_ADO_PAT")
        .env_remove("TOLLGATE_API_KEY")
        .env("TOLLGATE_LOG", "warn");
    if let Some(file) = key_file {
        command.arg("--api-key-file").arg(file);
    }
    if let Some(now) = now {
        command.env("TOLLGATE_FAKE_NOW", now);
    }
    command
}

fn key_file(server: &Server, name: &str, key: &str) -> PathBuf {
    let path = server.dir.path().join(format!("{name}.key"));
    std::fs::write(&path, format!("{key}\n")).unwrap();
    path
}

async fn stdio_client(server: &Server, key: &str, now: Option<&str>) -> McpClient {
    let file = key_file(server, &format!("key-{}", &key[..12]), key);
    let (transport, _) = TokioChildProcess::builder(mcp_command(server, Some(&file), now))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), ().serve(transport))
        .await
        .expect("the stdio server did not answer initialize")
        .unwrap()
}

async fn http_client(server: &Server, key: &str) -> McpClient {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url("/mcp")).auth_header(key),
    );
    ().serve(transport).await.unwrap()
}

async fn call(client: &McpClient, tool: &str, arguments: Value) -> CallToolResult {
    let arguments: JsonObject = arguments.as_object().unwrap().clone();
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .unwrap_or_else(|error| panic!("{tool}: {error}"))
}

fn structured(result: &CallToolResult) -> &Value {
    result
        .structured_content
        .as_ref()
        .expect("every tollgate result is structured")
}

/// Every tool, each naming the permission it needs.
async fn assert_lists_the_tools(client: &McpClient) {
    let tools = client.list_all_tools().await.unwrap();
    let listed: Vec<(String, String)> = tools
        .iter()
        .map(|tool| {
            let permission = tool.meta.as_ref().unwrap().0["tollgate/permission"]
                .as_str()
                .unwrap()
                .to_owned();
            (tool.name.to_string(), permission)
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("validate", "deployments.validate"),
            ("deploy", "deployments.execute"),
            ("status", "inventory.read"),
            ("rollback", "deployments.execute"),
            ("findings", "findings.read"),
            ("approvals", "deployments.validate"),
            ("approval_decide", "approvals.decide"),
        ]
        .map(|(name, permission)| (name.to_owned(), permission.to_owned()))
    );
    let validate = &tools[0];
    let required = validate.input_schema["required"].as_array().unwrap();
    assert!(
        required.contains(&json!("project")) && required.contains(&json!("environment")),
        "{:?}",
        validate.input_schema
    );
}

async fn me(setup_client: &Client, server: &Server, key: &str) -> Value {
    setup_client
        .get(server.url("/api/v1/me"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn audit_records(client: &Client, server: &Server, event_type: &str) -> Vec<Value> {
    let page: Value = client
        .get(server.url(&format!(
            "/api/v1/audit/records?limit=1000&type={event_type}"
        )))
        .bearer_auth(server.admin_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["record"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_gives_the_gates_verdict_over_stdio_and_over_http() {
    let setup = setup(SATURDAY).await;
    let developer = setup.server.key_for(&setup.client, "developer").await;
    let subject = me(&setup.client, &setup.server, &developer).await["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let deployment = json!({"project": setup.project_id, "environment": "production"});

    let over_stdio = stdio_client(&setup.server, &developer, Some(setup.now)).await;
    let over_http = http_client(&setup.server, &developer).await;
    let mut decisions = Vec::new();
    for (transport, client) in [("stdio", &over_stdio), ("http", &over_http)] {
        assert_lists_the_tools(client).await;
        let result = call(client, "validate", deployment.clone()).await;
        assert_eq!(result.is_error, Some(false), "{transport}: {result:?}");
        let answer = structured(&result);
        // Production on a Saturday: the weekend rule denies it.
        assert_eq!(answer["outcome"], "denied", "{transport}: {answer}");
        assert_eq!(answer["verdict"], "deny", "{transport}: {answer}");
        assert!(
            answer["findings"].to_string().contains("GATE-03"),
            "{transport}: {answer}"
        );
        // A dry run: no approval was opened.
        assert!(answer["approval"].is_null(), "{transport}: {answer}");
        decisions.push(answer["decision_id"].as_str().unwrap().to_owned());
        // Test on the same Saturday is allowed: weekends block production only.
        let result = call(
            client,
            "validate",
            json!({"project": setup.project_id, "environment": "test"}),
        )
        .await;
        assert_eq!(structured(&result)["outcome"], "allowed", "{transport}");
    }
    over_stdio.cancel().await.unwrap();
    over_http.cancel().await.unwrap();

    // Each decision is audited under the key's holder, with source mcp.
    let records = audit_records(&setup.client, &setup.server, "gate.decided").await;
    for decision in &decisions {
        let record = records
            .iter()
            .find(|r| r["details"]["decision"] == decision.as_str())
            .unwrap_or_else(|| panic!("no gate.decided record for {decision}: {records:?}"));
        assert_eq!(record["details"]["source"], "mcp", "{record}");
        assert_eq!(record["details"]["mode"], "dry-run", "{record}");
        assert_eq!(record["actor"]["id"], subject.as_str(), "{record}");
    }
    drop(setup.sim);
    setup.server.stop().await;
}

fn check_headers(setup: &Setup, plan: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PlanUrl", format!("{}/", setup.sim.org_url())),
        ("ProjectId", setup.project_id.clone()),
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

/// ADO's check asks the gate about a production deployment; on a Tuesday it waits for a
/// release manager. Returns the approval's id.
async fn open_approval(setup: &Setup) -> String {
    let mut request = setup
        .client
        .post(setup.server.url("/gate/ado/default?mode=sync"))
        .basic_auth(GATE_USER, Some(GATE_PASSWORD))
        .json(&json!({"environment": "production", "requestedFor": "dev@fabrikam.example"}));
    for (name, value) in check_headers(setup, "plan-mcp") {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 409, "the gate waits for an approval");
    let body: Value = response.json().await.unwrap();
    body["approval"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_listed_and_decided_under_the_callers_role() {
    let setup = setup(TUESDAY).await;
    let approval = open_approval(&setup).await;
    let viewer = setup.server.key_for(&setup.client, "viewer").await;
    let operator = setup.server.key_for(&setup.client, "operator").await;
    let release_manager = setup.server.key_for(&setup.client, "release_manager").await;
    let decide = json!({"id": approval, "decision": "approve", "comment": "checked the change"});

    // A viewer sees every tool, but may not decide: the error names the permission.
    let as_viewer = http_client(&setup.server, &viewer).await;
    assert_lists_the_tools(&as_viewer).await;
    let refused = call(&as_viewer, "approval_decide", decide.clone()).await;
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    let error = &structured(&refused)["error"];
    assert_eq!(error["code"], "forbidden", "{error}");
    assert_eq!(error["permission"], "approvals.decide", "{error}");
    assert_eq!(error["role"], "viewer", "{error}");
    let text = format!("{:?}", refused.content);
    assert!(text.contains("approvals.decide"), "{text}");
    // Nor list approvals (deployments.validate), though findings are hers to read.
    let refused = call(&as_viewer, "approvals", json!({})).await;
    assert_eq!(
        structured(&refused)["error"]["permission"],
        "deployments.validate"
    );
    let findings = call(&as_viewer, "findings", json!({"limit": 5})).await;
    assert_eq!(findings.is_error, Some(false), "{findings:?}");
    assert!(structured(&findings)["items"].is_array());
    as_viewer.cancel().await.unwrap();

    // Over stdio the same: an operator may list approvals, not decide them.
    let as_operator = stdio_client(&setup.server, &operator, Some(setup.now)).await;
    let listed = call(&as_operator, "approvals", json!({"state": "pending"})).await;
    let items = structured(&listed)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], approval.as_str());
    assert_eq!(items[0]["approver_role"], "release_manager");
    let refused = call(&as_operator, "approval_decide", decide.clone()).await;
    assert_eq!(
        structured(&refused)["error"]["permission"],
        "approvals.decide"
    );
    as_operator.cancel().await.unwrap();

    // A release manager decides; the vote counts once.
    let as_release_manager = stdio_client(&setup.server, &release_manager, Some(setup.now)).await;
    let decided = call(&as_release_manager, "approval_decide", decide.clone()).await;
    assert_eq!(decided.is_error, Some(false), "{decided:?}");
    assert_eq!(structured(&decided)["state"], "approved");
    let again = call(&as_release_manager, "approval_decide", decide).await;
    assert_eq!(structured(&again)["error"]["code"], "conflict", "{again:?}");
    let unknown = call(
        &as_release_manager,
        "approval_decide",
        json!({"id": "no-such-approval", "decision": "reject"}),
    )
    .await;
    assert_eq!(structured(&unknown)["error"]["code"], "not_found");
    as_release_manager.cancel().await.unwrap();

    // The audit log has the vote (source mcp, the release manager's key) and the denials.
    let subject = me(&setup.client, &setup.server, &release_manager).await["subject"].clone();
    let votes = audit_records(&setup.client, &setup.server, "approval.decided").await;
    assert!(
        votes.iter().any(|r| r["details"]["source"] == "mcp"
            && r["actor"]["id"] == subject
            && r["details"]["state"] == "approved"),
        "{votes:?}"
    );
    let denials = audit_records(&setup.client, &setup.server, "auth.denied").await;
    let tools_denied: Vec<&Value> = denials
        .iter()
        .filter(|r| r["target"]["kind"] == "mcp_tool")
        .collect();
    assert_eq!(tools_denied.len(), 3, "{denials:?}");
    assert!(
        tools_denied
            .iter()
            .all(|r| r["details"]["source"] == "mcp" && r["event"]["outcome"] == "failure"),
        "{tools_denied:?}"
    );
    drop(setup.sim);
    setup.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_arguments_are_error_results_and_the_session_goes_on() {
    let server = Server::start("").await;
    let client = Client::new();
    let admin = server.admin_key().to_owned();
    let over_stdio = stdio_client(&server, &admin, None).await;
    let over_http = http_client(&server, &admin).await;
    for (transport, mcp) in [("stdio", &over_stdio), ("http", &over_http)] {
        for (tool, arguments, mentions) in [
            (
                "validate",
                json!({"project": 42, "environment": "production"}),
                "invalid type",
            ),
            ("validate", json!({"environment": "production"}), "project"),
            (
                "validate",
                json!({"project": " ", "environment": "production"}),
                "project",
            ),
            (
                "validate",
                json!({"project": "P", "environment": "prod", "colour": "red"}),
                "colour",
            ),
            ("findings", json!({"kind": "spaceships"}), "spaceships"),
            (
                "findings",
                json!({"severity": "apocalyptic"}),
                "apocalyptic",
            ),
            ("findings", json!({"limit": -1}), "limit"),
            ("approvals", json!({"state": "maybe"}), "maybe"),
            (
                "approval_decide",
                json!({"id": "x", "decision": "perhaps"}),
                "perhaps",
            ),
            (
                "approval_decide",
                json!({"id": "x", "decision": "approve", "comment": "y".repeat(2_001)}),
                "2000",
            ),
        ] {
            let result = call(mcp, tool, arguments.clone()).await;
            assert_eq!(
                result.is_error,
                Some(true),
                "{transport} {tool} {arguments}"
            );
            let error = &structured(&result)["error"];
            assert_eq!(
                error["code"], "invalid_arguments",
                "{transport} {tool}: {error}"
            );
            let message = error["message"].as_str().unwrap().replace(',', "");
            assert!(
                message.contains(mentions),
                "{transport} {tool}: {message:?} should mention {mentions:?}"
            );
        }
        // An unknown tool is a protocol error, not a crash.
        let unknown = mcp
            .call_tool(CallToolRequestParams::new("deploy_everything"))
            .await;
        assert!(unknown.is_err(), "{transport}: {unknown:?}");
        // The session goes on.
        assert_lists_the_tools(mcp).await;
        let findings = call(mcp, "findings", json!({})).await;
        assert_eq!(findings.is_error, Some(false), "{transport}: {findings:?}");
    }
    over_stdio.cancel().await.unwrap();
    over_http.cancel().await.unwrap();
    // The server is still healthy.
    let health = client.get(server.url("/healthz")).send().await.unwrap();
    assert!(health.status().is_success());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_invalid_key_is_refused_over_http_and_over_stdio() {
    let server = Server::start("").await;
    let client = Client::new();
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}}
    });
    for key in [None, Some("tg_bogus_key"), Some("not-even-a-key")] {
        let mut request = client
            .post(server.url("/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{key:?}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{key:?}"
        );
    }
    // With a key, a plain JSON-RPC client of the 2025 protocol is served statelessly: no
    // session id, a JSON body; other methods than POST are not allowed.
    let response = client
        .post(server.url("/mcp"))
        .bearer_auth(server.admin_key())
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("mcp-session-id"));
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["result"]["serverInfo"]["name"], "tollgate",
        "{answer}"
    );
    let listed: Value = client
        .post(server.url("/mcp"))
        .header("x-api-key", server.admin_key())
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["result"]["tools"].as_array().unwrap().len(),
        7,
        "{listed}"
    );
    let called: Value = client
        .post(server.url("/mcp"))
        .bearer_auth(server.admin_key())
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "findings", "arguments": {"limit": 1}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(called["result"]["isError"], false, "{called}");
    assert!(
        called["result"]["structuredContent"]["items"].is_array(),
        "{called}"
    );
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = client
            .request(method.clone(), server.url("/mcp"))
            .bearer_auth(server.admin_key())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
    }
    // An MCP client with a bad key gets no session.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(server.url("/mcp"))
            .auth_header("tg_bogus_key"),
    );
    assert!(().serve(transport).await.is_err());

    // Over stdio: without a key, `tollgate mcp` refuses to start and says how to give one.
    let output = mcp_command(&server, None, None)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "stdout is the protocol's alone");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--api-key-file") && stderr.contains("TOLLGATE_API_KEY"),
        "{stderr}"
    );
    // A key the store does not know, or an empty file: refused before serving.
    for (name, content, says) in [("bogus", "tg_bogus_key", "refused"), ("empty", "", "empty")] {
        let file = key_file(&server, name, content);
        let output = mcp_command(&server, Some(&file), None)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{name}");
        assert!(output.stdout.is_empty(), "{name}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
    // The key from the environment works as the file does.
    let output = mcp_command(&server, None, None)
        .env("TOLLGATE_API_KEY", "tg_bogus_key")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused"));
    // A key revoked during a stdio session stops working at its next call.
    let viewer = server.key_for(&client, "viewer").await;
    let session = stdio_client(&server, &viewer, None).await;
    let before = call(&session, "findings", json!({})).await;
    assert_eq!(before.is_error, Some(false), "{before:?}");
    let subject = me(&client, &server, &viewer).await["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_id = subject.strip_prefix("apikey:").unwrap();
    let revoked = client
        .delete(server.url(&format!("/api/v1/api-keys/{key_id}")))
        .bearer_auth(server.admin_key())
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    let after = call(&session, "findings", json!({})).await;
    assert_eq!(after.is_error, Some(true), "{after:?}");
    assert_eq!(
        structured(&after)["error"]["code"],
        "unauthenticated",
        "{after:?}"
    );
    session.cancel().await.unwrap();
    // Every key the store refused over stdio is in the audit log: the bogus file, the bogus
    // environment variable, the revoked key (the empty file never reached the store).
    let failures = audit_records(&client, &server, "auth.failed").await;
    assert_eq!(
        failures
            .iter()
            .filter(|r| r["target"]["kind"] == "mcp" && r["target"]["id"] == "stdio")
            .count(),
        3,
        "{failures:?}"
    );
    server.stop().await;
}

/// The simulator run behind a deployment, once it has finished.
async fn finished_status(client: &McpClient, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = call(client, "status", json!({"id": id})).await;
        assert_eq!(result.is_error, Some(false), "{result:?}");
        let status = structured(&result).clone();
        if status["deployment"]["state"] == "completed" {
            return status;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_status_and_rollback_run_under_the_callers_role() {
    let setup = setup(TUESDAY).await;
    let pipelines: Value = setup
        .client
        .get(setup.server.url(&format!(
            "/api/v1/inventory/pipelines?project={}&limit=1000",
            setup.project_id
        )))
        .bearer_auth(setup.server.admin_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pipeline = pipelines["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["resource"]["configuration"]["type"] == "yaml")
        .expect("a YAML pipeline")["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let deployment = json!({"project": setup.project_id, "pipeline": pipeline,
                            "environment": "test", "version": "1.4.2"});

    // A developer may validate but not deploy: the error names the permission, nothing runs.
    let developer = setup.server.key_for(&setup.client, "developer").await;
    let as_developer = http_client(&setup.server, &developer).await;
    let refused = call(&as_developer, "deploy", deployment.clone()).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        format!("{refused:?}").contains("deployments.execute"),
        "{refused:?}"
    );
    let runs: Value = setup
        .client
        .get(format!("{}/_sim/runs", setup.sim.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runs["count"], 0, "nothing was queued: {runs}");
    as_developer.cancel().await.unwrap();

    // A release manager deploys over stdio, follows the run, deploys again and rolls back.
    let manager = setup.server.key_for(&setup.client, "release_manager").await;
    let client = stdio_client(&setup.server, &manager, Some(setup.now)).await;
    let mut ids = Vec::new();
    // Two commits: the branch's head, then another branch's, so there is one to go back to.
    for (version, branch) in [("1.4.2", "main"), ("1.4.3", "release/1.4.3")] {
        let mut request = deployment.clone();
        request["version"] = json!(version);
        request["branch"] = json!(branch);
        let result = call(&client, "deploy", request).await;
        assert_eq!(result.is_error, Some(false), "{result:?}");
        let queued = structured(&result);
        assert_eq!(queued["outcome"], "allowed", "{queued}");
        let id = queued["deployment"]["id"].as_str().unwrap().to_owned();
        let status = finished_status(&client, &id).await;
        assert_eq!(status["deployment"]["result"], "succeeded", "{status}");
        ids.push(id);
    }
    let result = call(
        &client,
        "rollback",
        json!({"project": setup.project_id, "pipeline": pipeline, "environment": "test"}),
    )
    .await;
    assert_eq!(result.is_error, Some(false), "{result:?}");
    let rolled_back = structured(&result);
    assert_eq!(
        rolled_back["deployment"]["kind"], "rollback",
        "{rolled_back}"
    );
    let unknown = call(&client, "status", json!({"id": "dp_nothing"})).await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(format!("{unknown:?}").contains("not_found"), "{unknown:?}");
    client.cancel().await.unwrap();

    // Each queued run is audited under the release manager, with source mcp.
    let subject = me(&setup.client, &setup.server, &manager).await["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let records = audit_records(&setup.client, &setup.server, "deployment.queued").await;
    assert_eq!(records.len(), 3, "{records:?}");
    for record in &records {
        assert_eq!(record["actor"]["id"], subject.as_str(), "{record}");
    }
    assert!(
        records.iter().all(|r| r.to_string().contains("mcp")),
        "{records:?}"
    );
    drop(setup.sim);
    setup.server.stop().await;
}
