//! Signing checkpoints of a growing log (`AuditService::checkpoint`) on a real SQLite store:
//! a checkpoint extends the tree this process signed last by the leaves appended since, its
//! root is the whole log's, and a stored leaf that changed is still caught — at once by a
//! process that starts, and within `FULL_CHECK_EVERY` checkpoints by one that keeps running.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;
use time::OffsetDateTime;
use tollgate::services::audit::{AuditService, CheckpointOutcome, RecordEncoder};
use tollgate::services::audit_events::{Actor, AuditEvent, Record};
use tollgate_audit::keys::LogKeys;
use tollgate_audit::merkle;
use tollgate_domain::TenantId;
use tollgate_store::{AuditStore, LeafFilter, SqliteStore};

const PREFIX: &str = "tollgate.test";

async fn append(store: &SqliteStore, count: usize) {
    let tenant = TenantId::default_tenant();
    let drafts: Vec<_> = (0..count)
        .map(|_| {
            Record::new(
                AuditEvent::WaiverRemoved,
                &Actor::system(),
                OffsetDateTime::now_utc(),
            )
            .draft()
        })
        .collect();
    store.append_audit(&tenant, &drafts).await.unwrap();
}

fn service(store: &Arc<SqliteStore>) -> AuditService {
    AuditService::new(
        store.clone(),
        LogKeys::generate(&format!("{PREFIX}/default")).unwrap(),
        PREFIX,
        Duration::from_secs(3600),
    )
}

#[tokio::test]
async fn checkpoints_extend_the_signed_tree_and_a_changed_leaf_is_still_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = Arc::new(SqliteStore::open(path.to_str().unwrap()).await.unwrap());
    store
        .set_leaf_encoder(Arc::new(RecordEncoder::new(PREFIX)))
        .unwrap();
    let tenant = TenantId::default_tenant();
    let audit = service(&store);

    // Growing: every checkpoint's root is the root of every leaf stored.
    for round in 1..=5 {
        append(&store, round * 3).await;
        // Between checkpoints the signed tree is advanced by what was appended so far (a no-op
        // before the first checkpoint); the checkpoint reads only what came after.
        let advanced = audit.advance(&tenant).await.unwrap();
        // Round 1 has no signed tree yet; later rounds start at the previous checkpoint.
        let appended_since_checkpoint: u64 = if round == 1 { 0 } else { round as u64 * 3 };
        assert_eq!(advanced, appended_since_checkpoint);
        append(&store, round).await;
        assert!(matches!(
            audit.checkpoint(&tenant).await.unwrap(),
            CheckpointOutcome::Signed { .. }
        ));
        let size = store.audit_size(&tenant).await.unwrap();
        let all = store.audit_leaf_hashes(&tenant, 0, size).await.unwrap();
        let latest = store.latest_checkpoint(&tenant).await.unwrap().unwrap();
        assert_eq!((latest.size, latest.root), (size, merkle::root(&all)));
    }

    // A leaf in the signed part of the log changes under the running process.
    let mut connection = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE audit_leaves SET leaf_hash = ? WHERE tenant_id = 'default' AND seq = 2")
        .bind([7_u8; 32].as_slice())
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();

    // A process that starts reads the whole log: it refuses at once and records why.
    append(&store, 1).await;
    let restarted = service(&store);
    let refused = restarted.checkpoint(&tenant).await.unwrap_err();
    assert!(
        format!("{refused:#}").contains("refusing to sign"),
        "{refused:#}"
    );

    // The running process extends what it signed, advanced between checkpoints (it does not
    // read the old leaves again), until its next whole-log check, which refuses.
    let mut signed = 0;
    let refusal = loop {
        append(&store, 1).await;
        audit.advance(&tenant).await.unwrap();
        append(&store, 1).await;
        match audit.checkpoint(&tenant).await {
            Ok(_) => signed += 1,
            Err(error) => break error,
        }
        assert!(
            signed <= 60,
            "a changed leaf went unnoticed for {signed} checkpoints"
        );
    };
    assert!(
        signed >= 1,
        "the first checkpoint after the change read the whole log"
    );
    assert!(
        format!("{refusal:#}").contains("refusing to sign"),
        "{refusal:#}"
    );
    let alerts = store
        .audit_leaves(
            &tenant,
            &LeafFilter {
                from: 0,
                event_type: Some("integrity.alert".to_owned()),
                since: None,
                until: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(alerts.len(), 2, "one alert from each refusal");
}
