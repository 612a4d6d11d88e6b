//! Two `tollgate serve` replicas on one PostgreSQL database under webhook load: every
//! delivery is acknowledged by whichever replica gets it, each event is stored once (the
//! other replica's copy counts as a redelivery) and processed once, and the tenant's audit
//! log stays one gap-free log that verifies offline.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/server.rs"]
mod server;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use postgres::migrated_database;
use reqwest::Client;
use serde_json::Value;
use server::{Server, WEBHOOK_SECRET};

const EVENTS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgresql_store_and_process_every_event_once() {
    let Some(app_db) = migrated_database("replicas").await else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_tollgate");

    let secret_file = shared.path().join("webhook-secret");
    std::fs::write(&secret_file, WEBHOOK_SECRET).unwrap();
    let config_text = format!(
        "[database]\nurl = \"{app_db}\"\n\n[webhook]\nsecret_file = \"{}\"\n\n\
         [audit]\nkey_file = \"{}\"\ncheckpoint_interval_secs = 1\n\n\
         [worker]\ndebounce_ms = 10\npoll_interval_ms = 50\n\n\
         [[audit.sinks]]\nkind = \"file\"\nname = \"archive\"\npath = \"{}\"\n",
        secret_file.display(),
        shared.path().join("audit.key").display(),
        // One file both replicas can write, as a shared volume would be: the export lease
        // lets one replica at a time deliver, so no record lands twice.
        shared.path().join("siem.jsonl").display(),
    );
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tollgate.toml");
        std::fs::write(&config, &config_text).unwrap();
        replicas.push(Server::spawn(dir, config, &[]).await);
    }
    let admin_key = replicas
        .iter()
        .find_map(|r| r.bootstrap_key.clone())
        .expect("one replica printed the bootstrap key");
    assert_eq!(
        replicas
            .iter()
            .filter(|r| r.bootstrap_key.is_some())
            .count(),
        1,
        "two replicas starting at once create one bootstrap key"
    );

    // Every delivery goes to both replicas, concurrently: ADO retrying against another
    // instance behind a load balancer.
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/servicehooks/git.push.json"),
    )
    .unwrap();
    let client = Client::new();
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("ado:{WEBHOOK_SECRET}"))
    );
    let mut sends = Vec::new();
    for n in 0..EVENTS {
        let mut event: Value = serde_json::from_str(&sample).unwrap();
        event["id"] = Value::from(format!("00000000-0000-0000-0000-{n:012}"));
        let body = event.to_string();
        for replica in &replicas {
            let (client, url, authorization, body) = (
                client.clone(),
                replica.url("/hooks/ado/default"),
                authorization.clone(),
                body.clone(),
            );
            // As ADO does: a 503 is retried (it means "not stored, send again").
            sends.push(tokio::spawn(async move {
                for _ in 0..5 {
                    let status = client
                        .post(&url)
                        .header("Authorization", &authorization)
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap()
                        .status();
                    if status != 503 {
                        return status;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                reqwest::StatusCode::SERVICE_UNAVAILABLE
            }));
        }
    }
    for send in sends {
        assert_eq!(send.await.unwrap(), 200, "every delivery is acknowledged");
    }

    let events = |replica: &Server| {
        let request = client
            .get(replica.url("/api/v1/events?limit=1000"))
            .bearer_auth(&admin_key);
        async move {
            let page: Value = request.send().await.unwrap().json().await.unwrap();
            page["items"].as_array().unwrap().clone()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let stored = events(&replicas[1]).await;
        if stored.len() == EVENTS && stored.iter().all(|e| e["status"] == "processed") {
            break stored;
        }
        assert!(
            Instant::now() < deadline,
            "not all events were processed: {} stored",
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        stored.iter().all(|e| e["deliveries"] == 2),
        "each event stored once, the second delivery counted"
    );
    let jobs: Value = client
        .get(replicas[0].url("/api/v1/jobs?kind=event.process&limit=1000"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jobs = jobs["items"].as_array().unwrap();
    assert!(!jobs.is_empty() && jobs.len() <= EVENTS, "{}", jobs.len());
    assert!(
        jobs.iter()
            .all(|j| j["status"] == "done" && j["attempts"] == 1),
        "{jobs:?}"
    );

    // The export follows the log: wait until it has caught up with what is logged now.
    let logged: Value = client
        .get(replicas[0].url("/api/v1/audit/records?limit=1000"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logged = logged["items"].as_array().unwrap().len();
    let exported_records = || {
        std::fs::read_to_string(shared.path().join("siem.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("\"type\":\"record\""))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while exported_records() < logged {
        assert!(
            Instant::now() < deadline,
            "the export did not catch up: {} of {logged}",
            exported_records()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // One audit log, gap-free across both writers, that verifies.
    for replica in replicas {
        replica.stop().await;
    }
    let bundle = shared.path().join("bundle");
    let config = shared.path().join("tollgate.toml");
    std::fs::write(&config, &config_text).unwrap();
    let exported = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .args(["audit", "export", "--output", bundle.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let verified = Command::new(bin)
        .args([
            "audit",
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-keys",
        ])
        .arg(shared.path().join("audit.key.pub"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(0), "{report}");
    let receipts: usize = std::fs::read_to_string(bundle.join("leaves.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["event"]["type"] == "webhook.received")
        .map(|record| record["details"]["deliveries"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        receipts,
        2 * EVENTS,
        "every delivery's receipt is in the log"
    );

    // The SIEM export: records from both replicas' writes, none delivered twice.
    let exported: Vec<String> = std::fs::read_to_string(shared.path().join("siem.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["type"] == "record")
        .map(|line| line["record"]["id"].as_str().unwrap().to_owned())
        .collect();
    let unique: std::collections::BTreeSet<&String> = exported.iter().collect();
    assert!(
        exported.len() >= logged,
        "the log was exported: {}",
        exported.len()
    );
    assert_eq!(unique.len(), exported.len(), "a record was exported twice");
}

/// Each replica runs the scheduler on its own timer, started at its own moment; the periodic
/// sync still runs once per period for the tenant, not once per replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_schedule_each_periodic_sync_once() {
    const PERIOD_SECS: u64 = 2;
    let Some(app_db) = migrated_database("schedules").await else {
        return;
    };
    let sim = tollgate_sim::Simulator::new(tollgate_sim::SimConfig::default())
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    let shared = tempfile::tempdir().unwrap();
    let config_text = format!(
        "[database]\nurl = \"{app_db}\"\n\n[ado]\norg_url = \"{}\"\npat = \"test-pat\"\n\n\
         [audit]\nkey_file = \"{}\"\n\n\
         [worker]\npoll_interval_ms = 50\nincremental_sync_every_secs = {PERIOD_SECS}\nfull_sync_every_secs = 0\n",
        sim.org_url(),
        shared.path().join("audit.key").display(),
    );
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tollgate.toml");
        std::fs::write(&config, &config_text).unwrap();
        replicas.push(Server::spawn(dir, config, &[]).await);
        // Offset the second replica's timer by about half a period.
        tokio::time::sleep(Duration::from_millis(PERIOD_SECS * 500)).await;
    }
    tokio::time::sleep(Duration::from_secs(4 * PERIOD_SECS)).await;
    let admin_key = replicas
        .iter()
        .find_map(|r| r.bootstrap_key.clone())
        .unwrap();
    let page: Value = Client::new()
        .get(replicas[0].url("/api/v1/jobs?kind=tenant.refresh&limit=1000"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for replica in replicas {
        replica.stop().await;
    }
    let mut scheduled: Vec<time::OffsetDateTime> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["payload"]["reason"] == "schedule")
        .map(|job| {
            time::OffsetDateTime::parse(
                job["created_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    scheduled.sort();
    assert!(
        scheduled.len() >= 3,
        "the syncs were scheduled: {scheduled:?}"
    );
    for pair in scheduled.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= time::Duration::milliseconds(PERIOD_SECS as i64 * 1000 - 200),
            "two scheduled syncs within one period ({gap}): {scheduled:?}"
        );
    }
}
