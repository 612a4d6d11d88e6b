//! `/api/v1/audit`: the tamper-evident log's records, signed checkpoints, and inclusion and
//! consistency proofs (permission `audit.read`).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tollgate_store::LeafFilter;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api::{numeric_cursor, rfc3339};
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::auth::Principal;
use crate::http::extract::QueryParams;
use crate::services::audit::{ConsistencyProof, InclusionProof, hex};
use crate::services::tenant::{Page, page_size};

#[derive(Serialize, ToSchema)]
pub struct AuditRecordView {
    pub seq: u64,
    pub id: String,
    pub event_type: String,
    pub leaf_hash: String,
    /// The record as logged; absent when retention withheld the payload.
    #[schema(value_type = Option<Object>)]
    pub record: Option<Value>,
    pub withheld: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AuditRecordPage {
    pub items: Vec<AuditRecordView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditRecordQuery {
    /// Only records of this type (e.g. `waiver.created`)
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Happened at or after (RFC 3339)
    pub since: Option<String>,
    /// Happened before (RFC 3339)
    pub until: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

fn time_param(value: Option<&str>, name: &str) -> ApiResult<Option<OffsetDateTime>> {
    value
        .map(|text| {
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::bad_request(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

fn audit_error(error: anyhow::Error) -> ApiError {
    ApiError::from(error)
}

#[utoipa::path(get, path = "/api/v1/audit/records", tag = "audit", params(AuditRecordQuery),
    responses((status = 200, body = AuditRecordPage), (status = 400, body = ErrorBody)))]
pub async fn records(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<AuditRecordQuery>,
) -> ApiResult<Json<AuditRecordPage>> {
    let from = numeric_cursor(query.cursor.as_deref(), "record position")?
        .map_or(0, |after| after.unsigned_abs() + 1);
    let limit = page_size(query.limit);
    let leaves = state
        .audit
        .leaves(
            &principal.tenant,
            &LeafFilter {
                from,
                event_type: query.event_type,
                since: time_param(query.since.as_deref(), "since")?,
                until: time_param(query.until.as_deref(), "until")?,
                limit: limit + 1,
            },
        )
        .await
        .map_err(audit_error)?;
    let page = Page::from_overfetch(leaves, limit, |leaf| leaf.seq.to_string());
    Ok(Json(AuditRecordPage {
        items: page
            .items
            .into_iter()
            .map(|leaf| AuditRecordView {
                seq: leaf.seq,
                id: leaf.record_id,
                event_type: leaf.event_type,
                leaf_hash: hex(&leaf.hash),
                withheld: leaf.bytes.is_none(),
                record: leaf
                    .bytes
                    .as_deref()
                    .and_then(|bytes| serde_json::from_slice(bytes).ok()),
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/audit/records/{id}/proof", tag = "audit",
    params(("id" = String, Path, description = "the record's id")),
    responses((status = 200, body = InclusionProof), (status = 404, body = ErrorBody)))]
pub async fn inclusion_proof(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<InclusionProof>> {
    state
        .audit
        .inclusion_proof(&principal.tenant, &id)
        .await
        .map_err(audit_error)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no audit record {id:?}")))
}

#[derive(Serialize, ToSchema)]
pub struct CheckpointView {
    pub size: u64,
    pub root: String,
    pub signed_at: String,
    /// The signed note (C2SP tlog-checkpoint), as an auditor stores it.
    pub note: String,
}

#[derive(Serialize, ToSchema)]
pub struct CheckpointPage {
    pub items: Vec<CheckpointView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckpointQuery {
    /// Signed after (RFC 3339)
    pub after: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/audit/checkpoints", tag = "audit", params(CheckpointQuery),
    responses((status = 200, body = CheckpointPage), (status = 400, body = ErrorBody)))]
pub async fn checkpoints(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<CheckpointQuery>,
) -> ApiResult<Json<CheckpointPage>> {
    let after = time_param(query.after.as_deref(), "after")?;
    let items = state
        .audit
        .checkpoints(&principal.tenant, after, page_size(query.limit))
        .await
        .map_err(audit_error)?;
    Ok(Json(CheckpointPage {
        items: items
            .into_iter()
            .map(|checkpoint| CheckpointView {
                size: checkpoint.size,
                root: hex(&checkpoint.root),
                signed_at: rfc3339(checkpoint.signed_at),
                note: checkpoint.note,
            })
            .collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    pub old: u64,
    pub new: u64,
}

#[utoipa::path(get, path = "/api/v1/audit/consistency", tag = "audit", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = ErrorBody)))]
pub async fn consistency_proof(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyProof>> {
    state
        .audit
        .consistency_proof(&principal.tenant, query.old, query.new)
        .await
        .map(Json)
        .map_err(|error| ApiError::bad_request(format!("{error:#}")))
}
