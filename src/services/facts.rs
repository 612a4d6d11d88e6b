//! The `related` facts each resource is evaluated with (docs/POLICY-INPUT.md): the few
//! cross-object lookups controls need, computed once per scan from the stored inventory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::Result;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::{InventoryItem, ResourceKind, TenantId};
use tollgate_store::{InventoryChange, InventoryStore};

use crate::services::settings::Names;

const PAGE: u32 = 2_000;

/// Work item facts: its parent, type and children.
#[derive(Default)]
struct WorkItemNode {
    /// False for a parent that was looked for and is not in the inventory.
    exists: bool,
    parent: Option<u64>,
    kind: String,
    children: u32,
    /// `System.State`, and the project the item belongs to.
    state: String,
    project: String,
    /// How many children are in each state.
    child_states: BTreeMap<String, u32>,
}

#[derive(Default)]
pub struct Facts {
    /// Policy configurations per project.
    policies: HashMap<String, Vec<Value>>,
    /// Branch names per repository id.
    refs: HashMap<String, Vec<String>>,
    /// Check configurations per (ADO resource type, resource id).
    checks: HashMap<(String, String), Vec<Value>>,
    /// Build definitions by inventory key (`{project}/{id}`).
    definitions: HashMap<String, Value>,
    /// Runs in the last 30 days per pipeline id.
    recent_runs: HashMap<String, u64>,
    work_items: HashMap<u64, WorkItemNode>,
    /// Per project: repositories, pipelines, environments.
    project_counts: HashMap<String, [u64; 3]>,
    /// Environment names by id (deployment records name only the id).
    environment_names: HashMap<String, String>,
    /// Source branch per build id: a deployment record's owner is the run that deployed.
    build_branches: HashMap<String, String>,
    names: Names,
    /// The gate's decisions, when the scan watches for deployments that bypassed it (GATE-10).
    gate: Option<crate::services::bypass::GateFacts>,
}

/// Which part of the inventory facts are read from.
#[derive(Clone, Copy, Debug)]
pub enum FactScope<'a> {
    /// Everything (a full evaluation).
    All,
    /// Re-evaluating what changed: only these projects, and only the fact sources of the
    /// kinds being judged. Project names are still read whole, and work-item parents are
    /// followed into other projects.
    Projects {
        projects: &'a BTreeSet<String>,
        judging: &'a BTreeSet<ResourceKind>,
    },
}

impl FactScope<'_> {
    fn reads(&self, source: ResourceKind) -> bool {
        match self {
            FactScope::All => true,
            // Repositories name the places scoped settings refer to.
            FactScope::Projects { judging, .. } => {
                source == ResourceKind::Repositories
                    || judging
                        .iter()
                        .any(|kind| fact_sources(*kind).contains(&source))
            }
        }
    }
}

/// The kinds whose objects feed the `related` facts of a kind. [`dependents`] is its inverse.
pub fn fact_sources(kind: ResourceKind) -> &'static [ResourceKind] {
    use ResourceKind as K;
    match kind {
        K::Repositories => &[K::PolicyConfigurations, K::Refs],
        K::Environments
        | K::ServiceEndpoints
        | K::VariableGroups
        | K::AgentQueues
        | K::SecureFiles => &[K::CheckConfigurations],
        K::Pipelines => &[K::BuildDefinitions],
        K::BuildDefinitions => &[K::PipelineRuns],
        K::WorkItems => &[K::WorkItems],
        K::EnvironmentDeployments => &[K::Environments, K::Builds],
        K::Projects => &[K::Repositories, K::Pipelines, K::Environments],
        _ => &[],
    }
}

/// Visit every stored item of a kind, a page at a time.
pub async fn for_each_item(
    store: &dyn InventoryStore,
    tenant: &TenantId,
    kind: ResourceKind,
    mut visit: impl FnMut(InventoryItem),
) -> Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = store.items(tenant, kind, after.as_deref(), PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.key.clone());
        page.into_iter().for_each(&mut visit);
    }
}

/// Visit the items of a kind within a fact scope.
async fn for_each_in(
    store: &dyn InventoryStore,
    tenant: &TenantId,
    kind: ResourceKind,
    scope: FactScope<'_>,
    mut visit: impl FnMut(InventoryItem),
) -> Result<()> {
    if !scope.reads(kind) {
        return Ok(());
    }
    let FactScope::Projects { projects, .. } = scope else {
        return for_each_item(store, tenant, kind, visit).await;
    };
    for project in projects {
        let mut after: Option<String> = None;
        loop {
            let page = store
                .project_items(tenant, kind, project, after.as_deref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            page.into_iter().for_each(&mut visit);
        }
    }
    Ok(())
}

/// A stored object's JSON text, parsed on first use: the facts and placement of most kinds
/// never read it, and the policy engine parses the text itself.
pub struct StoredJson<'a> {
    text: &'a str,
    parsed: std::cell::OnceCell<Value>,
}

impl<'a> StoredJson<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            parsed: std::cell::OnceCell::new(),
        }
    }

    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The document; `null` when the text is not JSON.
    pub fn value(&self) -> &Value {
        self.parsed
            .get_or_init(|| serde_json::from_str(self.text).unwrap_or(Value::Null))
    }
}

fn parse(item: &InventoryItem) -> Value {
    serde_json::from_str(&item.raw).unwrap_or(Value::Null)
}

fn string_id(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// How far up a work-item hierarchy is walked.
const MAX_ANCESTORS: usize = 64;

fn work_item_node(item: &InventoryItem, raw: &Value) -> WorkItemNode {
    let field = |name: &str| {
        raw.pointer(&format!("/fields/{name}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    WorkItemNode {
        exists: true,
        parent: work_item_parent(raw),
        kind: field("System.WorkItemType"),
        children: 0,
        state: field("System.State"),
        project: item.project.clone(),
        child_states: BTreeMap::new(),
    }
}

/// The fields [`work_item_node`] reads, deserialized without building the rest of the
/// document (100,000 work items are read for their facts before any is judged). A document
/// that does not fit these types (a field of another type, a duplicate key) fails here and is
/// read as a whole [`Value`] instead, so both ways give the same node. Objects are checked to
/// be objects first: serde would also read a struct from an array.
#[derive(serde::Deserialize)]
struct WorkItemDoc<'a> {
    #[serde(borrow)]
    fields: Option<&'a RawValue>,
    #[serde(borrow)]
    relations: Option<Vec<&'a RawValue>>,
}

#[derive(serde::Deserialize)]
struct WorkItemFields {
    #[serde(rename = "System.Parent")]
    parent: Option<u64>,
    #[serde(rename = "System.WorkItemType")]
    kind: Option<String>,
    #[serde(rename = "System.State")]
    state: Option<String>,
}

#[derive(serde::Deserialize)]
struct RelationDoc {
    rel: Option<String>,
    url: Option<String>,
}

/// Deserialize a JSON object into `T`; `Ok(None)` for any other JSON value.
fn object<'a, T: serde::Deserialize<'a>>(raw: &'a RawValue) -> serde_json::Result<Option<T>> {
    if raw.get().starts_with('{') {
        serde_json::from_str(raw.get()).map(Some)
    } else {
        Ok(None)
    }
}

fn work_item_node_from(item: &InventoryItem) -> WorkItemNode {
    let typed = || -> serde_json::Result<(Option<u64>, String, String)> {
        if !item.raw.trim_start().starts_with('{') {
            return Err(serde::de::Error::custom("not an object"));
        }
        let doc: WorkItemDoc<'_> = serde_json::from_str(&item.raw)?;
        let fields: Option<WorkItemFields> = match doc.fields {
            Some(raw) => object(raw)?,
            None => None,
        };
        let mut parent = fields.as_ref().and_then(|f| f.parent);
        if parent.is_none() {
            for raw in doc.relations.into_iter().flatten() {
                let Some(relation) = object::<RelationDoc>(raw)? else {
                    continue;
                };
                if relation.rel.as_deref() == Some(HIERARCHY_REVERSE)
                    && let Some(id) = relation
                        .url
                        .as_deref()
                        .and_then(|url| url.rsplit('/').next()?.parse().ok())
                {
                    parent = Some(id);
                    break;
                }
            }
        }
        let (kind, state) = fields
            .map(|f| (f.kind.unwrap_or_default(), f.state.unwrap_or_default()))
            .unwrap_or_default();
        Ok((parent, kind, state))
    };
    let Ok((parent, kind, state)) = typed() else {
        return work_item_node(item, &parse(item));
    };
    WorkItemNode {
        exists: true,
        parent,
        kind,
        children: 0,
        state,
        project: item.project.clone(),
        child_states: BTreeMap::new(),
    }
}

const HIERARCHY_REVERSE: &str = "System.LinkTypes.Hierarchy-Reverse";

/// The parent id of a work item: `System.Parent`, else the hierarchy-reverse relation.
fn work_item_parent(raw: &Value) -> Option<u64> {
    if let Some(parent) = raw.pointer("/fields/System.Parent").and_then(Value::as_u64) {
        return Some(parent);
    }
    raw["relations"].as_array()?.iter().find_map(|relation| {
        (relation["rel"] == HIERARCHY_REVERSE)
            .then(|| relation["url"].as_str()?.rsplit('/').next()?.parse().ok())
            .flatten()
    })
}

impl Facts {
    pub async fn load(
        store: &dyn InventoryStore,
        tenant: &TenantId,
        now: OffsetDateTime,
        scope: FactScope<'_>,
    ) -> Result<Self> {
        let mut facts = Facts::default();
        for_each_in(
            store,
            tenant,
            ResourceKind::PolicyConfigurations,
            scope,
            |item| {
                facts
                    .policies
                    .entry(item.project.clone())
                    .or_default()
                    .push(parse(&item));
            },
        )
        .await?;
        for_each_in(store, tenant, ResourceKind::Refs, scope, |item| {
            facts
                .refs
                .entry(item.scope.clone())
                .or_default()
                .push(item.ado_id);
        })
        .await?;
        for_each_in(
            store,
            tenant,
            ResourceKind::CheckConfigurations,
            scope,
            |item| {
                let raw = parse(&item);
                let resource_type = raw["resource"]["type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_lowercase();
                let resource_id = string_id(&raw["resource"]["id"]);
                facts
                    .checks
                    .entry((resource_type, resource_id))
                    .or_default()
                    .push(raw);
            },
        )
        .await?;
        for_each_in(
            store,
            tenant,
            ResourceKind::BuildDefinitions,
            scope,
            |item| {
                facts.definitions.insert(item.key.clone(), parse(&item));
            },
        )
        .await?;
        let month_ago = now - time::Duration::days(30);
        for_each_in(store, tenant, ResourceKind::PipelineRuns, scope, |item| {
            let raw = parse(&item);
            let created = raw["createdDate"]
                .as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
            if created.is_some_and(|created| created >= month_ago) {
                *facts.recent_runs.entry(item.scope.clone()).or_default() += 1;
            }
        })
        .await?;
        for_each_in(store, tenant, ResourceKind::WorkItems, scope, |item| {
            if let Ok(id) = item.ado_id.parse::<u64>() {
                facts.work_items.insert(id, work_item_node_from(&item));
            }
        })
        .await?;
        let parents: Vec<(u64, String)> = facts
            .work_items
            .values()
            .filter_map(|node| node.parent.map(|parent| (parent, node.state.clone())))
            .collect();
        for (parent, child_state) in parents {
            if let Some(node) = facts.work_items.get_mut(&parent) {
                node.children += 1;
                *node.child_states.entry(child_state).or_default() += 1;
            }
        }
        if let FactScope::Projects { .. } = scope {
            facts.follow_foreign_parents(store, tenant).await?;
        }
        for_each_item(store, tenant, ResourceKind::Projects, |item| {
            facts
                .names
                .projects
                .insert(item.ado_id.clone(), item.name.clone().unwrap_or_default());
        })
        .await?;
        for_each_in(store, tenant, ResourceKind::Repositories, scope, |item| {
            facts.names.repositories.insert(
                item.ado_id.clone(),
                (item.project.clone(), item.name.clone().unwrap_or_default()),
            );
        })
        .await?;
        for (kind, slot) in [
            (ResourceKind::Repositories, 0),
            (ResourceKind::Pipelines, 1),
            (ResourceKind::Environments, 2),
        ] {
            for_each_in(store, tenant, kind, scope, |item| {
                facts.project_counts.entry(item.project).or_default()[slot] += 1;
            })
            .await?;
        }
        for_each_in(store, tenant, ResourceKind::Environments, scope, |item| {
            if let Some(name) = item.name {
                facts.environment_names.insert(item.ado_id, name);
            }
        })
        .await?;
        for_each_in(store, tenant, ResourceKind::Builds, scope, |item| {
            if let Some(branch) = parse(&item)["sourceBranch"].as_str() {
                facts.build_branches.insert(item.ado_id, branch.to_owned());
            }
        })
        .await?;
        Ok(facts)
    }

    /// Load the ancestors that live outside the loaded projects, so that a parent's type
    /// and the hierarchy walk see them. (Their own children are not counted: they are
    /// never evaluated from here.)
    async fn follow_foreign_parents(
        &mut self,
        store: &dyn InventoryStore,
        tenant: &TenantId,
    ) -> Result<()> {
        for _ in 0..MAX_ANCESTORS {
            let missing: BTreeSet<String> = self
                .work_items
                .values()
                .filter_map(|node| node.parent)
                .filter(|parent| !self.work_items.contains_key(parent))
                .map(|parent| parent.to_string())
                .collect();
            if missing.is_empty() {
                break;
            }
            let missing: Vec<String> = missing.into_iter().collect();
            let found = store
                .items_by_ado_ids(tenant, ResourceKind::WorkItems, &missing)
                .await?;
            for id in &missing {
                // Absent parents are remembered as such, so they are not asked for again.
                if let Ok(id) = id.parse::<u64>() {
                    self.work_items.entry(id).or_insert_with(|| WorkItemNode {
                        exists: false,
                        ..WorkItemNode::default()
                    });
                }
            }
            for item in found {
                if let Ok(id) = item.ado_id.parse::<u64>() {
                    self.work_items.insert(id, work_item_node_from(&item));
                }
            }
        }
        Ok(())
    }

    /// Judge deployment records against the gate's decisions (`related.gate`).
    pub fn with_gate(mut self, gate: Option<crate::services::bypass::GateFacts>) -> Self {
        self.gate = gate;
        self
    }

    /// Project and repository names, to place resources for scoped settings.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The `related` document for one resource.
    pub fn related(&self, item: &InventoryItem, raw: &StoredJson<'_>) -> Value {
        use ResourceKind as K;
        match item.kind {
            K::Repositories => {
                let default_branch = raw.value()["defaultBranch"].as_str().unwrap_or_default();
                let live: Vec<&Value> = self
                    .policies
                    .get(&item.project)
                    .into_iter()
                    .flatten()
                    .filter(|p| p["isDeleted"] != true && p["isEnabled"] != false)
                    .collect();
                let policies: Vec<&Value> = live
                    .iter()
                    .copied()
                    .filter(|p| policy_applies(p, &item.ado_id, default_branch))
                    .collect();
                // Policies on any branch of this repository (release/*, ...): controls match
                // the refs themselves against each scope entry.
                let branch_policies: Vec<&Value> = live
                    .into_iter()
                    .filter(|p| policy_names_repository(p, &item.ado_id))
                    .collect();
                json!({"policies": policies, "branch_policies": branch_policies,
                       "refs": self.refs.get(&item.ado_id).cloned().unwrap_or_default()})
            }
            K::Environments => json!({"checks": self.checks_on("environment", &item.ado_id)}),
            K::ServiceEndpoints => json!({"checks": self.checks_on("endpoint", &item.ado_id)}),
            K::VariableGroups => json!({"checks": self.checks_on("variablegroup", &item.ado_id)}),
            K::AgentQueues => json!({"checks": self.checks_on("queue", &item.ado_id)}),
            K::SecureFiles => json!({"checks": self.checks_on("securefile", &item.ado_id)}),
            K::Pipelines => {
                json!({"definition": self.definitions.get(&item.key).cloned().unwrap_or(Value::Null)})
            }
            K::BuildDefinitions => {
                json!({"pipeline_runs_30d": self.recent_runs.get(&item.ado_id).copied().unwrap_or(0)})
            }
            K::WorkItems => self.work_item_related(item),
            K::EnvironmentDeployments => {
                // For planType Build the record's owner is the run (build) that deployed.
                let owner = &raw.value()["owner"]["id"];
                let run = string_id(owner);
                let environment = self.environment_names.get(&item.scope);
                let mut related = json!({"environment": environment,
                       "source_branch": self.build_branches.get(&run)});
                if let Some(gate) = &self.gate {
                    let run_id = owner.as_u64().or_else(|| run.parse().ok());
                    related["gate"] = gate.related(environment.map(String::as_str), run_id);
                }
                related
            }
            K::Projects => {
                let [repositories, pipelines, environments] = self
                    .project_counts
                    .get(&item.ado_id)
                    .copied()
                    .unwrap_or_default();
                json!({"repositories": repositories, "pipelines": pipelines, "environments": environments})
            }
            _ => json!({}),
        }
    }

    fn checks_on(&self, resource_type: &str, id: &str) -> Vec<Value> {
        self.checks
            .get(&(resource_type.to_owned(), id.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    fn work_item_related(&self, item: &InventoryItem) -> Value {
        let Ok(id) = item.ado_id.parse::<u64>() else {
            return json!({});
        };
        let node = self.work_items.get(&id);
        let parent = node.and_then(|n| n.parent);
        let parent_node = parent
            .and_then(|p| self.work_items.get(&p))
            .filter(|p| p.exists);
        let parent_type = parent_node.map(|p| p.kind.clone());
        let parent_project = parent_node
            .map(|p| p.project.clone())
            .filter(|p| !p.is_empty());
        // Walk up the chain; a chain that comes back to this item is a cycle. A chain that
        // loops elsewhere (through an ancestor's cycle) stops at the first repeat.
        let mut ancestors = Vec::new();
        let mut seen = HashSet::from([id]);
        let mut cycle = false;
        let mut next = parent;
        while let Some(current) = next {
            ancestors.push(current);
            if current == id {
                cycle = true;
                break;
            }
            if !seen.insert(current) || ancestors.len() >= MAX_ANCESTORS {
                break;
            }
            next = self.work_items.get(&current).and_then(|n| n.parent);
        }
        json!({"parent": parent, "parent_type": parent_type, "parent_project": parent_project,
               "ancestors": ancestors, "cycle": cycle, "children": node.map(|n| n.children).unwrap_or(0),
               "child_states": node.map(|n| n.child_states.clone()).unwrap_or_default()})
    }
}

/// What must be judged again because an object changed, besides the object itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dependent {
    /// One resource, by inventory key.
    Key(ResourceKind, String),
    /// Every resource of a kind in a project.
    ProjectKind(ResourceKind, String),
}

/// The resources whose `related` facts (or placement) read a changed object. This is the
/// inverse of [`Facts::related`] and [`Facts::load`]: a fact added there is added here, and
/// `tests/scan.rs` checks that judging only what changed agrees with judging everything.
pub fn dependents(change: &InventoryChange) -> Vec<Dependent> {
    use Dependent::{Key, ProjectKind};
    use ResourceKind as K;
    let project = change.project.clone();
    match change.kind {
        // Branch policies apply to the repositories of their project.
        K::PolicyConfigurations => vec![ProjectKind(K::Repositories, project)],
        // Refs are listed under their repository (scope = repository id).
        K::Refs => vec![Key(
            K::Repositories,
            InventoryItem::key_for(&project, &change.scope),
        )],
        K::CheckConfigurations => [
            K::Environments,
            K::ServiceEndpoints,
            K::VariableGroups,
            K::AgentQueues,
            K::SecureFiles,
        ]
        .into_iter()
        .map(|kind| ProjectKind(kind, project.clone()))
        .collect(),
        // A pipeline and its build definition share the id.
        K::BuildDefinitions => vec![Key(K::Pipelines, change.key.clone())],
        // Runs are listed under their pipeline (scope = pipeline id).
        K::PipelineRuns => vec![Key(
            K::BuildDefinitions,
            InventoryItem::key_for(&project, &change.scope),
        )],
        // Parents, children and cycles: the hierarchy of the project.
        K::WorkItems => vec![ProjectKind(K::WorkItems, project)],
        K::Repositories => vec![Key(K::Projects, project)],
        K::Pipelines => vec![Key(K::Projects, project)],
        // Deployment records are judged with their environment's name and their run's branch.
        K::Environments => vec![
            Key(K::Projects, project.clone()),
            ProjectKind(K::EnvironmentDeployments, project),
        ],
        K::Builds => vec![ProjectKind(K::EnvironmentDeployments, project)],
        // A renamed project changes where its resources sit for scoped settings.
        K::Projects => ResourceKind::ALL
            .iter()
            .filter(|kind| **kind != K::Projects)
            .map(|kind| ProjectKind(*kind, change.key.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Does a branch policy have a scope entry for this repository (or for every repository of the
/// project), whatever the branch? A policy without scope applies everywhere.
fn policy_names_repository(policy: &Value, repository_id: &str) -> bool {
    let Some(scopes) = policy["settings"]["scope"].as_array() else {
        return true;
    };
    scopes
        .iter()
        .any(|scope| match scope["repositoryId"].as_str() {
            None => true,
            Some(id) => id.eq_ignore_ascii_case(repository_id),
        })
}

/// Does a branch policy apply to a repository's default branch? Scope entries name a
/// repository (or none: every repository of the project) and a ref (exact, prefix, or none).
fn policy_applies(policy: &Value, repository_id: &str, default_branch: &str) -> bool {
    let Some(scopes) = policy["settings"]["scope"].as_array() else {
        return true;
    };
    scopes.iter().any(|scope| {
        let repository_matches = match scope["repositoryId"].as_str() {
            None => true,
            Some(id) => id.eq_ignore_ascii_case(repository_id),
        };
        let ref_matches = match (
            scope["refName"].as_str(),
            scope["matchKind"]
                .as_str()
                .map(str::to_lowercase)
                .as_deref(),
        ) {
            (_, Some("defaultbranch")) | (None, _) => true,
            (Some(name), Some("prefix")) => default_branch.starts_with(name),
            (Some(name), _) => name == default_branch,
        };
        repository_matches && ref_matches
    })
}

/// Counts of objects per kind, for the scan summary.
pub type KindCounts = BTreeMap<ResourceKind, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_apply_by_repository_and_ref() {
        let exact = json!({"settings": {"scope": [{"repositoryId": "r1", "refName": "refs/heads/main", "matchKind": "Exact"}]}});
        assert!(policy_applies(&exact, "R1", "refs/heads/main"));
        assert!(!policy_applies(&exact, "r2", "refs/heads/main"));
        assert!(!policy_applies(&exact, "r1", "refs/heads/dev"));
        let project_wide = json!({"settings": {"scope": [{"repositoryId": null, "refName": "refs/heads/", "matchKind": "Prefix"}]}});
        assert!(policy_applies(&project_wide, "any", "refs/heads/main"));
        let default_branch = json!({"settings": {"scope": [{"matchKind": "DefaultBranch"}]}});
        assert!(policy_applies(&default_branch, "any", "refs/heads/trunk"));
        let release = json!({"settings": {"scope": [{"repositoryId": "r1", "refName": "refs/heads/main", "matchKind": "Exact"},
                                                    {"repositoryId": "r1", "refName": "refs/heads/release/", "matchKind": "Prefix"}]}});
        assert!(policy_names_repository(&release, "R1"));
        assert!(!policy_names_repository(&release, "r2"));
        assert!(policy_names_repository(&project_wide, "r2"));
        assert!(policy_names_repository(&json!({"settings": {}}), "r2"));
    }

    #[test]
    fn work_item_parents_come_from_fields_or_relations() {
        assert_eq!(
            work_item_parent(&json!({"fields": {"System.Parent": 7}})),
            Some(7)
        );
        let relation = json!({"relations": [{"rel": "System.LinkTypes.Hierarchy-Reverse", "url": "https://dev.azure.com/o/_apis/wit/workItems/9"}]});
        assert_eq!(work_item_parent(&relation), Some(9));
        assert_eq!(work_item_parent(&json!({"relations": []})), None);
    }

    /// The quick read of a work item's facts gives the node the whole-document read gives,
    /// whatever shape the document has.
    #[test]
    fn work_item_nodes_read_quickly_match_the_whole_document() {
        let hierarchy =
            |url: &str| json!({"rel": "System.LinkTypes.Hierarchy-Reverse", "url": url});
        let documents = [
            json!({"fields": {"System.Parent": 7, "System.WorkItemType": "Task", "System.State": "Active", "System.Title": "x"}}),
            json!({"fields": {"System.WorkItemType": "Bug"}, "relations": [{"rel": "Other", "url": "a/5"}, hierarchy("https://x/wit/workItems/9")]}),
            json!({"fields": {"System.Parent": null, "System.State": null}, "relations": [hierarchy("no-number"), hierarchy("x/11")]}),
            json!({"fields": {"System.Parent": -1, "System.WorkItemType": "Task"}}),
            json!({"fields": {"System.Parent": 7.5}}),
            json!({"fields": {"System.Parent": "7"}}),
            json!({"fields": {"System.WorkItemType": 3, "System.State": ["Active"]}}),
            json!({"fields": [7, "Task", "Active"]}),
            json!({"fields": "Task", "relations": [[1, 2], "x", null, 4, hierarchy("y/3")]}),
            json!({"fields": null, "relations": {"rel": "System.LinkTypes.Hierarchy-Reverse"}}),
            json!({"relations": [{"rel": 5, "url": "a/1"}, {"rel": "System.LinkTypes.Hierarchy-Reverse", "url": 12}, hierarchy("z/13")]}),
            json!([7, "Task"]),
            json!("text"),
            json!(null),
        ];
        let mut raws: Vec<String> = documents.iter().map(Value::to_string).collect();
        raws.push(r#"{"fields": {"System.Parent": 1, "System.Parent": 2}}"#.to_owned());
        raws.push(
            r#"{"fields": {"System.State": "A"}, "fields": {"System.State": "B"}}"#.to_owned(),
        );
        raws.push(r#" {"fields": {"System.WorkItemType": "T\u00e4sk"}}"#.to_owned());
        raws.push("not json".to_owned());
        for raw in raws {
            let item = InventoryItem {
                kind: ResourceKind::WorkItems,
                key: "p/1".to_owned(),
                scope: "p".to_owned(),
                project: "p".to_owned(),
                ado_id: "1".to_owned(),
                name: None,
                revision: None,
                raw,
            };
            let quick = work_item_node_from(&item);
            let whole = work_item_node(&item, &parse(&item));
            assert_eq!(
                (quick.parent, &quick.kind, &quick.state, quick.exists),
                (whole.parent, &whole.kind, &whole.state, whole.exists),
                "{}",
                item.raw
            );
        }
    }
}

#[cfg(test)]
mod dependency_tests {
    use super::*;

    /// Whatever feeds a kind's facts, when changed, makes that kind be judged again.
    #[test]
    fn every_fact_source_has_its_dependents() {
        for kind in ResourceKind::ALL {
            for source in fact_sources(*kind) {
                let change = InventoryChange {
                    run: tollgate_domain::SyncRunId(1),
                    kind: *source,
                    key: "p/x".to_owned(),
                    scope: "p".to_owned(),
                    project: "p".to_owned(),
                    deleted: false,
                };
                let judged = dependents(&change).iter().any(|dependent| match dependent {
                    Dependent::Key(dependent, _) | Dependent::ProjectKind(dependent, _) => {
                        dependent == kind
                    }
                });
                assert!(judged, "a change to {source} does not re-judge {kind}");
            }
        }
    }
}
