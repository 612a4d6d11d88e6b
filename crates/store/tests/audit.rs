//! The audit log's storage: behaviour every `AuditStore` must show, on real SQLite files and
//! on PostgreSQL (see tests/common).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[macro_use]
mod common;

use std::sync::Arc;

use common::Fixture;
use serde_json::{Map, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::datetime;
use tollgate_domain::TenantId;
use tollgate_store::{
    AuditDraft, EncodedLeaf, LeafEncoder, LeafFilter, StoreError, StoredCheckpoint, StoredLeaf,
};

/// A stand-in for the audit crate's encoder: plain JSON of what the store hands over.
struct TestEncoder;

impl LeafEncoder for TestEncoder {
    fn encode(
        &self,
        tenant: &TenantId,
        draft: &AuditDraft,
        seq: u64,
        logged: OffsetDateTime,
    ) -> Result<EncodedLeaf, String> {
        if draft.event_type == "refuse.me" {
            return Err("not a valid record".to_owned());
        }
        let bytes = json!({
            "origin": tenant.as_str(), "seq": seq, "type": draft.event_type,
            "logged": logged.unix_timestamp_nanos().to_string(), "fields": draft.fields,
        })
        .to_string()
        .into_bytes();
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        Ok(EncodedLeaf {
            record_id: format!("{tenant}-{seq}"),
            bytes,
            hash,
        })
    }
}

/// The fixture's store with the test encoder set.
fn with_encoder(fixture: &Fixture) -> &dyn common::AnyStore {
    fixture
        .store
        .set_leaf_encoder(Arc::new(TestEncoder))
        .unwrap();
    &*fixture.store
}

fn draft(event_type: &str, dedupe_key: Option<&str>) -> AuditDraft {
    let mut fields = Map::new();
    fields.insert("note".to_owned(), json!(event_type));
    AuditDraft {
        encoded: Default::default(),
        event_type: event_type.to_owned(),
        time: datetime!(2026-05-04 12:00 UTC),
        fields,
        dedupe_key: dedupe_key.map(str::to_owned),
    }
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn globex() -> TenantId {
    TenantId::parse("globex").unwrap()
}

/// A tenant's first leaves (up to 100), read back.
async fn first_leaves(store: &dyn common::AnyStore, tenant: &TenantId) -> Vec<StoredLeaf> {
    store
        .audit_leaves(
            tenant,
            &LeafFilter {
                limit: 100,
                ..LeafFilter::default()
            },
        )
        .await
        .unwrap()
}

async fn appends_get_gap_free_positions_per_tenant(fixture: Fixture) {
    let store = with_encoder(&fixture);
    let placed = store
        .append_audit(&acme(), &[draft("a", None), draft("b", None)])
        .await
        .unwrap();
    assert_eq!(placed, [Some(0), Some(1)]);
    assert_eq!(
        store
            .append_audit(&globex(), &[draft("g", None)])
            .await
            .unwrap(),
        [Some(0)],
        "each tenant has its own log"
    );
    assert_eq!(
        store
            .append_audit(&acme(), &[draft("c", None)])
            .await
            .unwrap(),
        [Some(2)]
    );
    assert_eq!(store.audit_size(&acme()).await.unwrap(), 3);
    assert_eq!(
        store
            .audit_size(&TenantId::parse("nobody").unwrap())
            .await
            .unwrap(),
        0
    );

    let leaves = first_leaves(store, &acme()).await;
    let types: Vec<&str> = leaves.iter().map(|l| l.event_type.as_str()).collect();
    assert_eq!(types, ["a", "b", "c"]);
    assert!(leaves.windows(2).all(|w| w[0].logged <= w[1].logged));
    for leaf in &leaves {
        let bytes = leaf.bytes.as_ref().unwrap();
        assert_eq!(<[u8; 32]>::from(Sha256::digest(bytes)), leaf.hash);
    }
    let hashes = store.audit_leaf_hashes(&acme(), 0, 3).await.unwrap();
    assert_eq!(hashes, leaves.iter().map(|l| l.hash).collect::<Vec<_>>());
    let by_id = store
        .audit_leaf_by_id(&acme(), "acme-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.seq, 1);
    assert!(
        store
            .audit_leaf_by_id(&globex(), "acme-1")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.audit_tenants().await.unwrap(), [acme(), globex()]);
}

async fn a_source_id_is_logged_once(fixture: Fixture) {
    let store = with_encoder(&fixture);
    let placed = store
        .append_audit(
            &acme(),
            &[
                draft("ado.audit", Some("ado-1")),
                draft("ado.audit", Some("ado-1")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(placed, [Some(0), None]);
    let again = store
        .append_audit(
            &acme(),
            &[
                draft("ado.audit", Some("ado-1")),
                draft("ado.audit", Some("ado-2")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(again, [None, Some(1)]);
}

async fn a_record_the_encoder_refuses_appends_nothing(fixture: Fixture) {
    let store = with_encoder(&fixture);
    let error = store
        .append_audit(&acme(), &[draft("fine", None), draft("refuse.me", None)])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::InvalidInput(_)), "{error}");
    assert_eq!(store.audit_size(&acme()).await.unwrap(), 0);
}

async fn without_an_encoder_appending_is_a_clear_error(fixture: Fixture) {
    let store = &*fixture.store;
    let error = store
        .append_audit(&acme(), &[draft("a", None)])
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::AuditNotConfigured));
    store.set_leaf_encoder(Arc::new(TestEncoder)).unwrap();
    assert!(store.set_leaf_encoder(Arc::new(TestEncoder)).is_err());
}

async fn withheld_payloads_keep_their_hashes_and_the_cut_is_recorded(fixture: Fixture) {
    let store = with_encoder(&fixture);
    let drafts: Vec<AuditDraft> = (0..5).map(|i| draft(&format!("e{i}"), None)).collect();
    store.append_audit(&acme(), &drafts).await.unwrap();
    let hashes_before = store.audit_leaf_hashes(&acme(), 0, 5).await.unwrap();
    let withheld = store
        .withhold_audit_payloads(&acme(), 3, &draft("log.retention", None))
        .await
        .unwrap();
    assert_eq!(withheld, 2, "leaf 0 (the genesis) is kept");
    let leaves = first_leaves(store, &acme()).await;
    assert_eq!(leaves.len(), 6);
    assert!(leaves[0].bytes.is_some());
    assert!(leaves[1..3].iter().all(|l| l.bytes.is_none()));
    assert!(leaves[3..].iter().all(|l| l.bytes.is_some()));
    assert_eq!(leaves[5].event_type, "log.retention");
    assert_eq!(
        store.audit_leaf_hashes(&acme(), 0, 5).await.unwrap(),
        hashes_before
    );
}

async fn a_missing_leaf_is_reported_not_skipped(fixture: Fixture) {
    let store = with_encoder(&fixture);
    let drafts: Vec<AuditDraft> = (0..4).map(|i| draft(&format!("e{i}"), None)).collect();
    store.append_audit(&acme(), &drafts).await.unwrap();
    let delete = "DELETE FROM audit_leaves WHERE seq = 2";
    fixture.behind_the_store("acme", delete, delete).await;
    let error = store.audit_leaf_hashes(&acme(), 0, 4).await.unwrap_err();
    assert!(error.to_string().contains("leaf 2 is missing"), "{error}");
}

async fn checkpoints_and_sink_cursors_are_kept_per_tenant(fixture: Fixture) {
    let store = with_encoder(&fixture);
    let at = |s: i64| datetime!(2026-05-04 12:00 UTC) + time::Duration::seconds(s);
    for (size, second) in [(1, 0), (3, 5), (3, 3600)] {
        store
            .add_checkpoint(
                &acme(),
                &StoredCheckpoint {
                    size,
                    root: [size as u8; 32],
                    note: format!("acme\n{size}\n"),
                    signed_at: at(second),
                },
            )
            .await
            .unwrap();
    }
    let all = store.checkpoints(&acme(), None, 10).await.unwrap();
    assert_eq!(all.iter().map(|c| c.size).collect::<Vec<_>>(), [1, 3, 3]);
    let later = store.checkpoints(&acme(), Some(at(0)), 10).await.unwrap();
    assert_eq!(later.len(), 2);
    assert_eq!(
        store
            .latest_checkpoint(&acme())
            .await
            .unwrap()
            .unwrap()
            .signed_at,
        at(3600)
    );
    assert!(store.latest_checkpoint(&globex()).await.unwrap().is_none());

    assert_eq!(store.sink_cursor(&acme(), "syslog").await.unwrap(), 0);
    store.set_sink_cursor(&acme(), "syslog", 42).await.unwrap();
    store.set_sink_cursor(&acme(), "syslog", 43).await.unwrap();
    assert_eq!(store.sink_cursor(&acme(), "syslog").await.unwrap(), 43);
    assert_eq!(store.sink_cursor(&globex(), "syslog").await.unwrap(), 0);
}

/// More leaves than one packed read holds (65,536): the hashes still come whole and in
/// order, and any range of them is the same slice of the whole.
async fn leaf_hashes_are_read_whole_and_in_order_past_one_read(fixture: Fixture) {
    let store = with_encoder(&fixture);
    const LEAVES: u64 = 70_000;
    for first in (0..LEAVES).step_by(10_000) {
        let drafts: Vec<AuditDraft> = (first..first + 10_000)
            .map(|i| draft(&format!("e{i}"), None))
            .collect();
        store.append_audit(&acme(), &drafts).await.unwrap();
    }
    let mut expected = Vec::new();
    let mut from = 0;
    loop {
        let page = store
            .audit_leaves(
                &acme(),
                &LeafFilter {
                    from,
                    limit: 10_000,
                    ..LeafFilter::default()
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        expected.extend(
            page.iter()
                .map(|leaf| <[u8; 32]>::from(Sha256::digest(leaf.bytes.as_ref().unwrap()))),
        );
    }
    assert_eq!(expected.len() as u64, LEAVES);
    let hashes = store.audit_leaf_hashes(&acme(), 0, LEAVES).await.unwrap();
    assert!(hashes == expected, "the hashes differ from the leaves' own");
    let middle = store
        .audit_leaf_hashes(&acme(), 65_000, 66_000)
        .await
        .unwrap();
    assert!(middle[..] == expected[65_000..66_000]);
    assert!(
        store
            .audit_leaf_hashes(&acme(), 10, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let error = store
        .audit_leaf_hashes(&acme(), 69_990, LEAVES + 1)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("leaf 70000 is missing"),
        "{error}"
    );
}

async fn a_leaf_hash_of_another_length_is_refused(fixture: Fixture) {
    let store = with_encoder(&fixture);
    let drafts: Vec<AuditDraft> = (0..4).map(|i| draft(&format!("e{i}"), None)).collect();
    store.append_audit(&acme(), &drafts).await.unwrap();
    fixture
        .behind_the_store(
            "acme",
            "UPDATE audit_leaves SET leaf_hash = x'00ff' WHERE seq = 2",
            "UPDATE audit_leaves SET leaf_hash = '\\x00ff'::bytea WHERE seq = 2",
        )
        .await;
    let error = store.audit_leaf_hashes(&acme(), 0, 4).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Corrupt(_)) && error.to_string().contains("not 32 bytes"),
        "{error}"
    );
    assert_eq!(
        store.audit_leaf_hashes(&acme(), 0, 2).await.unwrap().len(),
        2
    );
}

/// A draft whose record is ≈ 3 KB of JSON, like a gate decision's record with its evidence.
fn large_draft(event_type: &str) -> AuditDraft {
    let mut large = draft(event_type, None);
    let facts: Vec<_> = (0..40)
        .map(|i| json!({"environment": "production", "build": {"id": i, "result": "succeeded"}}))
        .collect();
    large.fields.insert("input".to_owned(), json!(facts));
    large
}

/// The hash is the encoder's, over the bytes it made: the bytes read back hash to it only if
/// they are those bytes (however the backend stores them).
async fn a_large_record_reads_back_byte_for_byte(fixture: Fixture) {
    let store = with_encoder(&fixture);
    let drafts = [draft("small", None), large_draft("large")];
    store.append_audit(&acme(), &drafts).await.unwrap();
    let leaves = first_leaves(store, &acme()).await;
    assert_eq!(leaves.len(), 2);
    for (leaf, draft) in leaves.iter().zip(&drafts) {
        let bytes = leaf.bytes.as_ref().unwrap();
        assert_eq!(<[u8; 32]>::from(Sha256::digest(bytes)), leaf.hash);
        let record: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(record["fields"], json!(draft.fields));
    }
    assert!(leaves[1].bytes.as_ref().unwrap().len() > 2_500);
    let by_id = store
        .audit_leaf_by_id(&acme(), "acme-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.bytes, leaves[1].bytes);
}

on_both_backends!(
    a_large_record_reads_back_byte_for_byte,
    leaf_hashes_are_read_whole_and_in_order_past_one_read,
    a_leaf_hash_of_another_length_is_refused,
    appends_get_gap_free_positions_per_tenant,
    a_source_id_is_logged_once,
    a_record_the_encoder_refuses_appends_nothing,
    withheld_payloads_keep_their_hashes_and_the_cut_is_recorded,
    checkpoints_and_sink_cursors_are_kept_per_tenant,
    without_an_encoder_appending_is_a_clear_error,
    a_missing_leaf_is_reported_not_skipped,
);

/// SQLite keeps a large record packed (crates/store/src/sqlite_pack.rs): in under half its
/// bytes, so a page holds several; a small one stays as it is.
#[tokio::test]
async fn on_sqlite_a_large_record_is_stored_packed() {
    let fixture = Fixture::sqlite().await;
    let store = with_encoder(&fixture);
    store
        .append_audit(&acme(), &[draft("small", None), large_draft("large")])
        .await
        .unwrap();
    let mut connection = fixture.sqlite_connection().await;
    let stored: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, bytes FROM audit_leaves WHERE tenant_id = 'acme' ORDER BY seq")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    let leaves = first_leaves(store, &acme()).await;
    let plain = |seq: usize| leaves[seq].bytes.clone().unwrap();
    assert_eq!(stored[0].1, plain(0), "a small record is stored as it is");
    assert!(
        stored[1].1.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]),
        "a zstd frame"
    );
    assert!(
        stored[1].1.len() * 2 < plain(1).len(),
        "{} bytes stored for {}",
        stored[1].1.len(),
        plain(1).len()
    );
}

/// A packed record damaged on disk is read as it is stored, so the rest of the log still
/// reads (exports, sinks) and verification names the record: its hash no longer matches.
#[tokio::test]
async fn on_sqlite_a_damaged_packed_record_does_not_stop_the_log() {
    let fixture = Fixture::sqlite().await;
    let store = with_encoder(&fixture);
    let drafts = [large_draft("a"), large_draft("b"), large_draft("c")];
    store.append_audit(&acme(), &drafts).await.unwrap();
    // Keep zstd's magic number, cut the frame short.
    fixture
        .behind_the_store(
            "acme",
            "UPDATE audit_leaves SET bytes = substr(bytes, 1, 40) WHERE seq = 1",
            "",
        )
        .await;
    let leaves = first_leaves(store, &acme()).await;
    assert_eq!(leaves.len(), 3);
    let hash_of =
        |leaf: &StoredLeaf| <[u8; 32]>::from(Sha256::digest(leaf.bytes.as_ref().unwrap()));
    assert_eq!(hash_of(&leaves[0]), leaves[0].hash);
    assert_ne!(hash_of(&leaves[1]), leaves[1].hash, "the damage shows");
    assert_eq!(hash_of(&leaves[2]), leaves[2].hash);
}

/// A database from before migration 13 (leaves in a table without rowids) keeps every leaf,
/// byte for byte, and its log goes on where it ended.
#[tokio::test]
async fn on_sqlite_the_rowid_migration_keeps_the_log() {
    let fixture = Fixture::sqlite().await;
    let store = with_encoder(&fixture);
    let drafts: Vec<AuditDraft> = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                draft(&format!("e{i}"), Some(&format!("source-{i}")))
            } else {
                large_draft(&format!("e{i}"))
            }
        })
        .collect();
    store.append_audit(&acme(), &drafts).await.unwrap();
    store.append_audit(&globex(), &drafts[..2]).await.unwrap();
    let before = first_leaves(store, &acme()).await;
    // Back to the table as migrations 7 and 12 left it.
    fixture
        .behind_the_store(
            "acme",
            "CREATE TABLE old_leaves (tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, \
               record_id TEXT NOT NULL, event_type TEXT NOT NULL, time TEXT NOT NULL, \
               logged TEXT NOT NULL, leaf_hash BLOB NOT NULL, bytes BLOB, dedupe_key TEXT, \
               PRIMARY KEY (tenant_id, seq)) WITHOUT ROWID; \
             INSERT INTO old_leaves SELECT * FROM audit_leaves; \
             DROP TABLE audit_leaves; ALTER TABLE old_leaves RENAME TO audit_leaves; \
             CREATE UNIQUE INDEX audit_by_record ON audit_leaves (tenant_id, record_id); \
             CREATE UNIQUE INDEX audit_by_source ON audit_leaves (tenant_id, dedupe_key) \
               WHERE dedupe_key IS NOT NULL; \
             CREATE INDEX audit_by_type ON audit_leaves (tenant_id, event_type, seq); \
             CREATE INDEX audit_leaf_hashes ON audit_leaves (tenant_id, seq, leaf_hash); \
             DELETE FROM schema_migrations WHERE version >= 13;",
            "",
        )
        .await;
    let upgraded = fixture.open_again().await;
    upgraded.set_leaf_encoder(Arc::new(TestEncoder)).unwrap();
    assert_eq!(first_leaves(&*upgraded, &acme()).await, before);
    assert_eq!(upgraded.audit_size(&globex()).await.unwrap(), 2);
    let placed = upgraded
        .append_audit(
            &acme(),
            &[draft("e0", Some("source-0")), draft("after", None)],
        )
        .await
        .unwrap();
    assert_eq!(
        placed,
        [None, Some(6)],
        "the source id is still known; seq 6 is next"
    );
    let schema: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE name = 'audit_leaves'")
            .fetch_one(&mut fixture.sqlite_connection().await)
            .await
            .unwrap();
    assert!(!schema.contains("WITHOUT ROWID"), "{schema}");
}
