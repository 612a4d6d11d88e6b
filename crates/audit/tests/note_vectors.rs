//! Signed-note vectors (golang.org/x/mod sumdb/note tests, C2SP's checkpoint example): the
//! published keys, signatures and exact note bytes, and malformed notes that must be refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use tollgate_audit::checkpoint::Checkpoint;
use tollgate_audit::note::{self, NoteError, NoteSigner, NoteVerifier};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/signed-note")
        .join(name)
}

fn vectors() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("golang-sumdb-note.json")).unwrap())
        .unwrap()
}

fn seed(hex: &str) -> [u8; 32] {
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap()
}

#[test]
fn the_published_keys_sign_the_published_bytes() {
    let vectors = vectors();
    let peter = &vectors["signers"][0];
    let signer = NoteSigner::from_key_string(peter["signerKey"].as_str().unwrap()).unwrap();
    assert_eq!(
        signer.verifier().to_key_string(),
        peter["verifierKey"].as_str().unwrap()
    );
    assert_eq!(
        signer.seed(),
        seed(peter["ed25519SeedHex"].as_str().unwrap())
    );
    let text = vectors["noteText"].as_str().unwrap();
    let signed = note::sign(text, &[&signer], 0).unwrap();
    let exact =
        std::fs::read_to_string(fixture("golang-sumdb-note-peterneumann.signed-note.txt")).unwrap();
    assert_eq!(signed, exact);
    assert_eq!(signed, vectors["signedNoteSingle"].as_str().unwrap());
}

#[test]
fn notes_open_with_trusted_keys_and_ignore_unknown_signers() {
    let vectors = vectors();
    let text = vectors["noteText"].as_str().unwrap();
    let peter =
        NoteVerifier::parse(vectors["signers"][0]["verifierKey"].as_str().unwrap()).unwrap();
    let enoch =
        NoteVerifier::parse(vectors["signers"][1]["verifierKey"].as_str().unwrap()).unwrap();
    let both = format!(
        "{text}\n{}{}",
        vectors["signers"][0]["signatureLine"].as_str().unwrap(),
        vectors["signers"][1]["signatureLine"].as_str().unwrap()
    );
    let (_, verified) = note::open(&both, &[peter.clone(), enoch.clone()]).unwrap();
    assert_eq!(verified.signed_by, ["PeterNeumann", "EnochRoot"]);
    let (_, verified) = note::open(&both, std::slice::from_ref(&enoch)).unwrap();
    assert_eq!(verified.signed_by, ["EnochRoot"]);
    // A key the note was never signed with proves nothing.
    let stranger = NoteSigner::new("Stranger", [3; 32]).unwrap().verifier();
    assert_eq!(note::open(&both, &[stranger]), Err(NoteError::Unverified));
}

#[test]
fn every_malformed_note_is_refused() {
    let vectors = vectors();
    let peter =
        NoteVerifier::parse(vectors["signers"][0]["verifierKey"].as_str().unwrap()).unwrap();
    let cases = vectors["malformedNotes_mustReject"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let text = case.as_str().unwrap();
        assert!(
            note::open(text, std::slice::from_ref(&peter)).is_err(),
            "{text:?}"
        );
    }
}

#[test]
fn the_c2sp_example_checkpoint_parses() {
    let text =
        std::fs::read_to_string(fixture("c2sp-tlog-checkpoint-example.parse-only.txt")).unwrap();
    let parsed = note::parse(&text).unwrap();
    let checkpoint = Checkpoint::parse(&parsed.text).unwrap();
    assert_eq!(checkpoint.size, 20_852_163);
    assert_eq!(parsed.signatures.len(), 1);
    assert_eq!(parsed.signatures[0].blob.len(), 64);
    assert_eq!(checkpoint.body(), parsed.text);
}
