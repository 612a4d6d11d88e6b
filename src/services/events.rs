//! Service-hook events in: classify a delivery, store it durably with its job in one
//! transaction, and acknowledge only then.
//!
//! Deliveries are committed in groups: one task owns the durable write and takes whatever
//! has queued up while the previous commit was syncing to disk, so N concurrent deliveries
//! cost one fsync rather than N (the difference between ~2,500 and ~20,000 events/s here).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, oneshot};
use tollgate_domain::{ResourceKind, TenantId};
use tollgate_store::{
    EventFilter, EventId, EventStatus, EventStore, IngestOutcome, Job, JobFilter, JobId, JobStore,
    NewEvent, NewJob, QueueStats, ReplayOutcome, ReplaySelection, StoredEvent,
};

use crate::services::audit_events::{Actor, AuditEvent, Record, Target};
use crate::services::sync::{ChangeHintSource, ChangeHints};
use crate::services::tenant::MAX_PAGE;
use crate::telemetry::Metrics;

/// Job kinds of the event pipeline.
pub const JOB_EVENT: &str = "event.process";
pub const JOB_REFRESH: &str = "tenant.refresh";
pub const JOB_FULL_SYNC: &str = "tenant.full_sync";
/// Evaluate every resource again, without syncing.
pub const JOB_EVALUATE: &str = "tenant.evaluate";

/// How many attempts a job gets before it is dead-lettered (configurable per process).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// Event types tollgate acts on. Anything else is stored and acknowledged as `unknown`.
pub const HANDLED_EVENT_TYPES: &[&str] = &[
    "git.push",
    "git.pullrequest.created",
    "git.pullrequest.updated",
    "git.pullrequest.merged",
    "git.repo.created",
    "git.repo.deleted",
    "git.repo.forked",
    "git.repo.renamed",
    "git.repo.statuschanged",
    "ms.vss-endpoint.endpoint-created",
    "serviceendpoint.updated",
    "manualintervention.pending",
    "ms.vss-code.git-pullrequest-comment-event",
    "build.complete",
    "tfvc.checkin",
    "workitem.created",
    "workitem.updated",
    "workitem.deleted",
    "workitem.restored",
    "workitem.commented",
    "ms.vss-pipelines.run-state-changed-event",
    "ms.vss-pipelines.stage-state-changed-event",
    "ms.vss-pipelines.job-state-changed-event",
    "ms.vss-pipelinechecks-events.approval-pending",
    "ms.vss-pipelinechecks-events.approval-completed",
    "ms.vss-pipelinechecks-events.check-updated-event",
    "ms.vss-release.release-created-event",
    "ms.vss-release.release-abandoned-event",
    "ms.vss-release.deployment-approval-pending-event",
    "ms.vss-release.deployment-approval-completed-event",
    "ms.vss-release.deployment-started-event",
    "ms.vss-release.deployment-completed-event",
    "agentqueue.created",
    "agentqueue.updated",
    "elasticagentpool.resized",
    "ms.vss-alerts.alert-created-event",
    "ms.vss-alerts.alert-updated-event",
    "ms.vss-alerts.alert-state-changed-event",
];

/// Turn a delivery's bytes into what is stored: a well-formed event (handled or unknown
/// type, with its processing job) or a malformed body kept for inspection.
pub fn classify(
    tenant: &TenantId,
    body: &[u8],
    received_at: OffsetDateTime,
    max_attempts: u32,
) -> NewEvent {
    let malformed = |error: String| NewEvent {
        tenant: tenant.clone(),
        event_id: None,
        event_type: None,
        subscription_id: None,
        status: EventStatus::Malformed,
        body: body.to_vec(),
        error: Some(error),
        received_at,
        job: None,
    };
    let envelope: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => return malformed("the body is JSON but not an object".to_owned()),
        Err(error) => return malformed(format!("the body is not JSON: {error}")),
    };
    let text = |field: &str| {
        envelope
            .get(field)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    // The 2025 documentation also shows a bare shape without the envelope's `id`, naming the
    // type in `eventId`. Such a delivery is identified by its content, so a redelivery of the
    // same bytes is still recognised.
    let Some(event_type) =
        text("eventType").or_else(|| text("eventId").filter(|t| t.contains('.')))
    else {
        return malformed("the event has no \"eventType\"".to_owned());
    };
    let Some(event_id) = text("id").or_else(|| {
        envelope
            .get("resource")
            .is_some()
            .then(|| format!("sha256:{}", tollgate_audit::sha256_hex(body)))
    }) else {
        return malformed("the event has no \"id\"".to_owned());
    };
    if event_id.len() > 200 || event_type.len() > 200 {
        return malformed("\"id\" or \"eventType\" is implausibly long".to_owned());
    }
    let handled = HANDLED_EVENT_TYPES.contains(&event_type.as_str());
    let job = handled.then(|| event_job(&event_id, &event_type, received_at, max_attempts));
    NewEvent {
        tenant: tenant.clone(),
        event_id: Some(event_id),
        event_type: Some(event_type),
        subscription_id: text("subscriptionId"),
        status: if handled {
            EventStatus::Received
        } else {
            EventStatus::Unknown
        },
        body: body.to_vec(),
        error: None,
        received_at,
        job,
    }
}

/// The job that processes events. Events coalesce into one queued job per tenant (its
/// events are the ones linked to it), so a burst of deliveries costs one job, not one each;
/// the payload names the event that opened it.
fn event_job(
    event_id: &str,
    event_type: &str,
    run_after: OffsetDateTime,
    max_attempts: u32,
) -> NewJob {
    NewJob {
        kind: JOB_EVENT.to_owned(),
        payload: json!({ "event_id": event_id, "event_type": event_type }),
        dedupe_key: Some(JOB_EVENT.to_owned()),
        run_after,
        max_attempts,
    }
}

/// Why a delivery could not be stored; the receiver answers 503 so ADO retries.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the event store is overloaded")]
    Overloaded,
    #[error("the event could not be stored: {0}")]
    Store(String),
    #[error("the server is shutting down")]
    ShuttingDown,
}

struct Pending {
    event: NewEvent,
    reply: oneshot::Sender<Result<IngestOutcome, IngestError>>,
}

/// The durable write path for deliveries, with group commit.
#[derive(Clone)]
pub struct IngestService {
    sender: mpsc::Sender<Pending>,
}

/// Deliveries waiting beyond this are refused (503) rather than queued without bound.
const QUEUE_CAPACITY: usize = 16_384;
/// The most events one transaction commits.
const MAX_BATCH: usize = 1_024;

impl IngestService {
    /// Start the writer task. `wake` is notified after each commit that enqueued jobs.
    pub fn start(
        store: Arc<dyn EventStore>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(write_batches(store, metrics, wake, receiver));
        (Self { sender }, task)
    }

    /// Store one delivery durably. Returns once it is committed (or refused).
    pub async fn submit(&self, event: NewEvent) -> Result<IngestOutcome, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .try_send(Pending { event, reply })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => IngestError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => IngestError::ShuttingDown,
            })?;
        answer.await.map_err(|_| IngestError::ShuttingDown)?
    }
}

async fn write_batches(
    store: Arc<dyn EventStore>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    mut receiver: mpsc::Receiver<Pending>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    // recv_many waits for the first delivery, then takes whatever else is queued: the batch
    // grows by itself while the previous commit is syncing.
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let started = Instant::now();
        // Split rather than clone: the bodies move into the store call untouched.
        let (events, replies): (Vec<NewEvent>, Vec<_>) =
            batch.drain(..).map(|p| (p.event, p.reply)).unzip();
        metrics.webhook_batch_size.observe(events.len() as f64);
        let failure = match store.ingest(&events, &receipt_records).await {
            Ok(outcomes) if outcomes.len() == replies.len() => {
                let enqueued = outcomes
                    .iter()
                    .any(|o| matches!(o, IngestOutcome::Stored { job: Some(_), .. }));
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                if enqueued {
                    wake.notify_waiters();
                }
                None
            }
            Ok(outcomes) => Some((
                format!(
                    "the store answered {} outcomes for {} events",
                    outcomes.len(),
                    replies.len()
                ),
                replies,
            )),
            Err(error) => Some((error.to_string(), replies)),
        };
        if let Some((message, replies)) = failure {
            tracing::error!(error = %message, events = events.len(), "storing service-hook events failed");
            for reply in replies {
                let _ = reply.send(Err(IngestError::Store(message.clone())));
            }
        }
        tracing::debug!(
            events = events.len(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "event batch committed"
        );
    }
}

/// The job that processes a stored event, or `None` for events that are never processed
/// (malformed bodies, types tollgate does not act on).
pub fn job_for(event: &StoredEvent, max_attempts: u32, now: OffsetDateTime) -> Option<NewJob> {
    let handled = event
        .event_type
        .as_deref()
        .is_some_and(|t| HANDLED_EVENT_TYPES.contains(&t));
    let event_id = event.event_id.as_ref()?;
    let event_type = event.event_type.as_deref()?;
    (handled && event.status != EventStatus::Malformed)
        .then(|| event_job(event_id, event_type, now, max_attempts))
}

/// Stored events and jobs: list, inspect, replay, retry.
pub struct EventsService {
    events: Arc<dyn EventStore>,
    jobs: Arc<dyn JobStore>,
    max_attempts: u32,
}

impl EventsService {
    pub fn new(events: Arc<dyn EventStore>, jobs: Arc<dyn JobStore>, max_attempts: u32) -> Self {
        Self {
            events,
            jobs,
            max_attempts,
        }
    }

    pub async fn events(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        Ok(self.events.events(tenant, filter).await?)
    }

    pub async fn event(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> anyhow::Result<Option<StoredEvent>> {
        Ok(self.events.event(tenant, id).await?)
    }

    /// Queue stored events for processing again. Processing is idempotent, so replaying an
    /// event that was already processed converges to the same state.
    pub async fn replay(
        &self,
        tenant: &TenantId,
        selection: &ReplaySelection,
        actor: &Actor,
    ) -> anyhow::Result<ReplayOutcome> {
        let now = OffsetDateTime::now_utc();
        let max_attempts = self.max_attempts;
        let selected = match selection {
            ReplaySelection::Ids(ids) => {
                json!({ "ids": ids.iter().map(|id| id.0).collect::<Vec<_>>() })
            }
            ReplaySelection::Received { since, until } => json!({
                "since": crate::services::audit_events::rfc3339(*since),
                "until": crate::services::audit_events::rfc3339(*until),
            }),
        };
        let record = Record::new(AuditEvent::EventsReplayed, actor, now)
            .detail("selection", selected)
            .draft();
        Ok(self
            .events
            .replay(
                tenant,
                selection,
                &move |event: &StoredEvent| job_for(event, max_attempts, now),
                &[record],
            )
            .await?)
    }

    pub async fn jobs(&self, tenant: &TenantId, filter: &JobFilter) -> anyhow::Result<Vec<Job>> {
        Ok(self.jobs.jobs(tenant, filter).await?)
    }

    pub async fn job(&self, tenant: &TenantId, id: JobId) -> anyhow::Result<Option<Job>> {
        Ok(self.jobs.job(tenant, id).await?)
    }

    /// A dead job back into the queue; false when it is not dead.
    pub async fn retry_job(
        &self,
        tenant: &TenantId,
        id: JobId,
        actor: &Actor,
    ) -> anyhow::Result<bool> {
        let now = OffsetDateTime::now_utc();
        let record = Record::new(AuditEvent::JobRetried, actor, now)
            .target(Target::new("job", id.0.to_string()))
            .draft();
        Ok(self.jobs.retry_job(tenant, id, now, &[record]).await?)
    }

    /// Queue a tenant job of `kind` now (coalesced with one already queued).
    pub async fn request(
        &self,
        tenant: &TenantId,
        kind: &str,
        actor: &Actor,
    ) -> anyhow::Result<JobId> {
        let event = if kind == JOB_EVALUATE {
            AuditEvent::ScanRequested
        } else {
            AuditEvent::SyncRequested
        };
        let record = Record::new(event, actor, OffsetDateTime::now_utc())
            .detail("job", json!(kind))
            .draft();
        Ok(self
            .jobs
            .enqueue(
                tenant,
                &NewJob {
                    kind: kind.to_owned(),
                    payload: json!({ "reason": "requested" }),
                    dedupe_key: Some(kind.to_owned()),
                    run_after: OffsetDateTime::now_utc(),
                    max_attempts: self.max_attempts,
                },
                &[record],
            )
            .await?)
    }

    pub async fn queue_stats(&self) -> anyhow::Result<QueueStats> {
        Ok(self.jobs.queue_stats(OffsetDateTime::now_utc()).await?)
    }
}

/// What one event says changed, added to `hints`. Types that change nothing an incremental
/// sync would miss (pull requests and builds are re-read anyway) add nothing.
pub fn add_change_hints(event_type: &str, body: &[u8], hints: &mut ChangeHints) {
    let Ok(event) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let resource = &event["resource"];
    let text = |value: &Value| value.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let repository = &resource["repository"];
    match event_type {
        // A merge moves the target branch as a push does.
        "git.push" | "git.pullrequest.merged" => {
            if let Some(id) = text(&repository["id"]) {
                hints.pushed_repositories.insert(id);
            }
        }
        "git.repo.created"
        | "git.repo.deleted"
        | "git.repo.forked"
        | "git.repo.renamed"
        | "git.repo.statuschanged" => {
            // A fork is announced with its new repository as `targetRepository`.
            let project = text(&repository["project"]["id"])
                .or_else(|| text(&resource["targetRepository"]["project"]["id"]))
                .or_else(|| text(&resource["project"]["id"]));
            hints.changed(ResourceKind::Repositories, project.as_deref());
        }
        "ms.vss-endpoint.endpoint-created" | "serviceendpoint.updated" => {
            // `serviceendpoint.updated` wraps the connection; `endpoint-created` is the
            // connection itself, with the projects it is shared with as `projectIds`.
            let endpoint = resource.get("serviceEndpoint").unwrap_or(resource);
            let projects: Vec<&str> = endpoint["project"]["id"]
                .as_str()
                .into_iter()
                .chain(
                    endpoint["projectIds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str),
                )
                .chain(
                    endpoint["serviceEndpointProjectReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|reference| reference["projectReference"]["id"].as_str()),
                )
                .filter(|id| !id.is_empty())
                .collect();
            if projects.is_empty() {
                hints.changed(ResourceKind::ServiceEndpoints, None);
            }
            for project in projects {
                hints.changed(ResourceKind::ServiceEndpoints, Some(project));
            }
        }
        _ => {}
    }
}

/// The most events one sync reads hints from; past it, the periodic full sync catches up.
const MAX_HINT_EVENTS: usize = 100_000;

/// Change hints from a tenant's stored events.
pub struct StoredEventHints {
    events: Arc<dyn EventStore>,
    tenant: TenantId,
}

impl StoredEventHints {
    pub fn new(events: Arc<dyn EventStore>, tenant: TenantId) -> Self {
        Self { events, tenant }
    }
}

#[async_trait::async_trait]
impl ChangeHintSource for StoredEventHints {
    async fn hints_since(&self, since: OffsetDateTime) -> anyhow::Result<ChangeHints> {
        let mut hints = ChangeHints::default();
        let mut filter = EventFilter {
            since: Some(since),
            limit: MAX_PAGE,
            ..EventFilter::default()
        };
        let mut read = 0;
        loop {
            let page = self
                .events
                .events(&self.tenant, &filter)
                .await
                .context("listing the events received since the last sync")?;
            read += page.len();
            for event in &page {
                if event.status == EventStatus::Malformed {
                    continue;
                }
                if let Some(event_type) = &event.event_type {
                    add_change_hints(event_type, &event.body, &mut hints);
                }
            }
            match page.last() {
                Some(last) if page.len() == MAX_PAGE as usize => filter.after_id = Some(last.id),
                _ => break,
            }
            if read >= MAX_HINT_EVENTS {
                tracing::warn!(tenant = %self.tenant, read,
                    "more events since the last sync than one sync reads hints from; the rest waits for the next full sync");
                break;
            }
        }
        Ok(hints)
    }
}

/// Deliveries per `webhook.received` record: a record stays well under 32 KiB.
const RECEIPTS_PER_RECORD: usize = 100;

/// The audit records of one tenant's deliveries in a commit group: each event's id, type,
/// outcome and body digest (the body itself stays in the event store), malformed bodies
/// apart.
pub fn receipt_records(
    _tenant: &TenantId,
    deliveries: &[(&NewEvent, &IngestOutcome)],
) -> Vec<tollgate_store::AuditDraft> {
    let now = OffsetDateTime::now_utc();
    let ado = Actor {
        kind: "ado",
        id: "service-hooks".to_owned(),
        name: None,
        auth: Some("webhook_secret"),
        ip: None,
    };
    let digest = tollgate_audit::sha256_hex;
    let (malformed, received): (Vec<_>, Vec<_>) = deliveries
        .iter()
        .partition(|(event, _)| event.status == EventStatus::Malformed);
    let mut records = Vec::new();
    for chunk in received.chunks(RECEIPTS_PER_RECORD) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|(event, outcome)| {
                let (stored, duplicate) = match outcome {
                    IngestOutcome::Stored { id, .. } => (id.0, false),
                    IngestOutcome::Duplicate { id } => (id.0, true),
                };
                json!({
                    "event": stored, "id": event.event_id, "type": event.event_type,
                    "duplicate": duplicate, "sha256": digest(&event.body),
                })
            })
            .collect();
        records.push(
            Record::new(AuditEvent::WebhookReceived, &ado, now)
                .detail("deliveries", Value::Array(events))
                .draft(),
        );
    }
    for (event, _) in malformed {
        records.push(
            Record::new(AuditEvent::WebhookMalformed, &ado, now)
                .failure()
                .reason(event.error.clone().unwrap_or_default())
                .detail("sha256", json!(digest(&event.body)))
                .detail("bytes", json!(event.body.len()))
                .draft(),
        );
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH
    }

    #[test]
    fn deliveries_are_classified_without_losing_a_byte() {
        let tenant = TenantId::default_tenant();
        let push = br#"{"id":"03c164c2-8912-4d5e-8009-3707d5f83734","eventType":"git.push","subscriptionId":"s1","resource":{}}"#;
        let event = classify(&tenant, push, now(), 3);
        assert_eq!(event.status, EventStatus::Received);
        assert_eq!(
            event.event_id.as_deref(),
            Some("03c164c2-8912-4d5e-8009-3707d5f83734")
        );
        assert_eq!(event.subscription_id.as_deref(), Some("s1"));
        assert_eq!(event.job.as_ref().map(|j| j.kind.as_str()), Some(JOB_EVENT));
        assert_eq!(event.body, push.to_vec());

        let unknown = classify(
            &tenant,
            br#"{"id":"x","eventType":"message.posted"}"#,
            now(),
            3,
        );
        assert_eq!(unknown.status, EventStatus::Unknown);
        assert!(
            unknown.job.is_none(),
            "unknown types are kept, not processed"
        );

        for (body, why) in [
            (&b"not json"[..], "not JSON"),
            (b"[1,2]", "not an object"),
            (br#"{"eventType":"git.push"}"#, "no \"id\""),
            (br#"{"eventId":"x"}"#, "no \"eventType\""),
            (br#"{"id":"x"}"#, "no \"eventType\""),
            (br#"{"id":"  ","eventType":"git.push"}"#, "no \"id\""),
            (b"{\"id\":\"x\",\"eventType\":\"git.pu", "not JSON"),
        ] {
            let event = classify(&tenant, body, now(), 3);
            assert_eq!(event.status, EventStatus::Malformed, "{body:?}");
            assert!(
                event.error.as_deref().unwrap_or_default().contains(why),
                "{:?}",
                event.error
            );
            assert_eq!(event.body, body.to_vec(), "kept for inspection");
            assert!(event.job.is_none());
        }
    }
}
