//! `GET /api/v1/gate/backtest`: replay the inventory's past deployments against the gate as
//! configured now (read-only; `tollgate gate backtest` from the command line).

use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use super::AppState;
use super::api::tenant_of;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::auth::Principal;
use crate::http::extract::QueryParams;
use crate::services::backtest::{self, BacktestQuery, Since};

/// Deployments one request replays by default, and at most: each is a gate evaluation with
/// its inventory reads, and the request must finish within the server's request timeout.
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 1_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BacktestParams {
    /// How far back: days (30d), hours (12h) or a date (2026-10-01); default 30d
    pub since: Option<String>,
    /// Only environments whose name matches this glob
    pub environment: Option<String>,
    /// Only this project (name or id)
    pub project: Option<String>,
    /// The newest deployments of the window to replay (default 200, at most 1000)
    pub limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/gate/backtest", tag = "gate", params(BacktestParams),
    responses((status = 200, body = Object, description = "What the gate as configured now would have done to the window's deployments: totals, by team (project) and by rule, and the deployments it would have stopped. Nothing is recorded."),
        (status = 400, body = ErrorBody)))]
pub async fn backtest(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(params): QueryParams<BacktestParams>,
) -> ApiResult<Json<Value>> {
    let since: Since = params
        .since
        .as_deref()
        .unwrap_or("30d")
        .parse()
        .map_err(|error: backtest::BadSince| ApiError::bad_request(error.to_string()))?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit}: replay between 1 and {MAX_LIMIT} deployments per request (the command line has no limit)"
        )));
    }
    let context = tenant_of(&state, &principal)?;
    // Now, to the nanosecond: a deployment that started earlier this second is in the window.
    let until = context.gate.now();
    let query = BacktestQuery {
        since: since.start(until),
        until,
        environment: params.environment,
        project: params.project,
        limit: Some(limit),
    };
    let report = backtest::backtest(&context.gate, &query, |_, _| {}).await?;
    Ok(Json(
        serde_json::to_value(&report).map_err(anyhow::Error::from)?,
    ))
}
