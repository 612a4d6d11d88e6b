//! Every built-in gate rule's case file: each case gives the verdict it says, and every rule
//! has at least one case that lets the run through and one that does not.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;

use tollgate_policy::cases::Want;
use tollgate_policy::gate::cases;

#[test]
fn every_gate_rule_allows_and_objects_in_its_cases() {
    let loaded = tollgate_policy::load(&[]);
    let problems: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(loaded.set.gate_rules().len() >= 9);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("gate-cases");
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = cases::parse(&name, &std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(format!("{}.yaml", file.rule), name);
        for outcome in cases::run(&loaded.set, &name, &file).unwrap() {
            let counts = seen.entry(outcome.control.clone()).or_default();
            match outcome.want {
                Want::Pass => counts.0 += 1,
                Want::Fail => counts.1 += 1,
            }
            if let Some(failure) = outcome.failure {
                failures.push(format!("{name}: {}: {failure}", outcome.note));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    for rule in loaded.set.gate_rules() {
        let (allow, object) = seen.get(&rule.id).copied().unwrap_or_default();
        assert!(
            allow >= 1 && object >= 1,
            "{} needs a case that allows and one that objects (has {allow} and {object})",
            rule.id
        );
    }
}

#[test]
fn one_evaluation_gathers_every_rule() {
    let loaded = tollgate_policy::load(&[]);
    let mut input = cases::default_input();
    input.insert("now".into(), "2026-11-28T22:00:00Z".into()); // a Saturday night
    input.insert("params".into(), serde_json::json!({}));
    let findings = loaded
        .set
        .evaluate_gate(&serde_json::Value::Object(input))
        .unwrap();
    let rules: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| (f.rule.as_str(), f.effect.as_str()))
        .collect();
    for expected in [
        ("GATE-01", "approval"),
        ("GATE-02", "deny"),
        ("GATE-03", "deny"),
        ("GATE-04", "warn"),
        ("GATE-09", "deny"),
    ] {
        assert!(
            rules.contains(&expected),
            "{expected:?} missing from {rules:?}"
        );
    }
    assert!(
        !rules.iter().any(|(rule, _)| *rule == "GATE-07"),
        "{rules:?}"
    );
}

#[test]
fn a_broken_gate_rule_is_reported_and_the_rest_load() {
    let source = tollgate_policy::Source {
        name: "mine/gate.rego".into(),
        text: "# METADATA\n# title: T\n# custom:\n#   id: MY-GATE\n#   severity: high\n#   kind: repositories\n#   rationale: r\n#   remediation: m\n#   permission: p\npackage tollgate.gate.mine\n\ndeny contains \"x\" if true\n".into(),
    };
    let loaded = tollgate_policy::load(&[source]);
    let problems: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("mine/gate.rego:") && problems[0].contains("kind: deployment"),
        "{problems:?}"
    );
    assert!(loaded.set.gate_rule("GATE-01").is_some());
    assert!(loaded.set.gate_rule("MY-GATE").is_none());
}
