//! The service-hook pipeline's storage: webhook events as ADO delivered them (deduplicated by
//! ADO's event id) and a durable job queue on our own tables (docs/adr/0003).
//!
//! Times are kept to the microsecond (what PostgreSQL keeps too); anything finer is dropped
//! when stored.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::{AuditDraft, StoreError};

/// A stored webhook event (our row id, not ADO's event id).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct EventId(pub i64);

impl fmt::Display for EventId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// A job in the queue.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// Where a webhook event stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Stored and awaiting processing.
    Received,
    Processed,
    Failed,
    /// The body is not an ADO event; kept for inspection, never given a job.
    Malformed,
    /// A valid envelope of an event type we do not handle: stored and acknowledged, no job.
    Unknown,
}

impl EventStatus {
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Received,
        EventStatus::Processed,
        EventStatus::Failed,
        EventStatus::Malformed,
        EventStatus::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Received => "received",
            EventStatus::Processed => "processed",
            EventStatus::Failed => "failed",
            EventStatus::Malformed => "malformed",
            EventStatus::Unknown => "unknown",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw)
    }
}

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for `run_after` and a worker.
    Queued,
    /// Leased by a worker until `lease_until`.
    Running,
    Done,
    /// Out of attempts (or failed for good); waits for an operator's retry.
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == raw)
    }
}

/// A job to enqueue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// What the job does; the worker dispatches on it. Must not be empty.
    pub kind: String,
    pub payload: Value,
    /// While a job of the same tenant, kind and key is still queued (not yet claimed), enqueueing
    /// coalesces into it: no new row, its id is returned and it runs no later than either asked
    /// (the earlier `run_after` wins; the queued job keeps its payload). This is how many
    /// webhook events collapse into one re-sync.
    pub dedupe_key: Option<String>,
    pub run_after: OffsetDateTime,
    /// At least 1.
    pub max_attempts: u32,
}

/// A webhook event as received, to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub tenant: TenantId,
    /// ADO's event `id`; events without one are never duplicates.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub subscription_id: Option<String>,
    pub status: EventStatus,
    /// The exact bytes received.
    pub body: Vec<u8>,
    pub error: Option<String>,
    pub received_at: OffsetDateTime,
    /// Enqueued in the same transaction, and only if the event is new.
    pub job: Option<NewJob>,
}

/// What [`EventStore::ingest`] did with one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum IngestOutcome {
    /// New: stored, and its job enqueued (or coalesced into a queued one) if it had one.
    Stored { id: EventId, job: Option<JobId> },
    /// ADO delivered this event before; its delivery count went up and nothing was enqueued.
    Duplicate { id: EventId },
}

impl IngestOutcome {
    pub fn event(&self) -> EventId {
        match self {
            IngestOutcome::Stored { id, .. } | IngestOutcome::Duplicate { id } => *id,
        }
    }
}

/// A webhook event as stored. The body is left out of the JSON form: it is arbitrary bytes,
/// which the API renders as it sees fit.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StoredEvent {
    pub id: EventId,
    pub tenant: TenantId,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub subscription_id: Option<String>,
    pub status: EventStatus,
    #[serde(skip)]
    pub body: Vec<u8>,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub processed_at: Option<OffsetDateTime>,
    /// How many times ADO delivered it: 1 + the duplicates seen.
    pub deliveries: u32,
    /// The job that processes it (shared by every event coalesced into it); the latest one
    /// after a replay.
    pub job: Option<JobId>,
}

/// Which events to list. `since` is inclusive, `until` exclusive; results are ordered by id,
/// after `after_id` (keyset pagination: pass the last id of the previous page).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub event_type: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub after_id: Option<EventId>,
    /// At most this many (so the default, 0, lists nothing).
    pub limit: u32,
}

/// Which stored events to replay.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplaySelection {
    Ids(Vec<EventId>),
    /// Received at or after `since` and before `until`.
    Received {
        since: OffsetDateTime,
        until: OffsetDateTime,
    },
}

/// What a replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayOutcome {
    /// Events given a job again (several may share one coalesced job) and set back to received.
    pub enqueued: u64,
    /// Malformed events, and events the job function gave no job; left as they were.
    pub skipped: u64,
    /// Requested ids that name no event of the tenant.
    pub not_found: u64,
}

/// What happens after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Queue again to run at this time, unless the job is out of attempts.
    At(OffsetDateTime),
    /// Give up now: the job goes dead.
    Never,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Job {
    pub id: JobId,
    pub tenant: TenantId,
    pub kind: String,
    pub payload: Value,
    pub dedupe_key: Option<String>,
    pub status: JobStatus,
    /// Claims so far, this one included while running.
    pub attempts: u32,
    pub max_attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub run_after: OffsetDateTime,
    pub lease_owner: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub lease_until: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Which jobs to list, ordered by id after `after_id` (keyset pagination).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub after_id: Option<JobId>,
    /// At most this many (so the default, 0, lists nothing).
    pub limit: u32,
}

/// Queue depth and lag across tenants, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    /// Every queued job, including those scheduled for later.
    pub queued: u64,
    /// Queued jobs whose `run_after` has come: what workers could claim now.
    pub due: u64,
    pub running: u64,
    pub dead: u64,
    pub done: u64,
    /// The earliest `run_after` among due jobs: `now - oldest_queued_at` is the queue's lag.
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest_queued_at: Option<OffsetDateTime>,
}

/// Webhook events per tenant.
/// Builds the audit records of one tenant's deliveries in an ingest batch.
pub type IngestAudit<'a> =
    &'a (dyn Fn(&TenantId, &[(&NewEvent, &IngestOutcome)]) -> Vec<AuditDraft> + Send + Sync);

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Store a batch of received events in ONE transaction that is durable when this returns
    /// (the HTTP receiver batches concurrent requests into one call). Per event: insert unless
    /// (tenant, event_id) exists; if new and `job` is set, enqueue it in the same transaction
    /// (coalescing by `dedupe_key`); if a duplicate, count the delivery. Outcomes come back in
    /// input order. Either the whole batch is stored or none of it is.
    ///
    /// `audit` is asked, once per tenant in the batch, for the records of that tenant's
    /// deliveries and their outcomes; they are appended in the same transaction.
    async fn ingest(
        &self,
        events: &[NewEvent],
        audit: IngestAudit<'_>,
    ) -> Result<Vec<IngestOutcome>, StoreError>;

    async fn event(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError>;

    async fn events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Record the outcome of processing one event (normally processed, or failed with an
    /// error) and set `processed_at`. `Received` is refused: replay is how an event goes back.
    async fn mark_event(
        &self,
        tenant: &TenantId,
        id: EventId,
        status: EventStatus,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Record the outcome of a job for every still-received event it was processing (a
    /// coalesced job serves several). Returns how many events were marked.
    async fn mark_job_events(
        &self,
        tenant: &TenantId,
        job: JobId,
        status: EventStatus,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Enqueue `job(event)` again for the chosen events, in one transaction, and set them back
    /// to received. Malformed events, and those `job` gives no job, are skipped. (The `for<'e>`
    /// is spelled out because `async_trait` would otherwise pin the event's lifetime to the
    /// caller's, and no stored event could be passed in.)
    async fn replay(
        &self,
        tenant: &TenantId,
        selection: &ReplaySelection,
        job: &(dyn for<'e> Fn(&'e StoredEvent) -> Option<NewJob> + Send + Sync),
        audit: &[AuditDraft],
    ) -> Result<ReplayOutcome, StoreError>;

    /// Delete events received before `before`, of every tenant and status (retention). The
    /// caller keeps `before` more than 36 h in the past, so ADO's redeliveries are still
    /// recognised. Returns how many were deleted.
    async fn prune_events(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

/// The durable job queue. Handlers must be idempotent: a job whose worker dies is run again
/// once its lease expires.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Enqueue a job durably, coalescing by `dedupe_key` (see [`NewJob::dedupe_key`]).
    /// `audit` records who asked, appended in the same transaction.
    async fn enqueue(
        &self,
        tenant: &TenantId,
        job: &NewJob,
        audit: &[AuditDraft],
    ) -> Result<JobId, StoreError>;

    /// Claim up to `limit` jobs of any tenant: running ones whose lease expired (their worker
    /// died) first, then queued ones that are due, oldest `run_after` first. Each becomes running,
    /// leased by `worker` until `now + lease`, with one more attempt. Atomic: concurrent
    /// claimers never get the same job. An expired job already out of attempts goes dead
    /// instead of being claimed again.
    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<Job>, StoreError>;

    /// Move the lease of a job `worker` holds to `until`; false if it does not hold it.
    async fn extend_lease(
        &self,
        id: JobId,
        worker: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Mark a job done; false (and nothing changed) unless `worker` holds it.
    async fn complete(
        &self,
        id: JobId,
        worker: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Record a failed attempt: back to queued to run at the retry time, or dead when out of
    /// attempts or `Retry::Never`. Returns the new status, or `None` (and nothing changed)
    /// unless `worker` holds the job.
    async fn fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry: Retry,
        now: OffsetDateTime,
        if_dead: &[AuditDraft],
    ) -> Result<Option<JobStatus>, StoreError>;

    async fn job(&self, tenant: &TenantId, id: JobId) -> Result<Option<Job>, StoreError>;

    async fn jobs(&self, tenant: &TenantId, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;

    /// Put a dead job back in the queue, due now, with its attempts reset; false if it is not
    /// dead (or not the tenant's).
    async fn retry_job(
        &self,
        tenant: &TenantId,
        id: JobId,
        now: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError>;

    /// Claim this period's turn of a periodic task (`name`: a scheduled sync's kind …) for a
    /// tenant: true, and the turn recorded as taken at `now`, when no one took it within
    /// `every` before `now`; false otherwise. Atomic across replicas, so a task scheduled by
    /// every replica on its own timer runs once per period per tenant, however the replicas'
    /// timers are offset (the queue's coalescing alone only merges copies still queued).
    async fn claim_schedule(
        &self,
        tenant: &TenantId,
        name: &str,
        now: OffsetDateTime,
        every: std::time::Duration,
    ) -> Result<bool, StoreError>;

    /// Hold the lease `name` (a long-running task such as a SIEM export) for a tenant until
    /// `now + lease`: true when it was free, expired, or already `holder`'s (then renewed);
    /// false while another holder's lease runs. Atomic across replicas: one holder at a time,
    /// and a holder that dies loses the lease when it expires.
    async fn claim_lease(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError>;

    /// Depth and lag across tenants.
    async fn queue_stats(&self, now: OffsetDateTime) -> Result<QueueStats, StoreError>;

    /// Delete done jobs last updated before `before`; dead jobs stay for inspection.
    async fn prune_jobs(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

/// How a schedule claim is kept: in the tenant's watermarks under `schedule:{name}`, as
/// zero-padded Unix milliseconds so that text comparison is time order on every backend.
pub(crate) fn schedule_watermark(name: &str) -> String {
    format!("schedule:{name}")
}

pub(crate) fn schedule_stamp(time: OffsetDateTime) -> String {
    let millis = (time.unix_timestamp_nanos() / 1_000_000).max(0);
    format!("{millis:020}")
}

/// The latest claim time that leaves this period's turn free: claims at or before it are from
/// an earlier period. A little early counts as on time (timers drift by milliseconds).
pub(crate) fn schedule_threshold(now: OffsetDateTime, every: std::time::Duration) -> String {
    let slack = (every / 20).min(std::time::Duration::from_secs(1));
    let every =
        time::Duration::try_from(every.saturating_sub(slack)).unwrap_or(time::Duration::MAX);
    schedule_stamp(now.checked_sub(every).unwrap_or(now))
}

/// A lease is kept in the tenant's watermarks under `lease:{name}` as `{until}|{holder}`, the
/// expiry first as zero-padded Unix milliseconds (20 characters), so that both backends can
/// compare its expiry as text (`substr(value, 1, 20)`) and its holder (`substr(value, 22)`).
pub(crate) fn lease_watermark(name: &str) -> String {
    format!("lease:{name}")
}

pub(crate) fn lease_value(holder: &str, until: OffsetDateTime) -> String {
    format!("{}|{holder}", schedule_stamp(until))
}

pub(crate) fn lease_until(now: OffsetDateTime, lease: std::time::Duration) -> OffsetDateTime {
    now.checked_add(time::Duration::try_from(lease).unwrap_or(time::Duration::MAX))
        .unwrap_or(now)
}
