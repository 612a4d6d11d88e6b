//! Changes to the organisation at run time, as people make them in ADO — with the audit-log
//! entries ADO writes for them, so incremental sync has something real to catch up with, and
//! the service-hook events ADO raises for them, so a webhook receiver has something to receive.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate_domain::{InventoryItem, ResourceKind};

use crate::hooks::events::{self, HookEvent};
use crate::model::{Org, PEOPLE, ProjectInfo, check_types, identity, iso, policy_types};

/// The object id of a ref that does not exist yet, as `refUpdates` show it.
const NO_OBJECT: &str = "0000000000000000000000000000000000000000";

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
    /// A commit pushed to a repository's default branch (the ref moves; `git.push`). Not in
    /// [`MutationKind::ALL`]: adding it would change what `count` draws for every seed.
    PushToRepository,
}

impl MutationKind {
    /// The kinds `count` draws from: every kind but [`MutationKind::PushToRepository`].
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

/// `POST /_sim/mutate`: named operations, and `count` random ones after them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MutateRequest {
    #[serde(default)]
    pub ops: Vec<MutationKind>,
    #[serde(default)]
    pub count: usize,
    /// A repository, by name or id, for the `push_to_repository` and `weaken_policy` named in
    /// `ops` to act on (otherwise they pick one at random). Random picks ignore it.
    #[serde(default)]
    pub repository: Option<String>,
}

/// What a mutation request changed, and the service-hook events the changes raise.
#[derive(Clone, Debug, Default)]
pub struct Mutation {
    pub applied: Vec<Applied>,
    pub events: Vec<HookEvent>,
}

/// A mutation request that cannot be carried out as asked; nothing was changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MutateError {
    #[error("no repository has the name or id {0:?}")]
    UnknownRepository(String),
    #[error("{count} repositories are named {name:?}; name the one meant by its id")]
    AmbiguousRepository { name: String, count: usize },
    #[error("`repository` is for push_to_repository and weaken_policy, and `ops` names neither")]
    NothingToTarget,
}

/// The repository a request targets.
#[derive(Clone, Debug)]
struct Target {
    project: ProjectInfo,
    repository_id: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub op: MutationKind,
    pub kind: ResourceKind,
    pub id: String,
    pub detail: String,
}

impl Org {
    /// Apply a request: its named operations, then `count` random ones. An operation that
    /// finds nothing to change (no active pull request left, say) is skipped.
    pub fn mutate(
        &mut self,
        request: &MutateRequest,
        now_ms: i64,
    ) -> Result<Mutation, MutateError> {
        let targeted = |op: &MutationKind| {
            matches!(
                op,
                MutationKind::PushToRepository | MutationKind::WeakenPolicy
            )
        };
        let target = match &request.repository {
            None => None,
            Some(_) if !request.ops.iter().any(targeted) => {
                return Err(MutateError::NothingToTarget);
            }
            Some(repository) => Some(self.find_repository(repository)?),
        };
        let mut ops: Vec<(MutationKind, Option<&Target>)> = request
            .ops
            .iter()
            .map(|op| (*op, target.as_ref().filter(|_| targeted(op))))
            .collect();
        for _ in 0..request.count {
            let pick = self.rng().below(MutationKind::ALL.len() as u64) as usize;
            ops.extend(MutationKind::ALL.get(pick).map(|op| (*op, None)));
        }
        let mut mutation = Mutation::default();
        for (op, target) in ops {
            if let Some(applied) = self.apply(op, now_ms, target, &mut mutation.events) {
                mutation.applied.push(applied);
            }
        }
        Ok(mutation)
    }

    /// A repository by id, or by name when the name is the organisation's only one so named.
    fn find_repository(&self, name_or_id: &str) -> Result<Target, MutateError> {
        let mut by_name = Vec::new();
        for project in &self.projects {
            for (_, object) in self
                .collection(ResourceKind::Repositories)
                .scope(&project.id, None)
            {
                let target = Target {
                    project: project.clone(),
                    repository_id: object.ado_id.clone(),
                };
                if object.ado_id.eq_ignore_ascii_case(name_or_id) {
                    return Ok(target);
                }
                let named = serde_json::from_str::<Value>(&object.json)
                    .ok()
                    .and_then(|r| {
                        r["name"]
                            .as_str()
                            .map(|n| n.eq_ignore_ascii_case(name_or_id))
                    })
                    .unwrap_or(false);
                if named {
                    by_name.push(target);
                }
            }
        }
        match by_name.len() {
            0 => Err(MutateError::UnknownRepository(name_or_id.to_owned())),
            1 => Ok(by_name.remove(0)),
            count => Err(MutateError::AmbiguousRepository {
                name: name_or_id.to_owned(),
                count,
            }),
        }
    }

    fn organization_url(&self) -> String {
        format!("https://dev.azure.com/{}", self.name)
    }

    fn repository(&self, project_id: &str, repository_id: &str) -> Option<Value> {
        self.collection(ResourceKind::Repositories)
            .get(project_id, repository_id)
            .and_then(|o| serde_json::from_str(&o.json).ok())
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

    /// Apply one operation, adding the service-hook events it raises to `raised`. Events
    /// draw nothing from the organisation's generator (they take who did it from the objects
    /// changed, or from [`person_for`]), so a seed changes the organisation as it always did.
    fn apply(
        &mut self,
        op: MutationKind,
        now: i64,
        target: Option<&Target>,
        raised: &mut Vec<HookEvent>,
    ) -> Option<Applied> {
        let project = match target {
            Some(target) => target.project.clone(),
            None => self.random_project()?,
        };
        let applied = |kind: ResourceKind, id: String, detail: String| Applied {
            op,
            kind,
            id,
            detail,
        };
        match op {
            MutationKind::WeakenPolicy => {
                let only = target.map(|t| t.repository_id.clone());
                let (id, mut policy) =
                    self.pick(ResourceKind::PolicyConfigurations, &project.id, |p| {
                        p["type"]["id"] == policy_types::MINIMUM_REVIEWERS
                            && p["settings"]["minimumApproverCount"] == 2
                            && only.as_ref().is_none_or(|repository| {
                                p["settings"]["scope"][0]["repositoryId"] == json!(repository)
                            })
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
                if let Some(repository) = self.repository(&project.id, &id) {
                    raised.push(events::repository_created(
                        &repository,
                        &person_for(&id),
                        &iso(now),
                    ));
                }
                Some(applied(
                    ResourceKind::Repositories,
                    id,
                    "created".to_owned(),
                ))
            }
            MutationKind::DeleteRepository => {
                let (id, repository) =
                    self.pick(ResourceKind::Repositories, &project.id, |_| true)?;
                self.remove_raw(ResourceKind::Repositories, &project.id, &id);
                raised.push(events::repository_deleted(
                    &repository,
                    &person_for(&id),
                    &iso(now),
                ));
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
                let before = item.clone();
                item["rev"] = json!(item["rev"].as_u64().unwrap_or(1) + 1);
                item["fields"]["System.State"] = json!("Active");
                item["fields"]["System.ChangedDate"] = json!(iso(now));
                raised.push(events::work_item_updated(
                    &before,
                    &item,
                    &project.id,
                    &self.organization_url(),
                ));
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
                raised.push(events::work_item_created(
                    &item,
                    &project.id,
                    &self.organization_url(),
                ));
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
                let (id, item) = self.pick(ResourceKind::WorkItems, &project.id, |w| {
                    w["relations"].as_array().is_none_or(|r| {
                        r.iter()
                            .all(|rel| rel["rel"] != "System.LinkTypes.Hierarchy-Forward")
                    }) && w["fields"]["System.WorkItemType"] == "Task"
                })?;
                self.remove_raw(ResourceKind::WorkItems, &project.id, &id);
                raised.push(events::work_item_deleted(
                    &item,
                    &project.id,
                    &self.organization_url(),
                ));
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
                raised.extend(self.run_events(&project, pipeline_id, run, &repo));
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
                let mut voter = None;
                if let Some(first) = pull_request["reviewers"]
                    .as_array_mut()
                    .and_then(|r| r.first_mut())
                {
                    first["vote"] = json!(-5);
                    voter = Some(first.clone());
                }
                if let Some(voter) = voter {
                    raised.push(events::pull_request_voted(&pull_request, &voter, -5));
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
            MutationKind::PushToRepository => {
                let repository_id = match target {
                    Some(target) => target.repository_id.clone(),
                    None => {
                        self.pick(ResourceKind::Repositories, &project.id, |_| true)?
                            .0
                    }
                };
                let repository = self.repository(&project.id, &repository_id)?;
                let branch = repository["defaultBranch"]
                    .as_str()
                    .unwrap_or("refs/heads/main")
                    .to_owned();
                let (name, mail) = PEOPLE[self.rng().below(PEOPLE.len() as u64) as usize];
                let pusher = identity(name, mail);
                let new_object_id = self.rng().sha();
                let existing: Option<Value> = self
                    .collection(ResourceKind::Refs)
                    .get(&repository_id, &branch)
                    .and_then(|o| serde_json::from_str(&o.json).ok());
                let old_object_id = existing
                    .as_ref()
                    .and_then(|r| r["objectId"].as_str())
                    .unwrap_or(NO_OBJECT)
                    .to_owned();
                let reference = match existing {
                    Some(mut reference) => {
                        reference["objectId"] = json!(new_object_id);
                        reference
                    }
                    None => json!({
                        "name": branch, "objectId": new_object_id, "creator": pusher,
                        "url": format!("{}/refs?filter={}", repository["url"].as_str().unwrap_or_default(),
                                       branch.trim_start_matches("refs/")),
                    }),
                };
                self.insert_raw(ResourceKind::Refs, &repository_id, &branch, reference, now);
                let push_id = self.next_id();
                let comment = format!("Change {push_id}");
                raised.push(events::push(&events::Push {
                    repository: &repository,
                    ref_name: &branch,
                    old_object_id: &old_object_id,
                    new_object_id: &new_object_id,
                    comment: &comment,
                    pusher: &pusher,
                    push_id,
                    at: &iso(now),
                }));
                Some(applied(
                    ResourceKind::Refs,
                    branch.clone(),
                    format!(
                        "pushed {} to {branch} of repository {repository_id} ({})",
                        &new_object_id[..8.min(new_object_id.len())],
                        repository["name"].as_str().unwrap_or_default()
                    ),
                ))
            }
        }
    }

    /// `build.complete` and `ms.vss-pipelines.run-state-changed-event` for a finished run.
    fn run_events(
        &self,
        project: &ProjectInfo,
        pipeline_id: u64,
        run_id: u64,
        repository_id: &str,
    ) -> Vec<HookEvent> {
        let read = |kind: ResourceKind, scope: &str| -> Option<Value> {
            self.collection(kind)
                .get(scope, &run_id.to_string())
                .and_then(|o| serde_json::from_str(&o.json).ok())
        };
        let (Some(build), Some(run)) = (
            read(ResourceKind::Builds, &project.id),
            read(ResourceKind::PipelineRuns, &pipeline_id.to_string()),
        ) else {
            return Vec::new();
        };
        let repository = self.repository(&project.id, repository_id);
        let organization_url = self.organization_url();
        vec![
            events::build_complete(&build, &organization_url),
            events::run_state_changed(&run, &build, repository.as_ref(), &organization_url),
        ]
    }
}

/// Who did a change the simulated objects do not record a person for: one of the
/// organisation's people, the same for the same object, drawn without the generator.
fn person_for(key: &str) -> Value {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let (name, mail) = PEOPLE[(hash % PEOPLE.len() as u64) as usize];
    identity(name, mail)
}
