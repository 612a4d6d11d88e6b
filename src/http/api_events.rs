//! `/api/v1/events` and `/api/v1/jobs`: stored service-hook events, replay, the job queue.

use axum::Json;
use axum::extract::State;
use axum::{Extension, http::StatusCode};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_store::{
    EventFilter, EventId, EventStatus, Job, JobFilter, JobId, JobStatus, ReplaySelection,
    StoredEvent,
};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api::{numeric_cursor, rfc3339};
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::auth::Principal;
use crate::http::extract::{JsonBody, PathParams, QueryParams};
use crate::services::events::EventsService;
use crate::services::tenant::{Page, page_size};

fn service(state: &AppState) -> ApiResult<&EventsService> {
    state
        .events
        .as_deref()
        .ok_or_else(|| ApiError::unavailable("this instance keeps no events", 30))
}

fn parse_time(raw: &str, field: &str) -> ApiResult<OffsetDateTime> {
    OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| {
        ApiError::bad_request(format!(
            "{field} must be an RFC 3339 time, e.g. 2026-11-20T00:00:00Z"
        ))
    })
}

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    /// ADO's event id (absent for malformed bodies).
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub subscription_id: Option<String>,
    /// received, processed, failed, malformed, unknown
    pub status: String,
    pub error: Option<String>,
    pub received_at: String,
    pub processed_at: Option<String>,
    /// How many times ADO delivered it (redeliveries are stored once).
    pub deliveries: u32,
    /// The body as JSON when it parses; otherwise `body_base64` holds the exact bytes.
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
    pub body_base64: Option<String>,
}

impl EventView {
    fn new(event: StoredEvent, with_body: bool) -> Self {
        let (body, body_base64) = if with_body {
            match serde_json::from_slice::<Value>(&event.body) {
                Ok(json) => (Some(json), None),
                Err(_) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(&event.body)),
                ),
            }
        } else {
            (None, None)
        };
        Self {
            id: event.id.0,
            event_id: event.event_id,
            event_type: event.event_type,
            subscription_id: event.subscription_id,
            status: event.status.as_str().to_owned(),
            error: event.error,
            received_at: rfc3339(event.received_at),
            processed_at: event.processed_at.map(rfc3339),
            deliveries: event.deliveries,
            body,
            body_base64,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// received, processed, failed, malformed or unknown
    pub status: Option<String>,
    /// e.g. git.push
    pub event_type: Option<String>,
    /// Received at or after (RFC 3339)
    pub since: Option<String>,
    /// Received before (RFC 3339)
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    axum::Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let service = service(&state)?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            EventStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown status {s:?}; use received, processed, failed, malformed or unknown"
                ))
            })
        })
        .transpose()?;
    let after_id = numeric_cursor(query.cursor.as_deref(), "event number")?.map(EventId);
    let limit = page_size(query.limit);
    let filter = EventFilter {
        status,
        event_type: query.event_type,
        since: query
            .since
            .as_deref()
            .map(|s| parse_time(s, "since"))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|s| parse_time(s, "until"))
            .transpose()?,
        after_id,
        limit: limit + 1,
    };
    let items = service.events(&principal.tenant, &filter).await?;
    let page = Page::from_overfetch(items, limit, |e| e.id.0.to_string());
    Ok(Json(EventPage {
        items: page
            .items
            .into_iter()
            .map(|e| EventView::new(e, false))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events",
    params(("id" = i64, Path)),
    responses((status = 200, body = EventView), (status = 404, body = ErrorBody)))]
pub async fn event(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    PathParams(id): PathParams<i64>,
) -> ApiResult<Json<EventView>> {
    let event = service(&state)?
        .event(&principal.tenant, EventId(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id}")))?;
    Ok(Json(EventView::new(event, true)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Stored event numbers; or give `since` (and optionally `until`).
    #[serde(default)]
    pub ids: Vec<i64>,
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReplayView {
    pub enqueued: u64,
    /// Malformed events, and types tollgate does not process.
    pub skipped: u64,
    pub not_found: u64,
}

#[utoipa::path(post, path = "/api/v1/events/replay", tag = "events",
    request_body = ReplayRequest,
    responses((status = 202, body = ReplayView), (status = 400, body = ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(request): JsonBody<ReplayRequest>,
) -> ApiResult<(StatusCode, Json<ReplayView>)> {
    let selection = match (request.ids.is_empty(), request.since.as_deref()) {
        (false, None) => ReplaySelection::Ids(request.ids.into_iter().map(EventId).collect()),
        (true, Some(since)) => ReplaySelection::Received {
            since: parse_time(since, "since")?,
            until: request
                .until
                .as_deref()
                .map(|u| parse_time(u, "until"))
                .transpose()?
                .unwrap_or_else(OffsetDateTime::now_utc),
        },
        _ => {
            return Err(ApiError::bad_request(
                "give either ids, or since (and optionally until)",
            ));
        }
    };
    let outcome = service(&state)?
        .replay(
            &principal.tenant,
            &selection,
            &crate::services::audit_events::Actor::principal(&principal),
        )
        .await?;
    tracing::info!(subject = %principal.subject, enqueued = outcome.enqueued, "events replayed");
    state.wake.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplayView {
            enqueued: outcome.enqueued,
            skipped: outcome.skipped,
            not_found: outcome.not_found,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// queued, running, done, dead
    pub status: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_after: String,
    pub lease_owner: Option<String>,
    pub lease_until: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        Self {
            id: job.id.0,
            kind: job.kind,
            payload: job.payload,
            status: job.status.as_str().to_owned(),
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            run_after: rfc3339(job.run_after),
            lease_owner: job.lease_owner,
            lease_until: job.lease_until.map(rfc3339),
            last_error: job.last_error,
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// queued, running, done or dead
    pub status: Option<String>,
    pub kind: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "events", params(JobQuery),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorBody)))]
pub async fn jobs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<JobQuery>,
) -> ApiResult<Json<JobPage>> {
    let status = query
        .status
        .as_deref()
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown status {s:?}; use queued, running, done or dead"
                ))
            })
        })
        .transpose()?;
    let after_id = numeric_cursor(query.cursor.as_deref(), "job number")?.map(JobId);
    let limit = page_size(query.limit);
    let items = service(&state)?
        .jobs(
            &principal.tenant,
            &JobFilter {
                status,
                kind: query.kind,
                after_id,
                limit: limit + 1,
            },
        )
        .await?;
    let page = Page::from_overfetch(items, limit, |j| j.id.0.to_string());
    Ok(Json(JobPage {
        items: page.items.into_iter().map(JobView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "events",
    params(("id" = i64, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn job(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    PathParams(id): PathParams<i64>,
) -> ApiResult<Json<JobView>> {
    service(&state)?
        .job(&principal.tenant, JobId(id))
        .await?
        .map(|j| Json(JobView::from(j)))
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "events",
    params(("id" = i64, Path)),
    responses((status = 202), (status = 409, body = ErrorBody)))]
pub async fn retry_job(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    PathParams(id): PathParams<i64>,
) -> ApiResult<StatusCode> {
    if service(&state)?
        .retry_job(
            &principal.tenant,
            JobId(id),
            &crate::services::audit_events::Actor::principal(&principal),
        )
        .await?
    {
        tracing::info!(subject = %principal.subject, job = id, "dead job retried");
        state.wake.notify_waiters();
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("job {id} is not dead (or does not exist)"),
        ))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// `incremental` (the default: incremental when an earlier sync can be continued) or `full`
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Queued {
    /// The job (`GET /api/v1/jobs/{id}`); a request already queued is not queued twice.
    pub job: i64,
}

#[utoipa::path(post, path = "/api/v1/syncs", tag = "syncs",
    request_body = SyncRequest,
    responses((status = 202, body = Queued), (status = 400, body = ErrorBody)))]
pub async fn start_sync(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(request): JsonBody<SyncRequest>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    let kind = match request.mode.as_deref() {
        None | Some("incremental") | Some("auto") => crate::services::events::JOB_REFRESH,
        Some("full") => crate::services::events::JOB_FULL_SYNC,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown mode {other:?}; use incremental or full"
            )));
        }
    };
    queue(&state, &principal, kind).await
}

#[utoipa::path(post, path = "/api/v1/scans", tag = "syncs",
    responses((status = 202, body = Queued)))]
pub async fn start_scan(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    queue(&state, &principal, crate::services::events::JOB_EVALUATE).await
}

async fn queue(
    state: &AppState,
    principal: &Principal,
    kind: &str,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    super::api::tenant_of(state, principal)?;
    let actor = crate::services::audit_events::Actor::principal(principal);
    let job = service(state)?
        .request(&principal.tenant, kind, &actor)
        .await?;
    tracing::info!(subject = %principal.subject, kind, job = job.0, "job requested");
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(Queued { job: job.0 })))
}
