//! A database of its own on the PostgreSQL test cluster (`eval "$(scripts/pg-test-cluster.sh
//! start)"`), migrated by the real binary as the owner role, for black-box tests.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::process::Command;
use std::str::FromStr as _;

use sqlx::Connection as _;

/// `url` with its database replaced by `database` (the query string kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let root = base[authority..]
        .find('/')
        .map_or(base, |slash| &base[..authority + slash]);
    if query.is_empty() {
        format!("{root}/{database}")
    } else {
        format!("{root}/{database}?{query}")
    }
}

/// A new, migrated database on the test cluster: the app role's URL for it. `None` (after a
/// notice) when no cluster is configured, which CI does not allow.
pub async fn migrated_database(name: &str) -> Option<String> {
    let (Ok(app), Ok(owner)) = (
        std::env::var("TOLLGATE_TEST_POSTGRES_URL"),
        std::env::var("TOLLGATE_TEST_POSTGRES_OWNER_URL"),
    ) else {
        eprintln!("SKIPPED: no PostgreSQL (eval \"$(scripts/pg-test-cluster.sh start)\")");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the PostgreSQL tests"
        );
        return None;
    };
    let app_role = sqlx::postgres::PgConnectOptions::from_str(&app)
        .unwrap()
        .get_username()
        .to_owned();
    let database = format!("tg_{name}_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&owner).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let migrated = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args([
            "migrate",
            "--db",
            &with_database(&owner, &database),
            "--app-role",
            &app_role,
        ])
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    Some(with_database(&app, &database))
}
