//! Storage: the traits services use, and their implementations.
//!
//! The traits speak domain types only (no SQLite or PostgreSQL types), so a PostgreSQL
//! implementation slots in without changing a caller. Queries are written at run time
//! (`sqlx::query`), one implementation per backend; see docs/adr/0002-store-per-backend.md.

mod audit;
pub mod deployments;
pub mod gate;
mod keys;
mod migrate;
mod postgres;
mod postgres_audit;
mod postgres_deployments;
mod postgres_findings;
mod postgres_gate;
mod postgres_keys;
mod postgres_queue;
mod postgres_tenancy;
mod queue;
mod sqlite;
mod sqlite_audit;
mod sqlite_deployments;
mod sqlite_findings;
mod sqlite_gate;
mod sqlite_keys;
mod sqlite_pack;
mod sqlite_queue;
mod sqlite_tenancy;
mod sqlite_wal;
mod tenancy;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use tollgate_domain::{InventoryItem, ResourceKind, SyncRunId, TenantId};

pub use audit::{
    AuditDraft, AuditStore, EncodedLeaf, LeafEncoder, LeafFilter, StoredCheckpoint, StoredLeaf,
};
pub use deployments::DeploymentStore;
pub use gate::GateStore;
pub use keys::{ApiKeyStore, StoredApiKey};
pub use postgres::PostgresStore;
pub use queue::{
    EventFilter, EventId, EventStatus, EventStore, IngestAudit, IngestOutcome, Job, JobFilter,
    JobId, JobStatus, JobStore, NewEvent, NewJob, QueueStats, ReplayOutcome, ReplaySelection,
    Retry, StoredEvent,
};
pub use sqlite::{SqliteStore, SynchronousLevels};
pub use tenancy::{RemovedTenant, StoredMembership, StoredTenant, TenancyStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not open the database at {location}: {source}")]
    Open {
        location: String,
        source: sqlx::Error,
    },
    #[error("database migration {version} failed: {source}")]
    Migration { version: i64, source: sqlx::Error },
    #[error(
        "the database is at schema version {found}, newer than this tollgate understands ({known}); upgrade tollgate"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the database is not ready for this tollgate: {0}")]
    NotMigrated(String),
    #[error("refusing to use PostgreSQL as role {role:?}: {reason}")]
    UnsafeRole { role: String, reason: String },
    #[error("sync run {0} does not exist")]
    UnknownRun(SyncRunId),
    #[error("event {0} does not exist")]
    UnknownEvent(EventId),
    #[error("the audit log is not set up in this process (no leaf encoder)")]
    AuditNotConfigured,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A write that shared a transaction with others failed with them (the gate's group
    /// commit): the words of the error the transaction met.
    #[error("the batch this was written in failed: {0}")]
    BatchFailed(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// A full sync replaces everything; an incremental one patches what changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    Full,
    Incremental,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Incremental => "incremental",
        }
    }
}

/// What a committed kind replaces before the staged rows go in. Rows matching any of the
/// criteria are deleted; staged rows are then upserted by key.
#[derive(Clone, Debug, Default)]
pub struct Replace {
    /// Every row of the kind.
    pub all: bool,
    /// Rows listed under these scopes.
    pub scopes: Vec<String>,
    /// Rows belonging to these projects.
    pub projects: Vec<String>,
    /// These keys.
    pub keys: Vec<String>,
}

impl Replace {
    pub fn all() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    pub fn upsert_only() -> Self {
        Self::default()
    }
}

/// A row's place in the hierarchy, for listing children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    pub key: String,
    pub scope: String,
    pub project: String,
    pub ado_id: String,
}

/// One object an incremental sync inserted, modified or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryChange {
    pub run: SyncRunId,
    pub kind: ResourceKind,
    pub key: String,
    pub scope: String,
    pub project: String,
    pub deleted: bool,
}

/// A finished or running sync.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncRecord {
    pub id: SyncRunId,
    pub mode: SyncMode,
    pub started_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    pub status: String,
    pub summary: Option<Value>,
}

/// The watermark holding the inventory's version: replaced by every
/// [`InventoryStore::commit_kind`] with a value never used before, so a cache of anything read
/// from the inventory is valid while the version it was read at is current.
pub const INVENTORY_VERSION: &str = "inventory.version";

/// A new inventory version: the run, the kind, the time to the nanosecond and a count of this
/// process's commits (versions are only compared for equality; replicas differ in time).
pub(crate) fn inventory_version_token(run: SyncRunId, kind: ResourceKind) -> String {
    static COMMITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let count = COMMITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{}.{nanos}.{count}", run.0, kind.as_str())
}

/// The inventory of ADO objects per tenant.
#[async_trait]
pub trait InventoryStore: Send + Sync {
    async fn begin_sync(&self, tenant: &TenantId, mode: SyncMode)
    -> Result<SyncRecord, StoreError>;

    /// Stage a page of items for a run. Nothing is visible until [`InventoryStore::commit_kind`].
    async fn stage(
        &self,
        tenant: &TenantId,
        run: SyncRunId,
        items: &[InventoryItem],
    ) -> Result<(), StoreError>;

    /// Atomically apply a kind's staged rows (after deleting what `replace` names) and set
    /// the watermarks. Returns the kind's row count afterwards.
    async fn commit_kind(
        &self,
        tenant: &TenantId,
        run: SyncRunId,
        kind: ResourceKind,
        replace: &Replace,
        watermarks: &[(String, String)],
    ) -> Result<u64, StoreError>;

    /// Throw away a kind's staged rows (its sync failed; the stored rows stay as they were).
    async fn discard_staged(
        &self,
        tenant: &TenantId,
        run: SyncRunId,
        kind: ResourceKind,
    ) -> Result<(), StoreError>;

    /// `audit`: the records of the run, appended in the same transaction.
    async fn finish_sync(
        &self,
        tenant: &TenantId,
        run: SyncRunId,
        status: &str,
        summary: &Value,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError>;

    /// The most recent sync that can be continued: status `ok`, or `partial` (kinds skipped
    /// for lack of permission only).
    async fn last_successful_sync(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<SyncRecord>, StoreError>;

    async fn watermark(&self, tenant: &TenantId, name: &str) -> Result<Option<String>, StoreError>;

    /// Several watermarks in one read, in the order of `names` (`None` where unset): the
    /// gate reads its capability and the inventory's version together.
    async fn watermarks(
        &self,
        tenant: &TenantId,
        names: &[&str],
    ) -> Result<Vec<Option<String>>, StoreError>;

    /// The keys of a kind, optionally within one scope, ordered by key.
    async fn keys(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        scope: Option<&str>,
    ) -> Result<Vec<StoredKey>, StoreError>;

    /// A page of items of a kind, ordered by key, after `after_key`.
    async fn items(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        after_key: Option<&str>,
        limit: u32,
    ) -> Result<Vec<InventoryItem>, StoreError>;

    /// Row counts per kind (every kind present, zero where empty).
    async fn counts(&self, tenant: &TenantId) -> Result<BTreeMap<ResourceKind, u64>, StoreError>;

    /// A page of one project's items of a kind, ordered by key, after `after_key`.
    async fn project_items(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        project: &str,
        after_key: Option<&str>,
        limit: u32,
    ) -> Result<Vec<InventoryItem>, StoreError>;

    /// The items of a kind with these keys (missing keys are left out), ordered by key.
    async fn items_by_keys(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        keys: &[String],
    ) -> Result<Vec<InventoryItem>, StoreError>;

    /// The items of a kind with these ADO ids, in any project.
    async fn items_by_ado_ids(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        ado_ids: &[String],
    ) -> Result<Vec<InventoryItem>, StoreError>;

    /// Syncs started after `after` (all of them when `None`), oldest first.
    async fn syncs_since(
        &self,
        tenant: &TenantId,
        after: Option<SyncRunId>,
    ) -> Result<Vec<SyncRecord>, StoreError>;

    /// What incremental syncs after `after` changed, oldest first. Only incremental syncs
    /// record changes; a full sync is followed by a full evaluation.
    async fn changes_since(
        &self,
        tenant: &TenantId,
        after: SyncRunId,
    ) -> Result<Vec<InventoryChange>, StoreError>;

    /// Forget changes up to and including `through` (their consumer has processed them).
    async fn prune_changes(&self, tenant: &TenantId, through: SyncRunId) -> Result<(), StoreError>;

    async fn set_watermark(
        &self,
        tenant: &TenantId,
        name: &str,
        value: &str,
    ) -> Result<(), StoreError>;
}

/// Where a finding stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    Open,
    Fixed,
    Waived,
    Reopened,
}

impl FindingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Fixed => "fixed",
            FindingStatus::Waived => "waived",
            FindingStatus::Reopened => "reopened",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "open" => Some(FindingStatus::Open),
            "fixed" => Some(FindingStatus::Fixed),
            "waived" => Some(FindingStatus::Waived),
            "reopened" => Some(FindingStatus::Reopened),
            _ => None,
        }
    }

    /// Open and reopened findings need action; fixed and waived ones do not.
    pub fn is_active(self) -> bool {
        matches!(self, FindingStatus::Open | FindingStatus::Reopened)
    }
}

/// A violation found by an evaluation, before the lifecycle is applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub control: String,
    pub resource_kind: ResourceKind,
    pub resource_key: String,
    pub resource_name: Option<String>,
    pub project: String,
    pub severity: String,
    /// deny, warn or dry-run: what the finding does.
    pub action: String,
    pub message: String,
    pub evidence: Value,
}

/// A finding as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Finding {
    pub control: String,
    pub resource_kind: ResourceKind,
    pub resource_key: String,
    pub resource_name: Option<String>,
    pub project: String,
    pub severity: String,
    pub action: String,
    pub status: FindingStatus,
    pub message: String,
    pub evidence: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub fixed_at: Option<OffsetDateTime>,
    pub waiver_id: Option<i64>,
}

/// What an evaluation covered: findings of these controls on these kinds (all resources of
/// the kind, or only the listed keys) that were not observed again are fixed.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    pub controls: Vec<String>,
    pub kinds: Vec<ResourceKind>,
    /// `None`: every resource of the kinds was evaluated.
    pub keys: Option<Vec<String>>,
}

/// Counts of what applying an evaluation changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LifecycleCounts {
    pub opened: u64,
    pub reopened: u64,
    pub still_open: u64,
    pub fixed: u64,
    pub waived: u64,
}

/// A finding that changed state in an evaluation (for its audit records).
#[derive(Clone, Debug, PartialEq)]
pub struct FindingTransition<'a> {
    pub observation: Option<&'a Observation>,
    pub control: &'a str,
    pub resource_kind: &'a str,
    pub resource_key: &'a str,
    /// Open (new), Reopened, Fixed or Waived.
    pub to: FindingStatus,
}

/// Builds an evaluation's audit records from what changed, inside its transaction.
pub type FindingAudit<'a> =
    &'a (dyn Fn(&[FindingTransition<'_>], &LifecycleCounts) -> Vec<AuditDraft> + Send + Sync);

/// A risk acceptance.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Waiver {
    pub id: i64,
    pub control: String,
    /// A resource key, a key prefix ending in `*`, or `*` for every resource.
    pub scope: String,
    pub owner: String,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Waiver {
    pub fn covers(&self, control: &str, key: &str, now: OffsetDateTime) -> bool {
        let scope_matches = match self.scope.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => self.scope == key,
        };
        self.control.eq_ignore_ascii_case(control) && scope_matches && self.expires_at > now
    }
}

#[derive(Clone, Debug)]
pub struct NewWaiver {
    pub control: String,
    pub scope: String,
    pub owner: String,
    pub reason: String,
    pub expires_at: OffsetDateTime,
}

/// Findings and waivers per tenant.
#[async_trait]
pub trait FindingStore: Send + Sync {
    /// Apply one evaluation: new violations open, repeated ones update `last_seen`, fixed
    /// ones come back as reopened, covered findings not observed are fixed, and active
    /// waivers turn findings into `waived` (an expired waiver reopens them). One transaction.
    async fn apply_observations(
        &self,
        tenant: &TenantId,
        observations: &[Observation],
        coverage: &Coverage,
        now: OffsetDateTime,
        audit: FindingAudit<'_>,
    ) -> Result<LifecycleCounts, StoreError>;

    /// Findings, optionally only those with these statuses, ordered by control then key.
    async fn findings(
        &self,
        tenant: &TenantId,
        statuses: &[FindingStatus],
    ) -> Result<Vec<Finding>, StoreError>;

    async fn add_waiver(
        &self,
        tenant: &TenantId,
        waiver: &NewWaiver,
        audit: &[AuditDraft],
    ) -> Result<Waiver, StoreError>;

    async fn waivers(&self, tenant: &TenantId) -> Result<Vec<Waiver>, StoreError>;

    /// Remove a waiver; returns whether it existed (`audit` is appended only if it did).
    async fn remove_waiver(
        &self,
        tenant: &TenantId,
        id: i64,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError>;
}
