//! Classic release definitions: stages (ADO calls them environments) with pre-deployment
//! approvals and gates, Build and Git artifacts with branch filters, release triggers and
//! variables, shaped like Microsoft's published Definitions_Get example (ado-fixtures
//! `release/definitions/GET__GetReleaseDefinition.json`); and the summaries Definitions_List
//! returns for them (`…/GET__ListAllReleaseDefinitions*.json`).
//!
//! They are generated after everything else, from a generator of their own, so that adding
//! them left every other object of a seed as it was.

use serde_json::{Value, json};
use tollgate_domain::{InventoryItem, ResourceKind};

use crate::model::{Org, PEOPLE, Planted, ProjectInfo, identity, iso};
use crate::profile::Sizes;
use crate::rng::SplitMix64;

const DAY_MS: i64 = 86_400_000;
const KIND: ResourceKind = ResourceKind::ReleaseDefinitions;
/// The Invoke REST API task, as a release gate.
const INVOKE_REST_API_TASK: &str = "9c3e8943-130d-4c78-ac63-8af81df62dfb";

/// Stage layouts: (name, is production, deploys automatically after the previous stage).
const FULL: &[(&str, bool)] = &[
    ("dev", false),
    ("test", false),
    ("staging", false),
    ("production", true),
];
const SHORT: &[(&str, bool)] = &[("dev", false), ("production", true)];
const NON_PRODUCTION: &[(&str, bool)] = &[("dev", false), ("test", false)];
const QA_PROD: &[(&str, bool)] = &[("qa", false), ("Prod", true)];

/// How a production stage's pre-deployment approval is weakened, if it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ApprovalFlaw {
    /// RL-01: only automated approvals.
    Automated,
    /// RL-02: the release creator may approve.
    CreatorApproves,
    /// RL-03: one approval is enough.
    OneApprover,
    /// RL-07: skipped when the same approver approved an earlier stage.
    SkippedAfterEarlier,
}

/// What one definition looks like and which misconfigurations it carries.
#[derive(Clone, Copy)]
struct Plan {
    stages: &'static [(&'static str, bool)],
    /// Production deploys automatically after the previous stage (else only by hand).
    automatic_production: bool,
    approval: Option<ApprovalFlaw>,
    /// RL-04: production takes the primary artifact from any branch, or an unprotected one.
    open_branch_filter: bool,
    /// RL-05: a secret-looking variable holds a plain-text value.
    plain_secret: bool,
    /// RL-06: created within the last few weeks.
    recent: bool,
}

impl Plan {
    fn has_production(&self) -> bool {
        self.stages.iter().any(|(_, production)| *production)
    }
}

/// The objects a definition's artifacts point at.
struct Sources {
    /// Build definitions of the project: (id, name).
    builds: Vec<(String, String)>,
    /// Repositories of the project: (id, name).
    repositories: Vec<(String, String)>,
}

/// A per-project id sequence: ADO numbers stages, approval steps and deploy steps from one.
struct Ids(u64);

impl Ids {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn person(rng: &mut SplitMix64) -> Value {
    let (name, mail) = PEOPLE[rng.below(PEOPLE.len() as u64) as usize];
    identity(name, mail)
}

/// Two different people.
fn two_people(rng: &mut SplitMix64) -> (Value, Value) {
    let count = PEOPLE.len() as u64;
    let first = rng.below(count);
    let second = (first + 1 + rng.below(count - 1)) % count;
    let pick = |i: u64| {
        let (name, mail) = PEOPLE[i as usize];
        identity(name, mail)
    };
    (pick(first), pick(second))
}

fn empty_ref() -> Value {
    json!({"id": "", "name": ""})
}

/// An ArtifactFilter (release spec) as a stage's artifact condition carries it: serialised
/// into the condition's string `value`.
fn artifact_condition(alias: &str, branch: &str) -> Value {
    let filter = json!({"sourceBranch": branch, "tags": [], "useBuildDefinitionBranch": false,
                        "createReleaseOnBuildTagging": false});
    json!({"name": alias, "conditionType": "artifact", "value": filter.to_string()})
}

impl Org {
    /// Release definitions for every project, `sizes.release_definitions` each.
    pub(crate) fn generate_release_definitions(&mut self, seed: u64, sizes: &Sizes) {
        let projects = self.projects.clone();
        for (index, project) in projects.iter().enumerate() {
            let mut rng =
                SplitMix64::new(seed ^ 0x7e1e_a5e0_d3f1_0000 ^ (index as u64).wrapping_mul(0x9e37));
            let sources = Sources {
                builds: self.names_of(ResourceKind::BuildDefinitions, &project.id),
                repositories: self.names_of(ResourceKind::Repositories, &project.id),
            };
            let mut ids = Ids(0);
            for number in 0..sizes.release_definitions {
                let plan = plan_for(&mut rng, index, number);
                self.add_release_definition(&mut rng, project, number, &plan, &sources, &mut ids);
            }
        }
    }

    /// (id, name) of a project's objects of one kind.
    fn names_of(&self, kind: ResourceKind, project: &str) -> Vec<(String, String)> {
        self.collection(kind)
            .scope(project, None)
            .filter_map(|(_, object)| {
                let value: Value = serde_json::from_str(&object.json).ok()?;
                Some((object.ado_id.clone(), value["name"].as_str()?.to_owned()))
            })
            .collect()
    }

    fn add_release_definition(
        &mut self,
        rng: &mut SplitMix64,
        project: &ProjectInfo,
        number: usize,
        plan: &Plan,
        sources: &Sources,
        ids: &mut Ids,
    ) {
        let id = number as u64 + 1;
        let days_ago = if plan.recent {
            5 + rng.below(55)
        } else {
            150 + rng.below(750)
        };
        let created = self.now_ms - days_ago as i64 * DAY_MS - rng.below(DAY_MS as u64) as i64;
        let modified = (created + rng.below(20) as i64 * DAY_MS).min(self.now_ms);
        let vsrm = format!("https://vsrm.dev.azure.com/{}", self.name);
        let dev = format!("https://dev.azure.com/{}", self.name);
        let project_ref = json!({"id": project.id, "name": project.name});

        // Artifacts: the primary is a build (or, without builds, a repository); some
        // definitions also take a repository.
        let mut artifacts = Vec::new();
        let build = sources
            .builds
            .get(rng.below(sources.builds.len() as u64) as usize);
        let repository = sources
            .repositories
            .get(rng.below(sources.repositories.len() as u64) as usize);
        let mut name = format!("{}-release-{number:02}", project.name.to_lowercase());
        if let Some((build_id, build_name)) = build {
            name = format!("{build_name}-cd-{number:02}");
            let from_branch = rng.chance(0.5);
            artifacts.push(json!({
                "sourceId": format!("{}:{build_id}", project.id), "type": "Build", "alias": format!("_{build_name}"),
                "definitionReference": {
                    "artifactSourceDefinitionUrl": {"id": format!("{dev}/_permalink/_build/index?projectId={}&definitionId={build_id}", project.id), "name": ""},
                    "defaultVersionBranch": if from_branch { json!({"id": "refs/heads/main", "name": "refs/heads/main"}) } else { empty_ref() },
                    "defaultVersionSpecific": empty_ref(), "defaultVersionTags": empty_ref(),
                    "defaultVersionType": if from_branch { json!({"id": "latestFromBranchType", "name": "Latest from a specific branch with tags"}) } else { json!({"id": "latestType", "name": "Latest"}) },
                    "definition": {"id": build_id, "name": build_name}, "project": project_ref,
                },
                "isPrimary": true, "isRetained": false,
            }));
        }
        if let Some((repo_id, repo_name)) = repository
            && (artifacts.is_empty() || rng.chance(0.3))
        {
            artifacts.push(json!({
                "sourceId": format!("{}:{repo_id}", project.id), "type": "Git", "alias": format!("_{repo_name}"),
                "definitionReference": {
                    "branches": {"id": "main", "name": "main"},
                    "defaultVersionBranch": {"id": "main", "name": "main"},
                    "defaultVersionSpecific": empty_ref(),
                    "defaultVersionType": {"id": "latestFromBranchType", "name": "Latest from the default branch"},
                    "definition": {"id": repo_id, "name": repo_name}, "project": project_ref,
                },
                "isPrimary": artifacts.is_empty(), "isRetained": false,
            }));
        }
        let aliases: Vec<String> = artifacts
            .iter()
            .filter_map(|a| a["alias"].as_str().map(str::to_owned))
            .collect();
        // Build artifacts are filtered by ref name, Git artifacts by branch name.
        let protected_branch = |alias: &str| {
            let build = artifacts
                .iter()
                .any(|a| a["alias"] == alias && a["type"] == "Build");
            if build { "refs/heads/main" } else { "main" }
        };

        let mut environments = Vec::new();
        let mut previous: Option<&str> = None;
        let mut why: Vec<(&'static str, String)> = Vec::new();
        for (rank, (stage, production)) in plan.stages.iter().enumerate() {
            let env_id = ids.next();
            let automatic = !*production || plan.automatic_production;
            let mut conditions = Vec::new();
            if automatic {
                conditions.push(match previous {
                    None => {
                        json!({"name": "ReleaseStarted", "conditionType": "event", "value": ""})
                    }
                    Some(before) => {
                        json!({"name": before, "conditionType": "environmentState", "value": "4"})
                    }
                });
            }
            if *production && automatic {
                for (position, alias) in aliases.iter().enumerate() {
                    if plan.open_branch_filter && position == 0 {
                        match rng.below(3) {
                            0 => why.push((
                                "RL-04",
                                format!("{stage} deploys {alias} from any branch"),
                            )),
                            1 => {
                                conditions.push(artifact_condition(alias, "refs/heads/develop"));
                                why.push(("RL-04", format!("{stage} takes {alias} from develop")));
                            }
                            _ => {
                                conditions.push(artifact_condition(alias, "*"));
                                why.push((
                                    "RL-04",
                                    format!("{stage} filters {alias} on every branch"),
                                ));
                            }
                        }
                    } else {
                        conditions.push(artifact_condition(alias, protected_branch(alias)));
                    }
                }
            }
            let (approvals, flaw_why) = pre_deploy_approvals(rng, stage, *production, plan, ids);
            if let Some(flaw_why) = flaw_why {
                why.push(flaw_why);
            }
            let mut variables = json!({});
            if *production {
                variables["slot"] = json!({"value": "production"});
            }
            let gates = if *production && rng.chance(0.4) {
                json!({"id": ids.next(), "gatesOptions": {"isEnabled": true, "timeout": 1440, "samplingInterval": 15,
                                                          "stabilizationTime": 5, "minimumSuccessDuration": 0},
                       "gates": [{"tasks": [{"environment": {}, "taskId": INVOKE_REST_API_TASK, "version": "1.*",
                                              "name": "Invoke REST API: tollgate deployment gate", "refName": "", "enabled": true,
                                              "alwaysRun": false, "continueOnError": false, "timeoutInMinutes": 0,
                                              "definitionType": "task", "overrideInputs": {}, "condition": "succeeded()",
                                              "inputs": {"connectedServiceNameSelector": "connectedServiceName", "method": "POST",
                                                         "waitForCompletion": "false", "successCriteria": ""}}]}]})
            } else {
                json!({"id": 0, "gatesOptions": null, "gates": []})
            };
            let deploy_step = ids.next();
            let post_approval = ids.next();
            environments.push(json!({
                "id": env_id, "name": stage, "rank": rank + 1, "owner": person(rng),
                "variables": variables, "variableGroups": [],
                "preDeployApprovals": approvals,
                "deployStep": {"id": deploy_step},
                "postDeployApprovals": {"approvals": [{"rank": 1, "isAutomated": true, "isNotificationOn": false, "id": post_approval}]},
                "deployPhases": [{
                    "deploymentInput": {"parallelExecution": {"parallelExecutionType": "none"}, "skipArtifactsDownload": false,
                                        "artifactsDownloadInput": {"downloadInputs": []}, "queueId": 1, "demands": [],
                                        "enableAccessToken": false, "timeoutInMinutes": 0, "jobCancelTimeoutInMinutes": 1,
                                        "condition": "succeeded()", "overrideInputs": {}},
                    "rank": 1, "phaseType": "agentBasedDeployment", "name": "Run on agent", "refName": null, "workflowTasks": [],
                }],
                "environmentOptions": {"emailNotificationType": "OnlyOnFailure", "emailRecipients": "release.environment.owner;release.creator",
                                       "skipArtifactsDownload": false, "timeoutInMinutes": 0, "enableAccessToken": false,
                                       "publishDeploymentStatus": true, "badgeEnabled": false, "autoLinkWorkItems": false,
                                       "pullRequestDeploymentEnabled": false},
                "demands": [], "conditions": conditions,
                "executionPolicy": {"concurrencyCount": 1, "queueDepthCount": 0}, "schedules": [],
                "currentRelease": {"id": 0, "url": format!("{vsrm}/{}/_apis/Release/releases/0", project.id), "_links": {}},
                "retentionPolicy": {"daysToKeep": 30, "releasesToKeep": 3, "retainBuild": true},
                "properties": {}, "preDeploymentGates": gates,
                "postDeploymentGates": {"id": 0, "gatesOptions": null, "gates": []},
                "environmentTriggers": [],
                "badgeUrl": format!("{vsrm}/_apis/public/Release/badge/{}/{id}/{env_id}", project.id),
            }));
            previous = Some(*stage);
        }

        // Secret variables are returned without their value.
        let mut variables = json!({
            "appName": {"value": name}, "region": {"value": "westeurope"},
            "dbPassword": {"value": null, "isSecret": true},
        });
        if rng.chance(0.3) {
            // A reference to another variable is not a secret in plain text.
            variables["storagePassword"] = json!({"value": "$(kv-storage-password)"});
        }
        if plan.plain_secret {
            let production = environments
                .iter_mut()
                .find(|e| e["variables"].get("slot").is_some());
            match production {
                Some(stage) if rng.chance(0.5) => {
                    stage["variables"]["sqlPassword"] = json!({"value": "Spring2026!"});
                    let stage = stage["name"].as_str().unwrap_or_default();
                    why.push((
                        "RL-05",
                        format!("sqlPassword in stage {stage} is plain text"),
                    ));
                }
                _ => {
                    variables["deployToken"] =
                        json!({"value": format!("dt_{:016x}", rng.next_u64())});
                    why.push(("RL-05", "deployToken is plain text".to_owned()));
                }
            }
        }
        if plan.recent {
            why.push((
                "RL-06",
                format!("classic release pipeline created {}", iso(created)),
            ));
        }

        let triggers: Vec<Value> = match aliases.first() {
            Some(alias) if rng.chance(0.6) => vec![json!({
                "artifactAlias": alias, "triggerType": "artifactSource",
                "triggerConditions": [{"sourceBranch": protected_branch(alias), "tags": [],
                                       "useBuildDefinitionBranch": false, "createReleaseOnBuildTagging": false}],
            })],
            _ => Vec::new(),
        };
        let author = person(rng);
        let definition = json!({
            "source": "userInterface", "revision": 1 + rng.below(12), "description": null,
            "createdBy": author, "createdOn": iso(created), "modifiedBy": person(rng), "modifiedOn": iso(modified),
            "isDeleted": false, "variables": variables, "variableGroups": [], "environments": environments,
            "artifacts": artifacts, "triggers": triggers, "releaseNameFormat": "Release-$(rev:r)", "tags": [],
            "properties": {}, "id": id, "name": name, "path": "\\", "projectReference": null,
            "url": format!("{vsrm}/{}/_apis/Release/definitions/{id}", project.id),
            "_links": {"self": {"href": format!("{vsrm}/{}/_apis/Release/definitions/{id}", project.id)},
                       "web": {"href": format!("{dev}/{}/_release?definitionId={id}", project.id)}},
        });
        self.insert_raw(KIND, &project.id, &id.to_string(), definition, modified);
        for (control, why) in why {
            self.planted.push(Planted {
                control,
                kind: KIND,
                id: InventoryItem::key_for(&project.id, &id.to_string()),
                why,
            });
        }
    }
}

/// A stage's pre-deployment approvals, and the planted flaw if there is one. Production
/// has two named approvers unless the plan weakens it; staging one; the rest none.
fn pre_deploy_approvals(
    rng: &mut SplitMix64,
    stage: &str,
    production: bool,
    plan: &Plan,
    ids: &mut Ids,
) -> (Value, Option<(&'static str, String)>) {
    let manual = |approver: Value, rank: u64, ids: &mut Ids| json!({"rank": rank, "isAutomated": false, "isNotificationOn": false, "approver": approver, "id": ids.next()});
    let options = |required: u64, creator: bool, skip: bool| {
        json!({"requiredApproverCount": required, "releaseCreatorCanBeApprover": creator,
               "autoTriggeredAndPreviousEnvironmentApprovedCanBeSkipped": skip,
               "enforceIdentityRevalidation": false, "timeoutInMinutes": 0, "executionOrder": "beforeGates"})
    };
    let automated = |ids: &mut Ids| {
        json!({"approvals": [{"rank": 1, "isAutomated": true, "isNotificationOn": false, "id": ids.next()}],
               "approvalOptions": {"requiredApproverCount": 0, "releaseCreatorCanBeApprover": false,
                                   "autoTriggeredAndPreviousEnvironmentApprovedCanBeSkipped": false,
                                   "enforceIdentityRevalidation": false, "timeoutInMinutes": 0,
                                   "executionOrder": "beforeGates"}})
    };
    if !production {
        if stage == "staging" {
            let approver = person(rng);
            return (
                json!({"approvals": [manual(approver, 1, ids)], "approvalOptions": options(0, true, false)}),
                None,
            );
        }
        return (automated(ids), None);
    }
    let (first, second) = two_people(rng);
    match plan.approval {
        Some(ApprovalFlaw::Automated) => (
            automated(ids),
            Some(("RL-01", format!("{stage} has only an automated approval"))),
        ),
        Some(ApprovalFlaw::CreatorApproves) => (
            json!({"approvals": [manual(first, 1, ids), manual(second, 1, ids)], "approvalOptions": options(2, true, false)}),
            Some(("RL-02", format!("the release creator may approve {stage}"))),
        ),
        Some(ApprovalFlaw::OneApprover) => {
            let approvals = if rng.chance(0.5) {
                json!({"approvals": [manual(first, 1, ids)], "approvalOptions": options(0, false, false)})
            } else {
                json!({"approvals": [manual(first, 1, ids), manual(second, 1, ids)], "approvalOptions": options(1, false, false)})
            };
            (
                approvals,
                Some(("RL-03", format!("{stage} needs one approval"))),
            )
        }
        Some(ApprovalFlaw::SkippedAfterEarlier) => (
            json!({"approvals": [manual(first, 1, ids), manual(second, 1, ids)], "approvalOptions": options(2, false, true)}),
            Some((
                "RL-07",
                format!("{stage}'s approval is skipped after an earlier stage's"),
            )),
        ),
        None => {
            // Two approvers, all required: as "any order" (same rank, count 0 or 2) or
            // "sequential" (ranks 1 and 2).
            let sequential = rng.chance(0.2);
            let required = if rng.chance(0.5) { 0 } else { 2 };
            let second_rank = if sequential { 2 } else { 1 };
            (
                json!({"approvals": [manual(first, 1, ids), manual(second, second_rank, ids)],
                       "approvalOptions": options(required, false, false)}),
                None,
            )
        }
    }
}

/// Which layout and flaws definition `number` of project `project_index` gets. The first
/// seven definitions of the first project carry one flaw each, so every release control is
/// planted whatever the seed; the rest are drawn.
fn plan_for(rng: &mut SplitMix64, project_index: usize, number: usize) -> Plan {
    let sound = Plan {
        stages: FULL,
        automatic_production: true,
        approval: None,
        open_branch_filter: false,
        plain_secret: false,
        recent: false,
    };
    if project_index == 0 && number < 7 {
        return match number {
            0 => Plan {
                approval: Some(ApprovalFlaw::Automated),
                ..sound
            },
            1 => Plan {
                approval: Some(ApprovalFlaw::CreatorApproves),
                ..sound
            },
            2 => Plan {
                approval: Some(ApprovalFlaw::OneApprover),
                ..sound
            },
            3 => Plan {
                open_branch_filter: true,
                ..sound
            },
            4 => Plan {
                plain_secret: true,
                ..sound
            },
            5 => Plan {
                recent: true,
                ..sound
            },
            _ => Plan {
                approval: Some(ApprovalFlaw::SkippedAfterEarlier),
                ..sound
            },
        };
    }
    let layout = rng.next_f64();
    let stages = if layout < 0.45 {
        FULL
    } else if layout < 0.65 {
        SHORT
    } else if layout < 0.85 {
        NON_PRODUCTION
    } else {
        QA_PROD
    };
    // "Prod" after "qa" is deployed by hand in half of them.
    let automatic_production = stages != QA_PROD || rng.chance(0.5);
    let mut plan = Plan {
        stages,
        automatic_production,
        ..sound
    };
    let approval = rng.next_f64();
    let branch = rng.next_f64();
    let secret = rng.next_f64();
    let recent = rng.next_f64();
    if plan.has_production() {
        plan.approval = if approval < 0.03 {
            Some(ApprovalFlaw::Automated)
        } else if approval < 0.06 {
            Some(ApprovalFlaw::CreatorApproves)
        } else if approval < 0.09 {
            Some(ApprovalFlaw::OneApprover)
        } else if approval < 0.11 {
            Some(ApprovalFlaw::SkippedAfterEarlier)
        } else {
            None
        };
        plan.open_branch_filter = automatic_production && branch < 0.04;
    }
    plan.plain_secret = secret < 0.03;
    plan.recent = recent < 0.03;
    plan
}

/// A definition as Definitions_List returns it: the summary Microsoft's published examples
/// show, plus the parts `$expand` names (`environments` only as id, name, rank, schedules and
/// retention, as published).
pub fn listed(full: &str, expand: &str) -> String {
    let Ok(full) = serde_json::from_str::<Value>(full) else {
        return full.to_owned();
    };
    let mut summary = json!({"retentionPolicy": {"daysToKeep": 30}});
    for key in [
        "source",
        "id",
        "revision",
        "name",
        "description",
        "createdBy",
        "createdOn",
        "modifiedBy",
        "modifiedOn",
        "path",
        "variableGroups",
        "releaseNameFormat",
        "url",
        "_links",
        "properties",
    ] {
        summary[key] = full[key].clone();
    }
    for part in expand.split(',').map(|p| p.trim().to_lowercase()) {
        match part.as_str() {
            "environments" => {
                let stages: Vec<Value> = full["environments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        json!({"id": e["id"], "name": e["name"], "rank": e["rank"],
                               "schedules": e["schedules"], "retentionPolicy": e["retentionPolicy"]})
                    })
                    .collect();
                summary["environments"] = json!(stages);
            }
            "artifacts" | "triggers" | "variables" | "tags" => {
                let key = match part.as_str() {
                    "artifacts" => "artifacts",
                    "triggers" => "triggers",
                    "variables" => "variables",
                    _ => "tags",
                };
                summary[key] = full[key].clone();
            }
            _ => {}
        }
    }
    summary.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    fn definitions(org: &Org) -> Vec<Value> {
        org.collection(KIND)
            .iter()
            .filter_map(|(_, o)| serde_json::from_str(&o.json).ok())
            .collect()
    }

    #[test]
    fn every_release_control_is_planted_on_an_existing_definition() {
        let org = Org::generate("fabrikam", 7, Profile::Small, 1_790_000_000_000);
        assert_eq!(org.collection(KIND).len(), 2 * 3);
        let medium = Org::generate("fabrikam", 7, Profile::Medium, 1_790_000_000_000);
        assert_eq!(medium.collection(KIND).len(), 5 * 24);
        for control in [
            "RL-01", "RL-02", "RL-03", "RL-04", "RL-05", "RL-06", "RL-07",
        ] {
            assert!(
                medium
                    .planted
                    .iter()
                    .any(|p| p.control == control && p.kind == KIND),
                "{control} is not planted"
            );
        }
    }

    #[test]
    fn definitions_have_the_published_shape_and_sound_production_stages() {
        let org = Org::generate("fabrikam", 1, Profile::Medium, 1_790_000_000_000);
        let planted: Vec<&str> = org
            .planted
            .iter()
            .filter(|p| p.kind == KIND)
            .map(|p| p.id.as_str())
            .collect();
        let mut production_stages = 0;
        for (scope, object) in org.collection(KIND).iter() {
            let definition: Value = serde_json::from_str(&object.json).unwrap_or_default();
            assert_eq!(definition["id"].to_string(), object.ado_id);
            assert!(
                definition["environments"]
                    .as_array()
                    .is_some_and(|e| !e.is_empty())
            );
            assert!(
                definition["artifacts"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            );
            let key = InventoryItem::key_for(scope, &object.ado_id);
            if planted.contains(&key.as_str()) {
                continue;
            }
            for stage in definition["environments"].as_array().into_iter().flatten() {
                let name = stage["name"].as_str().unwrap_or_default().to_lowercase();
                if name != "production" && name != "prod" {
                    continue;
                }
                production_stages += 1;
                let approvals = &stage["preDeployApprovals"];
                let manual = approvals["approvals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|a| a["isAutomated"] == false)
                    .count();
                assert!(manual >= 2, "{key}: {approvals}");
                assert_eq!(
                    approvals["approvalOptions"]["releaseCreatorCanBeApprover"],
                    false
                );
            }
        }
        assert!(production_stages > 20);
    }

    #[test]
    fn the_list_returns_summaries_and_expands_what_it_is_asked_for() {
        let org = Org::generate("fabrikam", 1, Profile::Small, 1_790_000_000_000);
        let Some((_, object)) = org.collection(KIND).iter().next() else {
            panic!("no release definitions");
        };
        let plain: Value = serde_json::from_str(&listed(&object.json, "")).unwrap_or_default();
        assert!(plain["name"].is_string() && plain.get("environments").is_none());
        let expanded: Value = serde_json::from_str(&listed(&object.json, "environments,artifacts"))
            .unwrap_or_default();
        let stage = &expanded["environments"][0];
        assert!(stage["name"].is_string() && stage.get("preDeployApprovals").is_none());
        assert!(expanded["artifacts"].is_array() && expanded.get("variables").is_none());
    }

    #[test]
    fn the_same_seed_gives_the_same_release_definitions() {
        let generate = |seed| Org::generate("fabrikam", seed, Profile::Small, 1_790_000_000_000);
        assert_eq!(definitions(&generate(3)), definitions(&generate(3)));
        assert_ne!(definitions(&generate(3)), definitions(&generate(4)));
    }
}
