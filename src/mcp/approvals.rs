//! `approvals` and `approval_decide`: the deployment approvals the gate opened, and a vote on
//! one — the same rules as `/api/v1/approvals` (the approver must hold the approval's role,
//! the requester cannot approve their own run, each person decides once).

use rmcp::model::JsonObject;
use rmcp::schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tollgate_store::gate::{ApprovalRefusal, ApprovalState};

use crate::auth::Permission;
use crate::services::gate::{ApprovalError, RequestSource};
use crate::services::tenant::page_size;

use super::tools::{Effect, ToolCall, ToolError, ToolFuture, ToolSpec, arguments, to_value};

pub const LIST: ToolSpec = ToolSpec {
    name: "approvals",
    title: "List deployment approvals",
    description: "List the deployment approvals the gate opened, newest first: the run, environment, \
why approval is needed, the role an approver must hold, the quorum, the votes so far and when it \
expires. Filter by state (pending shows what waits for a decision).",
    // The same permission as GET /api/v1/approvals: whoever may ask the gate may see what it
    // is waiting for.
    permission: Permission::DeploymentsValidate,
    effect: Effect::ReadOnly,
    input_schema: rmcp::handler::server::tool::schema_for_input::<ApprovalsInput>,
    call: list,
};

pub const DECIDE: ToolSpec = ToolSpec {
    name: "approval_decide",
    title: "Approve or reject a deployment",
    description: "Vote on a pending deployment approval: approve or reject, with a comment. The \
approver must hold the approval's approver role and must not be the run's requester; each person \
decides once. Enough approvals (the quorum) let the run proceed; one rejection fails it. Returns \
the approval after the vote.",
    permission: Permission::ApprovalsDecide,
    effect: Effect::Changes,
    input_schema: rmcp::handler::server::tool::schema_for_input::<DecideInput>,
    call: decide,
};

/// The longest comment a vote keeps (as over the API).
const MAX_COMMENT_CHARS: usize = 2_000;

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
}

impl From<State> for ApprovalState {
    fn from(state: State) -> Self {
        match state {
            State::Pending => ApprovalState::Pending,
            State::Approved => ApprovalState::Approved,
            State::Rejected => ApprovalState::Rejected,
            State::Expired => ApprovalState::Expired,
            State::Cancelled => ApprovalState::Cancelled,
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct ApprovalsInput {
    /// Only approvals in this state [default: every state].
    #[serde(default)]
    pub state: Option<State>,
    /// Approvals to return, 1 to 1000 [default: 100].
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    Approve,
    Reject,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct DecideInput {
    /// The approval's id (from the approvals tool, or the gate's answer).
    pub id: String,
    pub decision: Vote,
    /// Why, for the audit log and the notifications (at most 2,000 characters).
    #[serde(default)]
    pub comment: String,
}

fn list(call: ToolCall, raw: JsonObject) -> ToolFuture {
    Box::pin(async move {
        let input = arguments::<ApprovalsInput>(raw)?;
        let items = call
            .tenant
            .gate
            .approvals(input.state.map(ApprovalState::from), page_size(input.limit))
            .await?;
        Ok(json!({ "items": to_value(&items)? }))
    })
}

fn decide(call: ToolCall, raw: JsonObject) -> ToolFuture {
    Box::pin(async move {
        let input = arguments::<DecideInput>(raw)?;
        let id = input.id.trim();
        if id.is_empty() {
            return Err(ToolError::InvalidArguments(
                "id names the approval to decide".into(),
            ));
        }
        if input.comment.chars().count() > MAX_COMMENT_CHARS {
            return Err(ToolError::InvalidArguments(format!(
                "a comment has at most {MAX_COMMENT_CHARS} characters"
            )));
        }
        let approve = matches!(input.decision, Vote::Approve);
        let approval = call
            .tenant
            .gate
            .decide_approval_from(
                id,
                &call.principal,
                approve,
                &input.comment,
                RequestSource::Mcp,
            )
            .await
            .map_err(approval_error)?;
        to_value(&approval)
    })
}

/// The same distinctions the API draws with 403, 404 and 409.
fn approval_error(error: ApprovalError) -> ToolError {
    match error {
        ApprovalError::NotFound(id) => ToolError::NotFound(format!("no approval {id:?}")),
        ApprovalError::RoleTooLow { .. }
        | ApprovalError::Refused(ApprovalRefusal::SelfApproval) => {
            ToolError::Forbidden(error.to_string())
        }
        ApprovalError::Refused(refusal) => ToolError::Conflict(refusal.to_string()),
        ApprovalError::Other(error) => ToolError::Internal(error),
    }
}
