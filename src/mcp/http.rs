//! `/mcp` in `tollgate serve`: the streamable HTTP transport, mounted behind the same
//! authentication, rate limit and route table as `/api/v1` (see `http::router`).

use std::sync::Arc;

use rmcp::transport::StreamableHttpServerConfig;
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;

use super::McpServer;
use crate::services::audit::AuditService;
use crate::services::tenant::Tenants;

/// The `/mcp` endpoint's service.
///
/// - Stateless, JSON responses: each POST is answered on its own, so any replica can take any
///   request (replicas share nothing but the database) and no stream outlives a request
///   (graceful shutdown and the request timeout apply as to the API).
/// - No `Host` or `Origin` allow-list: every request must carry a bearer token or API key,
///   which a page in a browser cannot add to a request it did not get CORS for, so DNS
///   rebinding gains nothing; the server's own CORS settings govern browsers as for the API.
/// - The body limit is the API's (rmcp reads the body itself, past axum's limit layer).
pub fn service(
    tenants: Arc<Tenants>,
    audit: Arc<AuditService>,
    body_limit_bytes: usize,
) -> StreamableHttpService<McpServer, NeverSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_sse_retry(None)
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(body_limit_bytes);
    StreamableHttpService::new(
        move || Ok(McpServer::per_request(tenants.clone(), audit.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
