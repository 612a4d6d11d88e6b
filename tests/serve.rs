//! `tollgate serve` over real HTTP: every route against every role as the permission table
//! says, the error shape, secure headers, limits, health, metrics and the OpenAPI document.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/server.rs"]
mod server;

use std::collections::BTreeMap;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use server::Server;
use tollgate::auth::Role;
use tollgate::http::routes::{Access, ROUTES};

/// A concrete request for a route template: path parameters filled, a plausible body.
fn concrete(path: &str) -> String {
    path.replace("{kind}", "repositories")
        .replace("{id}", "1")
        .replace("{tenant}", "default")
        .replace("{*rest}", "swagger-ui.css")
        .replace("/item", "/item?key=nothing")
}

fn body_for(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("POST", "/api/v1/waivers") => Some(json!({
            "control": "BP-01", "scope": "*", "reason": "test", "expires_at": "2099-01-01T00:00:00Z"
        })),
        ("POST", "/api/v1/api-keys") => Some(json!({"name": "matrix", "role": "viewer"})),
        ("POST", "/api/v1/syncs") => Some(json!({"mode": "incremental"})),
        ("POST", "/api/v1/events/replay") => Some(json!({"ids": [1]})),
        ("POST", _) => Some(json!({})),
        _ => None,
    }
}

async fn call(
    client: &Client,
    server: &Server,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = client.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        server.url(&concrete(path)),
    );
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body_for(method, path) {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_the_permission_table_says() {
    let server = Server::start("").await;
    let client = Client::new();
    let mut keys = BTreeMap::new();
    for role in Role::ALL {
        keys.insert(role, server.key_for(&client, role.as_str()).await);
    }
    let mut checked = 0;
    for route in ROUTES {
        match route.access {
            Access::Public => {
                let response = call(&client, &server, route.method, route.path, None).await;
                assert!(
                    response.status().is_success(),
                    "{} {} is public: {}",
                    route.method,
                    route.path,
                    response.status()
                );
            }
            Access::WebhookSecret => {
                let response = call(
                    &client,
                    &server,
                    route.method,
                    route.path,
                    Some(server.admin_key()),
                )
                .await;
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "an API key is not the webhook secret"
                );
            }
            Access::Authenticated | Access::Requires(_) => {
                let response = call(&client, &server, route.method, route.path, None).await;
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{} {} without a credential",
                    route.method,
                    route.path
                );
                assert!(response.headers().contains_key("www-authenticate"));
                let response = call(
                    &client,
                    &server,
                    route.method,
                    route.path,
                    Some("tg_bogus_key"),
                )
                .await;
                assert_eq!(
                    response.status(),
                    StatusCode::UNAUTHORIZED,
                    "{} {} with a bad key",
                    route.method,
                    route.path
                );
                for role in Role::ALL {
                    let allowed = match route.access {
                        Access::Requires(permission) => role.grants(permission),
                        _ => true,
                    };
                    let response = call(
                        &client,
                        &server,
                        route.method,
                        route.path,
                        Some(&keys[&role]),
                    )
                    .await;
                    let status = response.status();
                    if allowed {
                        assert!(
                            status != StatusCode::FORBIDDEN
                                && status != StatusCode::UNAUTHORIZED
                                && !status.is_server_error(),
                            "{role} may {} {}, got {status}",
                            route.method,
                            route.path
                        );
                    } else {
                        assert_eq!(
                            status,
                            StatusCode::FORBIDDEN,
                            "{role} may not {} {}",
                            route.method,
                            route.path
                        );
                        let body: Value = response.json().await.unwrap();
                        assert_eq!(body["error"]["code"], "forbidden");
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked >= 5 * 20,
        "the matrix covered {checked} route × role pairs"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_share_one_shape_and_responses_carry_secure_headers() {
    let server = Server::start("").await;
    let client = Client::new();
    let response = client
        .get(server.url("/no/such/route"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(response.headers()[name], value, "{name}");
    }
    assert!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin"),
        "CORS is off by default"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["request_id"], "trace-me-123");

    // A request id that could forge log lines is replaced.
    let response = client
        .get(server.url("/healthz"))
        .header("x-request-id", "a b\"c")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!id.contains(' ') && !id.is_empty());

    // Bad input is a 4xx in the same shape, saying what is wrong, never a 5xx.
    let admin = server.admin_key().to_owned();
    // Sends `request` as the admin, checks the answer's status and code; returns its message.
    let refused = |request: reqwest::RequestBuilder, expected: StatusCode, expected_code| {
        let admin = admin.clone();
        async move {
            let response = request.bearer_auth(&admin).send().await.unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or_else(|error| {
                panic!("a {status} answer in the JSON error shape: {error}")
            });
            let field = |name: &str| body["error"][name].as_str().unwrap_or_default().to_owned();
            let (code, message) = (field("code"), field("message"));
            assert_eq!(
                (status, code.as_str()),
                (expected, expected_code),
                "{message}"
            );
            message
        }
    };
    let waivers = || client.post(server.url("/api/v1/waivers"));
    let not_json = waivers()
        .header("content-type", "application/json")
        .body("{not json");
    refused(not_json, StatusCode::BAD_REQUEST, "bad_request").await;
    let message = refused(
        waivers().body("{}"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert!(message.contains("application/json"), "{message}");
    let wrong_shape = waivers().json(&json!({"control": "BP-01"}));
    let message = refused(
        wrong_shape,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
    )
    .await;
    assert!(message.contains("missing field"), "{message}");
    // A misspelt filter is an error, not an unfiltered list.
    let get = |path: &str| client.get(server.url(path));
    let message = refused(
        get("/api/v1/findings?severty=high"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(message.contains("severty"), "{message}");
    let message = refused(
        get("/api/v1/findings?limit=lots"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert!(message.contains("limit"), "{message}");
    refused(
        get("/api/v1/jobs/abc"),
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    let approve_as_text = client
        .post(server.url("/api/v1/approvals/ap_1/approve"))
        .header("content-type", "text/plain")
        .body("looks good");
    refused(
        approve_as_text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let response = client
        .post(server.url("/api/v1/waivers"))
        .bearer_auth(&admin)
        .json(&json!({"control": "NOPE-99", "scope": "*", "reason": "r", "expires_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NOPE-99")
    );

    // Over the body limit: 413.
    let response = client
        .post(server.url("/api/v1/waivers"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_over_its_rate_limit_gets_429_with_retry_after() {
    let server = Server::start("[server]\nrate_limit_per_minute = 5\n").await;
    let client = Client::new();
    let key = server.admin_key().to_owned();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = client
            .get(server.url("/api/v1/me"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(
                response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    // Health is not rate limited (no principal).
    assert!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_nothing_is_disconnected() {
    use tokio::io::AsyncReadExt;
    let server = Server::start("[server]\nheader_read_timeout_secs = 1\n").await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut buffer = Vec::new();
    // The server closes the connection (possibly after a 408); without the timeout this
    // read would wait forever and the outer timeout would fail the test.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut buffer),
    )
    .await;
    assert!(read.is_ok(), "the silent connection was never closed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_the_bundled_swagger_ui() {
    let server = Server::start("").await;
    let client = Client::new();
    let ready: Value = client
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "tollgate_http_requests_total",
        "tollgate_webhook_ack_seconds",
        "tollgate_queue_jobs",
        "tollgate_queue_lag_seconds",
        "tollgate_sync_duration_seconds",
        "tollgate_evaluation_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let docs = client.get(server.url("/api/docs/")).send().await.unwrap();
    assert!(docs.status().is_success(), "{}", docs.status());
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger"), "the Swagger UI page");
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "no CDN");
    let document: Value = client
        .get(server.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    server.stop().await;
}
