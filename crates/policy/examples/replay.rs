//! Replay evaluation inputs against the built-in catalog, to see what rules cost and to check
//! that a change to them decides the same:
//!
//! ```sh
//! TOLLGATE_BENCH_DUMP=inputs.jsonl cargo bench --bench scan_controls   # write the inputs
//! cargo run --release -p tollgate-policy --example replay -- inputs.jsonl [violations.tsv]
//! ```
//!
//! Reads one input document a line; per kind it times an `Evaluator` (what a scan runs) and
//! each control alone through plain regorus, then prints the controls and kinds by cost. With a second argument it writes every violation (key, control, message, evidence),
//! so two rule versions can be compared with `diff`. `REPLAY_KINDS=a,b` limits the kinds;
//! `REPLAY_OURS_ONLY=1` skips the plain-regorus timing (for a profiler).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a measuring tool stops on any failure"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tollgate_domain::ResourceKind;

fn main() {
    let mut args = std::env::args().skip(1);
    let inputs = args
        .next()
        .expect("usage: replay INPUTS.jsonl [VIOLATIONS.tsv]");
    let mut violations_out = args
        .next()
        .map(|path| BufWriter::new(std::fs::File::create(path).unwrap()));
    let only: Option<Vec<ResourceKind>> = std::env::var("REPLAY_KINDS")
        .ok()
        .map(|kinds| kinds.split(',').map(|k| k.parse().unwrap()).collect());
    let skip_plain = std::env::var("REPLAY_OURS_ONLY").is_ok();
    let loaded = tollgate_policy::load(&[]);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let policies = loaded.set;
    let mut plain = regorus::Engine::new();
    for source in tollgate_policy::builtin_sources() {
        plain.add_policy(source.name, source.text).unwrap();
    }

    let mut evaluator = policies.evaluator();
    let mut ours: BTreeMap<ResourceKind, (u64, Duration)> = BTreeMap::new();
    let mut alone: BTreeMap<String, (ResourceKind, Duration)> = BTreeMap::new();
    let reader = BufReader::new(std::fs::File::open(&inputs).unwrap());
    for line in reader.lines() {
        let input: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let kind: ResourceKind = input["kind"].as_str().unwrap().parse().unwrap();
        if only.as_ref().is_some_and(|only| !only.contains(&kind)) {
            continue;
        }
        let started = Instant::now();
        let violations = evaluator.evaluate(&input).unwrap();
        let took = started.elapsed();
        let entry = ours.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += took;
        if let Some(out) = violations_out.as_mut() {
            for violation in &violations {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    input["key"].as_str().unwrap_or_default(),
                    violation.control,
                    violation.message,
                    violation.evidence
                )
                .unwrap();
            }
        }
        if skip_plain {
            continue;
        }
        plain.set_input(regorus::Value::deserialize(&input).unwrap());
        for control in policies.controls_for(kind) {
            let started = Instant::now();
            std::hint::black_box(
                plain
                    .eval_rule(format!("data.{}.deny", control.package))
                    .unwrap(),
            );
            let entry = alone
                .entry(control.id.clone())
                .or_insert((kind, Duration::ZERO));
            entry.1 += started.elapsed();
        }
    }
    if let Some(out) = violations_out.as_mut() {
        out.flush().unwrap();
    }

    let total_ours: Duration = ours.values().map(|(_, d)| *d).sum();
    let total_alone: Duration = alone.values().map(|(_, d)| *d).sum();
    println!(
        "our engine {:.2} s, controls alone (plain regorus) {:.2} s",
        total_ours.as_secs_f64(),
        total_alone.as_secs_f64()
    );
    let mut ranked: Vec<_> = alone.iter().collect();
    ranked.sort_by_key(|(_, (_, d))| std::cmp::Reverse(*d));
    println!("| control | kind | alone | per resource |");
    println!("|---|---|---|---|");
    for (id, (kind, took)) in ranked.iter().take(25) {
        let resources = ours.get(kind).map_or(1, |(n, _)| (*n).max(1));
        println!(
            "| {id} | {kind} | {:.3} s | {:.1} µs |",
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / resources as f64
        );
    }
    let mut kinds: Vec<_> = ours.iter().collect();
    kinds.sort_by_key(|(_, (_, d))| std::cmp::Reverse(*d));
    println!("| kind | resources | our engine | per resource | controls alone |");
    println!("|---|---|---|---|---|");
    for (kind, (n, took)) in kinds {
        let controls: Duration = alone
            .values()
            .filter(|(k, _)| k == kind)
            .map(|(_, d)| *d)
            .sum();
        println!(
            "| {kind} | {n} | {:.3} s | {:.1} µs | {:.3} s |",
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / (*n).max(1) as f64,
            controls.as_secs_f64()
        );
    }
}
