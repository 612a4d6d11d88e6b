//! The Model Context Protocol adapter: tollgate's gate, findings and approvals as MCP tools
//! (ADR 0012, docs/MCP.md). Like `src/http` it holds no business logic: each tool reads its
//! arguments, calls a service of the caller's tenant and returns what the service answered.
//!
//! Two transports serve the same [`McpServer`]:
//! - stdio (`tollgate mcp`): the caller is the API key given at start, checked again on every
//!   call so a revoked or expired key stops working at once;
//! - streamable HTTP (`POST /mcp` in `tollgate serve`): the caller is the principal the HTTP
//!   authentication middleware put on the request, as for `/api/v1`.
//!
//! Every tool is listed to every caller; a call checks the tool's permission against the
//! caller's role first and answers a missing one with an error result naming it.

pub mod approvals;
pub mod deployments;
pub mod findings;
pub mod http;
pub mod tools;
pub mod validate;

use std::sync::Arc;

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};
use serde_json::json;
use time::OffsetDateTime;
use tollgate_domain::{SecretString, TenantId};

use crate::auth::Principal;
use crate::auth::authenticator::{AuthError, Authenticator};
use crate::services::audit::AuditService;
use crate::services::audit_events::{Actor, AuditEvent, Record, Target};
use crate::services::tenant::Tenants;
use tools::{ToolCall, ToolError};

/// What the server tells a client at `initialize`.
const INSTRUCTIONS: &str = "tollgate governs an Azure DevOps organisation. `validate` asks the \
deployment gate whether a run may enter an environment now (a dry run); `findings` lists \
compliance findings; `approvals` lists the approvals the gate opened and `approval_decide` votes \
on one. Each tool needs a permission of the caller's role, named in its description.";

/// How the server learns who calls.
#[derive(Clone)]
enum Identity {
    /// Over HTTP: the principal the authentication middleware attached to each request.
    PerRequest,
    /// Over stdio: one API key for the life of the process, verified on every call.
    ApiKey {
        key: SecretString,
        authenticator: Arc<Authenticator>,
    },
}

/// The MCP server: lists the tool table and runs tools as the caller, in the caller's tenant.
#[derive(Clone)]
pub struct McpServer {
    tenants: Arc<Tenants>,
    audit: Arc<AuditService>,
    identity: Identity,
}

impl McpServer {
    /// For `POST /mcp`: behind the HTTP authentication middleware, which puts a [`Principal`]
    /// on every request it lets through.
    pub fn per_request(tenants: Arc<Tenants>, audit: Arc<AuditService>) -> Self {
        Self {
            tenants,
            audit,
            identity: Identity::PerRequest,
        }
    }

    /// For stdio: acting as the holder of `key` (see [`authenticate_api_key`] to refuse a bad
    /// key before serving).
    pub fn with_api_key(
        tenants: Arc<Tenants>,
        audit: Arc<AuditService>,
        authenticator: Arc<Authenticator>,
        key: SecretString,
    ) -> Self {
        Self {
            tenants,
            audit,
            identity: Identity::ApiKey { key, authenticator },
        }
    }

    /// Who is calling, by the transport's means.
    async fn principal(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<Principal, ToolError> {
        match &self.identity {
            Identity::PerRequest => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Principal>())
                .cloned()
                // The route table puts /mcp behind authentication; a request without a
                // principal means the router was wired wrongly, so fail closed.
                .ok_or_else(|| {
                    ToolError::Unauthenticated("the request carries no authenticated caller".into())
                }),
            Identity::ApiKey { key, authenticator } => {
                authenticate_api_key(authenticator, &self.audit, key)
                    .await
                    .map_err(|error| ToolError::Unauthenticated(error.to_string()))
            }
        }
    }

    /// Run one tool call to a result the client can read.
    async fn run(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let Some(tool) = tools::find(&request.name) else {
            // Not a tool error: the client asked for something that does not exist (the spec's
            // "unknown tool" protocol error).
            let known: Vec<&str> = tools::TOOLS.iter().map(|t| t.name).collect();
            return Err(McpError::invalid_params(
                format!("no tool {:?}; tools: {}", request.name, known.join(", ")),
                None,
            ));
        };
        let principal = match self.principal(&context).await {
            Ok(principal) => principal,
            Err(error) => return Ok(error.into_result()),
        };
        if !principal.may(tool.permission) {
            tracing::info!(tool = tool.name, subject = %principal.subject, role = %principal.role,
                permission = %tool.permission, "mcp: authorisation denied");
            let record = Record::new(
                AuditEvent::AccessDenied,
                &Actor::principal(&principal),
                OffsetDateTime::now_utc(),
            )
            .failure()
            .reason(format!("role {} lacks {}", principal.role, tool.permission))
            .target(Target::new("mcp_tool", tool.name))
            .detail("source", json!("mcp"))
            .draft();
            self.record_quietly(&principal.tenant, record).await;
            return Ok(ToolError::MissingPermission {
                permission: tool.permission,
                role: principal.role,
            }
            .into_result());
        }
        let Some(tenant) = self.tenants.get(&principal.tenant) else {
            return Ok(ToolError::Forbidden(format!(
                "tenant {} is not served by this instance",
                principal.tenant
            ))
            .into_result());
        };
        let subject = principal.subject.clone();
        let call = ToolCall { tenant, principal };
        let arguments = request.arguments.unwrap_or_default();
        match (tool.call)(call, arguments).await {
            Ok(value) => Ok(tools::success(value)),
            Err(error) => {
                if let ToolError::Internal(detail) = &error {
                    tracing::error!(
                        tool = tool.name,
                        subject,
                        error = format!("{detail:#}"),
                        "mcp: the tool failed"
                    );
                } else {
                    tracing::info!(
                        tool = tool.name,
                        subject,
                        code = error.code(),
                        "mcp: the tool refused the call"
                    );
                }
                Ok(error.into_result())
            }
        }
    }

    /// A security record; the answer does not wait on the audit log being healthy.
    async fn record_quietly(&self, tenant: &TenantId, record: tollgate_store::AuditDraft) {
        if let Err(error) = self.audit.record(tenant, vec![record]).await {
            tracing::error!(%tenant, error = %format!("{error:#}"), "an audit record could not be written");
        }
    }
}

/// Verify an API key exactly as the HTTP middleware verifies an `X-Api-Key` header, and
/// record a refusal in the audit log as it does (target: the stdio transport).
pub async fn authenticate_api_key(
    authenticator: &Authenticator,
    audit: &AuditService,
    key: &SecretString,
) -> Result<Principal, AuthError> {
    let now = OffsetDateTime::now_utc();
    match authenticator
        .authenticate(None, Some(key.expose()), now)
        .await
    {
        Ok(principal) => Ok(principal),
        Err(error) => {
            tracing::info!(reason = error.reason(), "mcp: authentication failed");
            if !matches!(error, AuthError::Unavailable { .. }) {
                let record = Record::new(
                    AuditEvent::AuthenticationFailed,
                    &Actor::anonymous(None),
                    now,
                )
                .failure()
                .reason(error.reason())
                .target(Target::new("mcp", "stdio"))
                .draft();
                if let Err(failure) = audit
                    .record(&TenantId::default_tenant(), vec![record])
                    .await
                {
                    tracing::error!(error = %format!("{failure:#}"), "an audit record could not be written");
                }
            }
            Err(error)
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("tollgate", env!("CARGO_PKG_VERSION")).with_title("tollgate"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(
            tools::TOOLS.iter().map(tools::ToolSpec::describe).collect(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::find(name).map(tools::ToolSpec::describe)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.run(request, context).await.map(CallToolResponse::from)
    }
}
