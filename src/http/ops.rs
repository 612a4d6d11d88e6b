//! Health, readiness, metrics, and the answers for unknown routes and panics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// The database answers and its migrations are applied.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = super::error::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.readiness.check().await {
        Ok(()) => Json(Health {
            status: "ready".to_owned(),
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(error = format!("{error:#}"), "not ready");
            ApiError::unavailable("not ready: the database is unreachable or not migrated", 5)
                .into_response()
        }
    }
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.refresh_queue_metrics().await;
    match state.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => ApiError::internal(&anyhow::anyhow!("rendering metrics")).into_response(),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route; GET /api/openapi.json lists them")
}

/// A panic in a handler becomes a generic 500 in the one error shape (and a log line).
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    tracing::error!(panic = detail, "handler panicked");
    let mut response = ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; the server log has the details",
    )
    .into_response();
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// For the service-hook receiver: ADO retries 503 but puts the subscription on probation
/// for a 500, so even a bug answers "retry".
pub fn panic_response_retry(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let mut response = panic_response(panic);
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}
