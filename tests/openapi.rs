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
        // /mcp speaks JSON-RPC (the Model Context Protocol, docs/MCP.md), not REST.
        .filter(|r| {
            !r.path.starts_with("/api/docs") && r.path != "/api/openapi.json" && r.path != "/mcp"
        })
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, table);
}

/// docs/API.md's permission table is generated from the route table the server enforces.
#[test]
fn the_permission_table_in_the_docs_is_current() {
    use tollgate::http::routes::Access;
    let mut text = String::from(
        "# HTTP API: routes and permissions\n\n\
Generated from `src/http/routes.rs` (the table the server enforces) by\n\
`TOLLGATE_WRITE_DOCS=1 cargo test --test openapi`. Request and response shapes: the OpenAPI\n\
document at `/api/openapi.json` (snapshot: docs/openapi.json), browsable at `/api/docs`.\n\n\
Roles, lowest first: viewer < developer < operator < release_manager < admin; a role holds the\n\
permissions of every role below it.\n\n\
| method | route | needs | lowest role |\n|---|---|---|---|\n",
    );
    for route in ROUTES {
        let (needs, role) = match route.access {
            Access::Public => ("nothing (public)".to_owned(), "-".to_owned()),
            Access::WebhookSecret => ("the tenant's webhook secret".to_owned(), "-".to_owned()),
            Access::Authenticated => ("any credential".to_owned(), "viewer".to_owned()),
            Access::Requires(permission) => (
                format!("`{permission}`"),
                permission.minimum_role().to_string(),
            ),
        };
        text.push_str(&format!(
            "| {} | `{}` | {needs} | {role} |\n",
            route.method, route.path
        ));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/API.md");
    if std::env::var_os("TOLLGATE_WRITE_DOCS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert!(
        std::fs::read_to_string(&path).unwrap_or_default() == text,
        "docs/API.md is stale: run `TOLLGATE_WRITE_DOCS=1 cargo test --test openapi`"
    );
}
