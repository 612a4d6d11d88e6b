//! Webhook events and the job queue on SQLite.
//!
//! Writes that are acknowledged to someone (ingest, enqueue, replay) go through the store's
//! durable connection (`synchronous = FULL`); queue bookkeeping (claims, leases, outcomes)
//! goes through the general pool, since losing its last commits to a power cut only means a
//! job runs again, and handlers are idempotent. Every write transaction starts with
//! `BEGIN IMMEDIATE`: it takes the write lock up front, so two connections never both hold a
//! read snapshot and then fail to upgrade it (SQLITE_BUSY that the busy timeout cannot wait
//! out).

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, SqliteConnection};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use tollgate_domain::TenantId;

use crate::sqlite::{CHUNK, SqliteStore};
use crate::{
    AuditDraft, EventFilter, EventId, EventStatus, EventStore, IngestAudit, IngestOutcome, Job,
    JobFilter, JobId, JobStatus, JobStore, NewEvent, NewJob, QueueStats, ReplayOutcome,
    ReplaySelection, Retry, StoreError, StoredEvent,
};

pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Events replayed by time range are read this many at a time.
const REPLAY_PAGE: i64 = 500;

/// A time as fixed-width UTC text, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so that SQL compares and
/// orders the text as it would the times. (RFC 3339 as `time` writes it varies in width —
/// `…:00Z` sorts after `…:00.5Z` — and keeps the offset it was given.) Microseconds are what
/// PostgreSQL keeps; finer digits are dropped.
pub(crate) fn stamp(time: OffsetDateTime) -> Result<String, StoreError> {
    let utc = time
        .checked_to_offset(UtcOffset::UTC)
        .filter(|utc| (0..=9999).contains(&utc.year()))
        .ok_or_else(|| StoreError::InvalidInput(format!("time {time} is out of range")))?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.microsecond()
    ))
}

pub(crate) fn parse_stamp(raw: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|error| StoreError::Corrupt(format!("timestamp {raw:?}: {error}")))
}

fn time_column(row: &SqliteRow, column: &str) -> Result<OffsetDateTime, StoreError> {
    parse_stamp(&row.try_get::<String, _>(column)?)
}

fn optional_time_column(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    row.try_get::<Option<String>, _>(column)?
        .as_deref()
        .map(parse_stamp)
        .transpose()
}

fn count_column(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    let raw: i64 = row.try_get(column)?;
    u32::try_from(raw).map_err(|_| StoreError::Corrupt(format!("{column} {raw} out of range")))
}

fn tenant_column(row: &SqliteRow) -> Result<TenantId, StoreError> {
    let raw: String = row.try_get("tenant_id")?;
    TenantId::parse(&raw).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn event_from(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(StoredEvent {
        id: EventId(row.try_get("id")?),
        tenant: tenant_column(row)?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        subscription_id: row.try_get("subscription_id")?,
        status: EventStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("event status {status:?}")))?,
        body: row.try_get("body")?,
        error: row.try_get("error")?,
        received_at: time_column(row, "received_at")?,
        processed_at: optional_time_column(row, "processed_at")?,
        deliveries: count_column(row, "deliveries")?,
        job: row.try_get::<Option<i64>, _>("job_id")?.map(JobId),
    })
}

fn job_from(row: &SqliteRow) -> Result<Job, StoreError> {
    let status: String = row.try_get("status")?;
    let payload: String = row.try_get("payload")?;
    let id = JobId(row.try_get("id")?);
    Ok(Job {
        id,
        tenant: tenant_column(row)?,
        kind: row.try_get("kind")?,
        payload: serde_json::from_str(&payload)
            .map_err(|error| StoreError::Corrupt(format!("payload of job {id}: {error}")))?,
        dedupe_key: row.try_get("dedupe_key")?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?,
        attempts: count_column(row, "attempts")?,
        max_attempts: count_column(row, "max_attempts")?,
        run_after: time_column(row, "run_after")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: optional_time_column(row, "lease_until")?,
        last_error: row.try_get("last_error")?,
        created_at: time_column(row, "created_at")?,
        updated_at: time_column(row, "updated_at")?,
    })
}

/// A job checked and in column form, so a bad one fails before anything is written.
pub(crate) struct PreparedJob<'a> {
    kind: &'a str,
    payload: String,
    dedupe_key: Option<&'a str>,
    run_after: String,
    max_attempts: i64,
}

impl<'a> PreparedJob<'a> {
    pub(crate) fn new(job: &'a NewJob) -> Result<Self, StoreError> {
        if job.kind.trim().is_empty() {
            return Err(StoreError::InvalidInput("a job needs a kind".to_owned()));
        }
        if job.max_attempts == 0 {
            return Err(StoreError::InvalidInput(format!(
                "job {:?} needs max_attempts of at least 1",
                job.kind
            )));
        }
        Ok(Self {
            kind: &job.kind,
            payload: job.payload.to_string(),
            dedupe_key: job.dedupe_key.as_deref(),
            run_after: stamp(job.run_after)?,
            max_attempts: i64::from(job.max_attempts),
        })
    }
}

/// Events with their bodies, which live in their own table (migration 0006 says why).
macro_rules! select_events {
    () => {
        "SELECT events.*, event_bodies.body FROM events \
         JOIN event_bodies ON event_bodies.event = events.id"
    };
}

/// A job one ingest batch created or joined, and how many new events it took.
struct CoalescedJob<'a> {
    tenant: &'a TenantId,
    kind: &'a str,
    /// `None` for a job of one event.
    key: Option<&'a str>,
    /// What this batch has asked of it so far (fixed-width UTC text: compares as time).
    run_after: String,
    id: JobId,
    created: bool,
    linked: usize,
}

/// Enqueue inside the caller's write transaction: into a queued job with the same dedupe key
/// if there is one (which then runs no later than either asked), else as a new row.
pub(crate) async fn enqueue_in(
    connection: &mut SqliteConnection,
    tenant: &TenantId,
    job: &PreparedJob<'_>,
    now: &str,
) -> Result<(JobId, bool), StoreError> {
    if let Some(key) = job.dedupe_key {
        let queued: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE tenant_id = ? AND kind = ? AND dedupe_key = ? \
             AND status = 'queued' ORDER BY id LIMIT 1",
        )
        .bind(tenant.as_str())
        .bind(job.kind)
        .bind(key)
        .fetch_optional(&mut *connection)
        .await?;
        if let Some(id) = queued {
            sqlx::query(
                "UPDATE jobs SET run_after = MIN(run_after, ?), updated_at = ? WHERE id = ?",
            )
            .bind(&job.run_after)
            .bind(now)
            .bind(id)
            .execute(&mut *connection)
            .await?;
            return Ok((JobId(id), false));
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (tenant_id, kind, payload, dedupe_key, status, attempts, max_attempts, \
         run_after, created_at, updated_at) VALUES (?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?) RETURNING id",
    )
    .bind(tenant.as_str())
    .bind(job.kind)
    .bind(&job.payload)
    .bind(job.dedupe_key)
    .bind(job.max_attempts)
    .bind(&job.run_after)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *connection)
    .await?;
    Ok((JobId(id), true))
}

/// Lease to `worker` up to `limit` jobs matching `selection` (a condition on one time column
/// compared with `now`, then its ORDER BY), in that order.
async fn claim_where(
    connection: &mut SqliteConnection,
    selection: &'static str,
    (worker, lease_until, now): (&str, &str, &str),
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    let sql = format!(
        "UPDATE jobs SET status = 'running', lease_owner = ?, lease_until = ?, \
         attempts = attempts + 1, updated_at = ? \
         WHERE id IN (SELECT id FROM jobs WHERE {selection} LIMIT ?) RETURNING *"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *connection)
        .await?;
    // RETURNING comes back in no particular order.
    let mut jobs = rows.iter().map(job_from).collect::<Result<Vec<_>, _>>()?;
    jobs.sort_by_key(|job| (job.run_after, job.id));
    Ok(jobs)
}

/// Give one stored event a job again (or skip it) inside the replay's transaction.
async fn replay_one(
    connection: &mut SqliteConnection,
    event: &StoredEvent,
    job_for: &(dyn for<'e> Fn(&'e StoredEvent) -> Option<NewJob> + Send + Sync),
    now: &str,
    outcome: &mut ReplayOutcome,
) -> Result<(), StoreError> {
    if event.status == EventStatus::Malformed {
        outcome.skipped += 1;
        return Ok(());
    }
    let Some(job) = job_for(event) else {
        outcome.skipped += 1;
        return Ok(());
    };
    let (job, _) = enqueue_in(connection, &event.tenant, &PreparedJob::new(&job)?, now).await?;
    sqlx::query(
        "UPDATE events SET status = 'received', error = NULL, processed_at = NULL, job_id = ? \
         WHERE tenant_id = ? AND id = ?",
    )
    .bind(job.0)
    .bind(event.tenant.as_str())
    .bind(event.id.0)
    .execute(&mut *connection)
    .await?;
    outcome.enqueued += 1;
    Ok(())
}

/// Only final statuses are recorded by marking; an event goes back to received by replay.
fn outcome_status(status: EventStatus) -> Result<&'static str, StoreError> {
    if status == EventStatus::Received {
        return Err(StoreError::InvalidInput(
            "an event is marked with the outcome of processing, not as received; replay it instead"
                .to_owned(),
        ));
    }
    Ok(status.as_str())
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn ingest(
        &self,
        events: &[NewEvent],
        audit: IngestAudit<'_>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = stamp(OffsetDateTime::now_utc())?;
        let prepared = events
            .iter()
            .map(|event| {
                Ok((
                    stamp(event.received_at)?,
                    event.job.as_ref().map(PreparedJob::new).transpose()?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut transaction = self.durable_pool().begin_with(BEGIN_WRITE).await?;
        let mut outcomes = Vec::with_capacity(events.len());
        // Jobs with a dedupe key coalesce, so a batch looks each one up once and links every
        // event to it; the event row is then written once, with its job, instead of being
        // inserted and rewritten (the body is most of the row).
        let mut coalesced: Vec<CoalescedJob<'_>> = Vec::new();
        // Bodies go in with one statement per chunk: each statement is a round trip to the
        // connection's thread, and a batch holds dozens of events.
        let mut new_bodies: Vec<(EventId, &Vec<u8>)> = Vec::with_capacity(events.len());
        for (event, (received_at, job)) in events.iter().zip(&prepared) {
            let job_id = match job {
                None => None,
                Some(job) => {
                    let known = job.dedupe_key.and_then(|key| {
                        coalesced.iter_mut().find(|c| {
                            c.tenant == &event.tenant && c.kind == job.kind && c.key == Some(key)
                        })
                    });
                    match known {
                        Some(known) => {
                            if job.run_after < known.run_after {
                                sqlx::query("UPDATE jobs SET run_after = ? WHERE id = ?")
                                    .bind(&job.run_after)
                                    .bind(known.id.0)
                                    .execute(&mut *transaction)
                                    .await?;
                                known.run_after = job.run_after.clone();
                            }
                            Some(known.id)
                        }
                        None => {
                            let (id, created) =
                                enqueue_in(&mut transaction, &event.tenant, job, &now).await?;
                            // Unshared jobs are tracked too: one whose event turns out a
                            // redelivery is dropped below.
                            if job.dedupe_key.is_some() || created {
                                coalesced.push(CoalescedJob {
                                    tenant: &event.tenant,
                                    kind: job.kind,
                                    key: job.dedupe_key,
                                    run_after: job.run_after.clone(),
                                    id,
                                    created,
                                    linked: 0,
                                });
                            }
                            Some(id)
                        }
                    }
                }
            };
            // A redelivery conflicts on (tenant_id, event_id, event_type) and only counts up; a row that
            // comes back with one delivery was inserted just now.
            let row = sqlx::query(
                "INSERT INTO events (tenant_id, event_id, event_type, subscription_id, status, \
                 error, received_at, deliveries, job_id) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?) \
                 ON CONFLICT (tenant_id, event_id, event_type) DO UPDATE SET deliveries = deliveries + 1 \
                 RETURNING id, deliveries",
            )
            .bind(event.tenant.as_str())
            .bind(&event.event_id)
            .bind(&event.event_type)
            .bind(&event.subscription_id)
            .bind(event.status.as_str())
            .bind(&event.error)
            .bind(received_at)
            .bind(job_id.map(|job| job.0))
            .fetch_one(&mut *transaction)
            .await?;
            let id = EventId(row.try_get("id")?);
            if row.try_get::<i64, _>("deliveries")? > 1 {
                outcomes.push(IngestOutcome::Duplicate { id });
                continue;
            }
            new_bodies.push((id, &event.body));
            if let Some(job_id) = job_id
                && let Some(entry) = coalesced.iter_mut().find(|c| c.id == job_id)
            {
                entry.linked += 1;
            }
            outcomes.push(IngestOutcome::Stored { id, job: job_id });
        }
        for chunk in new_bodies.chunks(CHUNK) {
            let rows = vec!["(?, ?)"; chunk.len()].join(", ");
            let sql = format!("INSERT INTO event_bodies (event, body) VALUES {rows}");
            let mut insert = sqlx::query(AssertSqlSafe(sql));
            for (id, body) in chunk {
                insert = insert.bind(id.0).bind(*body);
            }
            insert.execute(&mut *transaction).await?;
        }
        let mut tenants: Vec<&TenantId> = events.iter().map(|event| &event.tenant).collect();
        tenants.sort_unstable();
        tenants.dedup();
        for tenant in tenants {
            let deliveries: Vec<(&NewEvent, &IngestOutcome)> = events
                .iter()
                .zip(&outcomes)
                .filter(|(event, _)| &event.tenant == tenant)
                .collect();
            let records = audit(tenant, &deliveries);
            self.append_audit_in(&mut transaction, tenant, &records)
                .await?;
        }
        // A job created for redeliveries only would process nothing: it must not exist.
        for unused in coalesced.iter().filter(|c| c.created && c.linked == 0) {
            sqlx::query("DELETE FROM jobs WHERE id = ?")
                .bind(unused.id.0)
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(outcomes)
    }

    async fn event(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        sqlx::query(concat!(select_events!(), " WHERE tenant_id = ? AND id = ?"))
            .bind(tenant.as_str())
            .bind(id.0)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(event_from)
            .transpose()
    }

    async fn events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let since = filter.since.map(stamp).transpose()?;
        let until = filter.until.map(stamp).transpose()?;
        let mut sql = String::from(concat!(select_events!(), " WHERE tenant_id = ? AND id > ?"));
        let mut texts: Vec<&str> = Vec::new();
        if let Some(status) = filter.status {
            sql.push_str(" AND status = ?");
            texts.push(status.as_str());
        }
        if let Some(event_type) = &filter.event_type {
            sql.push_str(" AND event_type = ?");
            texts.push(event_type);
        }
        if let Some(since) = &since {
            sql.push_str(" AND received_at >= ?");
            texts.push(since);
        }
        if let Some(until) = &until {
            sql.push_str(" AND received_at < ?");
            texts.push(until);
        }
        sql.push_str(" ORDER BY id LIMIT ?");
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(filter.after_id.map_or(0, |id| id.0));
        for text in texts {
            query = query.bind(text);
        }
        query
            .bind(i64::from(filter.limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(event_from)
            .collect()
    }

    async fn mark_event(
        &self,
        tenant: &TenantId,
        id: EventId,
        status: EventStatus,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE events SET status = ?, error = ?, processed_at = ? WHERE tenant_id = ? AND id = ?",
        )
        .bind(outcome_status(status)?)
        .bind(error)
        .bind(stamp(at)?)
        .bind(tenant.as_str())
        .bind(id.0)
        .execute(self.pool())
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::UnknownEvent(id));
        }
        Ok(())
    }

    async fn mark_job_events(
        &self,
        tenant: &TenantId,
        job: JobId,
        status: EventStatus,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let updated = sqlx::query(
            "UPDATE events SET status = ?, error = ?, processed_at = ? \
             WHERE tenant_id = ? AND job_id = ? AND status = 'received'",
        )
        .bind(outcome_status(status)?)
        .bind(error)
        .bind(stamp(at)?)
        .bind(tenant.as_str())
        .bind(job.0)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected())
    }

    async fn replay(
        &self,
        tenant: &TenantId,
        selection: &ReplaySelection,
        job: &(dyn for<'e> Fn(&'e StoredEvent) -> Option<NewJob> + Send + Sync),
        audit: &[AuditDraft],
    ) -> Result<ReplayOutcome, StoreError> {
        let now = stamp(OffsetDateTime::now_utc())?;
        let mut outcome = ReplayOutcome::default();
        let mut transaction = self.durable_pool().begin_with(BEGIN_WRITE).await?;
        match selection {
            ReplaySelection::Ids(ids) => {
                let ids: Vec<i64> = ids
                    .iter()
                    .map(|id| id.0)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let mut found = 0;
                for chunk in ids.chunks(CHUNK) {
                    let placeholders = vec!["?"; chunk.len()].join(", ");
                    let sql = format!(
                        "{} WHERE tenant_id = ? AND id IN ({placeholders}) ORDER BY id",
                        select_events!()
                    );
                    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(tenant.as_str());
                    for id in chunk {
                        query = query.bind(id);
                    }
                    let events = query
                        .fetch_all(&mut *transaction)
                        .await?
                        .iter()
                        .map(event_from)
                        .collect::<Result<Vec<_>, _>>()?;
                    found += events.len();
                    for event in &events {
                        replay_one(&mut transaction, event, job, &now, &mut outcome).await?;
                    }
                }
                outcome.not_found = (ids.len() - found) as u64;
            }
            ReplaySelection::Received { since, until } => {
                let (since, until) = (stamp(*since)?, stamp(*until)?);
                let mut after = 0_i64;
                loop {
                    let events = sqlx::query(concat!(
                        select_events!(),
                        " WHERE tenant_id = ? AND received_at >= ? \
                             AND received_at < ? AND id > ? ORDER BY id LIMIT ?"
                    ))
                    .bind(tenant.as_str())
                    .bind(&since)
                    .bind(&until)
                    .bind(after)
                    .bind(REPLAY_PAGE)
                    .fetch_all(&mut *transaction)
                    .await?
                    .iter()
                    .map(event_from)
                    .collect::<Result<Vec<_>, _>>()?;
                    let Some(last) = events.last() else {
                        break;
                    };
                    after = last.id.0;
                    for event in &events {
                        replay_one(&mut transaction, event, job, &now, &mut outcome).await?;
                    }
                }
            }
        }
        self.append_audit_in(&mut transaction, tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(outcome)
    }

    async fn prune_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let before = stamp(before)?;
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        sqlx::query(
            "DELETE FROM event_bodies WHERE event IN (SELECT id FROM events WHERE received_at < ?)",
        )
        .bind(&before)
        .execute(&mut *transaction)
        .await?;
        let deleted = sqlx::query("DELETE FROM events WHERE received_at < ?")
            .bind(&before)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(deleted.rows_affected())
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue(
        &self,
        tenant: &TenantId,
        job: &NewJob,
        audit: &[AuditDraft],
    ) -> Result<JobId, StoreError> {
        let job = PreparedJob::new(job)?;
        let now = stamp(OffsetDateTime::now_utc())?;
        let mut transaction = self.durable_pool().begin_with(BEGIN_WRITE).await?;
        let (id, _) = enqueue_in(&mut transaction, tenant, &job, &now).await?;
        self.append_audit_in(&mut transaction, tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(id)
    }

    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lease_until = time::Duration::try_from(lease)
            .ok()
            .and_then(|lease| now.checked_add(lease))
            .ok_or_else(|| StoreError::InvalidInput(format!("lease {lease:?} is too long")))?;
        let (now, lease_until) = (stamp(now)?, stamp(lease_until)?);
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        // A job whose worker keeps dying (or that kills it) must not be retried forever.
        sqlx::query(
            "UPDATE jobs SET status = 'dead', \
             last_error = 'the lease of ' || lease_owner || ' expired on attempt ' || attempts || ' of ' || max_attempts, \
             lease_owner = NULL, lease_until = NULL, updated_at = ? \
             WHERE status = 'running' AND lease_until <= ? AND attempts >= max_attempts",
        )
        .bind(&now)
        .bind(&now)
        .execute(&mut *transaction)
        .await?;
        // Jobs a dead worker left behind first (they have waited longest), then due queued
        // ones. Two statements rather than one OR: each walks its index in order and stops at
        // the limit, where the OR would sort every due job on each claim.
        let mut jobs = claim_where(
            &mut transaction,
            "status = 'running' AND lease_until <= ? ORDER BY lease_until, id",
            (worker, &lease_until, &now),
            i64::from(limit),
        )
        .await?;
        let left = i64::from(limit) - jobs.len() as i64;
        if left > 0 {
            jobs.extend(
                claim_where(
                    &mut transaction,
                    "status = 'queued' AND run_after <= ? ORDER BY run_after, id",
                    (worker, &lease_until, &now),
                    left,
                )
                .await?,
            );
        }
        transaction.commit().await?;
        Ok(jobs)
    }

    async fn extend_lease(
        &self,
        id: JobId,
        worker: &str,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND status = 'running' AND lease_owner = ?",
        )
        .bind(stamp(until)?)
        .bind(id.0)
        .bind(worker)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn complete(
        &self,
        id: JobId,
        worker: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE jobs SET status = 'done', lease_owner = NULL, lease_until = NULL, updated_at = ? \
             WHERE id = ? AND status = 'running' AND lease_owner = ?",
        )
        .bind(stamp(now)?)
        .bind(id.0)
        .bind(worker)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn fail(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry: Retry,
        now: OffsetDateTime,
        if_dead: &[AuditDraft],
    ) -> Result<Option<JobStatus>, StoreError> {
        let retry_at = match retry {
            Retry::At(at) => Some(stamp(at)?),
            Retry::Never => None,
        };
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        // One statement: the attempts it compares are the ones it updates.
        let row = sqlx::query(
            "UPDATE jobs SET \
             status = CASE WHEN ? IS NULL OR attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
             run_after = COALESCE(?, run_after), last_error = ?, \
             lease_owner = NULL, lease_until = NULL, updated_at = ? \
             WHERE id = ? AND status = 'running' AND lease_owner = ? RETURNING status, tenant_id",
        )
        .bind(&retry_at)
        .bind(&retry_at)
        .bind(error)
        .bind(stamp(now)?)
        .bind(id.0)
        .bind(worker)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(row) = row else {
            transaction.rollback().await?;
            return Ok(None);
        };
        let status: String = row.try_get("status")?;
        let status = JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?;
        if status == JobStatus::Dead {
            let tenant: String = row.try_get("tenant_id")?;
            let tenant = TenantId::parse(&tenant)
                .map_err(|error| StoreError::Corrupt(format!("tenant {tenant:?}: {error}")))?;
            self.append_audit_in(&mut transaction, &tenant, if_dead)
                .await?;
        }
        transaction.commit().await?;
        Ok(Some(status))
    }

    async fn job(&self, tenant: &TenantId, id: JobId) -> Result<Option<Job>, StoreError> {
        sqlx::query("SELECT * FROM jobs WHERE tenant_id = ? AND id = ?")
            .bind(tenant.as_str())
            .bind(id.0)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(job_from)
            .transpose()
    }

    async fn jobs(&self, tenant: &TenantId, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let mut sql = String::from("SELECT * FROM jobs WHERE tenant_id = ? AND id > ?");
        let mut texts: Vec<&str> = Vec::new();
        if let Some(status) = filter.status {
            sql.push_str(" AND status = ?");
            texts.push(status.as_str());
        }
        if let Some(kind) = &filter.kind {
            sql.push_str(" AND kind = ?");
            texts.push(kind);
        }
        sql.push_str(" ORDER BY id LIMIT ?");
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(filter.after_id.map_or(0, |id| id.0));
        for text in texts {
            query = query.bind(text);
        }
        query
            .bind(i64::from(filter.limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(job_from)
            .collect()
    }

    async fn retry_job(
        &self,
        tenant: &TenantId,
        id: JobId,
        now: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let now = stamp(now)?;
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        let updated = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_after = ?, lease_owner = NULL, \
             lease_until = NULL, updated_at = ? WHERE tenant_id = ? AND id = ? AND status = 'dead'",
        )
        .bind(&now)
        .bind(&now)
        .bind(tenant.as_str())
        .bind(id.0)
        .execute(&mut *transaction)
        .await?;
        let retried = updated.rows_affected() == 1;
        if retried {
            self.append_audit_in(&mut transaction, tenant, audit)
                .await?;
        }
        transaction.commit().await?;
        Ok(retried)
    }

    async fn claim_schedule(
        &self,
        tenant: &TenantId,
        name: &str,
        now: OffsetDateTime,
        every: std::time::Duration,
    ) -> Result<bool, StoreError> {
        // One statement: the insert, or the update only when the last claim is old enough.
        let claimed = sqlx::query(
            "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at WHERE watermarks.value <= ?",
        )
        .bind(tenant.as_str())
        .bind(crate::queue::schedule_watermark(name))
        .bind(crate::queue::schedule_stamp(now))
        .bind(stamp(now)?)
        .bind(crate::queue::schedule_threshold(now, every))
        .execute(self.pool())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn claim_lease(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let until = crate::queue::lease_until(now, lease);
        let claimed = sqlx::query(
            "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at \
             WHERE substr(watermarks.value, 1, 20) <= ? OR substr(watermarks.value, 22) = ?",
        )
        .bind(tenant.as_str())
        .bind(crate::queue::lease_watermark(name))
        .bind(crate::queue::lease_value(holder, until))
        .bind(stamp(now)?)
        .bind(crate::queue::schedule_stamp(now))
        .bind(holder)
        .execute(self.pool())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn queue_stats(&self, now: OffsetDateTime) -> Result<QueueStats, StoreError> {
        let now = stamp(now)?;
        let mut stats = QueueStats::default();
        // One read snapshot, so the counts add up.
        let mut transaction = self.pool().begin().await?;
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            .fetch_all(&mut *transaction)
            .await?;
        for row in rows {
            let status: String = row.try_get("status")?;
            let count = row.try_get::<i64, _>("n")?.unsigned_abs();
            match JobStatus::parse(&status) {
                Some(JobStatus::Queued) => stats.queued = count,
                Some(JobStatus::Running) => stats.running = count,
                Some(JobStatus::Done) => stats.done = count,
                Some(JobStatus::Dead) => stats.dead = count,
                None => return Err(StoreError::Corrupt(format!("job status {status:?}"))),
            }
        }
        let due = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(run_after) AS oldest FROM jobs \
             WHERE status = 'queued' AND run_after <= ?",
        )
        .bind(&now)
        .fetch_one(&mut *transaction)
        .await?;
        transaction.commit().await?;
        stats.due = due.try_get::<i64, _>("n")?.unsigned_abs();
        stats.oldest_queued_at = optional_time_column(&due, "oldest")?;
        Ok(stats)
    }

    async fn prune_jobs(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM jobs WHERE status = 'done' AND updated_at < ?")
            .bind(stamp(before)?)
            .execute(self.pool())
            .await?;
        Ok(deleted.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use time::macros::{datetime, offset};

    use super::*;

    #[test]
    fn stamps_sort_as_the_times_they_stand_for() {
        let base = datetime!(2026-03-01 12:00:00 UTC);
        let times = [
            base - time::Duration::seconds(1),
            base,
            base + time::Duration::microseconds(1),
            base + time::Duration::milliseconds(500),
            // The same instant written in another offset, and one a little later.
            datetime!(2026-03-01 14:00:01 +02:00),
            datetime!(2026-03-01 14:00:01.25 +02:00),
            datetime!(2026-03-02 0:00 UTC),
            datetime!(9999-12-31 23:59:59.999999 UTC),
        ];
        let stamps: Vec<String> = times.iter().map(|time| stamp(*time).unwrap()).collect();
        for pair in stamps.windows(2) {
            assert!(
                pair[0] < pair[1],
                "{} should sort before {}",
                pair[0],
                pair[1]
            );
        }
        assert!(stamps.iter().all(|stamp| stamp.len() == 27));
        assert_eq!(stamps[1], "2026-03-01T12:00:00.000000Z");
        assert_eq!(stamps[4], "2026-03-01T12:00:01.000000Z");
    }

    #[test]
    fn stamps_read_back_as_the_same_instant_to_the_microsecond() {
        let time = datetime!(2026-03-01 14:00:01.123456789 +02:00);
        let back = parse_stamp(&stamp(time).unwrap()).unwrap();
        assert_eq!(back, time.truncate_to_microsecond());
        assert_eq!(back.offset(), offset!(UTC));
    }

    #[test]
    fn times_outside_four_digit_years_are_refused() {
        let error = stamp(datetime!(-0001-06-01 0:00 UTC)).unwrap_err();
        assert!(matches!(error, StoreError::InvalidInput(_)), "{error}");
    }
}
