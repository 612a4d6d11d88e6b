//! The audit log over HTTP: what the API did is recorded (changes, failed authentication,
//! denials), the records are listed by type, and a record's inclusion proof verifies against
//! a signed checkpoint with the instance's public key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/server.rs"]
mod server;

use reqwest::Client;
use serde_json::{Value, json};
use server::Server;
use tollgate_audit::checkpoint::Checkpoint;
use tollgate_audit::merkle::{self, Hash};
use tollgate_audit::{bundle, keys, note};

fn unhex(text: &str) -> Hash {
    (0..32)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap()
}

async fn records(client: &Client, server: &Server, key: &str, event_type: &str) -> Vec<Value> {
    let page: Value = client
        .get(server.url(&format!(
            "/api/v1/audit/records?type={event_type}&limit=1000"
        )))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn api_actions_are_recorded_and_their_proofs_verify() {
    let server = Server::start("[audit]\ncheckpoint_interval_secs = 1\n").await;
    let client = Client::new();
    let admin = server.admin_key().to_owned();
    let viewer = server.key_for(&client, "viewer").await;

    let created = client
        .post(server.url("/api/v1/waivers"))
        .bearer_auth(&admin)
        .json(&json!({"control": "BP-01", "scope": "*", "reason": "migration", "expires_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let denied = client
        .post(server.url("/api/v1/waivers"))
        .bearer_auth(&viewer)
        .json(&json!({"control": "BP-01", "scope": "*", "reason": "x", "expires_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let anonymous = client
        .get(server.url("/api/v1/findings"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // A viewer may not read the audit log; an operator and up may.
    let forbidden = client
        .get(server.url("/api/v1/audit/records"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    let waivers = records(&client, &server, &admin, "waiver.created").await;
    assert_eq!(waivers.len(), 1, "{waivers:?}");
    let waiver = &waivers[0];
    assert!(
        waiver["record"]["actor"]["id"]
            .as_str()
            .unwrap()
            .starts_with("apikey:")
    );
    assert_eq!(waiver["record"]["actor"]["kind"], "service");
    assert_eq!(waiver["record"]["target"]["id"], "BP-01:*");
    assert_eq!(waiver["record"]["event"]["reason"], "migration");
    let denials = records(&client, &server, &admin, "auth.denied").await;
    assert!(
        denials
            .iter()
            .any(|d| d["record"]["target"]["id"] == "POST /api/v1/waivers"),
        "{denials:?}"
    );
    let failures = records(&client, &server, &admin, "auth.failed").await;
    assert!(
        failures
            .iter()
            .any(|f| f["record"]["target"]["id"] == "GET /api/v1/findings"),
        "{failures:?}"
    );
    let created_keys = records(&client, &server, &admin, "api_key.created").await;
    assert_eq!(created_keys.len(), 1);
    assert_eq!(
        records(&client, &server, &admin, "api_key.bootstrap")
            .await
            .len(),
        1
    );
    assert_eq!(
        records(&client, &server, &admin, "log.genesis").await[0]["seq"],
        0
    );
    // What the server started with is recorded (digests only).
    let configs = records(&client, &server, &admin, "config.loaded").await;
    assert_eq!(configs.len(), 1);
    assert_eq!(
        configs[0]["record"]["details"]["digest"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(
        records(&client, &server, &admin, "policy.loaded")
            .await
            .len(),
        1
    );

    // The waiver's inclusion proof leads to a checkpoint signed by this instance's key.
    let proof: Value = client
        .get(server.url(&format!(
            "/api/v1/audit/records/{}/proof",
            waiver["id"].as_str().unwrap()
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let trusted = keys::read_trusted(&server.dir.path().join("tollgate.db.audit-key.pub")).unwrap();
    let (signed, verified) = note::open(
        proof["checkpoint"].as_str().unwrap(),
        &bundle::bind_to_origin(&trusted, "tollgate/default"),
    )
    .unwrap();
    assert!(verified.timestamp.is_some());
    let checkpoint = Checkpoint::parse(&signed.text).unwrap();
    assert_eq!(checkpoint.size, proof["tree_size"].as_u64().unwrap());
    let path: Vec<Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    let leaf = unhex(proof["leaf_hash"].as_str().unwrap());
    assert_eq!(
        merkle::leaf_hash(&tollgate_audit::record::canonical(&waiver["record"]).unwrap()),
        leaf,
        "the listed record hashes to its leaf"
    );
    merkle::verify_inclusion(
        proof["seq"].as_u64().unwrap(),
        checkpoint.size,
        &leaf,
        &path,
        &checkpoint.root,
    )
    .unwrap();

    // Checkpoints are listed, and the log only grows: a consistency proof links them.
    let checkpoints: Value = client
        .get(server.url("/api/v1/audit/checkpoints"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = checkpoints["items"][0]["size"].as_u64().unwrap();
    let consistency: Value = client
        .get(server.url(&format!(
            "/api/v1/audit/consistency?old={first}&new={}",
            checkpoint.size
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let links: Vec<Hash> = consistency["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    merkle::verify_consistency(
        first,
        checkpoint.size,
        &unhex(consistency["old_root"].as_str().unwrap()),
        &checkpoint.root,
        &links,
    )
    .unwrap();

    // Restarted with the same configuration and policies: nothing new to record.
    let dir = {
        let Server { mut child, dir, .. } = server;
        child.kill().await.unwrap();
        dir
    };
    let config = dir.path().join("tollgate.toml");
    let server = Server::spawn(dir, config, &[]).await;
    assert_eq!(
        records(&client, &server, &admin, "config.loaded")
            .await
            .len(),
        1
    );
    assert_eq!(
        records(&client, &server, &admin, "policy.loaded")
            .await
            .len(),
        1
    );
    server.stop().await;
}
