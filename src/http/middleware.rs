//! Request id, access log and metrics, secure headers, timeouts, authentication,
//! authorisation and per-principal rate limits.

use crate::services::audit_events::{Actor, AuditEvent, Record, Target};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tollgate_domain::TenantId;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::routes::{self, Access};
use crate::auth::Principal;
use crate::auth::authenticator::AuthFailure;
use crate::auth::tenancy::{TENANT_HEADER, TenantRoles};
use crate::telemetry::{RequestLabels, RouteLabels};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request being answered, for error bodies and log lines.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// A caller's own request id is kept when it is short and plain; otherwise we make one.
fn acceptable_request_id(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(&REQUEST_ID)?.to_str().ok()?;
    let plain = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plain.then(|| raw.to_owned())
}

fn new_request_id() -> String {
    let bytes: [u8; 12] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Outermost layer: request id, access log, metrics, secure headers.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = acceptable_request_id(request.headers()).unwrap_or_else(new_request_id);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let mut response = CURRENT_REQUEST_ID
        .scope(request_id.clone(), next.run(request))
        .await;
    // The matched route is only known after routing; inner layers record it.
    let route = route
        .or_else(|| {
            response
                .extensions()
                .get::<RouteName>()
                .map(|r| r.0.clone())
        })
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status();
    let elapsed = started.elapsed();
    state
        .metrics
        .http_requests
        .get_or_create(&RequestLabels {
            method: method.to_string(),
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(elapsed.as_secs_f64());
    let principal = response
        .extensions()
        .get::<PrincipalName>()
        .map(|p| p.0.clone());
    // The path without its query string: queries may carry filters but never credentials,
    // and headers (which do) are never logged.
    tracing::info!(
        target: "tollgate::access",
        request_id = %request_id,
        method = %method,
        path = %path,
        route = %route,
        status = status.as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        principal = principal.as_deref().unwrap_or("-"),
        "request"
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID, value);
    }
    secure_headers(headers, route.starts_with("/api/docs"));
    response
}

/// The OWASP secure headers for an API (and a looser CSP for the bundled Swagger UI, which
/// runs its own scripts and styles from this origin).
fn secure_headers(headers: &mut HeaderMap, swagger_ui: bool) {
    let csp = if swagger_ui {
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    } else {
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    };
    let fixed: [(HeaderName, &str); 8] = [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

/// Answer 503 when a request takes longer than the configured time.
pub async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.settings.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable("the request took too long; try again", 1).into_response(),
    }
}

/// Remembered on the response so the outer layer can label metrics and logs.
#[derive(Clone)]
struct RouteName(String);
#[derive(Clone)]
struct PrincipalName(String);

/// Authentication, rate limiting and authorisation for a matched route, from the table.
pub async fn authorize(
    State(state): State<AppState>,
    matched: MatchedPath,
    mut request: Request,
    next: Next,
) -> Response {
    let route = matched.as_str().to_owned();
    let with_route = |mut response: Response, principal: Option<String>| {
        response.extensions_mut().insert(RouteName(route.clone()));
        if let Some(principal) = principal {
            response.extensions_mut().insert(PrincipalName(principal));
        }
        response
    };
    let Some(spec) = routes::lookup(request.method(), &route) else {
        // Fail closed: a route someone forgot to list is nobody's.
        tracing::error!(route, method = %request.method(), "route missing from the permission table");
        return with_route(
            ApiError::forbidden("this route is not in the permission table").into_response(),
            None,
        );
    };
    match spec.access {
        Access::Public | Access::WebhookSecret => with_route(next.run(request).await, None),
        Access::Authenticated | Access::Requires(_) => {
            let headers = request.headers();
            let authorization = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            let api_key = headers.get(&API_KEY).and_then(|v| v.to_str().ok());
            let (home, tenant_roles) = match state
                .authenticator
                .authenticate_with_tenants(authorization, api_key, time::OffsetDateTime::now_utc())
                .await
            {
                Ok(authenticated) => authenticated,
                Err(error) => {
                    tracing::info!(route, reason = error.reason(), "authentication failed");
                    if !matches!(error.failure(), AuthFailure::Unavailable) {
                        let record = Record::new(
                            AuditEvent::AuthenticationFailed,
                            &Actor::anonymous(None),
                            time::OffsetDateTime::now_utc(),
                        )
                        .failure()
                        .reason(error.reason())
                        .target(Target::new(
                            "route",
                            format!("{} {route}", request.method()),
                        ))
                        .draft();
                        record_quietly(&state, &TenantId::default_tenant(), record).await;
                    }
                    let response = match error.failure() {
                        AuthFailure::Unauthorized => ApiError {
                            challenge: error.www_authenticate(),
                            ..ApiError::new(
                                axum::http::StatusCode::UNAUTHORIZED,
                                "unauthorized",
                                "a valid bearer token or API key is required",
                            )
                        },
                        AuthFailure::Forbidden => ApiError {
                            challenge: error.www_authenticate(),
                            ..ApiError::forbidden(
                                "authenticated, but no tollgate role is mapped to this identity",
                            )
                        },
                        AuthFailure::Unavailable => ApiError::unavailable(
                            "credentials cannot be checked right now; retry shortly",
                            5,
                        ),
                    };
                    return with_route(response.into_response(), None);
                }
            };
            let subject = home.subject.clone();
            if let Some(retry_after) = state.rate_limiter.check(&subject) {
                return with_route(
                    ApiError {
                        retry_after: Some(retry_after),
                        ..ApiError::new(
                            axum::http::StatusCode::TOO_MANY_REQUESTS,
                            "rate_limited",
                            "too many requests; wait for Retry-After seconds",
                        )
                    }
                    .into_response(),
                    Some(subject),
                );
            }
            let requested = request.headers().get(TENANT_HEADER).cloned();
            let method = request.method().clone();
            let principal = match acting_principal(
                &state,
                requested.as_ref(),
                &format!("{method} {route}"),
                home,
                &tenant_roles,
            )
            .await
            {
                Ok(principal) => principal,
                Err(response) => return with_route(*response, Some(subject)),
            };
            if let Access::Requires(permission) = spec.access
                && !principal.may(permission)
            {
                tracing::info!(route, subject, role = %principal.role, %permission, "authorisation denied");
                let record = Record::new(
                    AuditEvent::AccessDenied,
                    &Actor::principal(&principal),
                    time::OffsetDateTime::now_utc(),
                )
                .failure()
                .reason(format!("role {} lacks {permission}", principal.role))
                .target(Target::new(
                    "route",
                    format!("{} {route}", request.method()),
                ))
                .draft();
                record_quietly(&state, &principal.tenant, record).await;
                return with_route(
                    ApiError::forbidden(format!(
                        "role {} lacks the permission {permission}",
                        principal.role
                    ))
                    .into_response(),
                    Some(subject),
                );
            }
            request.extensions_mut().insert(principal);
            request.extensions_mut().insert(tenant_roles);
            with_route(next.run(request).await, Some(subject))
        }
    }
}

/// The principal acting in the tenant `X-Tollgate-Tenant` names (its home tenant without
/// the header), or the refusal: 400 for a header that cannot name a tenant, 403 for a tenant
/// the principal may not act in — the same answer whether or not that tenant exists.
async fn acting_principal(
    state: &AppState,
    requested: Option<&HeaderValue>,
    route: &str,
    home: Principal,
    tenant_roles: &TenantRoles,
) -> Result<Principal, Box<Response>> {
    let requested = match requested {
        None => None,
        Some(raw) => {
            let parsed = raw
                .to_str()
                .ok()
                .and_then(|raw| TenantId::parse(raw.trim()).ok());
            match parsed {
                Some(tenant) => Some(tenant),
                None => {
                    return Err(Box::new(
                        ApiError::bad_request(
                            "X-Tollgate-Tenant must be a tenant id: lowercase letters, digits, '-' and '_'",
                        )
                        .into_response(),
                    ));
                }
            }
        }
    };
    let Some(principal) = tenant_roles.act(&home, requested.as_ref()) else {
        let requested = requested.unwrap_or_else(|| home.tenant.clone());
        tracing::info!(route, subject = %home.subject, tenant = %requested, "not a member of the requested tenant");
        // Recorded in the principal's own log: the requested tenant may not exist.
        let record = Record::new(
            AuditEvent::AccessDenied,
            &Actor::principal(&home),
            time::OffsetDateTime::now_utc(),
        )
        .failure()
        .reason(format!("no membership in tenant {requested}"))
        .target(Target::new("route", route))
        .draft();
        record_quietly(state, &home.tenant, record).await;
        return Err(Box::new(
            ApiError::forbidden(format!(
                "you may not act in tenant {requested}; GET /api/v1/me lists the tenants you may act in"
            ))
            .into_response(),
        ));
    };
    // A tenant registered through another replica (or after this one started) is opened
    // when someone first acts in it.
    if state.tenants.get(&principal.tenant).is_none() {
        match state.tenancy.is_registered(&principal.tenant).await {
            Ok(true) => {
                if let Err(error) = state.tenants.open(&principal.tenant) {
                    return Err(Box::new(ApiError::internal(&error).into_response()));
                }
            }
            Ok(false) => {}
            Err(error) => {
                return Err(Box::new(
                    ApiError::internal(&anyhow::Error::new(error)).into_response(),
                ));
            }
        }
    }
    Ok(principal)
}

/// Append a security record; the answer does not wait on the audit log being healthy (a
/// failure is logged as an error and counted by the log's own integrity checks).
async fn record_quietly(state: &AppState, tenant: &TenantId, record: tollgate_store::AuditDraft) {
    if let Err(error) = state.audit.record(tenant, vec![record]).await {
        tracing::error!(%tenant, error = %format!("{error:#}"), "an audit record could not be written");
    }
}

/// Token buckets per principal: `per_minute` requests refill evenly over a minute, with a
/// burst of the same size.
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `None` to go ahead; `Some(seconds)` to wait.
    pub fn check(&self, subject: &str) -> Option<u64> {
        if self.per_minute == 0 {
            return None;
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = match self.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Forget idle principals now and then, so the map stays bounded.
        if buckets.len() > 10_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(120));
        }
        let (tokens, at) = buckets.entry(subject.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            None
        } else {
            Some(((1.0 - *tokens) / per_second).ceil().max(1.0) as u64)
        }
    }
}
