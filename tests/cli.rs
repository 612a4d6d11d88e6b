//! The `tollgate` binary, run as a user would: separate processes talking over loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// `tollgate` with a clean environment: no TOLLGATE_* leaks in from the developer's shell,
/// and the working directory is a temp dir so no ./tollgate.toml is picked up.
fn tollgate(dir: &tempfile::TempDir) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir.path());
    for (name, _) in std::env::vars() {
        if name.starts_with("TOLLGATE_") {
            command.env_remove(name);
        }
    }
    command
}

struct Sim {
    child: Child,
    base_url: String,
    org_url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(dir: &tempfile::TempDir, args: &[&str]) -> Sim {
    let mut child = tollgate(dir)
        .args(["sim", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tollgate sim starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base_url = lines.next().expect("a first line").expect("utf-8");
    let org_line = lines.next().expect("a second line").expect("utf-8");
    assert!(
        base_url.starts_with("http://127.0.0.1:"),
        "first line is the base URL: {base_url}"
    );
    let org_url = org_line
        .strip_prefix("organisation: ")
        .expect("organisation line")
        .to_owned();
    Sim {
        child,
        base_url,
        org_url,
    }
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn manifest_counts(sim: &Sim) -> BTreeMap<String, u64> {
    let manifest: Value =
        serde_json::from_str(&http_get(&format!("{}/_sim/manifest", sim.base_url))).unwrap();
    serde_json::from_value(manifest["counts"].clone()).unwrap()
}

/// A minimal blocking GET, so this test needs no HTTP client of its own.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[test]
fn sim_then_sync_then_inventory_agree_with_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(&dir, &["--seed", "21"]);
    let sync = tollgate(&dir)
        .args([
            "sync",
            "--org",
            &sim.org_url,
            "--db",
            "inv.db",
            "--format",
            "json",
            "--quiet",
        ])
        .env("TOLLGATE_ADO_PAT", "any-pat")
        .output()
        .unwrap();
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let report = json(&sync);
    assert_eq!(report["status"], "ok");
    assert_eq!(report["mode"], "full");
    assert!(report["api"]["requests"].as_u64().unwrap() > 0);
    assert!(report["peak_rss_kib"].as_u64().unwrap() > 0);
    assert_eq!(
        report["kinds"].as_array().unwrap().len(),
        tollgate_domain::ResourceKind::ALL.len()
    );

    let inventory = tollgate(&dir)
        .args(["inventory", "--db", "inv.db", "--format", "json"])
        .output()
        .unwrap();
    assert!(inventory.status.success());
    let counts: BTreeMap<String, u64> = serde_json::from_value(json(&inventory)).unwrap();
    assert_eq!(counts, manifest_counts(&sim));

    // The second sync continues from the first.
    let again = tollgate(&dir)
        .args(["sync", "--db", "inv.db", "--format", "json", "--quiet"])
        .env("TOLLGATE_ADO_ORG_URL", &sim.org_url)
        .env("TOLLGATE_ADO_PAT", "any-pat")
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(json(&again)["mode"], "incremental");
}

#[test]
fn skipped_kinds_are_named_and_exit_with_code_3() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(&dir, &["--forbid", "alerts,secure_files"]);
    let output = tollgate(&dir)
        .args(["sync", "--org", &sim.org_url, "--db", "p.db"])
        .env("TOLLGATE_ADO_PAT", "x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("SKIPPED alerts") && stdout.contains("SKIPPED secure_files"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refs") && stderr.contains("synced"),
        "plain progress lines when not a terminal: {stderr}"
    );
}

#[test]
fn a_missing_credential_or_organisation_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let no_pat = tollgate(&dir)
        .args(["sync", "--org", "https://dev.azure.com/fabrikam"])
        .output()
        .unwrap();
    assert_eq!(no_pat.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_pat.stderr).contains("TOLLGATE_ADO_PAT"));
    let no_org = tollgate(&dir)
        .args(["sync"])
        .env("TOLLGATE_ADO_PAT", "x")
        .output()
        .unwrap();
    assert_eq!(no_org.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_org.stderr).contains("--org"));
    let bad_org = tollgate(&dir)
        .args(["sync", "--org", "dev.azure.com/x"])
        .env("TOLLGATE_ADO_PAT", "x")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad_org.stderr).contains("no scheme"));
}

#[test]
fn configuration_mistakes_name_the_offending_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tollgate.toml"),
        "[ado]\nmax_concurency = 4\n",
    )
    .unwrap();
    let output = tollgate(&dir).args(["inventory"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_concurency"));

    let output = tollgate(&dir).args(["config", "example"]).output().unwrap();
    std::fs::write(dir.path().join("tollgate.toml"), &output.stdout).unwrap();
    let check = tollgate(&dir)
        .args(["config", "check"])
        .env("TOLLGATE_ADO_PAT", "do-not-print-me")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(
        shown.contains("[redacted]") && !shown.contains("do-not-print-me"),
        "{shown}"
    );

    let typo = tollgate(&dir)
        .args(["inventory"])
        .env("TOLLGATE_DBB", "x")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&typo.stderr).contains("TOLLGATE_DBB"));
}

#[test]
fn an_empty_inventory_says_how_to_fill_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = tollgate(&dir)
        .args(["inventory", "--db", "empty.db"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("tollgate sync --org"));
}

#[test]
fn help_teaches_the_first_steps() {
    let dir = tempfile::tempdir().unwrap();
    let help = tollgate(&dir).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for expected in [
        "tollgate demo",
        "TOLLGATE_ADO_PAT",
        "sync",
        "inventory",
        "sim",
    ] {
        assert!(text.contains(expected), "--help mentions {expected}");
    }
    let sync_help = tollgate(&dir).args(["sync", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&sync_help.stdout).contains("Exit codes"));
}

#[test]
fn the_demo_syncs_the_simulator_and_everything_matches() {
    let dir = tempfile::tempdir().unwrap();
    let output = tollgate(&dir)
        .args(["demo", "--profile", "small", "--db", "demo.db"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Every kind matches the simulated organisation"),
        "{stdout}"
    );
    assert!(dir.path().join("demo.db").exists());
}

#[test]
fn scan_fail_on_output_files_and_waivers_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(&dir, &["--seed", "4"]);
    let sync = tollgate(&dir)
        .args([
            "scan",
            "--org",
            &sim.org_url,
            "--db",
            "s.db",
            "--quiet",
            "--format",
            "sarif",
            "--output",
            "out.sarif",
            "--fail-on",
            "high",
        ])
        .env("TOLLGATE_ADO_PAT", "x")
        .output()
        .unwrap();
    assert_eq!(
        sync.status.code(),
        Some(4),
        "high findings with --fail-on high: {}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out.sarif")).unwrap())
            .unwrap();
    assert_eq!(sarif["version"], "2.1.0");

    let report = tollgate(&dir)
        .args(["scan", "--offline", "--db", "s.db", "--format", "json"])
        .output()
        .unwrap();
    assert!(report.status.success(), "no --fail-on: exit 0");
    let report = json(&report);
    let first = &report["findings"][0];
    let (control, key) = (
        first["control"].as_str().unwrap(),
        first["resource_key"].as_str().unwrap(),
    );

    let waiver = tollgate(&dir)
        .args([
            "waiver",
            "add",
            "--db",
            "s.db",
            "--control",
            control,
            "--scope",
            key,
            "--owner",
            "risk@fabrikam",
            "--reason",
            "accepted until migration",
            "--expires",
            "2099-01-01",
        ])
        .output()
        .unwrap();
    assert!(
        waiver.status.success(),
        "{}",
        String::from_utf8_lossy(&waiver.stderr)
    );
    let after = json(
        &tollgate(&dir)
            .args(["scan", "--offline", "--db", "s.db", "--format", "json"])
            .output()
            .unwrap(),
    );
    assert!(
        after["waived"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["control"] == control && f["resource_key"] == key)
    );
    assert_eq!(
        after["findings"].as_array().unwrap().len() + 1,
        report["findings"].as_array().unwrap().len()
    );

    let past = tollgate(&dir)
        .args([
            "waiver",
            "add",
            "--db",
            "s.db",
            "--control",
            control,
            "--scope",
            "*",
            "--owner",
            "o",
            "--reason",
            "r",
            "--expires",
            "2001-01-01",
        ])
        .output()
        .unwrap();
    assert_eq!(past.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&past.stderr).contains("future"));
}

#[test]
fn policy_commands_list_explain_test_and_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let list = json(
        &tollgate(&dir)
            .args(["policy", "list", "--format", "json"])
            .output()
            .unwrap(),
    );
    assert!(list.as_array().unwrap().len() >= 15);
    let explain = tollgate(&dir)
        .args(["policy", "explain", "bp-02"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        text.contains("BP-02")
            && text.contains("minimum_approvers")
            && text.contains("cis-ssc:1.1.3"),
        "{text}"
    );
    let unknown = tollgate(&dir)
        .args(["policy", "explain", "NOPE-1"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));

    let policies = dir.path().join("mine");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("tag.rego"),
        "# METADATA\n# title: \"Pipelines live in a folder\"\n# description: \"Not at the root.\"\n# custom:\n#   id: ORG-2\n#   severity: low\n#   kind: pipelines\n#   rationale: \"Order.\"\n#   remediation: \"Move it.\"\n#   permission: \"Build (Read)\"\n#   frameworks: [\"internal:layout\"]\npackage tollgate.controls.org_2\n\ndeny contains {\"message\": \"at the root\", \"evidence\": {\"folder\": \"\\\\\"}} if input.resource.folder == \"\\\\\"\n",
    )
    .unwrap();
    std::fs::write(
        policies.join("ORG-2.yaml"),
        "control: ORG-2\ncases:\n  - note: in a folder\n    want: pass\n    resource: {folder: \"\\\\team\"}\n  - note: at the root\n    want: fail\n    resource: {folder: \"\\\\\"}\n",
    )
    .unwrap();
    let test = tollgate(&dir)
        .args(["policy", "test"])
        .arg(&policies)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(String::from_utf8_lossy(&test.stdout).contains("2 passed, 0 failed"));

    std::fs::write(dir.path().join("input.json"), r#"{"kind": "pipelines", "resource": {"folder": "\\"}, "related": {}, "params": {}, "now": "2026-01-01T00:00:00Z"}"#).unwrap();
    let eval = tollgate(&dir)
        .args(["policy", "eval", "--input", "input.json", "--policies"])
        .arg(&policies)
        .output()
        .unwrap();
    let violations = json(&eval);
    assert_eq!(violations[0]["control"], "ORG-2");
}
