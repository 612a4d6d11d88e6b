//! The gate's group commit (`DecisionWriter`) on a real SQLite store: decisions made at the
//! same time are stored together, each caller gets its own answer after the commit, and a
//! decision whose audit record cannot be stored fails alone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::path::Path;
use std::sync::Arc;

use sqlx::Connection as _;

use serde_json::{Map, json};
use time::OffsetDateTime;
use tollgate::services::decision_writer::DecisionWriter;
use tollgate_domain::TenantId;
use tollgate_store::gate::{DecisionWrite, GateDecision, GateStore, NewDecision, Verdict};
use tollgate_store::{AuditDraft, AuditStore, EncodedLeaf, LeafEncoder, LeafFilter, SqliteStore};

/// Encodes a record as its type; refuses `refuse.me` as the real encoder refuses a record
/// it cannot encode (too large, a float).
struct TypeEncoder;

impl LeafEncoder for TypeEncoder {
    fn encode(
        &self,
        _tenant: &TenantId,
        draft: &AuditDraft,
        seq: u64,
        _logged: OffsetDateTime,
    ) -> Result<EncodedLeaf, String> {
        if draft.event_type == "refuse.me" {
            return Err("cannot encode".to_owned());
        }
        Ok(EncodedLeaf {
            record_id: format!("r{seq}"),
            bytes: draft.event_type.clone().into_bytes(),
            hash: [seq as u8; 32],
        })
    }
}

fn write(n: usize, event_type: &str) -> DecisionWrite {
    let now = OffsetDateTime::now_utc();
    DecisionWrite {
        new: NewDecision {
            decision: GateDecision {
                id: format!("gd_{n}"),
                key: format!("ado:plan:job:{n}"),
                source: "ado-check".to_owned(),
                mode: "sync".to_owned(),
                verdict: Verdict::Allow,
                project: "Payments".to_owned(),
                environment: "production".to_owned(),
                pipeline: None,
                run_id: Some(n as u64),
                requested_by: None,
                findings: tollgate_domain::CanonicalJson::new(&json!([])).unwrap(),
                input: tollgate_domain::CanonicalJson::new(&json!({"n": n})).unwrap(),
                callback: None,
                callback_state: None,
                approval_id: None,
                decided_at: now,
            },
            callback_token: None,
            approval: None,
            callback_job: None,
            notices: Vec::new(),
        },
        audit: vec![AuditDraft {
            encoded: Default::default(),
            event_type: event_type.to_owned(),
            time: now,
            fields: Map::new(),
            dedupe_key: None,
        }],
    }
}

/// A SQLite store at `path` and the default tenant's writer on it.
async fn writer_on(path: &Path) -> (Arc<SqliteStore>, Arc<DecisionWriter>) {
    let store = Arc::new(SqliteStore::open(path.to_str().unwrap()).await.unwrap());
    store.set_leaf_encoder(Arc::new(TypeEncoder)).unwrap();
    let writer = Arc::new(DecisionWriter::new(
        store.clone(),
        TenantId::default_tenant(),
    ));
    (store, writer)
}

/// Many checks at once: each gets its own answer after its commit, a decision whose record
/// cannot be stored fails alone, and nothing is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_are_stored_each_with_its_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writer.db");
    let (store, writer) = writer_on(&path).await;
    let tenant = TenantId::default_tenant();
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..64 {
        let writer = writer.clone();
        let event_type = if n == 17 { "refuse.me" } else { "gate.decided" };
        calls.spawn(async move { (n, writer.record(write(n, event_type)).await) });
    }
    let mut stored = 0;
    while let Some(done) = calls.join_next().await {
        let (n, outcome) = done.unwrap();
        match outcome {
            Ok(recorded) => {
                assert!(recorded.created, "{n}");
                assert_eq!(recorded.decision.id, format!("gd_{n}"));
                stored += 1;
            }
            Err(error) => {
                assert_eq!(n, 17, "only the refused record fails: {error}");
                assert!(error.to_string().contains("cannot encode"), "{error}");
            }
        }
    }
    assert_eq!(stored, 63);
    let leaves = store
        .audit_leaves(
            &tenant,
            &LeafFilter {
                limit: 1_000,
                ..LeafFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(leaves.len(), 63);
    assert!(
        store
            .decision_by_key(&tenant, "ado:plan:job:17")
            .await
            .unwrap()
            .is_none()
    );
    // The same check again is answered with the stored decision, not stored twice.
    let again = writer.record(write(3, "gate.decided")).await.unwrap();
    assert!(!again.created);
    assert_eq!(store.audit_size(&tenant).await.unwrap(), 63);
}

/// A failure that is not one decision's fault (here the decisions' table is gone) fails every
/// caller of the batch at once, each with the database's words; nothing is stored, and the
/// writer goes on with the next batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_failure_fails_the_batch_at_once_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writer.db");
    let (store, writer) = writer_on(&path).await;
    let tenant = TenantId::default_tenant();
    writer.record(write(0, "gate.decided")).await.unwrap();

    let mut raw = sqlx::SqliteConnection::connect(path.to_str().unwrap())
        .await
        .unwrap();
    sqlx::raw_sql("ALTER TABLE gate_decisions RENAME TO gate_decisions_away")
        .execute(&mut raw)
        .await
        .unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for n in 1..=16 {
        let writer = writer.clone();
        calls.spawn(async move { writer.record(write(n, "gate.decided")).await });
    }
    while let Some(done) = calls.join_next().await {
        let error = done.unwrap().expect_err("the table is gone");
        assert!(
            error.to_string().contains("gate_decisions"),
            "the database's words: {error}"
        );
    }
    assert_eq!(store.audit_size(&tenant).await.unwrap(), 1);

    sqlx::raw_sql("ALTER TABLE gate_decisions_away RENAME TO gate_decisions")
        .execute(&mut raw)
        .await
        .unwrap();
    let after = writer.record(write(17, "gate.decided")).await.unwrap();
    assert!(after.created);
    assert_eq!(store.audit_size(&tenant).await.unwrap(), 2);
}
