//! The Subscriptions REST API (`/{organization}/_apis/hooks/subscriptions`, shaped like the
//! published examples) and `/_sim/deliveries`.

// Handlers return early with a finished `Response` for ADO-style errors.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::subscription::{Accepted, SubscriptionBody};
use crate::server::{Shared, ado_error, check_api_version, json_response, resolve_project};

type AppState = Arc<Shared>;

fn invalid(message: &str) -> Response {
    ado_error(StatusCode::BAD_REQUEST, "ArgumentException", message)
}

fn not_found(id: &str) -> Response {
    ado_error(
        StatusCode::NOT_FOUND,
        "SubscriptionNotFoundException",
        &format!("The subscription {id} does not exist."),
    )
}

/// The checks every route makes: api-version and the organisation in the path.
fn preflight(
    state: &Shared,
    params: &HashMap<String, String>,
    query: &HashMap<String, String>,
) -> Result<(), Response> {
    check_api_version(query)?;
    resolve_project(&state.read_org(), params).map(|_| ())
}

/// Parse and validate a body; `projectId`, when given, must be one of the organisation's.
fn accept(
    state: &Shared,
    body: &str,
    previous: Option<&super::Subscription>,
) -> Result<Accepted, Response> {
    let body: SubscriptionBody = serde_json::from_str(body)
        .map_err(|error| invalid(&format!("The subscription is not valid JSON: {error}")))?;
    let accepted = body.accept(previous).map_err(|error| invalid(&error.0))?;
    if let Some(project) = accepted
        .publisher_inputs
        .get("projectId")
        .filter(|p| !p.is_empty())
    {
        let org = state.read_org();
        if !org
            .projects
            .iter()
            .any(|p| p.id.eq_ignore_ascii_case(project))
        {
            return Err(invalid(&format!(
                "projectId: {project} is not a project of this organisation."
            )));
        }
    }
    Ok(accepted)
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = preflight(&state, &params, &query) {
        return response;
    }
    let filter = |name: &str, value: &str| {
        query
            .get(name)
            .is_none_or(|wanted| wanted.is_empty() || wanted.eq_ignore_ascii_case(value))
    };
    let base = state.hooks.organization_url();
    let values: Vec<Value> = state
        .hooks
        .list()
        .iter()
        .filter(|s| {
            filter("publisherId", &s.publisher_id)
                && filter("eventType", &s.event_type)
                && filter("consumerId", &s.consumer_id)
                && filter("consumerActionId", &s.consumer_action_id)
        })
        .map(|s| s.to_json(&base))
        .collect();
    json_response(
        json!({"count": values.len(), "value": values}).to_string(),
        Vec::new(),
    )
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    if let Err(response) = preflight(&state, &params, &query) {
        return response;
    }
    let accepted = match accept(&state, &body, None) {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    let created_by = crate::model::identity("Tollgate Sim", "sim@fabrikam.example")["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let subscription = state.hooks.create(accepted, &created_by);
    json_response(
        subscription
            .to_json(&state.hooks.organization_url())
            .to_string(),
        Vec::new(),
    )
}

pub(crate) async fn read(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = preflight(&state, &params, &query) {
        return response;
    }
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    match state.hooks.get(id) {
        Some(subscription) => json_response(
            subscription
                .to_json(&state.hooks.organization_url())
                .to_string(),
            Vec::new(),
        ),
        None => not_found(id),
    }
}

pub(crate) async fn replace(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    if let Err(response) = preflight(&state, &params, &query) {
        return response;
    }
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    let Some(previous) = state.hooks.get(id) else {
        return not_found(id);
    };
    let accepted = match accept(&state, &body, Some(&previous)) {
        Ok(accepted) => accepted,
        Err(response) => return response,
    };
    match state.hooks.replace(id, accepted) {
        Some(subscription) => json_response(
            subscription
                .to_json(&state.hooks.organization_url())
                .to_string(),
            Vec::new(),
        ),
        None => not_found(id),
    }
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = preflight(&state, &params, &query) {
        return response;
    }
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    if state.hooks.delete(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found(id)
    }
}

pub(crate) async fn deliveries(State(state): State<AppState>) -> Response {
    let records = state.hooks.records();
    json_response(
        json!({"count": records.len(), "value": records}).to_string(),
        Vec::new(),
    )
}

pub(crate) async fn clear_deliveries(State(state): State<AppState>) -> StatusCode {
    state.hooks.clear_records();
    StatusCode::NO_CONTENT
}
