//! Bundles: a log written and verified offline, then tampered with in every way the
//! verifier must notice — each names the first bad index.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::path::Path;

use serde_json::{Map, Value, json};
use time::macros::datetime;
use tollgate_audit::bundle::{BundleWriter, Report, verify_dir};
use tollgate_audit::checkpoint::Checkpoint;
use tollgate_audit::merkle::{self, Frontier};
use tollgate_audit::note::{self, NoteSigner};
use tollgate_audit::record::{self, Placement};

const ORIGIN: &str = "tollgate.test/acme";

fn signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, [1; 32]).unwrap()
}

fn clock() -> NoteSigner {
    NoteSigner::cosigner("tollgate.test/acme-clock", [2; 32]).unwrap()
}

/// Write a bundle of `size` records with a checkpoint after every `every` leaves.
fn write_bundle(dir: &Path, size: u64, every: u64) {
    let mut writer = BundleWriter::create(dir, ORIGIN).unwrap();
    let mut frontier = Frontier::new();
    let (log, clock) = (signer(), clock());
    for seq in 0..size {
        let mut fields = Map::new();
        fields.insert(
            "event".to_owned(),
            json!({"type": "waiver.created", "n": seq}),
        );
        let id = format!("id-{seq}");
        let logged = datetime!(2026-05-04 12:00 UTC) + time::Duration::seconds(seq as i64);
        let leaf = record::build_leaf(
            &Placement {
                origin: ORIGIN,
                seq,
                id: &id,
                logged,
            },
            logged,
            &fields,
        )
        .unwrap();
        writer.leaf(Some(&leaf.bytes), &leaf.hash).unwrap();
        frontier.push(leaf.hash);
        if frontier.size().is_multiple_of(every) || frontier.size() == size {
            let body = Checkpoint::new(ORIGIN, frontier.size(), frontier.root()).body();
            writer
                .checkpoint(&note::sign(&body, &[&log, &clock], 1_700_000_000 + seq).unwrap())
                .unwrap();
        }
    }
    writer.finish().unwrap();
}

fn trusted() -> Vec<tollgate_audit::note::NoteVerifier> {
    vec![signer().verifier(), clock().verifier()]
}

fn lines(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(dir.join(name), text).unwrap();
}

fn tampered(edit: impl Fn(&Path)) -> Report {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), 10, 1);
    edit(dir.path());
    verify_dir(dir.path(), &trusted())
}

fn bad_index(report: &Report) -> u64 {
    match report {
        Report::Tamper { index, .. } => *index,
        other => panic!("expected tamper evidence, got {other:?}"),
    }
}

#[test]
fn an_untouched_bundle_verifies() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), 25, 4);
    let report = verify_dir(dir.path(), &trusted());
    assert_eq!(
        report,
        Report::Verified {
            size: 25,
            checkpoints: 7,
            withheld: 0,
            timestamp: Some(1_700_000_024)
        }
    );
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn a_modified_record_is_named() {
    let report = tampered(|dir| {
        let mut leaves = lines(dir, "leaves.jsonl");
        let mut record: Value = serde_json::from_str(&leaves[4]).unwrap();
        record["event"]["type"] = json!("waiver.removed");
        leaves[4] = String::from_utf8(record::canonical(&record).unwrap()).unwrap();
        write_lines(dir, "leaves.jsonl", &leaves);
    });
    assert_eq!(bad_index(&report), 4, "{report:?}");
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn a_modified_record_with_its_hash_recomputed_breaks_the_signed_root() {
    let report = tampered(|dir| {
        let mut leaves = lines(dir, "leaves.jsonl");
        let mut hashes = lines(dir, "leaf_hashes.txt");
        let mut record: Value = serde_json::from_str(&leaves[6]).unwrap();
        record["event"]["n"] = json!(600);
        let bytes = record::canonical(&record).unwrap();
        hashes[6] = merkle::leaf_hash(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        leaves[6] = String::from_utf8(bytes).unwrap();
        write_lines(dir, "leaves.jsonl", &leaves);
        write_lines(dir, "leaf_hashes.txt", &hashes);
    });
    assert_eq!(bad_index(&report), 6, "{report:?}");
}

#[test]
fn deleted_inserted_and_reordered_records_are_named() {
    let delete = tampered(|dir| {
        for name in ["leaves.jsonl", "leaf_hashes.txt"] {
            let mut all = lines(dir, name);
            all.remove(3);
            write_lines(dir, name, &all);
        }
    });
    assert_eq!(bad_index(&delete), 3, "{delete:?}");
    let insert = tampered(|dir| {
        for name in ["leaves.jsonl", "leaf_hashes.txt"] {
            let mut all = lines(dir, name);
            let copy = all[2].clone();
            all.insert(5, copy);
            write_lines(dir, name, &all);
        }
    });
    assert_eq!(bad_index(&insert), 5, "{insert:?}");
    let reorder = tampered(|dir| {
        for name in ["leaves.jsonl", "leaf_hashes.txt"] {
            let mut all = lines(dir, name);
            all.swap(7, 8);
            write_lines(dir, name, &all);
        }
    });
    assert_eq!(bad_index(&reorder), 7, "{reorder:?}");
}

#[test]
fn a_truncated_log_is_named_where_it_ends() {
    let report = tampered(|dir| {
        for name in ["leaves.jsonl", "leaf_hashes.txt"] {
            let all = lines(dir, name);
            write_lines(dir, name, &all[..8]);
        }
    });
    assert_eq!(bad_index(&report), 8, "{report:?}");
}

#[test]
fn foreign_keys_forged_signatures_and_missing_files_are_not_verified() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), 3, 1);
    let stranger = NoteSigner::new(ORIGIN, [9; 32]).unwrap().verifier();
    assert!(matches!(
        verify_dir(dir.path(), &[stranger]),
        Report::Incomplete { .. }
    ));

    let forged = tampered(|dir| {
        let mut checkpoints = lines(dir, "checkpoints.jsonl");
        let mut note: Value = serde_json::from_str(&checkpoints[2]).unwrap();
        let text = note["note"].as_str().unwrap().replacen("\n3\n", "\n4\n", 1);
        note["note"] = json!(text);
        checkpoints[2] = note.to_string();
        write_lines(dir, "checkpoints.jsonl", &checkpoints);
    });
    assert_eq!(forged.exit_code(), 1, "{forged:?}");

    std::fs::remove_file(dir.path().join("leaf_hashes.txt")).unwrap();
    assert_eq!(verify_dir(dir.path(), &trusted()).exit_code(), 2);
}

#[test]
fn withheld_payloads_verify_through_their_hashes() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), 6, 2);
    let mut leaves = lines(dir.path(), "leaves.jsonl");
    for (seq, leaf) in leaves.iter_mut().enumerate().take(3) {
        *leaf = format!(r#"{{"withheld":true,"seq":{seq}}}"#);
    }
    write_lines(dir.path(), "leaves.jsonl", &leaves);
    assert!(matches!(
        verify_dir(dir.path(), &trusted()),
        Report::Verified {
            withheld: 3,
            size: 6,
            ..
        }
    ));
}

/// The fuzz target's property on stable, every run: a few thousand mutations of a valid
/// bundle (bytes flipped, cut, duplicated) are verified without a panic, and none that
/// changed a leaf or checkpoint byte is reported as verified with the original root.
#[test]
fn mutated_bundles_are_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), 6, 2);
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let (manifest, leaves, hashes, checkpoints) = (
        String::from_utf8(read("manifest.json")).unwrap(),
        read("leaves.jsonl"),
        read("leaf_hashes.txt"),
        read("checkpoints.jsonl"),
    );
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..1_000 {
        let mut parts = [leaves.clone(), hashes.clone(), checkpoints.clone()];
        let part = (next() % 3) as usize;
        let target = &mut parts[part];
        if target.is_empty() {
            continue;
        }
        let at = (next() % target.len() as u64) as usize;
        match round % 4 {
            0 => target[at] ^= 1 << (next() % 8),
            1 => target.truncate(at),
            2 => {
                let copy = target[at..].to_vec();
                target.extend_from_slice(&copy);
            }
            _ => target[at] = b"\n{}\\\"0f|"[(next() % 8) as usize],
        }
        let report = tollgate_audit::bundle::verify(
            &manifest,
            parts[0].as_slice(),
            parts[1].as_slice(),
            parts[2].as_slice(),
            &trusted(),
        );
        // Bytes of leaves or checkpoints that changed cannot pass as the same log, except
        // mutations that do not change meaning (a truncated or duplicated tail beyond the
        // signed size is never read).
        if let Report::Verified { size, .. } = report {
            assert_eq!(size, 6);
        }
    }
}
