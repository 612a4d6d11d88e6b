//! Workers: take jobs from the durable queue and run them — process a stored service-hook
//! event, re-sync and re-evaluate a tenant, run a scheduled full sync — and the scheduler
//! that enqueues the periodic ones.
//!
//! Handlers are idempotent: a job may run twice (a worker died after doing the work but
//! before recording it), and running it again converges to the same state.

use crate::services::audit_events::{Actor, AuditEvent, Record, Target};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tollgate_domain::TenantId;
use tollgate_store::{EventStatus, EventStore, Job, JobId, JobStatus, JobStore, NewJob, Retry};

use crate::services::FinalFailure;
use crate::services::capabilities::Capability;
use crate::services::events::{JOB_EVALUATE, JOB_EVENT, JOB_FULL_SYNC, JOB_REFRESH};
use crate::services::gate::{JOB_APPROVAL_NOTIFY, JOB_APPROVALS_EXPIRE, JOB_GATE_CALLBACK};
use crate::services::scan::Evaluation;
use crate::services::sync::{ModeRequest, NoProgress};
use crate::services::tenant::{TenantContext, Tenants};
use crate::telemetry::{Metrics, StatusLabels};

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    /// Names this worker in leases (`hostname:pid:n`).
    pub id: String,
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub max_attempts: u32,
    /// Events within this window share one re-sync.
    pub debounce: Duration,
    pub lease: Duration,
}

pub struct Worker {
    pub jobs: Arc<dyn JobStore>,
    pub events: Arc<dyn EventStore>,
    pub tenants: Arc<Tenants>,
    pub metrics: Arc<Metrics>,
    pub settings: WorkerSettings,
    /// Notified when jobs are enqueued in this process, so they start without waiting for
    /// the next poll.
    pub wake: Arc<Notify>,
}

/// The jobs this worker runs, each on a task of its own.
#[derive(Default)]
struct InFlight {
    tasks: tokio::task::JoinSet<()>,
    jobs: std::collections::HashMap<tokio::task::Id, JobId>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.jobs.len()
    }

    fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    fn start(&mut self, worker: &Arc<Worker>, job: Job) {
        // A claim can return a job this worker still runs, when its lease lapsed (a stalled
        // clock or store): the running copy keeps it; a second would do its work twice.
        if self.jobs.values().any(|running| *running == job.id) {
            tracing::warn!(job = %job.id, "claimed a job that is still running here; not starting it twice");
            return;
        }
        let id = job.id;
        let worker = worker.clone();
        let task = self.tasks.spawn(async move { worker.run_job(job).await });
        self.jobs.insert(task.id(), id);
    }

    fn collect_finished(&mut self) {
        while let Some(finished) = self.tasks.try_join_next_with_id() {
            self.finished(finished);
        }
    }

    async fn next_finished(&mut self) {
        if let Some(finished) = self.tasks.join_next_with_id().await {
            self.finished(finished);
        }
    }

    fn finished(&mut self, finished: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let task = match finished {
            Ok((task, ())) => task,
            Err(error) => {
                let job = self.jobs.get(&error.id()).copied();
                // Its lease runs out and a later claim runs it again.
                tracing::error!(?job, %error, "a job's task failed");
                error.id()
            }
        };
        self.jobs.remove(&task);
    }
}

/// Exponential backoff with jitter: 2 s, 4 s, 8 s … capped at 10 minutes.
pub fn backoff(attempt: u32) -> Duration {
    let base = 2u64
        .saturating_pow(attempt.min(20))
        .saturating_mul(1_000)
        .min(600_000);
    let jitter = rand::random::<u64>() % (base / 4 + 1);
    Duration::from_millis(base - base / 8 + jitter)
}

impl Worker {
    /// Claim and run jobs until `shutdown` turns true; then finish the jobs in hand and return.
    /// A slot that frees is filled at once: a slow job (a notice to a chat service that is
    /// retrying) holds its own slot only, never the gate callbacks queued behind it.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let worker = Arc::new(self);
        let slots = worker.settings.concurrency.max(1);
        let mut running = InFlight::default();
        loop {
            if *shutdown.borrow() {
                break;
            }
            running.collect_finished();
            // Claim for half the slots or more at a time (or when none is busy): every claim
            // is a write transaction, and under a stream of short jobs claiming for each
            // slot as it frees would compete with ingest for the database's writer lock. One
            // slow job still leaves the others to claim.
            let free = slots.saturating_sub(running.len());
            let claimed = if free == 0 || (free * 2 < slots && !running.is_empty()) {
                Vec::new()
            } else {
                let now = OffsetDateTime::now_utc();
                let wanted = u32::try_from(free).unwrap_or(u32::MAX);
                match worker
                    .jobs
                    .claim(&worker.settings.id, wanted, worker.settings.lease, now)
                    .await
                {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::warn!(%error, "claiming jobs failed; retrying");
                        Vec::new()
                    }
                }
            };
            for job in claimed {
                running.start(&worker, job);
            }
            // Wait for a job to end, or, with a slot free, to be woken or for the next poll.
            let idle_slot = running.len() < slots;
            tokio::select! {
                () = running.next_finished(), if !running.is_empty() => {}
                () = worker.wake.notified(), if idle_slot => {}
                () = tokio::time::sleep(worker.settings.poll_interval), if idle_slot => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break; // No one can ask to stop any more: stop now, as asked last.
                    }
                }
            }
        }
        // In-flight jobs always finish.
        while !running.is_empty() {
            running.next_finished().await;
        }
        tracing::info!(worker = %worker.settings.id, "worker stopped");
    }

    async fn run_job(&self, job: Job) {
        let started = Instant::now();
        let heartbeat = self.keep_lease(&job);
        let outcome = tokio::select! {
            outcome = self.handle(&job) => outcome,
            () = heartbeat => Err(anyhow!("lost the job's lease")),
        };
        let now = OffsetDateTime::now_utc();
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                if let Err(error) = self.jobs.complete(job.id, &self.settings.id, now).await {
                    tracing::warn!(job = %job.id, %error, "recording a finished job failed; it will run again (handlers are idempotent)");
                }
                self.metrics.job(&job.kind, "done", seconds);
            }
            Err(error) => {
                let message = format!("{error:#}");
                let final_failure = error.chain().any(|cause| cause.is::<FinalFailure>());
                let retry = if job.attempts >= job.max_attempts || final_failure {
                    Retry::Never
                } else {
                    let delay = backoff(job.attempts);
                    Retry::At(
                        now + time::Duration::try_from(delay).unwrap_or(time::Duration::MINUTE),
                    )
                };
                let if_dead = Record::new(AuditEvent::JobDeadLettered, &Actor::system(), now)
                    .failure()
                    .reason(message.chars().take(1_000).collect::<String>())
                    .target(Target::new("job", job.id.0.to_string()))
                    .detail("kind", serde_json::json!(job.kind))
                    .detail("attempts", serde_json::json!(job.attempts))
                    .draft();
                match self
                    .jobs
                    .fail(job.id, &self.settings.id, &message, retry, now, &[if_dead])
                    .await
                {
                    Ok(Some(JobStatus::Dead)) => {
                        tracing::error!(job = %job.id, kind = %job.kind, attempts = job.attempts, error = %message, "job dead-lettered");
                        self.metrics.job(&job.kind, "dead", seconds);
                        self.event_failed(&job, &message).await;
                    }
                    Ok(None) => {
                        tracing::warn!(job = %job.id, "the job's lease was taken over; its new holder records the outcome");
                    }
                    Ok(Some(_)) => {
                        tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %message, "job failed; will retry");
                        self.metrics.job(&job.kind, "retry", seconds);
                    }
                    Err(store_error) => {
                        tracing::error!(job = %job.id, %store_error, "recording a failed job failed; its lease will expire and it runs again");
                    }
                }
            }
        }
    }

    /// Extends the job's lease while it runs; resolves only if the lease is lost.
    async fn keep_lease(&self, job: &Job) {
        let every = self.settings.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let until = OffsetDateTime::now_utc()
                + time::Duration::try_from(self.settings.lease).unwrap_or(time::Duration::MINUTE);
            match self
                .jobs
                .extend_lease(job.id, &self.settings.id, until)
                .await
            {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => tracing::warn!(job = %job.id, %error, "extending a lease failed"),
            }
        }
    }

    /// A job's tenant. Jobs are only queued for tenants that exist, so one this process does
    /// not serve yet was registered after it started (through another replica's API) and is
    /// opened now.
    fn tenant(&self, id: &TenantId) -> Result<Arc<TenantContext>> {
        match self.tenants.get(id) {
            Some(tenant) => Ok(tenant),
            None => self
                .tenants
                .open(id)
                .map_err(|error| anyhow!("tenant {id} is not served by this process: {error:#}")),
        }
    }

    async fn handle(&self, job: &Job) -> Result<()> {
        match job.kind.as_str() {
            JOB_EVENT => self.process_event(job).await,
            JOB_REFRESH => self.refresh(&job.tenant, ModeRequest::Auto).await,
            JOB_FULL_SYNC => self.refresh(&job.tenant, ModeRequest::Full).await,
            JOB_EVALUATE => self.evaluate(&job.tenant, Evaluation::All).await,
            JOB_GATE_CALLBACK => self.gate_callback(job).await,
            JOB_APPROVAL_NOTIFY => {
                self.tenant(&job.tenant)?
                    .gate
                    .send_notice(&job.payload)
                    .await
            }
            JOB_APPROVALS_EXPIRE => {
                let expired = self.tenant(&job.tenant)?.gate.expire_due().await?;
                if expired > 0 {
                    tracing::info!(tenant = %job.tenant, expired, "approvals expired");
                }
                Ok(())
            }
            other => Err(anyhow!("unknown job kind {other:?}")),
        }
    }

    /// Post a gate decision to its check's plan. Switched off (`gate.callback`), the job fails
    /// and is retried later, so the decision is posted once the capability is back on.
    async fn gate_callback(&self, job: &Job) -> Result<()> {
        let context = self.tenant(&job.tenant)?;
        let capability = context
            .capabilities
            .get(&job.tenant, Capability::GateCallback)
            .await;
        if !capability.enabled {
            return Err(anyhow!(
                "the gate.callback capability is off; the callback waits"
            ));
        }
        let decision = job
            .payload
            .get("decision")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("a gate.callback job names its decision"))?;
        let state = context.gate.post_callback(decision).await?;
        tracing::info!(tenant = %job.tenant, decision, state = state.as_str(), "gate callback");
        Ok(())
    }

    /// An event says something in the organisation changed: schedule a (coalesced) re-sync
    /// of the tenant. ADO sends no event for many configuration changes (branch policies,
    /// checks, connections), so the re-sync reads the audit log for those as well.
    async fn process_event(&self, job: &Job) -> Result<()> {
        let event_type = job
            .payload
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or("event");
        let now = OffsetDateTime::now_utc();
        self.jobs
            .enqueue(
                &job.tenant,
                &NewJob {
                    kind: JOB_REFRESH.to_owned(),
                    payload: json!({ "reason": event_type }),
                    dedupe_key: Some(JOB_REFRESH.to_owned()),
                    run_after: now
                        + time::Duration::try_from(self.settings.debounce)
                            .unwrap_or(time::Duration::ZERO),
                    max_attempts: self.settings.max_attempts,
                },
                &[],
            )
            .await
            .context("enqueueing the re-sync")?;
        self.events
            .mark_job_events(&job.tenant, job.id, EventStatus::Processed, None, now)
            .await
            .context("marking the event processed")?;
        // The refresh waits out the debounce window; wake a poller when it is due.
        let wake = self.wake.clone();
        let debounce = self.settings.debounce;
        tokio::spawn(async move {
            tokio::time::sleep(debounce).await;
            wake.notify_waiters();
        });
        Ok(())
    }

    async fn event_failed(&self, job: &Job, message: &str) {
        if job.kind != JOB_EVENT {
            return;
        }
        if let Err(error) = self
            .events
            .mark_job_events(
                &job.tenant,
                job.id,
                EventStatus::Failed,
                Some(message),
                OffsetDateTime::now_utc(),
            )
            .await
        {
            tracing::warn!(job = %job.id, %error, "marking a dead event's status failed");
        }
    }

    /// Sync the tenant (incremental when possible) and judge what changed.
    async fn refresh(&self, tenant: &TenantId, mode: ModeRequest) -> Result<()> {
        let tenant = self.tenant(tenant)?;
        let exclusive = tenant.refresh_lock.lock().await;
        if let Some(sync) = &tenant.sync {
            let started = Instant::now();
            let summary = sync.run(mode, &NoProgress).await;
            let status = match &summary {
                Ok(summary) => summary.status.clone(),
                Err(_) => "failed".to_owned(),
            };
            self.metrics
                .syncs
                .get_or_create(&StatusLabels { status })
                .inc();
            self.metrics
                .sync_seconds
                .observe(started.elapsed().as_secs_f64());
            let summary = summary.context("syncing the inventory")?;
            tracing::info!(tenant = %tenant.id, run = summary.run_id, mode = ?summary.mode, status = %summary.status, ms = summary.duration_ms, "synced");
        }
        drop(exclusive);
        self.evaluate(&tenant.id, Evaluation::Auto).await
    }

    /// Judge the inventory (what changed, or everything) and update the findings.
    async fn evaluate(&self, tenant: &TenantId, evaluation: Evaluation) -> Result<()> {
        let tenant = self.tenant(tenant)?;
        let _exclusive = tenant.refresh_lock.lock().await;
        let started = Instant::now();
        let evaluated = tenant
            .scan
            .evaluate(OffsetDateTime::now_utc(), evaluation)
            .await
            .context("evaluating the policies")?;
        self.metrics
            .evaluations
            .get_or_create(&StatusLabels {
                status: evaluated.evaluation.mode.to_owned(),
            })
            .inc();
        self.metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        tracing::info!(
            tenant = %tenant.id,
            mode = evaluated.evaluation.mode,
            resources = evaluated.resources_evaluated,
            opened = evaluated.lifecycle.opened,
            reopened = evaluated.lifecycle.reopened,
            fixed = evaluated.lifecycle.fixed,
            "evaluated"
        );
        Ok(())
    }
}

/// How often the scheduler asks each tenant's pending approvals to expire.
const APPROVAL_EXPIRY_EVERY: Duration = Duration::from_secs(30);

/// Whether this replica takes this period's turn of a periodic job for a tenant. Every replica
/// runs this scheduler on its own timer; the claim (one row per tenant and job kind, taken
/// atomically) lets one of them per period enqueue, so offset timers do not sync twice. A
/// claim that cannot be checked skips the turn: the next period tries again.
async fn take_turn(
    jobs: &dyn JobStore,
    tenant: &TenantId,
    kind: &str,
    at: OffsetDateTime,
    every: Duration,
) -> bool {
    match jobs.claim_schedule(tenant, kind, at, every).await {
        Ok(taken) => taken,
        Err(error) => {
            tracing::warn!(%tenant, kind, %error, "claiming a scheduled turn failed");
            false
        }
    }
}

/// Enqueue the periodic jobs of every tenant — syncs for those with an organisation,
/// approval expiry for all — once per period across replicas (see [`take_turn`]); the queue's
/// coalescing also merges a copy still queued.
pub async fn schedule(
    jobs: Arc<dyn JobStore>,
    tenants: Arc<Tenants>,
    incremental_every: Duration,
    full_every: Duration,
    max_attempts: u32,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_incremental = Instant::now();
    let mut next_full = Instant::now() + full_every;
    let mut next_expiry = Instant::now();
    loop {
        let now = Instant::now();
        // One reading of the wall clock for every claim of this round, so a replica's claims
        // stay a period apart however long the round took to reach each tenant.
        let wall = OffsetDateTime::now_utc();
        if now >= next_expiry {
            next_expiry = now + APPROVAL_EXPIRY_EVERY;
            for tenant in tenants.all() {
                if !take_turn(
                    &*jobs,
                    &tenant.id,
                    JOB_APPROVALS_EXPIRE,
                    wall,
                    APPROVAL_EXPIRY_EVERY,
                )
                .await
                {
                    continue;
                }
                let job = NewJob {
                    kind: JOB_APPROVALS_EXPIRE.to_owned(),
                    payload: json!({ "reason": "schedule" }),
                    // Replicas each schedule it; queued copies coalesce into one.
                    dedupe_key: Some(JOB_APPROVALS_EXPIRE.to_owned()),
                    run_after: OffsetDateTime::now_utc(),
                    max_attempts,
                };
                if let Err(error) = jobs.enqueue(&tenant.id, &job, &[]).await {
                    tracing::warn!(tenant = %tenant.id, %error, "scheduling approval expiry failed");
                }
            }
        }
        let mut due = Vec::new();
        if !incremental_every.is_zero() && now >= next_incremental {
            due.push((JOB_REFRESH, incremental_every));
            next_incremental = now + incremental_every;
        }
        if !full_every.is_zero() && now >= next_full {
            due.push((JOB_FULL_SYNC, full_every));
            next_full = now + full_every;
        }
        for (kind, every) in due {
            for tenant in tenants.all().into_iter().filter(|t| t.sync.is_some()) {
                let scheduled = tenant
                    .capabilities
                    .get(&tenant.id, Capability::ScheduledSync)
                    .await;
                if !scheduled.enabled || !take_turn(&*jobs, &tenant.id, kind, wall, every).await {
                    continue;
                }
                let job = NewJob {
                    kind: kind.to_owned(),
                    payload: json!({ "reason": "schedule" }),
                    dedupe_key: Some(kind.to_owned()),
                    run_after: OffsetDateTime::now_utc(),
                    max_attempts,
                };
                if let Err(error) = jobs.enqueue(&tenant.id, &job, &[]).await {
                    tracing::warn!(tenant = %tenant.id, kind, %error, "scheduling a sync failed");
                }
            }
            wake.notify_waiters();
        }
        let mut wait =
            APPROVAL_EXPIRY_EVERY.min(next_expiry.saturating_duration_since(Instant::now()));
        if !incremental_every.is_zero() {
            wait = wait.min(next_incremental.saturating_duration_since(Instant::now()));
        }
        if !full_every.is_zero() {
            wait = wait.min(next_full.saturating_duration_since(Instant::now()));
        }
        tokio::select! {
            () = tokio::time::sleep(wait.max(Duration::from_millis(100))) => {}
            _ = shutdown.changed() => {
                if *shutdown.borrow() { return; }
            }
        }
    }
}
