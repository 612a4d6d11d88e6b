//! Writes the verify_bundle fuzz target's seed: a small valid bundle signed with the key the
//! target trusts, its four files joined by 0xFF bytes.
//! `cargo run -p tollgate-audit --example fuzz_seed -- fuzz/corpus/verify_bundle/seed-valid`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a developer tool")]

use serde_json::{Map, json};
use tollgate_audit::bundle::BundleWriter;
use tollgate_audit::checkpoint::Checkpoint;
use tollgate_audit::merkle::Frontier;
use tollgate_audit::note::{self, NoteSigner};
use tollgate_audit::record::{self, Placement};

fn main() {
    let output = std::env::args().nth(1).expect("usage: fuzz_seed OUTPUT");
    let origin = "tollgate/default";
    let dir = tempfile::tempdir().unwrap();
    let mut writer = BundleWriter::create(dir.path(), origin).unwrap();
    let signer = NoteSigner::new(origin, [7; 32]).unwrap();
    let mut frontier = Frontier::new();
    for seq in 0..6_u64 {
        let mut fields = Map::new();
        fields.insert(
            "event".to_owned(),
            json!({"type": "waiver.created", "reason": "a\\b=c|d\n"}),
        );
        let id = format!("id-{seq}");
        let logged = time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(seq as i64);
        let leaf = record::build_leaf(
            &Placement {
                origin,
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
        if seq % 2 == 1 {
            let body = Checkpoint::new(origin, frontier.size(), frontier.root()).body();
            writer
                .checkpoint(&note::sign(&body, &[&signer], seq).unwrap())
                .unwrap();
        }
    }
    writer.finish().unwrap();
    let mut seed = Vec::new();
    for (i, name) in [
        "manifest.json",
        "leaves.jsonl",
        "leaf_hashes.txt",
        "checkpoints.jsonl",
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            seed.push(0xFF);
        }
        seed.extend(std::fs::read(dir.path().join(name)).unwrap());
    }
    std::fs::write(output, seed).unwrap();
}
