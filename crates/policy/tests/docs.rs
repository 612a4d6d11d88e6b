//! docs/controls/ is generated from METADATA; this test fails when it is out of date.
//! `TOLLGATE_WRITE_DOCS=1 cargo test -p tollgate-policy --test docs` rewrites it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;

#[test]
fn the_control_pages_match_the_catalog() {
    let loaded = tollgate_policy::load(&[]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/controls");
    let mut expected: BTreeMap<String, String> = loaded
        .set
        .controls()
        .iter()
        .map(|c| {
            (
                format!("{}.md", c.id),
                tollgate_policy::docs::control_page(c),
            )
        })
        .collect();
    expected.insert(
        "README.md".to_owned(),
        tollgate_policy::docs::index(loaded.set.controls()),
    );
    if std::env::var_os("TOLLGATE_WRITE_DOCS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (name, text) in &expected {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut stale = Vec::new();
    for (name, text) in &expected {
        if std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(text.as_str()) {
            stale.push(name.clone());
        }
    }
    let on_disk: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    stale.extend(
        on_disk
            .into_iter()
            .filter(|name| !expected.contains_key(name)),
    );
    assert!(
        stale.is_empty(),
        "docs/controls is out of date for {stale:?}: run TOLLGATE_WRITE_DOCS=1 cargo test -p tollgate-policy --test docs"
    );
}
