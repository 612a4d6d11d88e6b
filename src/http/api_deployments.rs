//! Deployments over the API: queue a pipeline run for an environment through the gate, list
//! and follow deployments, roll an environment back. (`POST /api/v1/deployments/validate`,
//! the gate's dry run, lives with the gate in `api_gate`.)

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_store::deployments::DeploymentFilter;
use utoipa::IntoParams;

use super::AppState;
use super::api::tenant_of;
use super::error::{ApiError, ErrorBody};
use crate::auth::Principal;
use crate::http::extract::{JsonBody, QueryParams};
use crate::services::audit_events::Actor;
use crate::services::deployments::{
    AdoFailure, DeployRequest, DeploymentError, Queued, RollbackRequest,
};
use crate::services::gate::RequestSource;
use crate::services::tenant::page_size;

/// A refusal in the API's error shape; a gate denial also carries the gate's answer.
fn refusal(error: DeploymentError) -> Response {
    match error {
        DeploymentError::Denied(answer) => {
            let message = format!(
                "the gate denies this deployment: {}",
                answer.reasons().join("; ")
            );
            let body = json!({
                "error": {
                    "code": "denied",
                    "message": message,
                    "request_id": super::middleware::current_request_id(),
                },
                "decision_id": answer.decision_id,
                "verdict": answer.verdict,
                "outcome": answer.outcome(),
                "reasons": answer.reasons(),
                "findings": answer.findings,
            });
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
        DeploymentError::Invalid(message) => ApiError::bad_request(message).into_response(),
        DeploymentError::NotFound(message) => ApiError::not_found(message).into_response(),
        DeploymentError::NothingToRollBack(message) => {
            ApiError::new(StatusCode::CONFLICT, "nothing_to_roll_back", message).into_response()
        }
        error @ DeploymentError::NotConfigured(_) => {
            ApiError::new(StatusCode::CONFLICT, "not_configured", error.to_string()).into_response()
        }
        DeploymentError::Ado {
            ref failure,
            ref error,
            ..
        } => {
            // ADO's own words are safe to pass on (URLs carry no secrets); they say what to fix.
            let message = error_message(failure, error);
            let api = match failure {
                AdoFailure::Refused => {
                    ApiError::new(StatusCode::BAD_GATEWAY, "ado_refused", message)
                }
                AdoFailure::NotFound => ApiError::not_found(message),
                AdoFailure::Rejected => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "ado_rejected", message)
                }
                AdoFailure::Unavailable => ApiError::unavailable(message, 30),
            };
            api.into_response()
        }
        DeploymentError::Other(error) => ApiError::internal(&error).into_response(),
    }
}

fn error_message(failure: &AdoFailure, error: &tollgate_ado::AdoError) -> String {
    format!("Azure DevOps {failure}: {error}")
}

fn parse<T: serde::de::DeserializeOwned>(body: Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|error| ApiError::bad_request(format!("{what}: {error}")))
}

fn queued(queued: &Queued) -> Response {
    let body = json!({
        "deployment": queued.deployment,
        "run_id": queued.deployment.run_id,
        "gate": {
            "decision_id": queued.gate.decision_id,
            "verdict": queued.gate.verdict,
            "outcome": queued.gate.outcome(),
            "reasons": queued.gate.reasons(),
            "findings": queued.gate.findings,
        },
        "note": queued.note,
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments",
    request_body(content = Object, description = "project (name or id; optional when the pipeline's name is unique), pipeline (name) or pipelineId, environment, branch, version (template parameter `version`), parameters (more template parameters)"),
    responses((status = 201, body = Object, description = "Queued: the deployment, its run id and the gate's dry-run verdict (approval-required deployments wait at their stage for the environment's check)"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "No such project or pipeline (close names suggested), or ADO does not know it"),
        (status = 409, body = Object, description = "The gate denies it (its reasons and findings; nothing was queued), or no ADO organisation is configured"),
        (status = 422, body = ErrorBody, description = "ADO rejected the run"),
        (status = 502, body = ErrorBody, description = "ADO refused tollgate's credential"),
        (status = 503, body = ErrorBody, description = "ADO is unavailable")))]
pub async fn deploy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(body): JsonBody<Value>,
) -> Response {
    let request: DeployRequest = match parse(body, "the deployment") {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let context = match tenant_of(&state, &principal) {
        Ok(context) => context,
        Err(error) => return error.into_response(),
    };
    match context
        .deployments
        .deploy(&request, RequestSource::Api, &Actor::principal(&principal))
        .await
    {
        Ok(done) => queued(&done),
        Err(error) => refusal(error),
    }
}

#[utoipa::path(post, path = "/api/v1/deployments/rollback", tag = "deployments",
    request_body(content = Object, description = "environment, and project and/or pipeline (name) or pipelineId"),
    responses((status = 201, body = Object, description = "Queued: a new run of the newest successful deployment's commit that is not the current one"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = Object, description = "Nothing to roll back to, or the gate denies it"),
        (status = 422, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(body): JsonBody<Value>,
) -> Response {
    let request: RollbackRequest = match parse(body, "the rollback") {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let context = match tenant_of(&state, &principal) {
        Ok(context) => context,
        Err(error) => return error.into_response(),
    };
    match context
        .deployments
        .rollback(&request, RequestSource::Api, &Actor::principal(&principal))
        .await
    {
        Ok(done) => queued(&done),
        Err(error) => refusal(error),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeploymentQuery {
    pub environment: Option<String>,
    /// The project's name or id
    pub project: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments", params(DeploymentQuery),
    responses((status = 200, body = Object, description = "Deployments queued through tollgate, newest first, with their last known state")))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<DeploymentQuery>,
) -> Response {
    let context = match tenant_of(&state, &principal) {
        Ok(context) => context,
        Err(error) => return error.into_response(),
    };
    let filter = DeploymentFilter {
        environment: query.environment,
        project: query.project,
        pipeline_id: None,
        limit: page_size(query.limit),
    };
    match context.deployments.list(&filter).await {
        Ok(items) => Json(json!({"items": items})).into_response(),
        Err(error) => refusal(error),
    }
}

#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = String, Path, description = "the deployment's id")),
    responses((status = 200, body = Object, description = "The deployment with its run's state as ADO reports it now, and the gate's decisions (and approvals) for that run"),
        (status = 404, body = ErrorBody), (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let context = match tenant_of(&state, &principal) {
        Ok(context) => context,
        Err(error) => return error.into_response(),
    };
    match context.deployments.status(&id).await {
        Ok(status) => match serde_json::to_value(&status) {
            Ok(body) => Json(body).into_response(),
            Err(error) => ApiError::internal(&error.into()).into_response(),
        },
        Err(error) => refusal(error),
    }
}
