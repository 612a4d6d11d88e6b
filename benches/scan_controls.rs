//! Cost of each control over a profile's inputs: `cargo bench --bench scan_controls`
//! (see docs/PERFORMANCE.md, "Scan: cost per control").
//!
//! The scan benchmark says how long the whole catalog takes; this one says where that time
//! goes. It syncs the simulated organisation (seed 1) into a SQLite file, builds every input
//! exactly as a full evaluation does, and then, one thread, per input:
//! - converts it to a regorus value once (the conversion is timed on its own);
//! - evaluates each control of its kind alone (`data.<package>.deny`) on one prepared plain
//!   regorus engine holding the catalog, timing each control;
//! - evaluates the whole kind through our engine (an `Evaluator`), as a scan does.
//!
//! Then it prints the controls by total cost, and the kinds with their resource counts.
//!
//! - `TOLLGATE_BENCH_PROFILE` — small, medium or large (default large);
//! - `TOLLGATE_BENCH_DB` — a SQLite file to keep the synced organisation in: synced once when
//!   it does not exist yet, reused as it is afterwards (re-profiling after a rule change then
//!   skips the sync);
//! - `TOLLGATE_BENCH_KINDS` — comma-separated kinds to limit the run to;
//! - `TOLLGATE_BENCH_DUMP` — also write every input judged, one JSON document a line, to this
//!   file (to replay them against the policy crate alone while changing rules).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness stops on any failure"
)]

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use serde::Deserialize;
use time::OffsetDateTime;
use tollgate::config::{self, Config, Overrides};
use tollgate::services::sync::{ModeRequest, NoProgress};
use tollgate::startup;
use tollgate_domain::{ResourceKind, SecretString};
use tollgate_sim::{Profile, SimConfig, Simulator};

#[derive(Default)]
struct KindCost {
    resources: u64,
    conversion: Duration,
    ours: Duration,
}

#[derive(Default)]
struct ControlCost {
    kind: String,
    total: Duration,
    worst: Duration,
    violations: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let profile: Profile = std::env::var("TOLLGATE_BENCH_PROFILE")
        .unwrap_or_else(|_| "large".to_owned())
        .parse()
        .unwrap();
    let kept_db = std::env::var("TOLLGATE_BENCH_DB").ok();
    let dir = tempfile::tempdir().unwrap();
    let db = kept_db.map_or_else(|| dir.path().join("scan.db"), Into::into);
    let only: Option<Vec<ResourceKind>> = std::env::var("TOLLGATE_BENCH_KINDS")
        .ok()
        .map(|kinds| kinds.split(',').map(|k| k.parse().unwrap()).collect());

    let mut overrides = Overrides {
        db: Some(db.display().to_string()),
        org_url: Some("http://127.0.0.1:9/org".to_owned()),
        ..Overrides::default()
    };
    let _simulator = if db.exists() {
        eprintln!("reusing {}", db.display());
        None
    } else {
        let simulator = Simulator::new(SimConfig {
            seed: 1,
            profile,
            ..SimConfig::default()
        });
        let sim = simulator.spawn("127.0.0.1:0").await.unwrap();
        overrides.org_url = Some(sim.org_url());
        let mut config: Config = config::load_from(None, &[], &overrides).unwrap().config;
        config.ado.pat = Some(SecretString::new("bench"));
        let started = Instant::now();
        startup::sync_service(&config)
            .await
            .unwrap()
            .run(ModeRequest::Full, &NoProgress)
            .await
            .unwrap();
        eprintln!("synced {} in {:.1?}", db.display(), started.elapsed());
        Some(sim)
    };
    let mut config: Config = config::load_from(None, &[], &overrides).unwrap().config;
    config.ado.pat = Some(SecretString::new("bench"));
    let scanner = startup::scan_service(&config).await.unwrap();
    let policies = scanner.policies().clone();

    let mut plain = regorus::Engine::new();
    for source in tollgate_policy::builtin_sources() {
        plain.add_policy(source.name, source.text).unwrap();
    }
    let mut dump = std::env::var("TOLLGATE_BENCH_DUMP")
        .ok()
        .map(|path| std::io::BufWriter::new(std::fs::File::create(path).unwrap()));
    let mut evaluator = policies.evaluator();
    let mut kinds: BTreeMap<String, KindCost> = BTreeMap::new();
    let mut controls: BTreeMap<String, ControlCost> = BTreeMap::new();
    let now = OffsetDateTime::now_utc();
    let started = Instant::now();
    scanner
        .for_each_input(now, |input| {
            let kind: ResourceKind = input["kind"].as_str().unwrap().parse().unwrap();
            if only.as_ref().is_some_and(|only| !only.contains(&kind)) {
                return;
            }
            if let Some(dump) = dump.as_mut() {
                serde_json::to_writer(&mut *dump, input).unwrap();
                dump.write_all(b"\n").unwrap();
            }
            let cost = kinds.entry(kind.as_str().to_owned()).or_default();
            cost.resources += 1;
            let converting = Instant::now();
            let value = regorus::Value::deserialize(input).unwrap();
            cost.conversion += converting.elapsed();
            plain.set_input(value);
            for control in policies.controls_for(kind) {
                let evaluating = Instant::now();
                let denied = plain
                    .eval_rule(format!("data.{}.deny", control.package))
                    .unwrap();
                let took = evaluating.elapsed();
                let entry = controls.entry(control.id.clone()).or_default();
                entry.kind = kind.as_str().to_owned();
                entry.total += took;
                entry.worst = entry.worst.max(took);
                if let Ok(set) = denied.as_set() {
                    entry.violations += set.len() as u64;
                }
            }
            let ours = Instant::now();
            std::hint::black_box(evaluator.evaluate(input).unwrap());
            cost.ours += ours.elapsed();
        })
        .await
        .unwrap();
    let wall = started.elapsed();
    if let Some(dump) = dump.as_mut() {
        dump.flush().unwrap();
    }

    let plain_total: Duration = controls.values().map(|c| c.total).sum();
    let mut ranked: Vec<(&String, &ControlCost)> = controls.iter().collect();
    ranked.sort_by_key(|(_, cost)| std::cmp::Reverse(cost.total));
    println!(
        "inputs built and judged in {:.1} s; controls alone (plain regorus) {:.2} s",
        wall.as_secs_f64(),
        plain_total.as_secs_f64()
    );
    println!();
    println!("| control | kind | total | share | per resource | worst | violations |");
    println!("|---|---|---|---|---|---|---|");
    for (id, cost) in &ranked {
        let resources = kinds.get(&cost.kind).map_or(1, |k| k.resources.max(1));
        println!(
            "| {id} | {} | {:.3} s | {:.1} % | {:.1} µs | {:.2} ms | {} |",
            cost.kind,
            cost.total.as_secs_f64(),
            100.0 * cost.total.as_secs_f64() / plain_total.as_secs_f64().max(1e-9),
            cost.total.as_secs_f64() * 1e6 / resources as f64,
            cost.worst.as_secs_f64() * 1e3,
            cost.violations
        );
    }
    println!();
    println!(
        "| kind | resources | controls | controls alone | input conversion | our engine (whole kind) | ours per resource |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut by_kind: Vec<(&String, &KindCost)> = kinds.iter().collect();
    by_kind.sort_by_key(|(_, cost)| std::cmp::Reverse(cost.ours));
    for (kind, cost) in by_kind {
        let alone: Duration = controls
            .values()
            .filter(|c| &c.kind == kind)
            .map(|c| c.total)
            .sum();
        println!(
            "| {kind} | {} | {} | {:.3} s | {:.3} s | {:.3} s | {:.1} µs |",
            cost.resources,
            controls.values().filter(|c| &c.kind == kind).count(),
            alone.as_secs_f64(),
            cost.conversion.as_secs_f64(),
            cost.ours.as_secs_f64(),
            cost.ours.as_secs_f64() * 1e6 / cost.resources.max(1) as f64
        );
    }
}
