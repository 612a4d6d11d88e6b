//! Lenient wire models of the ADO objects tollgate lists.
//!
//! Every field is optional and unknown fields are ignored: real organisations send fields
//! and nulls the specs do not promise (see ado-fixtures/SPEC-VS-WIRE-NOTES.md), and a strict
//! model that fails on one object would fail a whole sync. The object's raw JSON is kept
//! byte-for-byte next to what we extract; these models only pull out ids, names and revisions.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use tollgate_domain::{InventoryItem, ResourceKind};

use crate::error::AdoError;

/// An id that ADO sends as a number in one API and a string in another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdoId(pub String);

impl<'de> Deserialize<'de> for AdoId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_json::Number),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => AdoId(text),
            Raw::Number(number) => AdoId(number.to_string()),
        })
    }
}

/// A reference to another object (`{"id": …, "name": …}`), as nested in most payloads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Reference {
    pub id: Option<AdoId>,
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct IdentityRef {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub unique_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TeamProject {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub state: Option<String>,
    pub visibility: Option<String>,
    pub revision: Option<AdoId>,
    pub last_update_time: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentPool {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub is_hosted: Option<bool>,
    pub pool_type: Option<String>,
    pub auto_provision: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuditLogEntry {
    pub id: Option<AdoId>,
    pub action_id: Option<String>,
    pub timestamp: Option<String>,
    pub project_id: Option<String>,
    pub scope_id: Option<String>,
    pub area: Option<String>,
    pub category: Option<String>,
    pub details: Option<String>,
    #[serde(rename = "actorUPN")]
    pub actor_upn: Option<String>,
    pub data: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Team {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub project_id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GitRepository {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub project: Option<Reference>,
    pub default_branch: Option<String>,
    pub is_disabled: Option<bool>,
    pub is_fork: Option<bool>,
    pub remote_url: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GitRef {
    pub name: Option<String>,
    pub object_id: Option<String>,
    pub creator: Option<IdentityRef>,
    pub is_locked: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyConfiguration {
    pub id: Option<AdoId>,
    pub revision: Option<AdoId>,
    pub is_enabled: Option<bool>,
    pub is_blocking: Option<bool>,
    pub is_deleted: Option<bool>,
    #[serde(rename = "type")]
    pub policy_type: Option<PolicyTypeRef>,
    pub settings: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyTypeRef {
    pub id: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Reviewer {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub vote: Option<i64>,
    pub is_required: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PullRequest {
    pub pull_request_id: Option<AdoId>,
    pub status: Option<String>,
    pub title: Option<String>,
    pub created_by: Option<IdentityRef>,
    pub creation_date: Option<String>,
    pub closed_date: Option<String>,
    pub source_ref_name: Option<String>,
    pub target_ref_name: Option<String>,
    pub reviewers: Option<Vec<Reviewer>>,
    pub repository: Option<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BuildDefinition {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub revision: Option<AdoId>,
    pub path: Option<String>,
    pub process: Option<serde_json::Value>,
    pub queue_status: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Build {
    pub id: Option<AdoId>,
    pub build_number: Option<String>,
    pub status: Option<String>,
    pub result: Option<String>,
    pub definition: Option<Reference>,
    pub queue_time: Option<String>,
    pub finish_time: Option<String>,
    pub source_branch: Option<String>,
    pub source_version: Option<String>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Pipeline {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub revision: Option<AdoId>,
    pub folder: Option<String>,
    pub configuration: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Run {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub state: Option<String>,
    pub result: Option<String>,
    pub created_date: Option<String>,
    pub finished_date: Option<String>,
    pub pipeline: Option<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Environment {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub last_modified_on: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvironmentDeploymentRecord {
    pub id: Option<AdoId>,
    pub environment_id: Option<AdoId>,
    pub stage_name: Option<String>,
    pub job_name: Option<String>,
    pub result: Option<String>,
    pub queue_time: Option<String>,
    pub finish_time: Option<String>,
    pub definition: Option<Reference>,
    pub owner: Option<Reference>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckConfiguration {
    pub id: Option<AdoId>,
    pub version: Option<AdoId>,
    #[serde(rename = "type")]
    pub check_type: Option<Reference>,
    pub resource: Option<CheckResource>,
    pub settings: Option<serde_json::Value>,
    pub timeout: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckResource {
    #[serde(rename = "type")]
    pub resource_type: Option<String>,
    pub id: Option<AdoId>,
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceEndpoint {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub endpoint_type: Option<String>,
    pub url: Option<String>,
    pub authorization: Option<EndpointAuthorization>,
    pub is_shared: Option<bool>,
    pub is_ready: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EndpointAuthorization {
    pub scheme: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VariableGroup {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub group_type: Option<String>,
    pub variables: Option<BTreeMap<String, VariableValue>>,
    pub modified_on: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VariableValue {
    pub value: Option<String>,
    pub is_secret: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentQueue {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub pool: Option<AgentPool>,
    pub project_id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SecureFile {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub modified_on: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkItem {
    pub id: Option<AdoId>,
    pub rev: Option<AdoId>,
    pub fields: Option<BTreeMap<String, serde_json::Value>>,
    pub relations: Option<Vec<WorkItemRelation>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkItemRelation {
    pub rel: Option<String>,
    pub url: Option<String>,
    pub attributes: Option<serde_json::Value>,
}

/// A classic release definition: a list summary or the full definition read by id. Stages
/// (`environments`), approvals, gates, artifacts and variables stay in the raw JSON.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReleaseDefinition {
    pub id: Option<AdoId>,
    pub name: Option<String>,
    pub revision: Option<AdoId>,
    pub path: Option<String>,
    pub is_deleted: Option<bool>,
    pub created_on: Option<String>,
    pub modified_on: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Alert {
    pub alert_id: Option<AdoId>,
    pub alert_type: Option<String>,
    pub severity: Option<String>,
    pub state: Option<String>,
    pub title: Option<String>,
    pub first_seen_date: Option<String>,
    pub last_seen_date: Option<String>,
    pub fixed_date: Option<String>,
}

/// `{"count": n, "value": [...]}`: how ADO wraps lists, even where the spec says "array".
#[derive(Debug, Deserialize)]
pub struct ListEnvelope<'a> {
    #[serde(borrow, default)]
    pub value: Vec<&'a RawValue>,
}

/// The audit log's page: entries plus a body continuation token.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuditLogPage<'a> {
    #[serde(borrow)]
    pub decorated_audit_log_entries: Vec<&'a RawValue>,
    pub continuation_token: Option<String>,
    pub has_more: Option<bool>,
}

/// A WIQL query's result: work item ids only.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WiqlResult {
    pub work_items: Vec<WorkItemReference>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WorkItemReference {
    pub id: u64,
}

/// The fields an inventory row needs from one object.
struct Extracted {
    ado_id: Option<AdoId>,
    name: Option<String>,
    revision: Option<AdoId>,
}

fn parse<'a, T: Deserialize<'a>>(kind: ResourceKind, raw: &'a RawValue) -> Result<T, AdoError> {
    serde_json::from_str(raw.get()).map_err(|error| AdoError::Decode {
        kind,
        detail: error.to_string(),
    })
}

fn extracted(ado_id: Option<AdoId>, name: Option<String>, revision: Option<AdoId>) -> Extracted {
    Extracted {
        ado_id,
        name,
        revision,
    }
}

/// Turn one object of a list into an inventory item, keeping its raw JSON.
pub fn extract(kind: ResourceKind, scope: &str, raw: &RawValue) -> Result<InventoryItem, AdoError> {
    use ResourceKind as K;
    let fields = match kind {
        K::Projects => {
            parse::<TeamProject>(kind, raw).map(|o| extracted(o.id, o.name, o.revision))?
        }
        K::AgentPools => parse::<AgentPool>(kind, raw).map(|o| extracted(o.id, o.name, None))?,
        K::AuditLog => {
            parse::<AuditLogEntry>(kind, raw).map(|o| extracted(o.id, o.action_id, None))?
        }
        K::Teams => parse::<Team>(kind, raw).map(|o| extracted(o.id, o.name, None))?,
        K::Repositories => {
            parse::<GitRepository>(kind, raw).map(|o| extracted(o.id, o.name, None))?
        }
        K::Refs => parse::<GitRef>(kind, raw)
            .map(|o| extracted(o.name.clone().map(AdoId), o.name, o.object_id.map(AdoId)))?,
        K::PolicyConfigurations => parse::<PolicyConfiguration>(kind, raw)
            .map(|o| extracted(o.id, o.policy_type.and_then(|t| t.display_name), o.revision))?,
        K::PullRequests => {
            parse::<PullRequest>(kind, raw).map(|o| extracted(o.pull_request_id, o.title, None))?
        }
        K::BuildDefinitions => {
            parse::<BuildDefinition>(kind, raw).map(|o| extracted(o.id, o.name, o.revision))?
        }
        K::Builds => parse::<Build>(kind, raw).map(|o| extracted(o.id, o.build_number, None))?,
        K::Pipelines => {
            parse::<Pipeline>(kind, raw).map(|o| extracted(o.id, o.name, o.revision))?
        }
        K::PipelineRuns => parse::<Run>(kind, raw).map(|o| extracted(o.id, o.name, None))?,
        K::Environments => {
            parse::<Environment>(kind, raw).map(|o| extracted(o.id, o.name, None))?
        }
        K::EnvironmentDeployments => parse::<EnvironmentDeploymentRecord>(kind, raw)
            .map(|o| extracted(o.id, o.stage_name, None))?,
        K::CheckConfigurations => parse::<CheckConfiguration>(kind, raw)
            .map(|o| extracted(o.id, o.check_type.and_then(|t| t.name), o.version))?,
        K::ServiceEndpoints => {
            parse::<ServiceEndpoint>(kind, raw).map(|o| extracted(o.id, o.name, None))?
        }
        K::VariableGroups => {
            parse::<VariableGroup>(kind, raw).map(|o| extracted(o.id, o.name, None))?
        }
        K::AgentQueues => parse::<AgentQueue>(kind, raw).map(|o| extracted(o.id, o.name, None))?,
        K::SecureFiles => parse::<SecureFile>(kind, raw).map(|o| extracted(o.id, o.name, None))?,
        K::WorkItems => parse::<WorkItem>(kind, raw).map(|o| {
            let title = o
                .fields
                .as_ref()
                .and_then(|f| f.get("System.Title"))
                .and_then(|t| t.as_str())
                .map(str::to_owned);
            extracted(o.id, title, o.rev)
        })?,
        K::ReleaseDefinitions => {
            parse::<ReleaseDefinition>(kind, raw).map(|o| extracted(o.id, o.name, o.revision))?
        }
        K::Alerts => parse::<Alert>(kind, raw).map(|o| extracted(o.alert_id, o.title, None))?,
    };
    let ado_id = fields
        .ado_id
        .map(|id| id.0)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| AdoError::Decode {
            kind,
            detail: "object has no id".to_owned(),
        })?;
    Ok(InventoryItem {
        kind,
        key: InventoryItem::key_for(scope, &ado_id),
        scope: scope.to_owned(),
        project: String::new(),
        ado_id,
        name: fields.name,
        revision: fields.revision.map(|r| r.0),
        raw: raw.get().to_owned(),
    })
}

/// Parse a `{"count", "value"}` list body into inventory items.
pub fn parse_list(
    kind: ResourceKind,
    scope: &str,
    body: &str,
) -> Result<Vec<InventoryItem>, AdoError> {
    let envelope: ListEnvelope<'_> =
        serde_json::from_str(body).map_err(|error| AdoError::Decode {
            kind,
            detail: error.to_string(),
        })?;
    envelope
        .value
        .into_iter()
        .map(|raw| extract(kind, scope, raw))
        .collect()
}

/// Parse an audit-log page, accepting both the flat body and the `{"value": {…}}` wrapper that
/// Microsoft's published example uses.
pub fn parse_audit_page(body: &str) -> Result<(Vec<InventoryItem>, Option<String>), AdoError> {
    let kind = ResourceKind::AuditLog;
    let decode = |error: serde_json::Error| AdoError::Decode {
        kind,
        detail: error.to_string(),
    };
    #[derive(Deserialize)]
    struct Wrapped<'a> {
        #[serde(borrow)]
        value: AuditLogPage<'a>,
    }
    let page = match serde_json::from_str::<Wrapped<'_>>(body) {
        Ok(wrapped) => wrapped.value,
        Err(_) => serde_json::from_str::<AuditLogPage<'_>>(body).map_err(decode)?,
    };
    let items = page
        .decorated_audit_log_entries
        .into_iter()
        .map(|raw| extract(kind, "", raw))
        .collect::<Result<_, _>>()?;
    let next = match (page.has_more, page.continuation_token) {
        (Some(true), Some(token)) if !token.is_empty() => Some(token),
        _ => None,
    };
    Ok((items, next))
}
