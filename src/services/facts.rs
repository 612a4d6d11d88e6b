//! The `related` facts each resource is evaluated with (docs/POLICY-INPUT.md): the few
//! cross-object lookups controls need, computed once per scan from the stored inventory.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Result;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::{InventoryItem, ResourceKind, TenantId};
use tollgate_store::InventoryStore;

use crate::services::settings::Names;

const PAGE: u32 = 2_000;

/// Work item facts: its parent, type and children.
#[derive(Default)]
struct WorkItemNode {
    parent: Option<u64>,
    kind: String,
    children: u32,
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
    names: Names,
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

/// The parent id of a work item: `System.Parent`, else the hierarchy-reverse relation.
fn work_item_parent(raw: &Value) -> Option<u64> {
    if let Some(parent) = raw.pointer("/fields/System.Parent").and_then(Value::as_u64) {
        return Some(parent);
    }
    raw["relations"].as_array()?.iter().find_map(|relation| {
        (relation["rel"] == "System.LinkTypes.Hierarchy-Reverse")
            .then(|| relation["url"].as_str()?.rsplit('/').next()?.parse().ok())
            .flatten()
    })
}

impl Facts {
    pub async fn load(
        store: &dyn InventoryStore,
        tenant: &TenantId,
        now: OffsetDateTime,
    ) -> Result<Self> {
        let mut facts = Facts::default();
        for_each_item(store, tenant, ResourceKind::PolicyConfigurations, |item| {
            facts
                .policies
                .entry(item.project.clone())
                .or_default()
                .push(parse(&item));
        })
        .await?;
        for_each_item(store, tenant, ResourceKind::Refs, |item| {
            facts
                .refs
                .entry(item.scope.clone())
                .or_default()
                .push(item.ado_id);
        })
        .await?;
        for_each_item(store, tenant, ResourceKind::CheckConfigurations, |item| {
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
        })
        .await?;
        for_each_item(store, tenant, ResourceKind::BuildDefinitions, |item| {
            facts.definitions.insert(item.key.clone(), parse(&item));
        })
        .await?;
        let month_ago = now - time::Duration::days(30);
        for_each_item(store, tenant, ResourceKind::PipelineRuns, |item| {
            let raw = parse(&item);
            let created = raw["createdDate"]
                .as_str()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
            if created.is_some_and(|created| created >= month_ago) {
                *facts.recent_runs.entry(item.scope.clone()).or_default() += 1;
            }
        })
        .await?;
        for_each_item(store, tenant, ResourceKind::WorkItems, |item| {
            let raw = parse(&item);
            if let Ok(id) = item.ado_id.parse::<u64>() {
                let node = facts.work_items.entry(id).or_default();
                node.parent = work_item_parent(&raw);
                node.kind = raw
                    .pointer("/fields/System.WorkItemType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
            }
        })
        .await?;
        let parents: Vec<u64> = facts
            .work_items
            .values()
            .filter_map(|node| node.parent)
            .collect();
        for parent in parents {
            if let Some(node) = facts.work_items.get_mut(&parent) {
                node.children += 1;
            }
        }
        for_each_item(store, tenant, ResourceKind::Projects, |item| {
            facts
                .names
                .projects
                .insert(item.ado_id.clone(), item.name.clone().unwrap_or_default());
        })
        .await?;
        for_each_item(store, tenant, ResourceKind::Repositories, |item| {
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
            for key in store.keys(tenant, kind, None).await? {
                facts.project_counts.entry(key.project).or_default()[slot] += 1;
            }
        }
        Ok(facts)
    }

    /// Project and repository names, to place resources for scoped settings.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The `related` document for one resource.
    pub fn related(&self, item: &InventoryItem, raw: &Value) -> Value {
        use ResourceKind as K;
        match item.kind {
            K::Repositories => {
                let default_branch = raw["defaultBranch"].as_str().unwrap_or_default();
                let policies: Vec<&Value> = self
                    .policies
                    .get(&item.project)
                    .into_iter()
                    .flatten()
                    .filter(|p| p["isDeleted"] != true && p["isEnabled"] != false)
                    .filter(|p| policy_applies(p, &item.ado_id, default_branch))
                    .collect();
                json!({"policies": policies, "refs": self.refs.get(&item.ado_id).cloned().unwrap_or_default()})
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
        let parent_type = parent
            .and_then(|p| self.work_items.get(&p))
            .map(|p| p.kind.clone());
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
            if !seen.insert(current) || ancestors.len() >= 64 {
                break;
            }
            next = self.work_items.get(&current).and_then(|n| n.parent);
        }
        json!({"parent": parent, "parent_type": parent_type, "ancestors": ancestors, "cycle": cycle,
               "children": node.map(|n| n.children).unwrap_or(0)})
    }
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
}
