//! The layering rules of docs/ARCHITECTURE.md, checked on every test run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::path::Path;

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn services_use_no_adapter_or_concrete_implementation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let forbidden = [
        "axum",
        "clap",
        "askama",
        "rmcp",
        "reqwest",
        "lettre",
        "sqlx",
        "HttpAdoClient",
        "SqliteStore",
        "PostgresStore",
        "tollgate_sim",
        "indicatif",
        "comfy_table",
    ];
    for file in rust_files(&root.join("src/services")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for word in forbidden {
            assert!(
                !text.contains(word),
                "{} mentions {word}: services reach ADO and storage through traits only",
                file.display()
            );
        }
    }
}

#[test]
fn leaf_crates_depend_on_no_other_leaf_than_the_domain() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for leaf in ["domain", "ado", "sim", "store", "policy", "audit"] {
        let manifest =
            std::fs::read_to_string(root.join("crates").join(leaf).join("Cargo.toml")).unwrap();
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        let dependencies = dependencies.split("\n[").next().unwrap_or_default();
        for other in [
            "tollgate-ado",
            "tollgate-sim",
            "tollgate-store",
            "tollgate-policy",
            "tollgate-audit",
        ] {
            assert!(
                !dependencies.contains(other),
                "crates/{leaf} depends on {other}; leaves depend only on tollgate-domain"
            );
        }
        if leaf == "domain" {
            assert!(
                !dependencies.contains("tollgate-"),
                "the domain depends on no tollgate crate"
            );
            for io in ["tokio", "reqwest", "sqlx", "axum"] {
                assert!(
                    !dependencies.contains(io),
                    "the domain crate does no I/O, yet depends on {io}"
                );
            }
        }
    }
}

#[test]
fn only_startup_and_the_cli_name_the_simulator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in rust_files(&root.join("src")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        if text.contains("tollgate_sim") {
            assert!(
                ["cli.rs", "startup.rs"].contains(&name.as_str()),
                "{} uses the simulator",
                file.display()
            );
        }
    }
}
