//! The audit log's storage: a gap-free sequence of leaves per tenant, the signed checkpoints
//! over them, and each SIEM sink's cursor.
//!
//! The store assigns a record its place (`seq`, the leaf index, and `logged`, the append
//! time) inside the transaction that stores it — the same transaction as the change it
//! records, where there is one — and asks a [`LeafEncoder`] for the leaf's canonical bytes
//! and hash. Canonical form and hashing are the audit crate's business; the store never
//! interprets a leaf.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tollgate_domain::{CanonicalJson, TenantId};

use crate::StoreError;

/// A record before the log gives it a place: its time, its type and the record's other
/// fields (`event`, `actor`, `target`, `change`, `source`, …) — everything but `schema`,
/// `origin`, `seq`, `id` and `logged`, which the encoder and the sequencer add.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditDraft {
    pub event_type: String,
    /// When it happened.
    pub time: OffsetDateTime,
    pub fields: Map<String, Value>,
    /// Fields already in canonical form, copied into the record as they are (a part many
    /// records share, encoded once: a gate decision's details with the rules' input).
    pub encoded: BTreeMap<String, CanonicalJson>,
    /// A source's own id (an ADO audit entry's): a draft whose key is already in the
    /// tenant's log is not appended again.
    pub dedupe_key: Option<String>,
}

/// A draft made a leaf: the record's id and exact bytes, and the leaf hash over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedLeaf {
    pub record_id: String,
    pub bytes: Vec<u8>,
    pub hash: [u8; 32],
}

/// Turns a draft into the leaf at position `seq` of `tenant`'s log, appended at `logged`.
pub trait LeafEncoder: Send + Sync {
    fn encode(
        &self,
        tenant: &TenantId,
        draft: &AuditDraft,
        seq: u64,
        logged: OffsetDateTime,
    ) -> Result<EncodedLeaf, String>;
}

/// One stored leaf. `bytes` is `None` once retention withheld the payload; the hash stays,
/// so every proof stays possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLeaf {
    pub seq: u64,
    pub record_id: String,
    pub event_type: String,
    pub time: OffsetDateTime,
    pub logged: OffsetDateTime,
    pub hash: [u8; 32],
    pub bytes: Option<Vec<u8>>,
}

/// Which leaves to list: `seq` from `from` (inclusive), optionally of one type or in a time
/// range, at most `limit`.
#[derive(Clone, Debug, Default)]
pub struct LeafFilter {
    pub from: u64,
    pub event_type: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub limit: u32,
}

/// A signed checkpoint: the tree of the first `size` leaves has root `root`; `note` is the
/// signed note as published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: [u8; 32],
    pub note: String,
    pub signed_at: OffsetDateTime,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Append records in a transaction of their own (for what changes nothing else:
    /// authentication failures, denials, evaluations that found nothing new). Returns each
    /// draft's `seq`, or `None` for a draft skipped by its dedupe key.
    async fn append_audit(
        &self,
        tenant: &TenantId,
        drafts: &[AuditDraft],
    ) -> Result<Vec<Option<u64>>, StoreError>;

    /// How many leaves the tenant's log has.
    async fn audit_size(&self, tenant: &TenantId) -> Result<u64, StoreError>;

    async fn audit_leaves(
        &self,
        tenant: &TenantId,
        filter: &LeafFilter,
    ) -> Result<Vec<StoredLeaf>, StoreError>;

    async fn audit_leaf_by_id(
        &self,
        tenant: &TenantId,
        record_id: &str,
    ) -> Result<Option<StoredLeaf>, StoreError>;

    /// The leaf hashes of `from..to`, in order.
    async fn audit_leaf_hashes(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError>;

    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError>;

    /// Checkpoints signed after `after` (all when `None`), oldest first, at most `limit`.
    async fn checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError>;

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Tier-1 retention: withhold the payloads of leaves below `below` (hashes stay; leaf 0,
    /// the log's genesis naming its keys, is always kept), and
    /// append `record` saying so, in one transaction. Returns how many payloads went.
    async fn withhold_audit_payloads(
        &self,
        tenant: &TenantId,
        below: u64,
        record: &AuditDraft,
    ) -> Result<u64, StoreError>;

    /// The first leaf appended at or after `at` (`None`: none was).
    async fn first_seq_logged_since(
        &self,
        tenant: &TenantId,
        at: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError>;

    /// Tenants that have an audit log.
    async fn audit_tenants(&self) -> Result<Vec<TenantId>, StoreError>;

    /// The next `seq` a sink has not yet delivered (0 when it never delivered).
    async fn sink_cursor(&self, tenant: &TenantId, sink: &str) -> Result<u64, StoreError>;

    async fn set_sink_cursor(
        &self,
        tenant: &TenantId,
        sink: &str,
        next: u64,
    ) -> Result<(), StoreError>;
}

/// Leaves whose hashes one statement reads. The hashes come back packed in one value per
/// statement, not one row per leaf: handing rows one by one across sqlx's threads cost
/// ≈ 3–6 µs a leaf, which at 10,000 decisions/s made the 50,000 hashes a checkpoint reads every
/// 5 s a 150–300 ms burst of work for everything sharing the cores. 65,536 hashes are 2 MiB
/// packed (4 MiB as SQLite's hex text).
pub(crate) const HASHES_PER_READ: u64 = 65_536;

/// What a packed read of leaves `from..to` found, checked: every leaf present, every hash
/// 32 bytes. `count` leaves were found; `shortest`/`longest` are the hash lengths.
pub(crate) fn check_packed_hashes(
    tenant: &TenantId,
    from: u64,
    to: u64,
    count: i64,
    lengths: (Option<i64>, Option<i64>),
) -> Result<(), StoreError> {
    let expected = to - from;
    if u64::try_from(count).ok() != Some(expected) {
        // Which one: the caller reads the seqs to say (rare; the log is gap-free by design).
        return Err(StoreError::Corrupt(format!(
            "audit log of {tenant}: {count} of leaves {from}..{to} found"
        )));
    }
    match lengths {
        (Some(32), Some(32)) => Ok(()),
        (None, None) if expected == 0 => Ok(()),
        (shortest, longest) => Err(StoreError::Corrupt(format!(
            "audit log of {tenant}: a leaf hash in {from}..{to} is not 32 bytes \
             ({} to {} bytes)",
            shortest.unwrap_or(0),
            longest.unwrap_or(0)
        ))),
    }
}

/// The first leaf of `from..to` absent from `seqs` (ascending): a hole means rows were deleted
/// under us, and the error says where rather than a tree being built without it.
pub(crate) fn missing_leaf(
    tenant: &TenantId,
    from: u64,
    to: u64,
    seqs: impl IntoIterator<Item = u64>,
) -> StoreError {
    let mut expected = from;
    for seq in seqs {
        if seq != expected {
            break;
        }
        expected += 1;
    }
    if expected < to {
        StoreError::Corrupt(format!("audit log of {tenant}: leaf {expected} is missing"))
    } else {
        StoreError::Corrupt(format!(
            "audit log of {tenant}: leaves {from}..{to} changed while being read"
        ))
    }
}

/// Split the packed hashes of leaves `from..to` (32 bytes each, in order) into `into`.
pub(crate) fn unpack_hashes(
    tenant: &TenantId,
    from: u64,
    to: u64,
    packed: &[u8],
    into: &mut Vec<[u8; 32]>,
) -> Result<(), StoreError> {
    if u64::try_from(packed.len()).ok() != (to - from).checked_mul(32) {
        return Err(StoreError::Corrupt(format!(
            "audit log of {tenant}: {} bytes of hashes for leaves {from}..{to}",
            packed.len()
        )));
    }
    into.extend(packed.chunks_exact(32).map(|chunk| {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(chunk);
        hash
    }));
    Ok(())
}
