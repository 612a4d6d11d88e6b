//! The OpenAPI document is generated from the code; this snapshot makes API drift a
//! reviewed change (`TOLLGATE_WRITE_DOCS=1 cargo test --test openapi` rewrites it), and the
//! document and the permission table must name the same routes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::collections::BTreeSet;
use std::path::Path;

use tollgate::http::routes::ROUTES;

#[test]
fn the_openapi_document_matches_the_reviewed_snapshot() {
    let document = tollgate::http::openapi::openapi();
    let mut text = serde_json::to_string_pretty(&document).unwrap();
    text.push('\n');
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    if std::env::var_os("TOLLGATE_WRITE_DOCS").is_some() {
        std::fs::write(&snapshot, &text).unwrap();
    }
    let reviewed = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert!(
        reviewed == text,
        "the API changed: review the difference and run `TOLLGATE_WRITE_DOCS=1 cargo test --test openapi` to accept it"
    );
}

#[test]
fn the_document_and_the_permission_table_list_the_same_routes() {
    let document = serde_json::to_value(tollgate::http::openapi::openapi()).unwrap();
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|r| !r.path.starts_with("/api/docs") && r.path != "/api/openapi.json")
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, table);
}
