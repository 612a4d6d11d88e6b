//! Audit log throughput: appending records as the server does (batches of drafts, each
//! batch one transaction through `SqliteStore::append_audit` with the real record encoder:
//! JCS, SHA-256 leaf hash, UUIDv7), and verifying an exported bundle offline — each next to
//! this machine's raw SHA-256 speed over the same bytes, measured in the same run.
//!
//! `cargo bench --bench audit` (TOLLGATE_BENCH_RECORDS=200000 TOLLGATE_BENCH_RUNS=3
//! TOLLGATE_BENCH_BATCH=256)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark reports failure by panicking"
)]

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tollgate::services::audit::{AuditService, RecordEncoder};
use tollgate::services::audit_events::{Actor, AuditEvent, Record, Target};
use tollgate_audit::bundle;
use tollgate_audit::keys::LogKeys;
use tollgate_domain::TenantId;
use tollgate_store::{AuditDraft, AuditStore, SqliteStore};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A realistic record: a waiver with its actor, target and reason (~500 bytes canonical).
fn draft(i: usize) -> AuditDraft {
    let actor = Actor {
        kind: "user",
        id: format!("oidc:72f988bf-86f1-41af-91ab-2d7cd011db47:{i:08}-7c3d-4e4f-8a9b-0c1d2e3f4a5b"),
        name: Some("Alice Example".to_owned()),
        auth: Some("oauth"),
        ip: Some("203.0.113.7".to_owned()),
    };
    Record::new(AuditEvent::WaiverCreated, &actor, OffsetDateTime::now_utc())
        .target(Target {
            kind: "waiver".to_owned(),
            id: format!("BP-02:payments/api/{i}"),
            name: Some("Require two reviewers".to_owned()),
            project: Some("Payments".to_owned()),
        })
        .reason("Accepted until the migration to the new branch policy completes")
        .detail(
            "after",
            json!({"owner": "alice@example.com", "expires_at": "2027-01-31T00:00:00Z"}),
        )
        .draft()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let records = env("TOLLGATE_BENCH_RECORDS", 200_000);
    let runs = env("TOLLGATE_BENCH_RUNS", 3);
    let batch = env("TOLLGATE_BENCH_BATCH", 256);
    let tenant = TenantId::default_tenant();
    let (mut append, mut verify, mut sha, mut sha_mb) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bytes_total = 0;
    for run in 1..=runs {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp");
        std::fs::create_dir_all(&root).unwrap();
        let dir = tempfile::tempdir_in(&root).unwrap();
        let store = SqliteStore::open(dir.path().join("audit.db").to_str().unwrap())
            .await
            .unwrap();
        store
            .set_leaf_encoder(Arc::new(RecordEncoder::new("tollgate.bench")))
            .unwrap();
        let store = Arc::new(store);
        let keys = LogKeys::generate("tollgate.bench").unwrap();
        let audit = AuditService::new(
            store.clone(),
            keys.clone(),
            "tollgate.bench",
            std::time::Duration::from_secs(3600),
        );
        audit.ensure_genesis(&tenant).await.unwrap();

        let drafts: Vec<AuditDraft> = (0..records).map(draft).collect();
        let started = Instant::now();
        for chunk in drafts.chunks(batch) {
            store.append_audit(&tenant, chunk).await.unwrap();
        }
        let append_rate = records as f64 / started.elapsed().as_secs_f64();

        let out = dir.path().join("bundle");
        audit.export(&tenant, &out, &Actor::system()).await.unwrap();
        let leaves = std::fs::read(out.join("leaves.jsonl")).unwrap();
        bytes_total = leaves.len();
        let trusted = keys.verifiers();
        let started = Instant::now();
        let report = bundle::verify_dir(&out, &trusted);
        let verify_seconds = started.elapsed().as_secs_f64();
        assert!(
            matches!(report, bundle::Report::Verified { .. }),
            "{report:?}"
        );
        let leaf_count = leaves.iter().filter(|b| **b == b'\n').count();

        // Raw SHA-256 over the same leaves, one hash per leaf as the verifier does.
        let started = Instant::now();
        let mut sink = 0_u8;
        for line in leaves.split(|b| *b == b'\n') {
            let digest = Sha256::new()
                .chain_update([0])
                .chain_update(line)
                .finalize();
            sink ^= digest[0];
        }
        std::hint::black_box(sink);
        let sha_seconds = started.elapsed().as_secs_f64();

        append.push(append_rate);
        verify.push(leaf_count as f64 / verify_seconds);
        sha.push(leaf_count as f64 / sha_seconds);
        sha_mb.push(leaves.len() as f64 / sha_seconds / 1e6);
        println!(
            "  run {run}: append {append_rate:>9.0} records/s (batches of {batch}) | verify {:>9.0} records/s ({:.0} MB/s) | raw SHA-256 {:>9.0} leaves/s ({:.0} MB/s)",
            leaf_count as f64 / verify_seconds,
            leaves.len() as f64 / verify_seconds / 1e6,
            leaf_count as f64 / sha_seconds,
            leaves.len() as f64 / sha_seconds / 1e6,
        );
    }
    let (append, verify, sha, sha_mb) =
        (median(append), median(verify), median(sha), median(sha_mb));
    println!(
        "Medians over {runs} run(s) of {records} records ({} bytes of leaves, {:.0} bytes each):",
        bytes_total,
        bytes_total as f64 / records as f64
    );
    println!("| measure | per second | target |");
    println!("|---|---|---|");
    println!("| append, batches of {batch} (SQLite, WAL) | {append:.0} records | ≥ 20,000 |");
    println!("| verify a bundle offline | {verify:.0} records | ≥ 50 % of raw SHA-256 |");
    println!("| raw SHA-256 of the same leaves | {sha:.0} leaves ({sha_mb:.0} MB/s) | — |");
    println!("verify / raw SHA-256: {:.2}×", verify / sha);
}
