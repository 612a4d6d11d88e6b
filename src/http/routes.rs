//! The route → permission table. The authorisation middleware looks every matched route up
//! here (a route missing from the table is refused), and the black-box tests walk the same
//! table to check every route against every role.

use axum::http::Method;

use crate::auth::Permission;

/// What a route asks of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credential (health, metrics, the OpenAPI document and its viewer).
    Public,
    /// A tenant credential the handler checks itself: the service-hook secret, or the gate's
    /// basic-auth credential.
    WebhookSecret,
    /// Any authenticated principal.
    Authenticated,
    Requires(Permission),
}

#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    pub method: &'static str,
    /// The axum route template, as `MatchedPath` reports it.
    pub path: &'static str,
    pub access: Access,
    /// Whether the route changes state (audited, never cached).
    pub mutating: bool,
}

const fn route(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    let mutating = !matches!(method.as_bytes(), b"GET" | b"HEAD");
    RouteSpec {
        method,
        path,
        access,
        mutating,
    }
}

use Access::{Authenticated, Public, Requires, WebhookSecret};
use Permission::*;

pub const ROUTES: &[RouteSpec] = &[
    route("GET", "/healthz", Public),
    route("GET", "/readyz", Public),
    route("GET", "/metrics", Public),
    route("GET", "/api/openapi.json", Public),
    route("GET", "/api/docs", Public),
    route("GET", "/api/docs/", Public),
    route("GET", "/api/docs/{*rest}", Public),
    route("POST", "/hooks/ado/{tenant}", WebhookSecret),
    route("GET", "/api/v1/me", Authenticated),
    route("GET", "/api/v1/inventory", Requires(InventoryRead)),
    route("GET", "/api/v1/inventory/{kind}", Requires(InventoryRead)),
    route(
        "GET",
        "/api/v1/inventory/{kind}/item",
        Requires(InventoryRead),
    ),
    route("GET", "/api/v1/findings", Requires(FindingsRead)),
    route("GET", "/api/v1/waivers", Requires(FindingsRead)),
    route("POST", "/api/v1/waivers", Requires(WaiversManage)),
    route("DELETE", "/api/v1/waivers/{id}", Requires(WaiversManage)),
    route("GET", "/api/v1/policies", Requires(InventoryRead)),
    route("GET", "/api/v1/policies/{id}", Requires(InventoryRead)),
    route("GET", "/api/v1/policies/settings", Requires(InventoryRead)),
    route("GET", "/api/v1/syncs", Requires(InventoryRead)),
    route("POST", "/api/v1/syncs", Requires(SyncRun)),
    route("POST", "/api/v1/scans", Requires(SyncRun)),
    route("GET", "/api/v1/events", Requires(EventsManage)),
    route("GET", "/api/v1/events/{id}", Requires(EventsManage)),
    route("POST", "/api/v1/events/replay", Requires(EventsManage)),
    route("GET", "/api/v1/audit/records", Requires(AuditRead)),
    route(
        "GET",
        "/api/v1/audit/records/{id}/proof",
        Requires(AuditRead),
    ),
    route("GET", "/api/v1/audit/checkpoints", Requires(AuditRead)),
    route("GET", "/api/v1/audit/consistency", Requires(AuditRead)),
    route("GET", "/api/v1/jobs", Requires(EventsManage)),
    route("GET", "/api/v1/jobs/{id}", Requires(EventsManage)),
    route("POST", "/api/v1/jobs/{id}/retry", Requires(EventsManage)),
    route("GET", "/api/v1/api-keys", Requires(ConfigManage)),
    route("POST", "/api/v1/api-keys", Requires(ConfigManage)),
    route("DELETE", "/api/v1/api-keys/{id}", Requires(ConfigManage)),
    route("GET", "/api/v1/tenants", Requires(ConfigManage)),
    // Tenants: admins of the operator tenant (the handlers check); members: the tenant's
    // admins or the operator tenant's (docs/TENANCY.md).
    route("GET", "/api/v1/admin/tenants", Requires(ConfigManage)),
    route("POST", "/api/v1/admin/tenants", Requires(ConfigManage)),
    route(
        "DELETE",
        "/api/v1/admin/tenants/{id}",
        Requires(ConfigManage),
    ),
    route(
        "GET",
        "/api/v1/admin/tenants/{id}/members",
        Requires(ConfigManage),
    ),
    route(
        "PUT",
        "/api/v1/admin/tenants/{id}/members/{subject}",
        Requires(ConfigManage),
    ),
    route(
        "DELETE",
        "/api/v1/admin/tenants/{id}/members/{subject}",
        Requires(ConfigManage),
    ),
    route("POST", "/gate/ado/{tenant}", WebhookSecret),
    route(
        "POST",
        "/api/v1/deployments/validate",
        Requires(DeploymentsValidate),
    ),
    route("GET", "/api/v1/deployments", Requires(InventoryRead)),
    route("POST", "/api/v1/deployments", Requires(DeploymentsExecute)),
    route("GET", "/api/v1/deployments/{id}", Requires(InventoryRead)),
    route(
        "POST",
        "/api/v1/deployments/rollback",
        Requires(DeploymentsExecute),
    ),
    route(
        "GET",
        "/api/v1/gate/decisions",
        Requires(DeploymentsValidate),
    ),
    route("GET", "/api/v1/gate/backtest", Requires(InventoryRead)),
    route("GET", "/api/v1/approvals", Requires(DeploymentsValidate)),
    route(
        "GET",
        "/api/v1/approvals/{id}",
        Requires(DeploymentsValidate),
    ),
    route(
        "POST",
        "/api/v1/approvals/{id}/approve",
        Requires(ApprovalsDecide),
    ),
    route(
        "POST",
        "/api/v1/approvals/{id}/reject",
        Requires(ApprovalsDecide),
    ),
    route(
        "POST",
        "/api/v1/approvals/{id}/cancel",
        Requires(ApprovalsDecide),
    ),
    route("GET", "/api/v1/capabilities", Authenticated),
    route("PUT", "/api/v1/capabilities/{name}", Requires(ConfigManage)),
    // MCP (JSON-RPC over streamable HTTP, docs/MCP.md): any principal may connect and list
    // the tools; each tool call checks the permission that tool needs. The endpoint is
    // stateless, so GET (an event stream) and DELETE (a session) answer 405.
    route("POST", "/mcp", Authenticated),
    route("GET", "/mcp", Authenticated),
    route("DELETE", "/mcp", Authenticated),
];

/// The table entry for a matched route.
pub fn lookup(method: &Method, path: &str) -> Option<&'static RouteSpec> {
    ROUTES
        .iter()
        .find(|r| r.path == path && r.method == method.as_str())
}
