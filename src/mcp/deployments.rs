//! `deploy`, `status` and `rollback`: the deployments of `POST /api/v1/deployments`,
//! `GET /api/v1/deployments/{id}` and `POST /api/v1/deployments/rollback` (and `tollgate
//! deploy|status|rollback`), through the same `DeploymentService`: the gate's dry run first
//! (a deny queues nothing), then an ADO pipeline run for the environment, recorded and audited
//! (`deployment.queued`) under the caller's identity.

use std::collections::BTreeMap;

use rmcp::model::JsonObject;
use rmcp::schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Permission;
use crate::services::deployments::{AdoFailure, DeployRequest, DeploymentError, RollbackRequest};
use crate::services::gate::RequestSource;

use super::tools::{Effect, ToolCall, ToolError, ToolFuture, ToolSpec, arguments, to_value};

pub const DEPLOY: ToolSpec = ToolSpec {
    name: "deploy",
    title: "Deploy to an environment",
    description: "Queue an Azure DevOps pipeline run that deploys to an environment, through \
tollgate's deployment gate: the gate judges first and a deny queues nothing (the answer names the \
rules); a deployment that needs approval is queued and waits at its stage until an approver \
decides. Name the pipeline by name or id; `version` is passed to the run as the template parameter \
`version`. Returns the deployment (its id for `status`), the run id and the gate's verdict.",
    permission: Permission::DeploymentsExecute,
    effect: Effect::Changes,
    input_schema: rmcp::handler::server::tool::schema_for_input::<DeployInput>,
    call: deploy,
};

pub const STATUS: ToolSpec = ToolSpec {
    name: "status",
    title: "Follow a deployment",
    description: "The state of a deployment queued through tollgate (by its id from `deploy` or \
`rollback`): the pipeline run's state and result as Azure DevOps reports it now, the gate's \
decisions about the run and whether it waits for an approval.",
    permission: Permission::InventoryRead,
    effect: Effect::ReadOnly,
    input_schema: rmcp::handler::server::tool::schema_for_input::<StatusInput>,
    call: status,
};

pub const ROLLBACK: ToolSpec = ToolSpec {
    name: "rollback",
    title: "Roll back an environment",
    description: "Re-deploy the last successful deployment's commit to an environment (not the \
current one): a new run of the same pipeline for that commit, through the gate like `deploy`. \
Fails, queuing nothing, when there is no earlier successful deployment to go back to.",
    permission: Permission::DeploymentsExecute,
    effect: Effect::Changes,
    input_schema: rmcp::handler::server::tool::schema_for_input::<RollbackInput>,
    call: rollback,
};

/// A deployment to queue.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct DeployInput {
    /// The environment to deploy to, e.g. staging or production.
    pub environment: String,
    /// The Azure DevOps project's name or id (may be left out when the pipeline's name is unique).
    #[serde(default)]
    pub project: Option<String>,
    /// The pipeline's name (case does not matter).
    #[serde(default)]
    pub pipeline: Option<String>,
    /// The pipeline's id, instead of its name.
    #[serde(default)]
    pub pipeline_id: Option<u64>,
    /// The branch to build, e.g. main; the pipeline's default branch when left out.
    #[serde(default)]
    pub branch: Option<String>,
    /// The release version, passed as the template parameter `version`.
    #[serde(default)]
    pub version: Option<String>,
    /// More template parameters for the run.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

/// A deployment to look at.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// The deployment's id, as `deploy` or `rollback` returned it (dp_…).
    pub id: String,
}

/// An environment to roll back.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    /// The environment to roll back, e.g. production.
    pub environment: String,
    /// The Azure DevOps project's name or id.
    #[serde(default)]
    pub project: Option<String>,
    /// The pipeline whose deployments to go back through; the one that deployed last when left out.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// The pipeline's id, instead of its name.
    #[serde(default)]
    pub pipeline_id: Option<u64>,
}

/// The service's refusal as the assistant should read it: what was wrong and what to do.
fn tool_error(error: DeploymentError) -> ToolError {
    match error {
        DeploymentError::Invalid(message) => ToolError::InvalidArguments(message),
        DeploymentError::NotFound(message) => ToolError::NotFound(message),
        error @ (DeploymentError::Denied(_)
        | DeploymentError::NothingToRollBack(_)
        | DeploymentError::NotConfigured(_)) => ToolError::Conflict(error.to_string()),
        DeploymentError::Ado {
            failure: AdoFailure::NotFound,
            ..
        } => ToolError::NotFound(error.to_string()),
        DeploymentError::Ado {
            failure: AdoFailure::Unavailable,
            ..
        } => ToolError::Conflict(format!(
            "{error}; the run may or may not have been queued — check the deployments (or Azure \
DevOps) before trying again"
        )),
        error @ DeploymentError::Ado { .. } => ToolError::Conflict(error.to_string()),
        DeploymentError::Other(error) => ToolError::Internal(error),
    }
}

fn deploy(call: ToolCall, raw: JsonObject) -> ToolFuture {
    Box::pin(async move {
        let input = arguments::<DeployInput>(raw)?;
        let request = DeployRequest {
            project: input.project,
            pipeline: input.pipeline,
            pipeline_id: input.pipeline_id,
            environment: input.environment,
            branch: input.branch,
            version: input.version,
            parameters: input.parameters,
        };
        let queued = call
            .tenant
            .deployments
            .deploy(&request, RequestSource::Mcp, &call.actor())
            .await
            .map_err(tool_error)?;
        let mut body = to_value(&queued)?;
        body["outcome"] = json!(queued.gate.outcome());
        Ok(body)
    })
}

fn status(call: ToolCall, raw: JsonObject) -> ToolFuture {
    Box::pin(async move {
        let input = arguments::<StatusInput>(raw)?;
        let status = call
            .tenant
            .deployments
            .status(input.id.trim())
            .await
            .map_err(tool_error)?;
        to_value(&status)
    })
}

fn rollback(call: ToolCall, raw: JsonObject) -> ToolFuture {
    Box::pin(async move {
        let input = arguments::<RollbackInput>(raw)?;
        let request = RollbackRequest {
            project: input.project,
            environment: input.environment,
            pipeline: input.pipeline,
            pipeline_id: input.pipeline_id,
        };
        let queued = call
            .tenant
            .deployments
            .rollback(&request, RequestSource::Mcp, &call.actor())
            .await
            .map_err(tool_error)?;
        let mut body = to_value(&queued)?;
        body["outcome"] = json!(queued.gate.outcome());
        Ok(body)
    })
}
