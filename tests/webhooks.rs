//! The service-hook receiver over real HTTP: every published sample is accepted and stored,
//! redeliveries are stored once, malformed bodies are kept with a 400, and the secret,
//! tenant and size rules hold.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/server.rs"]
mod server;

use std::path::Path;

use base64::Engine as _;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use server::{Server, WEBHOOK_SECRET};

fn samples() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/servicehooks");
    let mut found = Vec::new();
    for dir in [root.clone(), root.join("docs-2025")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    found.sort();
    assert!(found.len() >= 35, "the published samples are in the repo");
    found
}

fn basic(password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("ado:{password}"))
    )
}

async fn events(client: &Client, server: &Server, query: &str) -> Vec<Value> {
    let page: Value = client
        .get(server.url(&format!("/api/v1/events?limit=1000{query}")))
        .bearer_auth(server.admin_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_sample_is_accepted_stored_and_processed_once() {
    // No organisation: events are stored and processed, the re-sync has nothing to sync.
    let server = Server::start("[worker]\ndebounce_ms = 10\npoll_interval_ms = 50\n").await;
    let client = Client::new();
    let samples = samples();
    for round in 0..2 {
        for (name, body) in &samples {
            let response = client
                .post(server.url("/hooks/ado/default"))
                .header("authorization", basic(WEBHOOK_SECRET))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{name} (round {round})");
            let receipt: Value = response.json().await.unwrap();
            let expected = if round == 0 {
                ["stored", "unknown_type"]
            } else {
                ["duplicate", "duplicate"]
            };
            assert!(
                expected.contains(&receipt["status"].as_str().unwrap()),
                "{name}: {receipt}"
            );
        }
    }
    let stored = events(&client, &server, "").await;
    assert_eq!(stored.len(), samples.len(), "each sample stored once");
    assert!(
        stored.iter().all(|e| e["deliveries"] == 2),
        "the redelivery was counted, not stored"
    );
    // Every handled event is processed (exactly one refresh per burst, coalesced).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting = events(&client, &server, "&status=received").await;
        if waiting.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events still unprocessed: {}",
            waiting.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let processed = events(&client, &server, "&status=processed").await;
    let unknown = events(&client, &server, "&status=unknown").await;
    assert_eq!(processed.len() + unknown.len(), samples.len());
    assert!(
        unknown.is_empty(),
        "tollgate acts on every published type: {unknown:?}"
    );
    // The exact bytes are kept.
    let first = &processed[0];
    let detail: Value = client
        .get(server.url(&format!("/api/v1/events/{}", first["id"])))
        .bearer_auth(server.admin_key())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(detail["body"].is_object());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_get_the_status_ado_acts_on() {
    let server = Server::start("[server]\nwebhook_body_limit_bytes = 65536\n").await;
    let client = Client::new();
    let push = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/servicehooks/git.push.json"),
    )
    .unwrap();
    let post = |path: &str, auth: Option<String>, body: Vec<u8>| {
        let mut request = client.post(server.url(path)).body(body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };
    // No secret, a wrong one: 401. The header form works as well as basic auth.
    assert_eq!(
        post("/hooks/ado/default", None, push.clone())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        post("/hooks/ado/default", Some(basic("wrong")), push.clone())
            .await
            .unwrap()
            .status(),
        401
    );
    let response = client
        .post(server.url("/hooks/ado/default"))
        .header("x-tollgate-webhook-secret", WEBHOOK_SECRET)
        .body(push.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A type tollgate does not act on is kept and acknowledged, not processed.
    let response = post(
        "/hooks/ado/default",
        Some(basic(WEBHOOK_SECRET)),
        br#"{"id":"5f0c7f4e-0000-4000-8000-000000000001","eventType":"message.posted","resource":{}}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "unknown_type"
    );
    // Unknown tenant: 404.
    assert_eq!(
        post(
            "/hooks/ado/nobody",
            Some(basic(WEBHOOK_SECRET)),
            push.clone()
        )
        .await
        .unwrap()
        .status(),
        404
    );
    // Malformed: 400, and kept for inspection.
    let response = post(
        "/hooks/ado/default",
        Some(basic(WEBHOOK_SECRET)),
        b"{\"id\": \"cut".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kept as event")
    );
    let malformed = events(&client, &server, "&status=malformed").await;
    assert_eq!(malformed.len(), 1);
    // Too large: 413, never 500.
    let response = post(
        "/hooks/ado/default",
        Some(basic(WEBHOOK_SECRET)),
        vec![b'x'; 100_000],
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 413);
    // Metrics count the outcomes.
    let metrics = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("outcome=\"unauthorized\""), "{metrics}");
    assert!(metrics.contains("outcome=\"malformed\""));
    server.stop().await;
}

/// What each published sample tells an incremental sync to re-read.
#[test]
fn the_published_samples_name_what_changed() {
    use tollgate::services::events::add_change_hints;
    use tollgate::services::sync::ChangeHints;
    use tollgate_domain::ResourceKind;

    let hints_of = |file: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/servicehooks")
            .join(file);
        let body = std::fs::read(path).unwrap();
        let event: Value = serde_json::from_slice(&body).unwrap();
        let mut hints = ChangeHints::default();
        // The bare 2025 shape names its type in `eventId`.
        let event_type = event["eventType"].as_str().or(event["eventId"].as_str());
        add_change_hints(event_type.unwrap(), &body, &mut hints);
        hints
    };
    let repositories = |hints: &ChangeHints| hints.kinds.get(&ResourceKind::Repositories).cloned();
    let one = |project: &str| Some([Some(project.to_owned())].into_iter().collect());

    let push = hints_of("git.push.json");
    assert_eq!(
        push.pushed_repositories.iter().collect::<Vec<_>>(),
        ["278d5cd2-584d-4b63-824a-2ba458937249"]
    );
    assert!(push.kinds.is_empty());
    assert_eq!(
        hints_of("git.pullrequest.merged.json")
            .pushed_repositories
            .len(),
        1
    );
    assert!(hints_of("git.pullrequest.created.json").is_empty());
    assert!(hints_of("build.complete.json").is_empty());

    assert_eq!(
        repositories(&hints_of("docs-2025/git.repo.created.json")),
        one("00aa00aa-bb11-cc22-dd33-44ee44ee44ee")
    );
    assert_eq!(
        repositories(&hints_of("docs-2025/git.repo.deleted.json")),
        one("00aa00aa-bb11-cc22-dd33-44ee44ee44ee")
    );
    let forked = repositories(&hints_of("docs-2025/git.repo.forked.json")).unwrap();
    assert!(forked.iter().all(Option::is_some), "{forked:?}");

    let updated = hints_of("docs-2025/serviceendpoint.updated.json");
    assert_eq!(
        updated.kinds.get(&ResourceKind::ServiceEndpoints),
        one("00000000-0000-0000-0000-000000000000project-id").as_ref()
    );
    // Shared with no project it names: every project's connections are re-read.
    let created = hints_of("docs-2025/ms.vss-endpoint.endpoint-created.json");
    assert_eq!(
        created.kinds.get(&ResourceKind::ServiceEndpoints),
        Some(&[None].into_iter().collect())
    );

    let mut nothing = ChangeHints::default();
    add_change_hints("git.push", b"{not json", &mut nothing);
    assert!(nothing.is_empty());
}
