//! The tool table: every MCP tool tollgate offers, with the permission it needs, its input
//! schema and the function that runs it. A tool is one module exporting a [`ToolSpec`] and one
//! line in [`TOOLS`]; the server (`super::McpServer`) lists, authorises and dispatches from here.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, MetaObject, Tool, ToolAnnotations};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::{Permission, Principal};
use crate::services::audit_events::Actor;
use crate::services::tenant::TenantContext;

use super::{approvals, deployments, findings, validate};

/// Every tool, in the order `tools/list` returns them.
pub const TOOLS: &[ToolSpec] = &[
    validate::TOOL,
    deployments::DEPLOY,
    deployments::STATUS,
    deployments::ROLLBACK,
    findings::TOOL,
    approvals::LIST,
    approvals::DECIDE,
];

/// The tool of this name.
pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|tool| tool.name == name)
}

/// What a tool does to the world, for the client's annotations (a client may ask a person
/// before it calls a tool that changes state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Reads only.
    ReadOnly,
    /// Records something (a dry-run decision in the audit log) but changes nothing a later
    /// call or a deployment depends on.
    Records,
    /// Changes state another party acts on; calling it again is not the same as once.
    Changes,
}

/// What a tool's function returns: its answer as JSON, or why it failed.
pub type ToolFuture = BoxFuture<'static, Result<Value, ToolError>>;

/// One tool: name, description, permission, input schema and the function that runs it.
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    /// For the model that decides when to call it; the permission is appended.
    pub description: &'static str,
    /// What the caller's role must grant; checked before the arguments are read.
    pub permission: Permission,
    pub effect: Effect,
    /// The JSON Schema of the arguments (`schema_for_input::<Input>`).
    pub input_schema: fn() -> Result<Arc<JsonObject>, String>,
    pub call: fn(ToolCall, JsonObject) -> ToolFuture,
}

impl ToolSpec {
    /// The tool as `tools/list` describes it.
    pub fn describe(&self) -> Tool {
        // A schema that cannot be built is a programming error the tests catch; a client
        // still gets the tool, with a schema that accepts any object.
        let schema = (self.input_schema)().unwrap_or_else(|error| {
            tracing::error!(
                tool = self.name,
                error,
                "the tool's input schema is invalid"
            );
            Arc::new(
                json!({"type": "object"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            )
        });
        let description = format!(
            "{} Needs the permission {} (role {} or higher).",
            self.description,
            self.permission,
            self.permission.minimum_role()
        );
        let annotations = ToolAnnotations::with_title(self.title)
            .read_only(self.effect == Effect::ReadOnly)
            .destructive(self.effect == Effect::Changes)
            .idempotent(self.effect == Effect::ReadOnly);
        let mut meta = MetaObject::new();
        meta.0
            .insert(PERMISSION_META.to_owned(), json!(self.permission.as_str()));
        Tool::new(self.name, description, schema)
            .with_title(self.title)
            .with_annotations(annotations)
            .with_meta(meta)
    }
}

/// The `_meta` key naming the permission a tool needs, for clients that want to grey out
/// what the caller may not use.
pub const PERMISSION_META: &str = "tollgate/permission";

/// Who calls, in which tenant.
#[derive(Clone)]
pub struct ToolCall {
    pub tenant: Arc<TenantContext>,
    pub principal: Principal,
}

impl ToolCall {
    pub fn actor(&self) -> Actor {
        Actor::principal(&self.principal)
    }
}

/// Why a tool call failed. Each becomes a tool result with `isError: true`, whose text says
/// what went wrong and whose structured content carries a stable `code`: the MCP client
/// shows the caller (and the model) the message, which protocol errors would hide.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not fit the tool's input schema or its rules.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The caller's credential was refused (over stdio the key is checked on every call).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller's role lacks the tool's permission.
    #[error("forbidden: role {role} lacks the permission {permission}")]
    MissingPermission {
        permission: Permission,
        role: crate::auth::Role,
    },
    /// Refused for a reason of the object itself (the approval needs a higher role, or the
    /// caller requested the deployment).
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The object is no longer in a state that allows it.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A failure on the server's side; the detail goes to the server's log, not the client.
    #[error("the tool failed on the server; its log has the detail")]
    Internal(#[source] anyhow::Error),
}

impl ToolError {
    pub fn code(&self) -> &'static str {
        match self {
            ToolError::InvalidArguments(_) => "invalid_arguments",
            ToolError::Unauthenticated(_) => "unauthenticated",
            ToolError::MissingPermission { .. } | ToolError::Forbidden(_) => "forbidden",
            ToolError::NotFound(_) => "not_found",
            ToolError::Conflict(_) => "conflict",
            ToolError::Internal(_) => "internal",
        }
    }

    /// The result the client receives.
    pub fn into_result(self) -> CallToolResult {
        let message = self.to_string();
        let mut error = json!({"code": self.code(), "message": message});
        if let ToolError::MissingPermission { permission, role } = &self {
            error["permission"] = json!(permission.as_str());
            error["role"] = json!(role.as_str());
        }
        let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
        result.structured_content = Some(json!({ "error": error }));
        result
    }
}

impl From<anyhow::Error> for ToolError {
    fn from(error: anyhow::Error) -> Self {
        ToolError::Internal(error)
    }
}

/// The arguments as the tool's input type; a mismatch is an error the caller can read: the
/// argument that failed (its path) and what was expected.
pub fn arguments<T: DeserializeOwned>(arguments: JsonObject) -> Result<T, ToolError> {
    serde_path_to_error::deserialize(Value::Object(arguments)).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        ToolError::InvalidArguments(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })
}

/// A successful result: the value as structured content, and as JSON text for clients that
/// read only text.
pub fn success(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

/// Serialise a service's answer for a result.
pub fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, ToolError> {
    serde_json::to_value(value).map_err(|error| ToolError::Internal(error.into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[test]
    fn names_are_unique_and_every_schema_is_an_object() {
        let mut names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TOOLS.len(), "duplicate tool names");
        for tool in TOOLS {
            let schema = (tool.input_schema)().unwrap();
            assert_eq!(schema.get("type"), Some(&json!("object")), "{}", tool.name);
            let described = tool.describe();
            assert!(
                described
                    .description
                    .as_deref()
                    .unwrap_or_default()
                    .contains(tool.permission.as_str()),
                "{} names its permission",
                tool.name
            );
        }
    }

    #[test]
    fn a_missing_permission_names_the_permission_and_the_role() {
        let result = ToolError::MissingPermission {
            permission: Permission::ApprovalsDecide,
            role: crate::auth::Role::Viewer,
        }
        .into_result();
        assert_eq!(result.is_error, Some(true));
        let error = &result.structured_content.unwrap()["error"];
        assert_eq!(error["code"], "forbidden");
        assert_eq!(error["permission"], "approvals.decide");
        assert_eq!(error["role"], "viewer");
    }
}
