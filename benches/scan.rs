//! Scan benchmark: `cargo bench --bench scan` (see docs/PERFORMANCE.md).
//!
//! Per profile, on the simulated organisation synced into a fresh SQLite file:
//! - the full evaluation (`tollgate scan --evaluate all` without the report): wall and CPU time;
//! - the same inputs through plain regorus: one prepared engine holding the same rule files,
//!   each control's `deny` evaluated on each input, nothing else (no store, no facts, no
//!   findings) — the floor any embedding of regorus pays; our overhead is the ratio;
//! - one input through our engine (all the controls of its kind at once): the unit a
//!   deployment-gate decision is made of;
//! - after one change in the organisation and an incremental sync, the changed-only
//!   evaluation, against that one-input cost;
//! - one deployment-gate decision on the same store (`GateService::judge`: the run's facts from
//!   the inventory and the gate rules, nothing recorded) for a production deployment of one of
//!   the organisation's builds — what the changed-only evaluation is held against (issue 6:
//!   ≤ 10× one gate decision, whatever the inventory size);
//! - the peak RSS of `tollgate scan --offline --evaluate all` run as a child process.
//!
//! `TOLLGATE_BENCH_PROFILES=small,medium` limits the profiles (default: all three).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness stops on any failure"
)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use tollgate::config::{self, Config, Overrides};
use tollgate::services::scan::Evaluation;
use tollgate::services::sync::{ModeRequest, NoProgress};
use tollgate::startup;
use tollgate_domain::{ResourceKind, SecretString};
use tollgate_sim::{MutationKind, Profile, SimConfig, Simulator};

struct Run {
    profile: &'static str,
    resources: u64,
    controls: usize,
    full: Duration,
    full_cpu: Duration,
    plain: Duration,
    ours_single_thread: Duration,
    one_input_median: Duration,
    changed: Vec<(u64, Duration)>,
    gate_decision: Duration,
    peak_rss_kib: u64,
}

/// CPU time (user + system) of this process so far, from /proc (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat(5), counted after the `(comm)` field.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

async fn run(profile: &'static str) -> Run {
    let simulator = Simulator::new(SimConfig {
        seed: 1,
        profile: profile.parse::<Profile>().unwrap(),
        ..SimConfig::default()
    });
    let sim = simulator.spawn("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scan.db");
    let overrides = Overrides {
        db: Some(db.display().to_string()),
        org_url: Some(sim.org_url()),
        ..Overrides::default()
    };
    let mut config: Config = config::load_from(None, &[], &overrides).unwrap().config;
    config.ado.pat = Some(SecretString::new("bench"));
    let sync = startup::sync_service(&config).await.unwrap();
    sync.run(ModeRequest::Full, &NoProgress).await.unwrap();
    let scanner = startup::scan_service(&config).await.unwrap();
    let now = OffsetDateTime::now_utc();

    // Full evaluation, three times; the first also opens the findings.
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut resources = 0;
    for _ in 0..3 {
        let cpu = cpu_time();
        let started = Instant::now();
        let evaluated = scanner.evaluate(now, Evaluation::All).await.unwrap();
        walls.push(started.elapsed());
        cpus.push(cpu_time() - cpu);
        resources = evaluated.resources_evaluated;
    }

    // The same inputs through plain regorus and through our engine, one thread each.
    let policies = scanner.policies().clone();
    let mut plain_engine = regorus::Engine::new();
    for source in tollgate_policy::builtin_sources() {
        plain_engine.add_policy(source.name, source.text).unwrap();
    }
    let mut plain = Duration::ZERO;
    let mut ours = Duration::ZERO;
    let mut per_input = Vec::new();
    let mut evaluator = policies.evaluator();
    let mut a_build = None;
    scanner
        .for_each_input(now, |input| {
            if a_build.is_none() && input["kind"] == "builds" {
                a_build = Some((
                    input["resource"]["project"]["name"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    input["resource"]["id"].as_u64().unwrap(),
                ));
            }
            let kind: ResourceKind = input["kind"].as_str().unwrap().parse().unwrap();
            let started = Instant::now();
            plain_engine.set_input(regorus::Value::deserialize(input).unwrap());
            for control in policies.controls_for(kind) {
                let value = plain_engine
                    .eval_rule(format!("data.{}.deny", control.package))
                    .unwrap();
                std::hint::black_box(value);
            }
            plain += started.elapsed();
            let started = Instant::now();
            std::hint::black_box(evaluator.evaluate(input).unwrap());
            let took = started.elapsed();
            ours += took;
            per_input.push(took);
        })
        .await
        .unwrap();

    // One change at a time, then an incremental sync and a changed-only evaluation.
    let client = reqwest::Client::new();
    let mut changed = Vec::new();
    for op in [
        MutationKind::ExposeVariable,
        MutationKind::RemoveProductionApproval,
        MutationKind::WeakenPolicy,
    ] {
        let response = client
            .post(format!("{}/_sim/mutate", sim.base_url))
            .body(serde_json::json!({ "ops": [op] }).to_string())
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{op:?}: {}",
            response.status()
        );
        sync.run(ModeRequest::Auto, &NoProgress).await.unwrap();
        let started = Instant::now();
        let evaluated = scanner.evaluate(now, Evaluation::Auto).await.unwrap();
        assert_eq!(evaluated.evaluation.mode, "changed", "{op:?}");
        changed.push((evaluated.resources_evaluated, started.elapsed()));
    }

    // One gate decision for a production deployment of a build of this organisation.
    let (project, run_id) = a_build.expect("the organisation has builds");
    let store = startup::configured_store(&config).await.unwrap();
    let (gate_policies, problems) = startup::policies(&config).unwrap();
    let contexts = startup::tenant_contexts(&config, store, gate_policies, &problems).unwrap();
    let gate = contexts[0].gate.clone();
    let request = tollgate::services::gate::DeploymentRequest {
        project,
        environment: "production".to_owned(),
        run_id: Some(run_id),
        ..Default::default()
    };
    let mut decisions = Vec::new();
    for round in 0..220 {
        let started = Instant::now();
        std::hint::black_box(gate.judge_afresh(&request, now).await.unwrap());
        // The first rounds warm the caches and the engine clone.
        if round >= 20 {
            decisions.push(started.elapsed());
        }
    }

    let output = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "scan",
            "--offline",
            "--evaluate",
            "all",
            "--quiet",
            "--format",
            "json",
            "--db",
        ])
        .arg(&db)
        .env_remove("TOLLGATE_BENCH_PROFILES")
        .output()
        .unwrap();
    assert!(
        output.status.success() || output.status.code() == Some(4),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("  {profile}: {resources} resources");
    Run {
        profile,
        resources,
        controls: policies.controls().len(),
        full: median(walls),
        full_cpu: median(cpus),
        plain,
        ours_single_thread: ours,
        one_input_median: median(per_input),
        changed,
        gate_decision: median(decisions),
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
            runs.push(run(profile).await);
        }
    }
    println!(
        "| profile | resources | controls | full evaluation (wall) | CPU | per resource (CPU) | plain regorus | CPU ÷ plain | our engine alone | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} | {} | {:.2} s | {:.2} s | {:.1} µs | {:.2} s | {:.2}× | {:.2} s | {:.1} MiB |",
            r.profile,
            r.resources,
            r.controls,
            r.full.as_secs_f64(),
            r.full_cpu.as_secs_f64(),
            r.full_cpu.as_secs_f64() * 1e6 / r.resources.max(1) as f64,
            r.plain.as_secs_f64(),
            r.full_cpu.as_secs_f64() / r.plain.as_secs_f64(),
            r.ours_single_thread.as_secs_f64(),
            r.peak_rss_kib as f64 / 1024.0
        );
    }
    println!();
    println!(
        "| profile | one resource judged (median) | after one change: resources judged | changed-only evaluation (median) | ÷ one resource | one gate decision (median) | changed-only ÷ gate decision |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &runs {
        let took = median(r.changed.iter().map(|(_, d)| *d).collect());
        let judged: Vec<String> = r.changed.iter().map(|(n, _)| n.to_string()).collect();
        println!(
            "| {} | {:.0} µs | {} | {:.1} ms | {:.0}× | {:.2} ms | {:.1}× |",
            r.profile,
            r.one_input_median.as_secs_f64() * 1e6,
            judged.join(", "),
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() / r.one_input_median.as_secs_f64(),
            r.gate_decision.as_secs_f64() * 1e3,
            took.as_secs_f64() / r.gate_decision.as_secs_f64()
        );
    }
}
