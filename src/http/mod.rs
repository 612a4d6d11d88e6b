//! The HTTP adapter of `tollgate serve`: the `/api/v1` API, the service-hook receiver,
//! health, metrics and the OpenAPI document. Handlers call services; they hold no business
//! logic and name no storage or ADO types beyond the domain's.

pub mod api;
pub mod api_admin;
pub mod api_audit;
pub mod api_backtest;
pub mod api_deployments;
pub mod api_events;
pub mod api_gate;
pub mod api_tenancy;
pub mod error;
pub mod extract;
pub mod gate;
pub mod hooks;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod routes;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::services::tenant::Tenants;
use crate::telemetry::Metrics;
use middleware::RateLimiter;

/// Limits and timeouts of the HTTP server.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub body_limit_bytes: usize,
    pub webhook_body_limit_bytes: usize,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub cors_origins: Vec<String>,
}

/// Whether the server can do its work: the database answers and its schema is current.
#[async_trait::async_trait]
pub trait Readiness: Send + Sync {
    async fn check(&self) -> Result<()>;
}

/// What every handler can reach, behind one `Arc`: axum clones the state for every request
/// and again for each middleware layer, and one reference count to move is cheaper than a
/// dozen (the gate's profile under load had ≈ 4 % of the server's CPU in cloning and dropping
/// the state's fields).
#[derive(Clone)]
pub struct AppState(Arc<AppContext>);

impl AppState {
    pub fn new(context: AppContext) -> Self {
        Self(Arc::new(context))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppContext;

    fn deref(&self) -> &AppContext {
        &self.0
    }
}

/// The services and settings [`AppState`] shares.
pub struct AppContext {
    pub tenants: Arc<Tenants>,
    pub authenticator: Arc<crate::auth::authenticator::Authenticator>,
    pub rate_limiter: Arc<RateLimiter>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<HttpSettings>,
    pub readiness: Arc<dyn Readiness>,
    pub api_keys: Arc<crate::auth::api_keys::ApiKeyService>,
    /// `None` on an instance that receives no events.
    pub ingest: Option<crate::services::events::IngestService>,
    pub events: Option<Arc<crate::services::events::EventsService>>,
    /// Wakes in-process workers when jobs are queued.
    pub wake: Arc<tokio::sync::Notify>,
    pub max_attempts: u32,
    /// Records authentication failures and denials (and serves the audit API).
    pub audit: Arc<crate::services::audit::AuditService>,
    /// Tenants and memberships (`/api/v1/admin/tenants…`).
    pub tenancy: Arc<crate::services::tenancy::TenancyService>,
}

impl AppContext {
    /// Read queue depth and lag from the store, so every replica reports the shared queue.
    pub async fn refresh_queue_metrics(&self) {
        let Some(events) = &self.events else { return };
        match events.queue_stats().await {
            Ok(stats) => {
                for (status, count) in [
                    ("queued", stats.queued),
                    ("running", stats.running),
                    ("dead", stats.dead),
                    ("done", stats.done),
                ] {
                    self.metrics
                        .queue_depth
                        .get_or_create(&crate::telemetry::StatusLabels {
                            status: status.to_owned(),
                        })
                        .set(i64::try_from(count).unwrap_or(i64::MAX));
                }
                let lag = stats
                    .oldest_queued_at
                    .map(|at| {
                        (time::OffsetDateTime::now_utc() - at)
                            .as_seconds_f64()
                            .max(0.0)
                    })
                    .unwrap_or(0.0);
                self.metrics.queue_lag_seconds.set(lag);
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "reading queue metrics"),
        }
    }
}

/// Every route, with the layers in order (outermost first): request id, access log,
/// metrics and secure headers → timeout → body limit → authentication and authorisation
/// from the route table → handler.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/inventory", get(api::inventory))
        .route("/api/v1/inventory/{kind}", get(api::inventory_items))
        .route("/api/v1/inventory/{kind}/item", get(api::inventory_item))
        .route("/api/v1/findings", get(api::findings))
        .route("/api/v1/waivers", get(api::waivers).post(api::add_waiver))
        .route("/api/v1/waivers/{id}", delete(api::remove_waiver))
        .route("/api/v1/policies", get(api::policies))
        .route("/api/v1/policies/settings", get(api::policy_settings))
        .route("/api/v1/policies/{id}", get(api::policy))
        .route(
            "/api/v1/syncs",
            get(api::syncs).post(api_events::start_sync),
        )
        .route("/api/v1/scans", post(api_events::start_scan))
        .route("/api/v1/events", get(api_events::events))
        .route("/api/v1/events/replay", post(api_events::replay))
        .route("/api/v1/events/{id}", get(api_events::event))
        .route("/api/v1/audit/records", get(api_audit::records))
        .route(
            "/api/v1/audit/records/{id}/proof",
            get(api_audit::inclusion_proof),
        )
        .route("/api/v1/audit/checkpoints", get(api_audit::checkpoints))
        .route(
            "/api/v1/audit/consistency",
            get(api_audit::consistency_proof),
        )
        .route("/api/v1/jobs", get(api_events::jobs))
        .route("/api/v1/jobs/{id}", get(api_events::job))
        .route("/api/v1/jobs/{id}/retry", post(api_events::retry_job))
        .route(
            "/api/v1/api-keys",
            get(api_admin::api_keys).post(api_admin::create_api_key),
        )
        .route("/api/v1/api-keys/{id}", delete(api_admin::revoke_api_key))
        .route("/api/v1/tenants", get(api_admin::tenants))
        .route(
            "/api/v1/admin/tenants",
            get(api_tenancy::admin_tenants).post(api_tenancy::create_tenant),
        )
        .route(
            "/api/v1/admin/tenants/{id}",
            delete(api_tenancy::remove_tenant),
        )
        .route(
            "/api/v1/admin/tenants/{id}/members",
            get(api_tenancy::members),
        )
        .route(
            "/api/v1/admin/tenants/{id}/members/{subject}",
            axum::routing::put(api_tenancy::put_member).delete(api_tenancy::remove_member),
        )
        .route("/api/v1/deployments/validate", post(api_gate::validate))
        .route(
            "/api/v1/deployments",
            get(api_deployments::list).post(api_deployments::deploy),
        )
        .route(
            "/api/v1/deployments/rollback",
            post(api_deployments::rollback),
        )
        .route("/api/v1/deployments/{id}", get(api_deployments::status))
        .route("/api/v1/gate/decisions", get(api_gate::decisions))
        .route("/api/v1/gate/backtest", get(api_backtest::backtest))
        .route("/api/v1/approvals", get(api_gate::approvals))
        .route("/api/v1/approvals/{id}", get(api_gate::approval))
        .route("/api/v1/approvals/{id}/approve", post(api_gate::approve))
        .route("/api/v1/approvals/{id}/reject", post(api_gate::reject))
        .route("/api/v1/approvals/{id}/cancel", post(api_gate::cancel))
        .route("/api/v1/capabilities", get(api_gate::capabilities))
        .route(
            "/api/v1/capabilities/{name}",
            axum::routing::put(api_gate::set_capability),
        )
        // MCP over streamable HTTP: authenticated like the API; each tool checks its permission.
        .route("/mcp", {
            let mcp = crate::mcp::http::service(
                state.tenants.clone(),
                state.audit.clone(),
                state.settings.body_limit_bytes,
            );
            // GET and DELETE reach rmcp too, which answers 405 (a stateless endpoint has no
            // event stream or session): the answer the protocol tells clients to expect.
            axum::routing::post_service(mcp.clone())
                .get_service(mcp.clone())
                .delete_service(mcp)
        })
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authorize,
        ))
        .layer(DefaultBodyLimit::max(state.settings.body_limit_bytes));
    // The receiver reads its body itself, under its own limit.
    let hooks = Router::new()
        .route("/hooks/ado/{tenant}", post(hooks::receive))
        .route("/gate/ado/{tenant}", post(gate::check))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authorize,
        ))
        .layer(DefaultBodyLimit::disable())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            ops::panic_response_retry,
        ));
    let docs = openapi::swagger_ui();
    let mut app = Router::new()
        .merge(api)
        .merge(hooks)
        .merge(docs)
        .fallback(ops::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ));
    if !state.settings.cors_origins.is_empty() {
        let origins: Vec<axum::http::HeaderValue> = state
            .settings
            .cors_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect();
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([
                    axum::http::Method::GET,
                    axum::http::Method::POST,
                    axum::http::Method::PUT,
                    axum::http::Method::DELETE,
                ])
                .allow_headers([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderName::from_static(crate::auth::tenancy::TENANT_HEADER),
                ]),
        );
    }
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        middleware::observe,
    ))
    .layer(tower_http::catch_panic::CatchPanicLayer::custom(
        ops::panic_response,
    ))
    .with_state(state)
}

/// Serve until `shutdown` resolves, then stop accepting, let in-flight requests finish
/// (up to `grace`), and return.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
    grace: Duration,
) -> Result<()> {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Slow clients that send nothing (or headers a byte at a time) are dropped.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = app.clone().map_request(|request: hyper::Request<hyper::body::Incoming>| {
                    request.map(axum::body::Body::new)
                });
                let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("in-flight requests did not finish within the grace period");
        }
    }
    Ok(())
}

/// Connections the kernel may hold for us before we accept them. Tokio's listener asks for
/// 128, which a burst of callers connecting at once while the server is busy overruns — ADO's
/// agents each open their own connections — and a SYN dropped from a full queue is only sent
/// again after a second, a second added to that check's answer (seen in the gate benchmark).
/// The kernel caps it at `net.core.somaxconn` (4,096 on current Linux).
const ACCEPT_BACKLOG: u32 = 4_096;

/// Bind an address, with a clear error when it is taken. Like `TcpListener::bind`, each
/// address the name resolves to is tried in turn (`localhost` on a host without IPv6).
pub async fn bind(address: &str) -> Result<TcpListener> {
    let mut last_error = None;
    for resolved in tokio::net::lookup_host(address)
        .await
        .with_context(|| format!("listening on {address}"))?
    {
        match listen_on(resolved) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(match last_error {
        Some(error) => anyhow::Error::new(error),
        None => anyhow::anyhow!("the address resolves to nothing"),
    })
    .with_context(|| format!("listening on {address}"))
}

fn listen_on(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does on Unix: a restarted server binds while the old one's
    // connections linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(ACCEPT_BACKLOG)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[tokio::test]
    async fn a_taken_address_is_a_clear_error_and_a_name_resolves() {
        let first = bind("127.0.0.1:0").await.unwrap();
        let taken = first.local_addr().unwrap().to_string();
        let error = format!("{:#}", bind(&taken).await.unwrap_err());
        assert!(error.contains(&format!("listening on {taken}")), "{error}");
        assert!(error.to_lowercase().contains("in use"), "{error}");
        let named = bind("localhost:0").await.unwrap();
        assert!(named.local_addr().unwrap().ip().is_loopback());
    }
}
