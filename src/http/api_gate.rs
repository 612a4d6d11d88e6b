//! The gate, approvals and capabilities over the API: validate a deployment (a dry run of the
//! gate), list decisions, list and decide approvals, read and change capability flags.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_store::gate::{ApprovalRefusal, ApprovalState, DecisionFilter};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::api::tenant_of;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::auth::Principal;
use crate::http::extract::{JsonBody, QueryParams};
use crate::services::audit_events::Actor;
use crate::services::capabilities::Fallback;
use crate::services::gate::{ApprovalError, DeploymentRequest, RequestSource};
use crate::services::tenant::page_size;

fn to_json<T: serde::Serialize>(value: &T) -> ApiResult<Json<Value>> {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|error| ApiError::from(anyhow::Error::from(error)))
}

#[utoipa::path(post, path = "/api/v1/deployments/validate", tag = "gate",
    request_body(content = Object, description = "The deployment: project, environment, runId, pipelineId, requestedFor, sourceVersion, repository, workItems"),
    responses((status = 200, body = Object, description = "The verdict the gate gives now, with every rule's finding (a dry run: no approval is opened)"),
        (status = 400, body = ErrorBody)))]
pub async fn validate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(request): JsonBody<DeploymentRequest>,
) -> ApiResult<Json<Value>> {
    if request.project.is_empty() || request.environment.is_empty() {
        return Err(ApiError::bad_request(
            "a deployment names its project and environment",
        ));
    }
    let context = tenant_of(&state, &principal)?;
    let answer = context
        .gate
        .validate(request, RequestSource::Api, &Actor::principal(&principal))
        .await?;
    let mut body = serde_json::to_value(&answer).map_err(anyhow::Error::from)?;
    body["outcome"] = json!(answer.outcome());
    Ok(Json(body))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    pub environment: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/gate/decisions", tag = "gate", params(DecisionQuery),
    responses((status = 200, body = Object, description = "The gate's decisions, newest first")))]
pub async fn decisions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<DecisionQuery>,
) -> ApiResult<Json<Value>> {
    let context = tenant_of(&state, &principal)?;
    let decisions = context
        .gate
        .decisions(&DecisionFilter {
            environment: query.environment,
            since: None,
            run_id: None,
            limit: page_size(query.limit),
        })
        .await?;
    Ok(Json(json!({"items": decisions})))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    /// pending, approved, rejected, expired or cancelled
    pub state: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals", params(ApprovalQuery),
    responses((status = 200, body = Object, description = "Approvals, newest first"), (status = 400, body = ErrorBody)))]
pub async fn approvals(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<ApprovalQuery>,
) -> ApiResult<Json<Value>> {
    let state_filter = match query.state.as_deref() {
        None => None,
        Some(raw) => Some(ApprovalState::parse(raw).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state {raw:?}: use pending, approved, rejected, expired or cancelled"
            ))
        })?),
    };
    let context = tenant_of(&state, &principal)?;
    let items = context
        .gate
        .approvals(state_filter, page_size(query.limit))
        .await?;
    Ok(Json(json!({"items": items})))
}

#[utoipa::path(get, path = "/api/v1/approvals/{id}", tag = "approvals",
    params(("id" = String, Path, description = "the approval's id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn approval(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let context = tenant_of(&state, &principal)?;
    match context.gate.approval(&id).await? {
        Some(approval) => to_json(&approval),
        None => Err(ApiError::not_found(format!("no approval {id:?}"))),
    }
}

#[derive(Deserialize, ToSchema, Default)]
pub struct DecisionBody {
    #[serde(default)]
    pub comment: String,
}

fn approval_error(error: ApprovalError) -> ApiError {
    match error {
        ApprovalError::NotFound(id) => ApiError::not_found(format!("no approval {id:?}")),
        ApprovalError::RoleTooLow { .. } => ApiError::forbidden(error.to_string()),
        ApprovalError::Refused(ApprovalRefusal::SelfApproval) => {
            ApiError::forbidden(error.to_string())
        }
        ApprovalError::Refused(refusal) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", refusal.to_string())
        }
        ApprovalError::Other(error) => ApiError::from(error),
    }
}

async fn vote(
    state: AppState,
    principal: Principal,
    id: String,
    approve: bool,
    body: Option<JsonBody<DecisionBody>>,
) -> ApiResult<Json<Value>> {
    let context = tenant_of(&state, &principal)?;
    let comment = body.map(|JsonBody(b)| b.comment).unwrap_or_default();
    if comment.len() > 2_000 {
        return Err(ApiError::bad_request(
            "a comment has at most 2,000 characters",
        ));
    }
    let approval = context
        .gate
        .decide_approval(&id, &principal, approve, &comment)
        .await
        .map_err(approval_error)?;
    to_json(&approval)
}

#[utoipa::path(post, path = "/api/v1/approvals/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "the approval's id")),
    request_body(content = DecisionBody, description = "An optional comment"),
    responses((status = 200, body = Object, description = "The approval after the vote"),
        (status = 403, body = ErrorBody, description = "Your role may not approve it, or you requested the deployment"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "No longer pending, or you already decided")))]
pub async fn approve(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Option<JsonBody<DecisionBody>>,
) -> ApiResult<Json<Value>> {
    vote(state, principal, id, true, body).await
}

#[utoipa::path(post, path = "/api/v1/approvals/{id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "the approval's id")),
    request_body(content = DecisionBody, description = "An optional comment"),
    responses((status = 200, body = Object), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reject(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Option<JsonBody<DecisionBody>>,
) -> ApiResult<Json<Value>> {
    vote(state, principal, id, false, body).await
}

#[utoipa::path(post, path = "/api/v1/approvals/{id}/cancel", tag = "approvals",
    params(("id" = String, Path, description = "the approval's id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let context = tenant_of(&state, &principal)?;
    let approval = context
        .gate
        .cancel_approval(&id, &principal)
        .await
        .map_err(approval_error)?;
    to_json(&approval)
}

#[utoipa::path(get, path = "/api/v1/capabilities", tag = "capabilities",
    responses((status = 200, body = Object, description = "Every capability: on or off, its fallback and what it does")))]
pub async fn capabilities(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Value>> {
    let context = tenant_of(&state, &principal)?;
    let items = context.capabilities.list(&context.id).await;
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapabilityChange {
    pub enabled: Option<bool>,
    /// error, skip, degrade or manual
    pub fallback: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/capabilities/{name}", tag = "capabilities",
    params(("name" = String, Path, description = "the capability, e.g. gate.evaluate")),
    request_body(content = CapabilityChange),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)))]
pub async fn set_capability(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    JsonBody(change): JsonBody<CapabilityChange>,
) -> ApiResult<Json<Value>> {
    let fallback = match change.fallback.as_deref() {
        None => None,
        Some(raw) => Some(serde_json::from_value::<Fallback>(json!(raw)).map_err(|_| {
            ApiError::bad_request(format!(
                "fallback {raw:?}: use error, skip, degrade or manual"
            ))
        })?),
    };
    let context = tenant_of(&state, &principal)?;
    let view = context
        .capabilities
        .set(
            &context.id,
            &name,
            change.enabled,
            fallback,
            &Actor::principal(&principal),
        )
        .await
        .map_err(|error| {
            if error.to_string().starts_with("no capability") {
                ApiError::bad_request(error.to_string())
            } else {
                ApiError::from(error)
            }
        })?;
    to_json(&view)
}
