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
