//! `findings`: the tenant's compliance findings, filtered and paged like `GET /api/v1/findings`.

use rmcp::model::JsonObject;
use rmcp::schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use tollgate_domain::ResourceKind;
use tollgate_store::FindingStatus;

use crate::auth::Permission;
use crate::services::tenant::{FindingFilter, page_size};

use super::tools::{Effect, ToolCall, ToolError, ToolFuture, ToolSpec, arguments, to_value};

pub const TOOL: ToolSpec = ToolSpec {
    name: "findings",
    title: "List compliance findings",
    description: "List the organisation's compliance findings (a control failed on a resource), \
ordered by control and resource: severity, status, message and the evidence that decided it. \
Filters combine; by default only open and reopened findings. Pass next_cursor back as cursor for \
the next page.",
    permission: Permission::FindingsRead,
    effect: Effect::ReadOnly,
    input_schema: rmcp::handler::server::tool::schema_for_input::<FindingsInput>,
    call,
};

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Reopened,
    Waived,
    Fixed,
}

impl From<Status> for FindingStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Open => FindingStatus::Open,
            Status::Reopened => FindingStatus::Reopened,
            Status::Waived => FindingStatus::Waived,
            Status::Fixed => FindingStatus::Fixed,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
pub struct FindingsInput {
    /// Only findings in these states [default: open and reopened].
    #[serde(default)]
    pub status: Vec<Status>,
    /// Only this control, e.g. BP-02.
    #[serde(default)]
    pub control: Option<String>,
    /// Only this severity.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Only this project (its id).
    #[serde(default)]
    pub project: Option<String>,
    /// Only this resource kind, e.g. repositories.
    #[serde(default)]
    pub kind: Option<String>,
    /// The next_cursor of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Findings per page, 1 to 1000 [default: 100].
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

fn resource_kind(raw: &str) -> Result<ResourceKind, ToolError> {
    raw.parse().map_err(|_| {
        let known: Vec<&str> = ResourceKind::ALL.iter().map(|k| k.as_str()).collect();
        ToolError::InvalidArguments(format!(
            "no resource kind {raw:?}; kinds: {}",
            known.join(", ")
        ))
    })
}

fn call(call: ToolCall, raw: JsonObject) -> ToolFuture {
    Box::pin(async move {
        let input = arguments::<FindingsInput>(raw)?;
        let statuses = if input.status.is_empty() {
            vec![FindingStatus::Open, FindingStatus::Reopened]
        } else {
            input
                .status
                .iter()
                .copied()
                .map(FindingStatus::from)
                .collect()
        };
        let filter = FindingFilter {
            statuses,
            control: input.control,
            severity: input.severity.map(|s| s.as_str().to_owned()),
            project: input.project,
            resource_kind: input.kind.as_deref().map(resource_kind).transpose()?,
        };
        let page = call
            .tenant
            .findings(&filter, input.cursor.as_deref(), page_size(input.limit))
            .await?;
        Ok(json!({
            "items": to_value(&page.items)?,
            "next_cursor": page.next_cursor,
        }))
    })
}
