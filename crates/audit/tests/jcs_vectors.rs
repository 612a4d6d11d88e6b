//! RFC 8785 reference vectors (cyberphone/json-canonicalization): each input canonicalises to
//! exactly the published output bytes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::path::Path;

use serde_json::Value;
use tollgate_audit::record::canonical;

#[test]
fn every_reference_input_canonicalises_to_the_published_bytes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jcs");
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("input")).unwrap() {
        let input = entry.unwrap().path();
        let name = input.file_name().unwrap();
        let value: Value = serde_json::from_slice(&std::fs::read(&input).unwrap()).unwrap();
        let expected = std::fs::read(root.join("output").join(name)).unwrap();
        assert_eq!(
            String::from_utf8(canonical(&value).unwrap()).unwrap(),
            String::from_utf8(expected).unwrap(),
            "{}",
            input.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 6);
}

/// The verifier's fast canonical-form check never contradicts the full one: on the reference
/// inputs and outputs, and on thousands of mutations of a record.
#[test]
fn the_fast_check_never_contradicts_the_full_one() {
    use tollgate_audit::canonical::{Scan, scan};
    let full = |bytes: &[u8]| {
        serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|value| canonical(&value).ok())
            .is_some_and(|c| c == bytes)
    };
    let agree = |bytes: &[u8]| match scan(bytes) {
        Scan::Canonical(_) => assert!(full(bytes), "{:?}", String::from_utf8_lossy(bytes)),
        Scan::NotCanonical => assert!(!full(bytes), "{:?}", String::from_utf8_lossy(bytes)),
        Scan::Undecided => {}
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jcs");
    for dir in ["input", "output"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            agree(&std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    let record = br#"{"actor":{"id":"apikey:x","kind":"service"},"event":{"outcome":"success","reason":"a\nb \"q\" \\ \u001f","type":"waiver.created"},"id":"0196","logged":"2026-11-23T13:41:32.401233Z","n":[1,-2,0,true,null,{}],"origin":"tollgate/default","schema":"tollgate/v1","seq":42}"#;
    assert!(full(record));
    assert!(matches!(scan(record), Scan::Canonical(_)));
    let alphabet = b"{}[]:,\"\\ 0129-.eEtrufalsn\n\x1fu\xc3\xa9";
    let mut state: u64 = 0x1234_5678_9abc_def1;
    for _ in 0..20_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut mutated = record.to_vec();
        let at = (state % mutated.len() as u64) as usize;
        match (state >> 20) % 3 {
            0 => mutated[at] = alphabet[((state >> 32) % alphabet.len() as u64) as usize],
            1 => {
                mutated.remove(at);
            }
            _ => mutated.insert(
                at,
                alphabet[((state >> 32) % alphabet.len() as u64) as usize],
            ),
        }
        agree(&mutated);
    }
}
