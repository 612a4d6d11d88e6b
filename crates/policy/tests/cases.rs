//! Every built-in control's case file: each case behaves as it says, and every control has at
//! least one passing and one failing case. Adding a control without both fails this test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;

use tollgate_policy::cases::{self, Want};

#[test]
fn the_builtin_bundle_loads_without_problems() {
    let loaded = tollgate_policy::load(&[]);
    let problems: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(!loaded.set.controls().is_empty());
}

#[test]
fn every_control_passes_and_fails_its_cases() {
    let loaded = tollgate_policy::load(&[]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
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
        assert_eq!(
            format!("{}.yaml", file.control),
            name,
            "a case file is named after its control"
        );
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
    for control in loaded.set.controls() {
        let (pass, fail) = seen.get(&control.id).copied().unwrap_or_default();
        assert!(
            pass >= 1 && fail >= 1,
            "{} needs at least one pass and one fail case (has {pass} and {fail})",
            control.id
        );
    }
}

#[test]
fn every_control_has_complete_metadata() {
    let loaded = tollgate_policy::load(&[]);
    for control in loaded.set.controls() {
        for (field, value) in [
            ("title", &control.title),
            ("description", &control.description),
            ("rationale", &control.rationale),
            ("remediation", &control.remediation),
            ("permission", &control.permission),
        ] {
            assert!(!value.trim().is_empty(), "{} has no {field}", control.id);
        }
        assert!(
            !control.frameworks.is_empty(),
            "{} maps to no framework",
            control.id
        );
        for mapping in &control.frameworks {
            assert!(
                mapping.contains(':'),
                "{}: framework mapping {mapping:?} is not framework:control",
                control.id
            );
        }
        let expected_package = format!(
            "tollgate.controls.{}",
            control.id.to_lowercase().replace('-', "_")
        );
        assert_eq!(
            control.package, expected_package,
            "package name follows the id"
        );
    }
}
