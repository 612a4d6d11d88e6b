//! `POST /hooks/ado/{tenant}`: ADO's service-hook deliveries.
//!
//! Status codes follow what ADO does with them: it retries 408, 502, 503 and 504 and puts
//! the subscription on probation for anything else that is not 2xx (dropping new events for
//! a while). So an event that cannot be stored gets 503 (retried), never 500 or 429; a
//! delivery is acknowledged only after it is durably committed; malformed bodies are kept
//! and get 400 — retrying them cannot help.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tollgate_domain::TenantId;
use tollgate_store::{EventStatus, IngestOutcome};

use super::AppState;
use super::error::ApiError;
use crate::services::events::{self, IngestError};
use crate::services::tenant::WebhookSecret;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Receipt {
    /// stored, duplicate, unknown_type or malformed
    pub status: &'static str,
    /// The stored event's number (`GET /api/v1/events/{id}`).
    pub event: i64,
}

/// Compare digests rather than the secrets, so the comparison takes the same time whatever
/// the lengths and contents.
pub(super) fn same_secret(presented: &[u8], secret: &str) -> bool {
    let a = Sha256::digest(presented);
    let b = Sha256::digest(secret.as_bytes());
    bool::from(a.ct_eq(&b))
}

/// The secret as ADO sends it: the basic-auth password (any user name), or the configured
/// custom header.
fn authenticated(headers: &HeaderMap, expected: &WebhookSecret) -> bool {
    let secret = expected.secret.expose();
    let mut ok = false;
    if let Some(value) = headers
        .get(expected.header.as_str())
        .and_then(|v| v.to_str().ok())
    {
        ok |= same_secret(value.trim().as_bytes(), secret);
    }
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim())
        && let Some(colon) = decoded.iter().position(|b| *b == b':')
    {
        ok |= same_secret(&decoded[colon + 1..], secret);
    }
    ok
}

#[utoipa::path(post, path = "/hooks/ado/{tenant}", tag = "webhooks",
    params(("tenant" = String, Path, description = "The tenant id (`default` for a single organisation)")),
    request_body(content = Object, description = "An ADO service-hook event, as ADO's Web Hooks consumer posts it"),
    responses(
        (status = 200, body = Receipt, description = "Durably stored (or already stored)"),
        (status = 400, body = super::error::ErrorBody, description = "Malformed; kept for inspection"),
        (status = 401, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody),
        (status = 408, body = super::error::ErrorBody, description = "The body did not arrive whole; ADO retries"),
        (status = 413, body = super::error::ErrorBody),
        (status = 503, body = super::error::ErrorBody, description = "Could not be stored; ADO retries"),
    ),
    security(()))]
pub async fn receive(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let metrics = state.metrics.clone();
    let outcome = |label: &str| metrics.webhook(&tenant, label);
    let Some(context) = TenantId::parse(&tenant)
        .ok()
        .and_then(|id| state.tenants.get(&id))
    else {
        outcome("unknown_tenant");
        return ApiError::not_found(format!("no tenant {tenant:?}")).into_response();
    };
    let Some(pipeline) = state.ingest.as_ref() else {
        outcome("unavailable");
        return ApiError::unavailable("this instance does not receive events", 30).into_response();
    };
    // Nothing is open without a credential: a tenant without a secret accepts no events.
    let authorised = context
        .webhook
        .as_ref()
        .is_some_and(|secret| authenticated(&headers, secret));
    if !authorised {
        outcome("unauthorized");
        tracing::info!(
            tenant,
            "service-hook delivery with a missing or wrong secret"
        );
        let record = crate::services::audit_events::Record::new(
            crate::services::audit_events::AuditEvent::WebhookRejected,
            &crate::services::audit_events::Actor::anonymous(None),
            time::OffsetDateTime::now_utc(),
        )
        .failure()
        .reason("the webhook secret is missing or wrong")
        .draft();
        if let Err(error) = state.audit.record(&context.id, vec![record]).await {
            tracing::error!(error = %format!("{error:#}"), "an audit record could not be written");
        }
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the webhook secret is missing or wrong",
        )
        .into_response();
    }
    let bytes = match axum::body::to_bytes(body, state.settings.webhook_body_limit_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => {
            // axum reports the limit as "length limit exceeded" in the error chain.
            let too_large = format!("{error:?}").contains("LengthLimitError")
                || error.to_string().contains("length limit");
            if too_large {
                outcome("too_large");
                return ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "the event is larger than {} bytes",
                        state.settings.webhook_body_limit_bytes
                    ),
                )
                .into_response();
            }
            // A delivery cut short: 408 makes ADO send it again.
            outcome("truncated");
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the body did not arrive whole",
            )
            .into_response();
        }
    };
    let event = events::classify(
        &context.id,
        &bytes,
        OffsetDateTime::now_utc(),
        state.max_attempts,
    );
    let status = event.status;
    let error = event.error.clone();
    let response = match pipeline.submit(event).await {
        Ok(IngestOutcome::Duplicate { id }) => {
            outcome("duplicate");
            Json(Receipt {
                status: "duplicate",
                event: id.0,
            })
            .into_response()
        }
        Ok(IngestOutcome::Stored { id, .. }) => match status {
            EventStatus::Malformed => {
                outcome("malformed");
                ApiError::bad_request(format!(
                    "not an ADO service-hook event ({}); it was kept as event {}",
                    error.unwrap_or_default(),
                    id.0
                ))
                .into_response()
            }
            EventStatus::Unknown => {
                outcome("unknown_type");
                Json(Receipt {
                    status: "unknown_type",
                    event: id.0,
                })
                .into_response()
            }
            _ => {
                outcome("stored");
                Json(Receipt {
                    status: "stored",
                    event: id.0,
                })
                .into_response()
            }
        },
        Err(error) => {
            outcome("unavailable");
            tracing::warn!(tenant, %error, "service-hook delivery not stored; answering 503 so ADO retries");
            let retry_after = match error {
                IngestError::Overloaded => 1,
                IngestError::Store(_) | IngestError::ShuttingDown => 5,
            };
            ApiError::unavailable("the event could not be stored; retry", retry_after)
                .into_response()
        }
    };
    state
        .metrics
        .webhook_ack_seconds
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_domain::SecretString;

    #[test]
    fn the_secret_is_accepted_as_basic_auth_password_or_header() {
        let expected = WebhookSecret {
            secret: SecretString::new("s3cret"),
            header: "X-Tollgate-Webhook-Secret".to_owned(),
        };
        let mut headers = HeaderMap::new();
        assert!(!authenticated(&headers, &expected));
        let basic = base64::engine::general_purpose::STANDARD.encode("ado:s3cret");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}")
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert!(authenticated(&headers, &expected));
        let wrong = base64::engine::general_purpose::STANDARD.encode("ado:s3cre");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {wrong}")
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert!(!authenticated(&headers, &expected));
        headers.remove(header::AUTHORIZATION);
        headers.insert(
            "x-tollgate-webhook-secret",
            "s3cret".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert!(authenticated(&headers, &expected));
        headers.insert(
            "x-tollgate-webhook-secret",
            "s3cret-and-more".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert!(!authenticated(&headers, &expected));
    }
}
