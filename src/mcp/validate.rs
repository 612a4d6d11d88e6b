//! `validate`: the verdict the deployment gate gives a run entering an environment now — a
//! dry run, like `POST /api/v1/deployments/validate` and `tollgate gate check` (the decision
//! is recorded and audited with source `mcp`; no approval is opened).

use rmcp::model::JsonObject;
use rmcp::schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Permission;
use crate::services::gate::{DeploymentRequest, RequestSource};

use super::tools::{Effect, ToolCall, ToolError, ToolFuture, ToolSpec, arguments, to_value};

pub const TOOL: ToolSpec = ToolSpec {
    name: "validate",
    title: "Validate a deployment",
    description: "Ask tollgate's deployment gate whether a pipeline run may enter an environment now: \
the outcome (allowed, denied or pending approval), the verdict and every gate rule's finding with the \
action configured for the environment. A dry run: nothing is deployed and no approval is opened. The \
run's requester, branch, commit and repository come from the synced inventory unless given.",
    permission: Permission::DeploymentsValidate,
    effect: Effect::Records,
    input_schema: rmcp::handler::server::tool::schema_for_input::<ValidateInput>,
    call,
};

/// A run entering an environment.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct ValidateInput {
    /// The Azure DevOps project's name or id.
    pub project: String,
    /// The environment the run deploys to, e.g. production.
    pub environment: String,
    /// The pipeline stage, when it matters to the rules.
    #[serde(default)]
    pub stage: Option<String>,
    /// The run (build) id.
    #[serde(default)]
    pub run_id: Option<u64>,
    /// The pipeline (definition) id.
    #[serde(default)]
    pub pipeline_id: Option<u64>,
    /// The pipeline's name.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// Who requested the run (uniqueName or e-mail), when the inventory does not know.
    #[serde(default)]
    pub requested_for: Option<String>,
    /// The branch being deployed, e.g. refs/heads/main.
    #[serde(default)]
    pub source_branch: Option<String>,
    /// The commit being deployed.
    #[serde(default)]
    pub source_version: Option<String>,
    /// The repository's name or id.
    #[serde(default)]
    pub repository: Option<String>,
    /// Work items linked to the change (besides those of its pull requests).
    #[serde(default)]
    pub work_items: Vec<u64>,
}

impl ValidateInput {
    fn into_request(self) -> Result<DeploymentRequest, ToolError> {
        let project = self.project.trim().to_owned();
        let environment = self.environment.trim().to_owned();
        if project.is_empty() || environment.is_empty() {
            return Err(ToolError::InvalidArguments(
                "a deployment names its project and environment (neither may be empty)".into(),
            ));
        }
        Ok(DeploymentRequest {
            project,
            environment,
            stage: self.stage,
            run_id: self.run_id,
            pipeline_id: self.pipeline_id,
            pipeline: self.pipeline,
            requested_for: self.requested_for,
            source_branch: self.source_branch,
            source_version: self.source_version,
            repository: self.repository,
            work_items: self.work_items,
        })
    }
}

fn call(call: ToolCall, raw: JsonObject) -> ToolFuture {
    Box::pin(async move {
        let request = arguments::<ValidateInput>(raw)?.into_request()?;
        let answer = call
            .tenant
            .gate
            .validate(request, RequestSource::Mcp, &call.actor())
            .await?;
        let mut body = to_value(&answer)?;
        body["outcome"] = json!(answer.outcome());
        Ok(body)
    })
}
