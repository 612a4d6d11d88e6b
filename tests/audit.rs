//! The audit log end to end through the binary: `tollgate demo` leaves a log that exports
//! and verifies offline; then records are modified, deleted, inserted, reordered and
//! truncated directly in the database, and `audit verify` exits 1 naming the first bad
//! record each time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr as _;

use serde_json::Value;
use sqlx::{Connection, Row, SqliteConnection};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn tollgate(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN)
        .current_dir(dir)
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("TOLLGATE_DB")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A copy of the demo database (and its keys) under `name`.
fn copy_db(dir: &Path, name: &str) -> PathBuf {
    let db = dir.join(name);
    std::fs::copy(dir.join("demo.db"), &db).unwrap();
    // The WAL holds recent commits: a copy without it would lose them.
    for suffix in [".audit-key", ".audit-key.pub", "-wal", "-shm"] {
        let from = dir.join(format!("demo.db{suffix}"));
        if from.exists() {
            std::fs::copy(from, dir.join(format!("{name}{suffix}"))).unwrap();
        }
    }
    db
}

async fn connect(db: &Path) -> SqliteConnection {
    SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

async fn leaf(connection: &mut SqliteConnection, seq: i64) -> (Vec<u8>, Vec<u8>) {
    let row = sqlx::query(
        "SELECT bytes, leaf_hash FROM audit_leaves WHERE tenant_id = 'default' AND seq = ?",
    )
    .bind(seq)
    .fetch_one(&mut *connection)
    .await
    .unwrap();
    (row.get("bytes"), row.get("leaf_hash"))
}

async fn set_leaf(connection: &mut SqliteConnection, seq: i64, bytes: &[u8], hash: &[u8]) {
    sqlx::query(
        "UPDATE audit_leaves SET bytes = ?, leaf_hash = ? WHERE tenant_id = 'default' AND seq = ?",
    )
    .bind(bytes)
    .bind(hash)
    .bind(seq)
    .execute(&mut *connection)
    .await
    .unwrap();
}

/// Export the named database and verify the bundle with the demo's public keys.
fn export_and_verify(dir: &Path, name: &str) -> (i32, String) {
    let bundle = dir.join(format!("{name}.bundle"));
    let (code, _, stderr) = tollgate(
        dir,
        &[
            "audit",
            "export",
            "--db",
            name,
            "--output",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "export of {name}: {stderr}");
    let (code, stdout, stderr) = tollgate(
        dir,
        &[
            "audit",
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-keys",
            "demo.db.audit-key.pub",
        ],
    );
    (code, format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_log_verifies_and_every_kind_of_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = tollgate(
        dir.path(),
        &["demo", "--profile", "small", "--db", "demo.db"],
    );
    assert_eq!(code, 0, "{stderr}");

    let (code, output) = export_and_verify(dir.path(), "demo.db");
    assert_eq!(code, 0, "{output}");
    assert!(output.starts_with("verified: "), "{output}");

    // The log holds what the demo did.
    let bundle = std::fs::read_to_string(dir.path().join("demo.db.bundle/leaves.jsonl")).unwrap();
    let types: Vec<String> = bundle
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["event"]["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types[0], "log.genesis");
    for expected in [
        "ado.audit",
        "sync.completed",
        "evaluation.completed",
        "finding.opened",
    ] {
        assert!(
            types.iter().any(|t| t == expected),
            "{expected} missing from {types:?}"
        );
    }

    // A record's inclusion proof leads to a signed checkpoint.
    let record: Value = serde_json::from_str(bundle.lines().nth(3).unwrap()).unwrap();
    let (code, proof, stderr) = tollgate(
        dir.path(),
        &[
            "audit",
            "proof",
            "--db",
            "demo.db",
            "--id",
            record["id"].as_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let proof: Value = serde_json::from_str(&proof).unwrap();
    assert_eq!(proof["seq"], 3);
    assert!(
        proof["checkpoint"]
            .as_str()
            .unwrap()
            .contains("tollgate/default\n")
    );

    // Modified: one record's bytes changed (still canonical JSON).
    let db = copy_db(dir.path(), "modified.db");
    let mut connection = connect(&db).await;
    let (bytes, hash) = leaf(&mut connection, 5).await;
    assert_eq!(
        bytes.first(),
        Some(&b'{'),
        "record 5 is small, so stored unpacked"
    );
    let mut changed: Value = serde_json::from_slice(&bytes).unwrap();
    changed["event"]["outcome"] = Value::from("failure");
    let changed = serde_json::to_vec(&changed).unwrap();
    set_leaf(&mut connection, 5, &changed, &hash).await;
    connection.close().await.unwrap();
    let (code, output) = export_and_verify(dir.path(), "modified.db");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("at record 5:"), "{output}");

    // Deleted: one record gone.
    let db = copy_db(dir.path(), "deleted.db");
    let mut connection = connect(&db).await;
    sqlx::query("DELETE FROM audit_leaves WHERE tenant_id = 'default' AND seq = 7")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    let (code, output) = export_and_verify(dir.path(), "deleted.db");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("at record 7:"), "{output}");

    // Reordered: two records swapped.
    let db = copy_db(dir.path(), "reordered.db");
    let mut connection = connect(&db).await;
    let (first, first_hash) = leaf(&mut connection, 9).await;
    let (second, second_hash) = leaf(&mut connection, 10).await;
    set_leaf(&mut connection, 9, &second, &second_hash).await;
    set_leaf(&mut connection, 10, &first, &first_hash).await;
    connection.close().await.unwrap();
    let (code, output) = export_and_verify(dir.path(), "reordered.db");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("at record 9:"), "{output}");

    // Inserted: a copy of record 2 slipped in at 4, the rest moved up.
    let db = copy_db(dir.path(), "inserted.db");
    let mut connection = connect(&db).await;
    let (copy, copy_hash) = leaf(&mut connection, 2).await;
    sqlx::query(
        "UPDATE audit_leaves SET seq = seq + 1000000 WHERE tenant_id = 'default' AND seq >= 4",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE audit_leaves SET seq = seq - 999999 WHERE tenant_id = 'default' AND seq >= 1000000",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO audit_leaves (tenant_id, seq, record_id, event_type, time, logged, leaf_hash, bytes) \
         VALUES ('default', 4, 'forged', 'x', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', ?, ?)",
    )
    .bind(&copy_hash)
    .bind(&copy)
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    let (code, output) = export_and_verify(dir.path(), "inserted.db");
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("at record 4:"), "{output}");

    // Truncated: the tail cut off.
    let db = copy_db(dir.path(), "truncated.db");
    let mut connection = connect(&db).await;
    sqlx::query("DELETE FROM audit_leaves WHERE tenant_id = 'default' AND seq >= 20")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    let (code, output) = export_and_verify(dir.path(), "truncated.db");
    assert_eq!(code, 1, "{output}");
    // Signing noticed first: the log no longer extends its checkpoint, so it refused to sign
    // and recorded an integrity alert where the tail was cut (leaf 20); the verifier then
    // finds the log shorter than the signed checkpoint says.
    assert!(
        output.contains("at record 21: the log ends at 21 leaves"),
        "{output}"
    );
    let leaves =
        std::fs::read_to_string(dir.path().join("truncated.db.bundle/leaves.jsonl")).unwrap();
    let alert: Value = serde_json::from_str(leaves.lines().nth(20).unwrap()).unwrap();
    assert_eq!(alert["event"]["type"], "integrity.alert");

    // Key rotation: the log records the new keys under a checkpoint of the old one; with the
    // public key file (old and new keys) every checkpoint verifies.
    copy_db(dir.path(), "rotated.db");
    let (code, stdout, stderr) =
        tollgate(dir.path(), &["audit", "rotate-key", "--db", "rotated.db"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("new audit keys in "), "{stdout}");
    // An export appends a record; the next one signs its checkpoint with the new key.
    let first = dir.path().join("rotated-first.bundle");
    let (code, _, stderr) = tollgate(
        dir.path(),
        &[
            "audit",
            "export",
            "--db",
            "rotated.db",
            "--output",
            first.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let bundle = dir.path().join("rotated.bundle");
    let (code, _, stderr) = tollgate(
        dir.path(),
        &[
            "audit",
            "export",
            "--db",
            "rotated.db",
            "--output",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = tollgate(
        dir.path(),
        &[
            "audit",
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-keys",
            "rotated.db.audit-key.pub",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
    let leaves = std::fs::read_to_string(bundle.join("leaves.jsonl")).unwrap();
    assert!(leaves.contains(r#""type":"log.key_rotation""#));
    // The old keys alone do not vouch for checkpoints signed after the rotation.
    let (code, stdout, _) = tollgate(
        dir.path(),
        &[
            "audit",
            "verify",
            bundle.to_str().unwrap(),
            "--trusted-keys",
            "demo.db.audit-key.pub",
        ],
    );
    assert_eq!(code, 2, "{stdout}");

    // Retention withholds payloads; the log still verifies through the kept hashes.
    copy_db(dir.path(), "pruned.db");
    let (code, stdout, stderr) = tollgate(
        dir.path(),
        &[
            "audit",
            "prune",
            "--db",
            "pruned.db",
            "--before",
            "2999-01-01T00:00:00Z",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("withheld the payloads of "), "{stdout}");
    let (code, output) = export_and_verify(dir.path(), "pruned.db");
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("payloads withheld by retention"),
        "{output}"
    );
    let leaves = std::fs::read_to_string(dir.path().join("pruned.db.bundle/leaves.jsonl")).unwrap();
    assert!(
        leaves
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(r#"{"withheld":true"#)
    );
    assert!(
        leaves
            .lines()
            .any(|l| l.contains(r#""type":"log.retention""#))
    );

    // Usage errors are 3; a bundle without trusted keys for it is incomplete (2).
    let (code, _, _) = tollgate(
        dir.path(),
        &[
            "audit",
            "verify",
            "no-such-dir",
            "--trusted-keys",
            "demo.db.audit-key.pub",
        ],
    );
    assert_eq!(code, 3);
    let stranger = dir.path().join("stranger.pub");
    std::fs::write(
        &stranger,
        "tollgate+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
    )
    .unwrap();
    let (code, stdout, _) = tollgate(
        dir.path(),
        &[
            "audit",
            "verify",
            "demo.db.bundle",
            "--trusted-keys",
            stranger.to_str().unwrap(),
        ],
    );
    assert!(code == 2 || code == 3, "{code}: {stdout}");
}

/// Tenants added and removed from the command line are records in their own logs.
#[test]
fn tenant_changes_are_recorded_in_the_tenants_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tollgate.toml"),
        "[database]\nurl = \"t.db\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("pat"), "pat\n").unwrap();
    std::fs::write(dir.path().join("hook"), "hook-secret\n").unwrap();
    let (code, _, stderr) = tollgate(
        dir.path(),
        &[
            "tenant",
            "add",
            "contoso",
            "--org",
            "https://dev.azure.com/contoso",
            "--pat-file",
            "pat",
            "--webhook-secret-file",
            "hook",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = tollgate(dir.path(), &["tenant", "remove", "contoso"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = tollgate(
        dir.path(),
        &[
            "audit",
            "export",
            "--tenant",
            "contoso",
            "--output",
            "contoso.bundle",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let leaves = std::fs::read_to_string(dir.path().join("contoso.bundle/leaves.jsonl")).unwrap();
    let types: Vec<String> = leaves
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["event"]["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types[..3],
        ["log.genesis", "tenant.added", "tenant.removed"],
        "{types:?}"
    );
    let (code, stdout, _) = tollgate(
        dir.path(),
        &[
            "audit",
            "verify",
            "contoso.bundle",
            "--trusted-keys",
            "t.db.audit-key.pub",
        ],
    );
    assert_eq!(code, 0, "{stdout}");
}

/// The tamper suite on PostgreSQL: records changed, deleted, reordered and cut off directly
/// in the database (as the owner role, past the application) are named by `audit verify`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_on_postgresql_is_named_too() {
    let (Ok(app), Ok(owner)) = (
        std::env::var("TOLLGATE_TEST_POSTGRES_URL"),
        std::env::var("TOLLGATE_TEST_POSTGRES_OWNER_URL"),
    ) else {
        eprintln!("SKIPPED: no PostgreSQL (eval \"$(scripts/pg-test-cluster.sh start)\")");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the PostgreSQL tests"
        );
        return;
    };
    use sqlx::postgres::PgConnection;
    let with_database = |url: &str, database: &str| {
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
    };
    let app_role = sqlx::postgres::PgConnectOptions::from_str(&app)
        .unwrap()
        .get_username()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tollgate.toml"),
        format!(
            "[audit]\nkey_file = \"{}\"\n",
            dir.path().join("audit.key").display()
        ),
    )
    .unwrap();
    let base = format!("tg_audit_{}", std::process::id());
    let mut admin = PgConnection::connect(&owner).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {base}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (code, _, stderr) = tollgate(
        dir.path(),
        &[
            "migrate",
            "--db",
            &with_database(&owner, &base),
            "--app-role",
            &app_role,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    for n in 0..12 {
        let (code, _, stderr) = tollgate(
            dir.path(),
            &[
                "--config",
                "tollgate.toml",
                "waiver",
                "add",
                "--control",
                "BP-01",
                "--scope",
                &format!("repo-{n}"),
                "--owner",
                "alice",
                "--reason",
                "test",
                "--expires",
                "2099-01-01",
                "--db",
                &with_database(&app, &base),
            ],
        );
        assert_eq!(code, 0, "{stderr}");
    }
    let export_and_verify = |database: &str| {
        let bundle = dir.path().join(format!("{database}.bundle"));
        let (code, _, stderr) = tollgate(
            dir.path(),
            &[
                "--config",
                "tollgate.toml",
                "audit",
                "export",
                "--db",
                &with_database(&app, database),
                "--output",
                bundle.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "export of {database}: {stderr}");
        let (code, stdout, stderr) = tollgate(
            dir.path(),
            &[
                "audit",
                "verify",
                bundle.to_str().unwrap(),
                "--trusted-keys",
                dir.path().join("audit.key.pub").to_str().unwrap(),
            ],
        );
        (code, format!("{stdout}{stderr}"))
    };
    let (code, output) = export_and_verify(&base);
    assert_eq!(code, 0, "{output}");

    // Each case on a copy of the database, changed as its owner (row-level security binds the
    // owner too, so the tenant is set for the session).
    let cases: [(&str, &str, &str); 4] = [
        (
            "modified",
            "UPDATE audit_leaves SET bytes = convert_to(replace(convert_from(bytes, 'UTF8'), '\"outcome\":\"success\"', '\"outcome\":\"failure\"'), 'UTF8') WHERE seq = 5",
            "at record 5:",
        ),
        (
            "deleted",
            "DELETE FROM audit_leaves WHERE seq = 7",
            "at record 7:",
        ),
        (
            "reordered",
            "UPDATE audit_leaves SET seq = CASE seq WHEN 8 THEN 1000008 ELSE 1000009 END WHERE seq IN (8, 9); \
             UPDATE audit_leaves SET seq = CASE seq WHEN 1000008 THEN 9 ELSE 8 END WHERE seq >= 1000000",
            "at record 8:",
        ),
        (
            "truncated",
            "DELETE FROM audit_leaves WHERE seq >= 10",
            "the log ends at",
        ),
    ];
    for (name, tamper, expected) in cases {
        let copy = format!("{base}_{name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {copy} TEMPLATE {base}"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        let mut connection = PgConnection::connect(&with_database(&owner, &copy))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SELECT set_config('app.tenant_id', 'default', false); {tamper}"
        )))
        .execute(&mut connection)
        .await
        .unwrap();
        connection.close().await.unwrap();
        let (code, output) = export_and_verify(&copy);
        assert_eq!(code, 1, "{name}: {output}");
        assert!(output.contains(expected), "{name}: {output}");
    }
}
