//! The published Merkle vectors: transparency-dev/merkle's golden inclusion and consistency
//! proofs (every corrupted case must be rejected) and the RFC 6962 reference tree.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tollgate_audit::merkle::{self, Hash};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/merkle")
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(json_files(&path));
        } else if path.extension().is_some_and(|e| e == "json") {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// A base64 value as a hash; `None` when it is not 32 bytes (some negative cases).
fn hash(value: &Value) -> Option<Hash> {
    STANDARD.decode(value.as_str()?).ok()?.try_into().ok()
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    STANDARD.decode(value.as_str()?).ok()
}

fn proof(value: &Value) -> Option<Vec<Hash>> {
    value
        .as_array()
        .map(|items| items.iter().map(hash).collect::<Option<Vec<_>>>())
        .unwrap_or(Some(Vec::new()))
}

#[test]
fn every_inclusion_vector_is_accepted_or_rejected_as_published() {
    let files = json_files(&fixtures().join("inclusion"));
    assert!(files.len() > 50, "{}", files.len());
    for file in files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let want_error = case["wantErr"].as_bool().unwrap();
        let verdict = match (
            bytes(&case["root"]),
            hash(&case["leafHash"]),
            proof(&case["proof"]),
        ) {
            (Some(root), Some(leaf), Some(proof)) => merkle::verify_inclusion(
                case["leafIdx"].as_u64().unwrap(),
                case["treeSize"].as_u64().unwrap(),
                &leaf,
                &proof,
                &root,
            )
            .is_ok(),
            _ => false,
        };
        assert_eq!(verdict, !want_error, "{}", file.display());
    }
}

#[test]
fn every_consistency_vector_is_accepted_or_rejected_as_published() {
    let files = json_files(&fixtures().join("consistency"));
    assert!(files.len() > 50, "{}", files.len());
    for file in files {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let want_error = case["wantErr"].as_bool().unwrap();
        let verdict = match (
            bytes(&case["root1"]),
            bytes(&case["root2"]),
            proof(&case["proof"]),
        ) {
            (Some(root1), Some(root2), Some(proof)) => merkle::verify_consistency(
                case["size1"].as_u64().unwrap(),
                case["size2"].as_u64().unwrap(),
                &root1,
                &root2,
                &proof,
            )
            .is_ok(),
            _ => false,
        };
        assert_eq!(verdict, !want_error, "{}", file.display());
    }
}

fn hex(value: &Value) -> Vec<u8> {
    let text = value.as_str().unwrap();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_hash(value: &Value) -> Hash {
    hex(value).try_into().unwrap()
}

#[test]
fn the_rfc6962_reference_tree_is_rebuilt_exactly() {
    let tree: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("rfc6962-reference-tree.json")).unwrap(),
    )
    .unwrap();
    let leaves: Vec<Hash> = tree["leafInputsHex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|input| merkle::leaf_hash(&hex(input)))
        .collect();
    for (size, expected) in tree["rootHexByTreeSize"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(
            merkle::root(&leaves[..size]),
            hex_hash(expected),
            "root of {size}"
        );
        let mut frontier = merkle::Frontier::new();
        leaves[..size].iter().for_each(|leaf| frontier.push(*leaf));
        assert_eq!(frontier.root(), hex_hash(expected), "frontier of {size}");
    }
    for case in tree["inclusionProofs"].as_array().unwrap() {
        let index = case["leafIndex"].as_u64().unwrap();
        let size = case["treeSize"].as_u64().unwrap();
        let expected: Vec<Hash> = case["proofHex"]
            .as_array()
            .unwrap()
            .iter()
            .map(hex_hash)
            .collect();
        let generated = merkle::inclusion_proof(index as usize, &leaves[..size as usize]).unwrap();
        assert_eq!(generated, expected, "inclusion of {index} in {size}");
        merkle::verify_inclusion(
            index,
            size,
            &leaves[index as usize],
            &expected,
            &hex_hash(&case["rootHex"]),
        )
        .unwrap();
    }
    for case in tree["consistencyProofs"].as_array().unwrap() {
        let (old, new) = (case["size1"].as_u64(), case["size2"].as_u64());
        let (old, new) = (old.unwrap(), new.unwrap());
        let expected: Vec<Hash> = case["proofHex"]
            .as_array()
            .unwrap()
            .iter()
            .map(hex_hash)
            .collect();
        let generated = merkle::consistency_proof(old as usize, &leaves[..new as usize]).unwrap();
        assert_eq!(generated, expected, "consistency {old} → {new}");
    }
    let vectors = &tree["hasherVectors"];
    assert_eq!(
        merkle::empty_root().to_vec(),
        hex(&vectors["emptyTreeRootHex"])
    );
    assert_eq!(
        merkle::leaf_hash(b"").to_vec(),
        hex(&vectors["emptyLeafHashHex"])
    );
    assert_eq!(
        merkle::leaf_hash(
            vectors["leafHash"]["leafInputAscii"]
                .as_str()
                .unwrap()
                .as_bytes()
        )
        .to_vec(),
        hex(&vectors["leafHash"]["hashHex"])
    );
}
