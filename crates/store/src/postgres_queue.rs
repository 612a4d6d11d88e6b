//! Webhook events and the job queue on PostgreSQL.
//!
//! Several replicas share the queue: claims pick rows with `FOR UPDATE SKIP LOCKED` (a job
//! another claimer holds is passed over, never waited for, never taken twice) and lease them
//! (`lease_owner`, `lease_until`). Joining a queued job (coalescing by dedupe key) is one
//! `UPDATE … WHERE status = 'queued'`, which PostgreSQL re-checks against a concurrent claim,
//! so an event is never linked to a job a worker already took. Acknowledged writes (ingest,
//! enqueue, replay) commit with `synchronous_commit = on`.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::postgres::{PostgresStore, now, scope_to, tenant_column};
use crate::{
    AuditDraft, EventFilter, EventId, EventStatus, EventStore, IngestAudit, IngestOutcome, Job,
    JobFilter, JobId, JobStatus, JobStore, NewEvent, NewJob, QueueStats, ReplayOutcome,
    ReplaySelection, Retry, StoreError, StoredEvent,
};

/// Events replayed by time range are read this many at a time.
const REPLAY_PAGE: i64 = 500;

const EVENT_COLUMNS: &str = "id, tenant_id, event_id, event_type, subscription_id, status, \
     body, error, received_at, processed_at, deliveries, job_id FROM events";

const JOB_COLUMNS: &str = "id, tenant_id, kind, payload::text AS payload, dedupe_key, status, \
     attempts, max_attempts, run_after, lease_owner, lease_until, last_error, created_at, updated_at";

fn count_column(row: &PgRow, column: &str) -> Result<u32, StoreError> {
    let raw: i32 = row.try_get(column)?;
    u32::try_from(raw).map_err(|_| StoreError::Corrupt(format!("{column} {raw} out of range")))
}

fn event_from(row: &PgRow) -> Result<StoredEvent, StoreError> {
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
        received_at: row.try_get("received_at")?,
        processed_at: row.try_get("processed_at")?,
        deliveries: count_column(row, "deliveries")?,
        job: row.try_get::<Option<i64>, _>("job_id")?.map(JobId),
    })
}

fn job_from(row: &PgRow) -> Result<Job, StoreError> {
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
        run_after: row.try_get("run_after")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A job checked and in column form, so a bad one fails before anything is written.
pub(crate) struct PreparedJob<'a> {
    kind: &'a str,
    payload: String,
    dedupe_key: Option<&'a str>,
    run_after: OffsetDateTime,
    max_attempts: i32,
}

impl<'a> PreparedJob<'a> {
    pub(crate) fn new(job: &'a NewJob) -> Result<Self, StoreError> {
        if job.kind.trim().is_empty() {
            return Err(StoreError::InvalidInput("a job needs a kind".to_owned()));
        }
        let max_attempts = i32::try_from(job.max_attempts)
            .ok()
            .filter(|attempts| *attempts > 0)
            .ok_or_else(|| {
                StoreError::InvalidInput(format!(
                    "job {:?} needs max_attempts between 1 and {}",
                    job.kind,
                    i32::MAX
                ))
            })?;
        Ok(Self {
            kind: &job.kind,
            payload: job.payload.to_string(),
            dedupe_key: job.dedupe_key.as_deref(),
            run_after: job.run_after,
            max_attempts,
        })
    }
}

/// A job one ingest batch created or joined, and how many new events it took.
struct CoalescedJob<'a> {
    tenant: &'a TenantId,
    kind: &'a str,
    key: Option<&'a str>,
    run_after: OffsetDateTime,
    id: JobId,
    created: bool,
    linked: usize,
}

/// Enqueue inside the caller's transaction (scoped to `tenant`): into a queued job with the
/// same dedupe key if there is one still queued when the row is locked, else as a new row.
pub(crate) async fn enqueue_in(
    connection: &mut PgConnection,
    tenant: &TenantId,
    job: &PreparedJob<'_>,
    now: OffsetDateTime,
) -> Result<(JobId, bool), StoreError> {
    if let Some(key) = job.dedupe_key {
        // The outer `status = 'queued'` is evaluated again on the row's latest version once
        // its lock is ours: a worker that claimed it meanwhile makes this match nothing.
        let joined: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET run_after = LEAST(run_after, $4), updated_at = $5 \
             WHERE id = (SELECT id FROM jobs WHERE tenant_id = $1 AND kind = $2 AND dedupe_key = $3 \
                         AND status = 'queued' ORDER BY id LIMIT 1) \
             AND status = 'queued' RETURNING id",
        )
        .bind(tenant.as_str())
        .bind(job.kind)
        .bind(key)
        .bind(job.run_after)
        .bind(now)
        .fetch_optional(&mut *connection)
        .await?;
        if let Some(id) = joined {
            return Ok((JobId(id), false));
        }
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (tenant_id, kind, payload, dedupe_key, status, attempts, max_attempts, \
         run_after, created_at, updated_at) \
         VALUES ($1, $2, $3::jsonb, $4, 'queued', 0, $5, $6, $7, $7) RETURNING id",
    )
    .bind(tenant.as_str())
    .bind(job.kind)
    .bind(&job.payload)
    .bind(job.dedupe_key)
    .bind(job.max_attempts)
    .bind(job.run_after)
    .bind(now)
    .fetch_one(&mut *connection)
    .await?;
    Ok((JobId(id), true))
}

/// Lease to `worker` up to `limit` jobs of `status` whose `due` column has come, in that
/// column's order. Rows another claimer has locked are skipped, not waited for.
async fn claim_where(
    connection: &mut PgConnection,
    (status, due): (&'static str, &'static str),
    (worker, lease_until, now): (&str, OffsetDateTime, OffsetDateTime),
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    let sql = format!(
        "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $2, \
         attempts = attempts + 1, updated_at = $3 \
         WHERE id IN (SELECT id FROM jobs WHERE status = '{status}' AND {due} <= $3 \
                      ORDER BY {due}, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING {JOB_COLUMNS}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *connection)
        .await?;
    let mut jobs = rows.iter().map(job_from).collect::<Result<Vec<_>, _>>()?;
    jobs.sort_by_key(|job| (job.run_after, job.id));
    Ok(jobs)
}

/// Give one stored event a job again (or skip it) inside the replay's transaction.
async fn replay_one(
    connection: &mut PgConnection,
    event: &StoredEvent,
    job_for: &(dyn for<'e> Fn(&'e StoredEvent) -> Option<NewJob> + Send + Sync),
    now: OffsetDateTime,
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
        "UPDATE events SET status = 'received', error = NULL, processed_at = NULL, job_id = $1 \
         WHERE tenant_id = $2 AND id = $3",
    )
    .bind(job.0)
    .bind(event.tenant.as_str())
    .bind(event.id.0)
    .execute(&mut *connection)
    .await?;
    outcome.enqueued += 1;
    Ok(())
}

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
impl EventStore for PostgresStore {
    async fn ingest(
        &self,
        events: &[NewEvent],
        audit: IngestAudit<'_>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let Some(first) = events.first() else {
            return Ok(Vec::new());
        };
        let now = now();
        let prepared = events
            .iter()
            .map(|event| event.job.as_ref().map(PreparedJob::new).transpose())
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut transaction = self.begin_durable_for(&first.tenant).await?;
        let mut scoped = &first.tenant;
        let mut placed: Vec<Option<IngestOutcome>> = Vec::new();
        placed.resize_with(events.len(), || None);
        let mut coalesced: Vec<CoalescedJob<'_>> = Vec::new();
        // Rows are written in one global order (tenant, event id, type), so two replicas
        // ingesting overlapping batches (ADO retrying against another instance) wait for
        // each other instead of deadlocking; outcomes keep the callers' order.
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| {
                (
                    &events[i].tenant,
                    &events[i].event_id,
                    &events[i].event_type,
                )
            };
            key(a).cmp(&key(b))
        });
        for &i in &order {
            let (event, job) = (&events[i], &prepared[i]);
            if &event.tenant != scoped {
                scope_to(&mut transaction, &event.tenant).await?;
                scoped = &event.tenant;
            }
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
                            // Ours since this batch created or joined it (row locked).
                            if job.run_after < known.run_after {
                                sqlx::query("UPDATE jobs SET run_after = $1 WHERE id = $2")
                                    .bind(job.run_after)
                                    .bind(known.id.0)
                                    .execute(&mut *transaction)
                                    .await?;
                                known.run_after = job.run_after;
                            }
                            Some(known.id)
                        }
                        None => {
                            let (id, created) =
                                enqueue_in(&mut transaction, &event.tenant, job, now).await?;
                            if job.dedupe_key.is_some() || created {
                                coalesced.push(CoalescedJob {
                                    tenant: &event.tenant,
                                    kind: job.kind,
                                    key: job.dedupe_key,
                                    run_after: job.run_after,
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
            let row = sqlx::query(
                "INSERT INTO events (tenant_id, event_id, event_type, subscription_id, status, \
                 body, error, received_at, deliveries, job_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9) \
                 ON CONFLICT (tenant_id, event_id, event_type) \
                 DO UPDATE SET deliveries = events.deliveries + 1 RETURNING id, deliveries",
            )
            .bind(event.tenant.as_str())
            .bind(&event.event_id)
            .bind(&event.event_type)
            .bind(&event.subscription_id)
            .bind(event.status.as_str())
            .bind(&event.body)
            .bind(&event.error)
            .bind(event.received_at)
            .bind(job_id.map(|job| job.0))
            .fetch_one(&mut *transaction)
            .await?;
            let id = EventId(row.try_get("id")?);
            if row.try_get::<i32, _>("deliveries")? > 1 {
                placed[i] = Some(IngestOutcome::Duplicate { id });
                continue;
            }
            if let Some(job_id) = job_id
                && let Some(entry) = coalesced.iter_mut().find(|c| c.id == job_id)
            {
                entry.linked += 1;
            }
            placed[i] = Some(IngestOutcome::Stored { id, job: job_id });
        }
        let outcomes: Vec<IngestOutcome> = placed.into_iter().flatten().collect();
        if outcomes.len() != events.len() {
            return Err(StoreError::Corrupt(
                "an ingested event has no outcome".to_owned(),
            ));
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
            scope_to(&mut transaction, unused.tenant).await?;
            sqlx::query("DELETE FROM jobs WHERE tenant_id = $1 AND id = $2")
                .bind(unused.tenant.as_str())
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
        let mut transaction = self.begin_for(tenant).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant.as_str())
        .bind(id.0)
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        row.as_ref().map(event_from).transpose()
    }

    async fn events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} WHERE tenant_id = $1 AND id > $2 \
             AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR event_type = $4) \
             AND ($5::timestamptz IS NULL OR received_at >= $5) \
             AND ($6::timestamptz IS NULL OR received_at < $6) ORDER BY id LIMIT $7"
        )))
        .bind(tenant.as_str())
        .bind(filter.after_id.map_or(0, |id| id.0))
        .bind(filter.status.map(EventStatus::as_str))
        .bind(&filter.event_type)
        .bind(filter.since)
        .bind(filter.until)
        .bind(i64::from(filter.limit))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(event_from).collect()
    }

    async fn mark_event(
        &self,
        tenant: &TenantId,
        id: EventId,
        status: EventStatus,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let status = outcome_status(status)?;
        let mut transaction = self.begin_for(tenant).await?;
        let updated = sqlx::query(
            "UPDATE events SET status = $1, error = $2, processed_at = $3 \
             WHERE tenant_id = $4 AND id = $5",
        )
        .bind(status)
        .bind(error)
        .bind(at)
        .bind(tenant.as_str())
        .bind(id.0)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
        let status = outcome_status(status)?;
        let mut transaction = self.begin_for(tenant).await?;
        let updated = sqlx::query(
            "UPDATE events SET status = $1, error = $2, processed_at = $3 \
             WHERE tenant_id = $4 AND job_id = $5 AND status = 'received'",
        )
        .bind(status)
        .bind(error)
        .bind(at)
        .bind(tenant.as_str())
        .bind(job.0)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(updated.rows_affected())
    }

    async fn replay(
        &self,
        tenant: &TenantId,
        selection: &ReplaySelection,
        job: &(dyn for<'e> Fn(&'e StoredEvent) -> Option<NewJob> + Send + Sync),
        audit: &[AuditDraft],
    ) -> Result<ReplayOutcome, StoreError> {
        let now = now();
        let mut outcome = ReplayOutcome::default();
        let mut transaction = self.begin_durable_for(tenant).await?;
        match selection {
            ReplaySelection::Ids(ids) => {
                let ids: Vec<i64> = ids
                    .iter()
                    .map(|id| id.0)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let events = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {EVENT_COLUMNS} WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id"
                )))
                .bind(tenant.as_str())
                .bind(&ids)
                .fetch_all(&mut *transaction)
                .await?
                .iter()
                .map(event_from)
                .collect::<Result<Vec<_>, _>>()?;
                for event in &events {
                    replay_one(&mut transaction, event, job, now, &mut outcome).await?;
                }
                outcome.not_found = (ids.len() - events.len()) as u64;
            }
            ReplaySelection::Received { since, until } => {
                let mut after = 0_i64;
                loop {
                    let events = sqlx::query(AssertSqlSafe(format!(
                        "SELECT {EVENT_COLUMNS} WHERE tenant_id = $1 AND received_at >= $2 \
                         AND received_at < $3 AND id > $4 ORDER BY id LIMIT $5"
                    )))
                    .bind(tenant.as_str())
                    .bind(*since)
                    .bind(*until)
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
                        replay_one(&mut transaction, event, job, now, &mut outcome).await?;
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
        let mut transaction = self.begin_across_tenants().await?;
        let deleted = sqlx::query("DELETE FROM events WHERE received_at < $1")
            .bind(before)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(deleted.rows_affected())
    }
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn enqueue(
        &self,
        tenant: &TenantId,
        job: &NewJob,
        audit: &[AuditDraft],
    ) -> Result<JobId, StoreError> {
        let job = PreparedJob::new(job)?;
        let mut transaction = self.begin_durable_for(tenant).await?;
        let (id, _) = enqueue_in(&mut transaction, tenant, &job, now()).await?;
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
        let mut transaction = self.begin_across_tenants().await?;
        // A job whose worker keeps dying (or that kills it) must not be retried forever.
        sqlx::query(
            "UPDATE jobs SET status = 'dead', \
             last_error = 'the lease of ' || lease_owner || ' expired on attempt ' || attempts || ' of ' || max_attempts, \
             lease_owner = NULL, lease_until = NULL, updated_at = $1 \
             WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_until <= $1 \
                          AND attempts >= max_attempts FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .execute(&mut *transaction)
        .await?;
        // Jobs a dead worker left behind first (they have waited longest), then due ones.
        let mut jobs = claim_where(
            &mut transaction,
            ("running", "lease_until"),
            (worker, lease_until, now),
            i64::from(limit),
        )
        .await?;
        let left = i64::from(limit) - jobs.len() as i64;
        if left > 0 {
            jobs.extend(
                claim_where(
                    &mut transaction,
                    ("queued", "run_after"),
                    (worker, lease_until, now),
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
        let mut transaction = self.begin_across_tenants().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND status = 'running' AND lease_owner = $3",
        )
        .bind(until)
        .bind(id.0)
        .bind(worker)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn complete(
        &self,
        id: JobId,
        worker: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        let updated = sqlx::query(
            "UPDATE jobs SET status = 'done', lease_owner = NULL, lease_until = NULL, updated_at = $1 \
             WHERE id = $2 AND status = 'running' AND lease_owner = $3",
        )
        .bind(now)
        .bind(id.0)
        .bind(worker)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
            Retry::At(at) => Some(at),
            Retry::Never => None,
        };
        let mut transaction = self.begin_across_tenants().await?;
        // One statement: the attempts it compares are the ones it updates.
        let row = sqlx::query(
            "UPDATE jobs SET \
             status = CASE WHEN $1::timestamptz IS NULL OR attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
             run_after = COALESCE($1, run_after), last_error = $2, \
             lease_owner = NULL, lease_until = NULL, updated_at = $3 \
             WHERE id = $4 AND status = 'running' AND lease_owner = $5 RETURNING status, tenant_id",
        )
        .bind(retry_at)
        .bind(error)
        .bind(now)
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
            let tenant = tenant_column(&row)?;
            self.append_audit_in(&mut transaction, &tenant, if_dead)
                .await?;
        }
        transaction.commit().await?;
        Ok(Some(status))
    }

    async fn job(&self, tenant: &TenantId, id: JobId) -> Result<Option<Job>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant.as_str())
        .bind(id.0)
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        row.as_ref().map(job_from).transpose()
    }

    async fn jobs(&self, tenant: &TenantId, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND id > $2 \
             AND ($3::text IS NULL OR status = $3) AND ($4::text IS NULL OR kind = $4) \
             ORDER BY id LIMIT $5"
        )))
        .bind(tenant.as_str())
        .bind(filter.after_id.map_or(0, |id| id.0))
        .bind(filter.status.map(JobStatus::as_str))
        .bind(&filter.kind)
        .bind(i64::from(filter.limit))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(job_from).collect()
    }

    async fn retry_job(
        &self,
        tenant: &TenantId,
        id: JobId,
        now: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let updated = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_after = $1, lease_owner = NULL, \
             lease_until = NULL, updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND status = 'dead'",
        )
        .bind(now)
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
        let mut transaction = self.begin_for(tenant).await?;
        // One statement: the insert, or the update only when the last claim is old enough;
        // a concurrent claimer waits on the row and then finds it taken.
        let claimed = sqlx::query(
            "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at WHERE watermarks.value <= $5",
        )
        .bind(tenant.as_str())
        .bind(crate::queue::schedule_watermark(name))
        .bind(crate::queue::schedule_stamp(now))
        .bind(now)
        .bind(crate::queue::schedule_threshold(now, every))
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
        let mut transaction = self.begin_for(tenant).await?;
        let claimed = sqlx::query(
            "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at \
             WHERE substr(watermarks.value, 1, 20) <= $5 OR substr(watermarks.value, 22) = $6",
        )
        .bind(tenant.as_str())
        .bind(crate::queue::lease_watermark(name))
        .bind(crate::queue::lease_value(holder, until))
        .bind(now)
        .bind(crate::queue::schedule_stamp(now))
        .bind(holder)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn queue_stats(&self, now: OffsetDateTime) -> Result<QueueStats, StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        // One statement, one snapshot: the counts add up.
        let row = sqlx::query(
            "SELECT COUNT(*) FILTER (WHERE status = 'queued') AS queued, \
             COUNT(*) FILTER (WHERE status = 'queued' AND run_after <= $1) AS due, \
             COUNT(*) FILTER (WHERE status = 'running') AS running, \
             COUNT(*) FILTER (WHERE status = 'dead') AS dead, \
             COUNT(*) FILTER (WHERE status = 'done') AS done, \
             COUNT(*) FILTER (WHERE status NOT IN ('queued', 'running', 'dead', 'done')) AS odd, \
             MIN(run_after) FILTER (WHERE status = 'queued' AND run_after <= $1) AS oldest \
             FROM jobs",
        )
        .bind(now)
        .fetch_one(&mut *transaction)
        .await?;
        transaction.commit().await?;
        let count = |column: &str| -> Result<u64, StoreError> {
            Ok(row.try_get::<i64, _>(column)?.unsigned_abs())
        };
        if count("odd")? > 0 {
            return Err(StoreError::Corrupt(
                "a job has a status this tollgate does not know".to_owned(),
            ));
        }
        Ok(QueueStats {
            queued: count("queued")?,
            due: count("due")?,
            running: count("running")?,
            dead: count("dead")?,
            done: count("done")?,
            oldest_queued_at: row.try_get("oldest")?,
        })
    }

    async fn prune_jobs(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        let deleted = sqlx::query("DELETE FROM jobs WHERE status = 'done' AND updated_at < $1")
            .bind(before)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(deleted.rows_affected())
    }
}
