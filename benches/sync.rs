//! Full-sync benchmark: `cargo bench --bench sync` (see docs/PERFORMANCE.md).
//!
//! The simulator runs in this process; `tollgate sync` runs as a child process, so the peak
//! RSS it reports is the sync's alone. For each run it reports API calls made against the
//! fewest calls the documented page sizes allow, wall time and peak RSS.
//! `TOLLGATE_BENCH_PROFILES=small,medium` limits the profiles (default: all three).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness stops on any failure"
)]

use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use tollgate_sim::{Faults, Profile, SimConfig, Simulator};

struct Run {
    profile: &'static str,
    latency_ms: u64,
    objects: usize,
    minimum: u64,
    requests: u64,
    sync_ms: u64,
    peak_rss_kib: u64,
}

async fn run(profile: &'static str, latency_ms: u64) -> Run {
    let parsed: Profile = profile.parse().unwrap();
    let simulator = Simulator::new(SimConfig {
        seed: 1,
        profile: parsed,
        ..SimConfig::default()
    })
    .with_faults(Faults {
        latency_ms,
        ..Faults::default()
    });
    let objects: usize = simulator.counts().values().sum();
    let minimum: u64 = simulator.minimum_requests().values().sum();
    let running = simulator.spawn("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let org_url = running.org_url();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args([
                "sync", "--full", "--quiet", "--format", "json", "--org", &org_url, "--db",
            ])
            .arg(dir.path().join("bench.db"))
            .env("TOLLGATE_ADO_PAT", "bench")
            .env_remove("TOLLGATE_BENCH_PROFILES")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["status"], "ok");
    eprintln!(
        "  {profile} at {latency_ms} ms: {:.1} s wall",
        wall.as_secs_f64()
    );
    Run {
        profile,
        latency_ms,
        objects,
        minimum,
        requests: report["api"]["requests"].as_u64().unwrap(),
        sync_ms: report["duration_ms"].as_u64().unwrap(),
        peak_rss_kib: report["peak_rss_kib"].as_u64().unwrap_or(0),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then we only check
    // that the harness builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let profiles = std::env::var("TOLLGATE_BENCH_PROFILES")
        .unwrap_or_else(|_| "small,medium,large".to_owned());
    let mut runs = Vec::new();
    for profile in ["small", "medium", "large"] {
        if profiles.split(',').any(|p| p == profile) {
            runs.push(run(profile, 0).await);
        }
    }
    if profiles.split(',').any(|p| p == "large") {
        runs.push(run("large", 50).await);
    }
    println!(
        "| profile | latency | objects | minimum calls | calls made | calls ÷ minimum | sync time | objects/s | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} ms | {} | {} | {} | {:.3} | {:.2} s | {:.0} | {:.1} MiB |",
            r.profile,
            r.latency_ms,
            r.objects,
            r.minimum,
            r.requests,
            r.requests as f64 / r.minimum as f64,
            r.sync_ms as f64 / 1000.0,
            r.objects as f64 / (r.sync_ms as f64 / 1000.0),
            r.peak_rss_kib as f64 / 1024.0
        );
    }
}
