//! Changes to the organisation at run time, as people make them in ADO — with the audit-log
//! entries ADO writes for them — so incremental sync has something real to catch up with.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate_domain::{InventoryItem, ResourceKind};

use crate::model::{Org, ProjectInfo, check_types, iso, policy_types};

/// One kind of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    WeakenPolicy,
    CreateRepository,
    DeleteRepository,
    UpdateWorkItems,
    CreateWorkItem,
    DeleteWorkItem,
    RunPipeline,
    DismissAlert,
    ExposeVariable,
    RemoveProductionApproval,
    DeletePipeline,
    VotePullRequest,
}

impl MutationKind {
    pub const ALL: &'static [MutationKind] = &[
        MutationKind::WeakenPolicy,
        MutationKind::CreateRepository,
        MutationKind::DeleteRepository,
        MutationKind::UpdateWorkItems,
        MutationKind::CreateWorkItem,
        MutationKind::DeleteWorkItem,
        MutationKind::RunPipeline,
        MutationKind::DismissAlert,
        MutationKind::ExposeVariable,
        MutationKind::RemoveProductionApproval,
        MutationKind::DeletePipeline,
        MutationKind::VotePullRequest,
    ];
}

/// `POST /_sim/mutate`: either named operations, or `count` random ones.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutateRequest {
    #[serde(default)]
    pub ops: Vec<MutationKind>,
    #[serde(default)]
    pub count: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub op: MutationKind,
    pub kind: ResourceKind,
    pub id: String,
    pub detail: String,
}

impl Org {
    pub fn mutate(&mut self, request: &MutateRequest, now_ms: i64) -> Vec<Applied> {
        let mut ops = request.ops.clone();
        for _ in 0..request.count {
            let pick = self.rng().below(MutationKind::ALL.len() as u64) as usize;
            ops.extend(MutationKind::ALL.get(pick).copied());
        }
        ops.into_iter()
            .filter_map(|op| self.apply(op, now_ms))
            .collect()
    }

    fn random_project(&mut self) -> Option<ProjectInfo> {
        let count = self.projects.len() as u64;
        let index = self.rng().below(count) as usize;
        self.projects.get(index).cloned()
    }

    /// A random object of a kind in a scope, with its parsed JSON.
    fn pick(
        &mut self,
        kind: ResourceKind,
        scope: &str,
        filter: impl Fn(&Value) -> bool,
    ) -> Option<(String, Value)> {
        let candidates: Vec<(String, Value)> = self
            .collection(kind)
            .scope(scope, None)
            .filter_map(|(_, object)| {
                serde_json::from_str::<Value>(&object.json)
                    .ok()
                    .map(|v| (object.ado_id.clone(), v))
            })
            .filter(|(_, value)| filter(value))
            .collect();
        let count = candidates.len() as u64;
        let index = self.rng().below(count) as usize;
        candidates.into_iter().nth(index)
    }

    fn apply(&mut self, op: MutationKind, now: i64) -> Option<Applied> {
        let project = self.random_project()?;
        let applied = |kind: ResourceKind, id: String, detail: String| Applied {
            op,
            kind,
            id,
            detail,
        };
        match op {
            MutationKind::WeakenPolicy => {
                let (id, mut policy) =
                    self.pick(ResourceKind::PolicyConfigurations, &project.id, |p| {
                        p["type"]["id"] == policy_types::MINIMUM_REVIEWERS
                            && p["settings"]["minimumApproverCount"] == 2
                    })?;
                policy["settings"]["minimumApproverCount"] = json!(1);
                policy["revision"] = json!(policy["revision"].as_u64().unwrap_or(1) + 1);
                let repository = policy["settings"]["scope"][0]["repositoryId"]
                    .as_str()
                    .map(str::to_owned);
                self.insert_raw(
                    ResourceKind::PolicyConfigurations,
                    &project.id,
                    &id,
                    policy,
                    now,
                );
                // The policy may also cover the repository's release branches (STR-07).
                if let Some(repository) = repository {
                    self.sync_release_plant(&project.id, &repository);
                }
                self.audit(
                    "Policy.PolicyConfigModified",
                    Some(&project),
                    "Minimum number of reviewers lowered to 1",
                    now,
                );
                self.planted.push(crate::model::Planted {
                    control: "BP-02",
                    kind: ResourceKind::PolicyConfigurations,
                    id: InventoryItem::key_for(&project.id, &id),
                    why: "weakened at run time: fewer than 2 required approvers".to_owned(),
                });
                Some(applied(
                    ResourceKind::PolicyConfigurations,
                    id,
                    "minimumApproverCount 2 → 1".to_owned(),
                ))
            }
            MutationKind::CreateRepository => {
                let index = 100 + self.next_id() as usize;
                let sizes = self.profile.sizes();
                // generate_repository writes the Git.RepositoryCreated audit entry, dated now.
                let id = self.generate_repository(&project, index, &sizes, Some(now));
                // Release branches protected like main, as in the generated organisation.
                let mut rng = crate::rng::SplitMix64::new(self.rng().next_u64());
                self.protect_release_branches(&mut rng, &project, &id);
                Some(applied(
                    ResourceKind::Repositories,
                    id,
                    "created".to_owned(),
                ))
            }
            MutationKind::DeleteRepository => {
                let (id, _) = self.pick(ResourceKind::Repositories, &project.id, |_| true)?;
                self.remove_raw(ResourceKind::Repositories, &project.id, &id);
                self.remove_scope(ResourceKind::Refs, &id);
                self.remove_scope(ResourceKind::Alerts, &id);
                self.forget_planted(
                    ResourceKind::Repositories,
                    &InventoryItem::key_for(&project.id, &id),
                );
                self.planted.retain(|p| {
                    !(matches!(p.kind, ResourceKind::Alerts | ResourceKind::Refs)
                        && p.id.starts_with(&format!("{id}/")))
                });
                for (kind, field) in [
                    (ResourceKind::PullRequests, "/repository/id"),
                    (
                        ResourceKind::PolicyConfigurations,
                        "/settings/scope/0/repositoryId",
                    ),
                ] {
                    let doomed: Vec<String> = self
                        .collection(kind)
                        .scope(&project.id, None)
                        .filter(|(_, o)| {
                            serde_json::from_str::<Value>(&o.json)
                                .ok()
                                .and_then(|v| v.pointer(field).cloned())
                                == Some(json!(id))
                        })
                        .map(|(_, o)| o.ado_id.clone())
                        .collect();
                    for doomed_id in doomed {
                        self.remove_raw(kind, &project.id, &doomed_id);
                        self.forget_planted(kind, &InventoryItem::key_for(&project.id, &doomed_id));
                    }
                }
                self.audit(
                    "Git.RepositoryDeleted",
                    Some(&project),
                    "Repository deleted",
                    now,
                );
                Some(applied(
                    ResourceKind::Repositories,
                    id,
                    "deleted with its refs, alerts, pull requests and policies".to_owned(),
                ))
            }
            MutationKind::UpdateWorkItems => {
                let (id, mut item) = self.pick(ResourceKind::WorkItems, &project.id, |_| true)?;
                item["rev"] = json!(item["rev"].as_u64().unwrap_or(1) + 1);
                item["fields"]["System.State"] = json!("Active");
                item["fields"]["System.ChangedDate"] = json!(iso(now));
                self.insert_raw(ResourceKind::WorkItems, &project.id, &id, item, now);
                // Reopened: a closed parent over open children (WI-04) is closed no longer.
                let key = InventoryItem::key_for(&project.id, &id);
                self.planted
                    .retain(|p| !(p.control == "WI-04" && p.id == key));
                Some(applied(
                    ResourceKind::WorkItems,
                    id,
                    "state → Active".to_owned(),
                ))
            }
            MutationKind::CreateWorkItem => {
                let id = self.next_id();
                let item = self.work_item_json(&project, id, "Epic", 1, now, None, &[]);
                self.insert_raw(
                    ResourceKind::WorkItems,
                    &project.id,
                    &id.to_string(),
                    item,
                    now,
                );
                Some(applied(
                    ResourceKind::WorkItems,
                    id.to_string(),
                    "new epic".to_owned(),
                ))
            }
            MutationKind::DeleteWorkItem => {
                // Leaves only (no children), so no other item's relations go stale.
                let (id, _) = self.pick(ResourceKind::WorkItems, &project.id, |w| {
                    w["relations"].as_array().is_none_or(|r| {
                        r.iter()
                            .all(|rel| rel["rel"] != "System.LinkTypes.Hierarchy-Forward")
                    }) && w["fields"]["System.WorkItemType"] == "Task"
                })?;
                self.remove_raw(ResourceKind::WorkItems, &project.id, &id);
                self.forget_planted(
                    ResourceKind::WorkItems,
                    &InventoryItem::key_for(&project.id, &id),
                );
                Some(applied(ResourceKind::WorkItems, id, "deleted".to_owned()))
            }
            MutationKind::RunPipeline => {
                let (pipeline_id, pipeline) =
                    self.pick(ResourceKind::Pipelines, &project.id, |_| true)?;
                let pipeline_id: u64 = pipeline_id.parse().ok()?;
                let name = pipeline["name"].as_str().unwrap_or_default().to_owned();
                let repo = pipeline["configuration"]["repository"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let run = self.add_run(&project, pipeline_id, &name, &repo, now);
                if let Some((environment, _)) =
                    self.pick(ResourceKind::Environments, &project.id, |_| true)
                {
                    let environment: u64 = environment.parse().ok()?;
                    self.add_deployment(&project, environment, pipeline_id, now);
                }
                Some(applied(
                    ResourceKind::Builds,
                    run.to_string(),
                    format!("run of pipeline {pipeline_id}"),
                ))
            }
            MutationKind::DismissAlert => {
                let (repo, _) = self.pick(ResourceKind::Repositories, &project.id, |_| true)?;
                let (id, mut alert) =
                    self.pick(ResourceKind::Alerts, &repo, |a| a["state"] == "active")?;
                alert["state"] = json!("dismissed");
                alert["dismissal"] =
                    json!({"dismissalType": "acceptedRisk", "message": "accepted"});
                self.insert_raw(ResourceKind::Alerts, &repo, &id, alert, now);
                self.forget_planted(ResourceKind::Alerts, &InventoryItem::key_for(&repo, &id));
                Some(applied(ResourceKind::Alerts, id, "dismissed".to_owned()))
            }
            MutationKind::ExposeVariable => {
                let (id, mut group) =
                    self.pick(ResourceKind::VariableGroups, &project.id, |_| true)?;
                group["variables"]["serviceToken"] = json!({"value": "tok_live_123"});
                group["modifiedOn"] = json!(iso(now));
                self.insert_raw(ResourceKind::VariableGroups, &project.id, &id, group, now);
                self.audit(
                    "Library.VariableGroupModified",
                    Some(&project),
                    "Variable group modified",
                    now,
                );
                let key = InventoryItem::key_for(&project.id, &id);
                if !self
                    .planted
                    .iter()
                    .any(|p| p.control == "VG-01" && p.id == key)
                {
                    self.planted.push(crate::model::Planted {
                        control: "VG-01",
                        kind: ResourceKind::VariableGroups,
                        id: key,
                        why: "serviceToken stored as plain text".to_owned(),
                    });
                }
                Some(applied(
                    ResourceKind::VariableGroups,
                    id,
                    "plain-text serviceToken added".to_owned(),
                ))
            }
            MutationKind::RemoveProductionApproval => {
                let (environment, _) = self.pick(ResourceKind::Environments, &project.id, |e| {
                    e["name"] == "production"
                })?;
                let (check, _) =
                    self.pick(ResourceKind::CheckConfigurations, &project.id, |c| {
                        c["type"]["id"] == check_types::APPROVAL
                            && c["resource"]["id"] == json!(environment)
                    })?;
                self.remove_raw(ResourceKind::CheckConfigurations, &project.id, &check);
                self.forget_planted(
                    ResourceKind::CheckConfigurations,
                    &InventoryItem::key_for(&project.id, &check),
                );
                self.audit(
                    "CheckConfiguration.Deleted",
                    Some(&project),
                    "Approval check removed from production",
                    now,
                );
                let environment_key = InventoryItem::key_for(&project.id, &environment);
                // STR-10 judges production's approvers only while it has an approval check.
                self.planted
                    .retain(|p| !(p.control == "STR-10" && p.id == environment_key));
                self.planted.push(crate::model::Planted {
                    control: "EN-01",
                    kind: ResourceKind::Environments,
                    id: environment_key,
                    why: "approval check removed at run time".to_owned(),
                });
                Some(applied(
                    ResourceKind::CheckConfigurations,
                    check,
                    "production approval removed".to_owned(),
                ))
            }
            MutationKind::DeletePipeline => {
                let (id, _) = self.pick(ResourceKind::Pipelines, &project.id, |_| true)?;
                self.remove_raw(ResourceKind::Pipelines, &project.id, &id);
                self.remove_raw(ResourceKind::BuildDefinitions, &project.id, &id);
                self.remove_scope(ResourceKind::PipelineRuns, &id);
                let builds: Vec<String> = self
                    .collection(ResourceKind::Builds)
                    .scope(&project.id, None)
                    .filter(|(_, o)| {
                        serde_json::from_str::<Value>(&o.json)
                            .ok()
                            .map(|b| b["definition"]["id"].to_string())
                            == Some(id.clone())
                    })
                    .map(|(_, o)| o.ado_id.clone())
                    .collect();
                for build in builds {
                    self.remove_raw(ResourceKind::Builds, &project.id, &build);
                }
                self.forget_planted(
                    ResourceKind::BuildDefinitions,
                    &InventoryItem::key_for(&project.id, &id),
                );
                self.forget_deployments_of(&id);
                self.audit(
                    "Pipelines.PipelineDeleted",
                    Some(&project),
                    "Pipeline deleted",
                    now,
                );
                Some(applied(
                    ResourceKind::Pipelines,
                    id,
                    "deleted with its runs and builds".to_owned(),
                ))
            }
            MutationKind::VotePullRequest => {
                let (id, mut pull_request) =
                    self.pick(ResourceKind::PullRequests, &project.id, |p| {
                        p["status"] == "active"
                    })?;
                if let Some(first) = pull_request["reviewers"]
                    .as_array_mut()
                    .and_then(|r| r.first_mut())
                {
                    first["vote"] = json!(-5);
                }
                self.insert_raw(
                    ResourceKind::PullRequests,
                    &project.id,
                    &id,
                    pull_request,
                    now,
                );
                Some(applied(
                    ResourceKind::PullRequests,
                    id,
                    "a reviewer now waits for the author".to_owned(),
                ))
            }
        }
    }
}
