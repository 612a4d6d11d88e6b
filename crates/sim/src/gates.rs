//! The gates on the way to production, as the DevOps strategy sets them: release/* branches
//! protected like main; approvals per stage (QA lead for test, tech lead for staging, the
//! Change Advisory Board for production); branch control and an exclusive lock on production;
//! production service connections and variable groups behind approval and branch control, with
//! production secrets linked from Azure Key Vault. Plus the misconfigurations planted against
//! those controls (EN-03..EN-07, SC-03, SC-04, VG-02, VG-03, STR-07..STR-12).
//!
//! Shapes: approval and task checks follow the published check configurations (ado-fixtures
//! `checks/configurations/`); Branch control is a Task Check running the evaluateBranchProtection
//! task and Exclusive lock a check type of its own, neither with a published example (the ids
//! and inputs are the ones ADO's own UI and clients send); group approvers look like the group
//! reviewers of the published pull-request events; Key Vault variable groups follow the
//! distributedTask OpenAPI (`AzureKeyVaultVariableGroupProviderData`, `AzureKeyVaultVariableValue`).
//!
//! Generated after everything else, from a generator of its own, so that every object the rest
//! of the simulator makes for a seed stays as it was; existing checks and policies are edited
//! in place.

use serde_json::{Value, json};
use tollgate_domain::{InventoryItem, ResourceKind};

use crate::model::{Org, PEOPLE, Planted, ProjectInfo, check_types, identity, iso, policy_types};
use crate::rng::SplitMix64;

const DAY_MS: i64 = 86_400_000;
/// The Exclusive lock check type (clients send it in upper case).
const EXCLUSIVE_LOCK: &str = "2EF31AD6-BAA0-403A-8B45-2CBC9B4E5563";
/// The evaluateBranchProtection task that a Branch control check runs.
const BRANCH_CONTROL_TASK: &str = "86b05a0c-73e6-4f7d-b3cf-e38f3b39a75b";
const RELEASE_PREFIX: &str = "refs/heads/release/";
/// The share of repositories whose release branches get no policy at all.
const UNPROTECTED_RELEASE: f64 = 0.05;

/// A misconfiguration planted on some projects.
#[derive(Clone, Copy)]
enum Flaw {
    /// STR-08: test has no approval.
    TestUnapproved,
    /// STR-08: test is approved by an engineer, not the QA lead.
    TestWrongApprover,
    /// STR-09: staging is approved by an engineer, not the tech lead.
    StagingWrongApprover,
    /// EN-06 and STR-10: one named person approves production.
    ProductionSinglePerson,
    /// STR-10: two engineers approve production, not the CAB.
    ProductionEngineers,
    /// EN-03: production has no branch control.
    NoBranchControl,
    /// EN-04: production's branch control does not verify branch protection.
    LaxBranchControl,
    /// EN-05: production has no exclusive lock.
    NoExclusiveLock,
    /// EN-07: production's business-hours check is disabled.
    DisabledCheck,
    /// SC-03: a generic connection with a stored username and password.
    PasswordConnection,
    /// SC-04: a connection whose setup never completed.
    NotReadyConnection,
    /// STR-11: the production connection lacks one of its checks.
    UngatedConnection,
    /// VG-02: production secrets stored in the library.
    InlineProductionSecrets,
    /// VG-03: an expired Key Vault secret.
    ExpiredVaultSecret,
    /// STR-12: the production variable group lacks one of its checks.
    UngatedVariableGroup,
}

const FLAWS: usize = 15;

/// Which projects carry which flaw: each flaw lands on every third project, counted from an
/// offset drawn per seed, so a medium organisation has one or two of each.
struct Plan {
    offsets: [u64; FLAWS],
}

impl Plan {
    fn new(rng: &mut SplitMix64) -> Self {
        let mut offsets = [0; FLAWS];
        for offset in &mut offsets {
            *offset = rng.below(3);
        }
        Plan { offsets }
    }

    fn has(&self, flaw: Flaw, project_index: usize) -> bool {
        (project_index as u64 + self.offsets[flaw as usize]).is_multiple_of(3)
    }
}

fn person(rng: &mut SplitMix64) -> Value {
    let (name, mail) = PEOPLE[rng.below(PEOPLE.len() as u64) as usize];
    identity(name, mail)
}

/// Two different people.
fn two_people(rng: &mut SplitMix64) -> Vec<Value> {
    let count = PEOPLE.len() as u64;
    let first = rng.below(count);
    let second = (first + 1 + rng.below(count - 1)) % count;
    [first, second]
        .iter()
        .map(|i| {
            let (name, mail) = PEOPLE[*i as usize];
            identity(name, mail)
        })
        .collect()
}

/// A project group as an approver, shaped like the group reviewers ADO sends
/// ("[Project]\Group", a vstfs unique name, isContainer).
fn group(project: &ProjectInfo, name: &str) -> Value {
    let mut value = identity(
        name,
        &format!("{}@{}.groups.example", name.replace(' ', "-"), project.id),
    );
    let id = value["id"].as_str().unwrap_or_default().to_owned();
    value["displayName"] = json!(format!("[{}]\\{name}", project.name));
    value["uniqueName"] = json!(format!(
        "vstfs:///Classification/TeamProject/{}\\{name}",
        project.id
    ));
    value["descriptor"] = json!(format!("vssgp.{id}"));
    value["isContainer"] = json!(true);
    value
}

fn approval_settings(approvers: Vec<Value>) -> Value {
    json!({"approvers": approvers, "executionOrder": 1, "instructions": "", "blockedApprovers": [],
           "minRequiredApprovers": 1, "requesterCannotBeApprover": true})
}

fn branch_control_settings(verify_protection: bool) -> Value {
    json!({"definitionRef": {"id": BRANCH_CONTROL_TASK, "name": "evaluatebranchProtection", "version": "0.0.1"},
           "displayName": "Branch control",
           "inputs": {"allowedBranches": "refs/heads/main,refs/heads/release/*",
                      "ensureProtectionOfBranch": verify_protection.to_string(), "allowUnknownStatusBranch": "false"},
           "retryInterval": 5})
}

fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or(Value::Null)
}

fn live_blocking(policy: &Value) -> bool {
    policy["isEnabled"] == true && policy["isBlocking"] == true && policy["isDeleted"] == false
}

/// Does a policy apply to a branch of a repository? The same reading of scope entries as the
/// scan's facts and STR-07: repository (or all), then exact name, prefix or default branch.
fn applies(policy: &Value, repository: &str, branch: &str, default_branch: &str) -> bool {
    let Some(scopes) = policy["settings"]["scope"].as_array() else {
        return true;
    };
    scopes.iter().any(|scope| {
        let repository_matches = scope["repositoryId"]
            .as_str()
            .is_none_or(|id| id.eq_ignore_ascii_case(repository));
        let kind = scope["matchKind"]
            .as_str()
            .unwrap_or("exact")
            .to_lowercase();
        let ref_matches = match (kind.as_str(), scope["refName"].as_str()) {
            ("defaultbranch", _) => branch == default_branch,
            (_, None) => true,
            ("prefix", Some(prefix)) => branch.starts_with(prefix),
            (_, Some(name)) => branch == name,
        };
        repository_matches && ref_matches
    })
}

/// What STR-07 finds missing on a release branch, given the policies that cover it.
fn release_gaps(policies: &[&Value]) -> Vec<&'static str> {
    let reviewers: Vec<&Value> = policies
        .iter()
        .filter(|p| p["type"]["id"] == policy_types::MINIMUM_REVIEWERS)
        .map(|p| &p["settings"])
        .collect();
    let of_type = |id: &str| policies.iter().any(|p| p["type"]["id"] == id);
    let mut gaps = Vec::new();
    if !reviewers
        .iter()
        .any(|s| s["minimumApproverCount"].as_f64().unwrap_or(0.0) >= 2.0)
    {
        gaps.push("2 approvers");
    }
    if !reviewers.iter().any(|s| s["creatorVoteCounts"] != true) {
        gaps.push("approval by someone other than the author");
    }
    if !reviewers
        .iter()
        .any(|s| s["resetOnSourcePush"] == true || s["requireVoteOnLastIteration"] == true)
    {
        gaps.push("fresh approvals after a push");
    }
    for (id, gap) in [
        (policy_types::BUILD, "a passing build"),
        (policy_types::COMMENT_REQUIREMENTS, "resolved comments"),
        (policy_types::WORK_ITEM_LINKING, "a linked work item"),
    ] {
        if !of_type(id) {
            gaps.push(gap);
        }
    }
    gaps
}

impl Org {
    /// Everything this module adds, for every project.
    pub(crate) fn generate_gates(&mut self, seed: u64) {
        let mut rng = SplitMix64::new(seed ^ 0x9a7e_5c0d_e11a_0000);
        let plan = Plan::new(&mut rng);
        let projects = self.projects.clone();
        for (index, project) in projects.iter().enumerate() {
            let repositories: Vec<String> = self
                .collection(ResourceKind::Repositories)
                .scope(&project.id, None)
                .map(|(_, o)| o.ado_id.clone())
                .collect();
            for repository in repositories {
                self.protect_release_branches(&mut rng, project, &repository);
            }
            self.gate_environments(&mut rng, &plan, index, project);
            self.gate_service_connections(&mut rng, &plan, index, project);
            self.gate_variable_groups(&mut rng, &plan, index, project);
        }
    }

    /// A production resource's gates: a CAB approval and branch control, less the skipped
    /// one. Returns the name of the check left out (for the planted reason).
    fn gate_production_resource(
        &mut self,
        rng: &mut SplitMix64,
        project: &ProjectInfo,
        resource: &Value,
        skip_approval: bool,
        skip_branch_control: bool,
    ) -> &'static str {
        if !skip_approval {
            let settings = approval_settings(vec![group(project, "Change Advisory Board")]);
            self.put_gate_check(
                rng,
                project,
                (check_types::APPROVAL, "Approval"),
                resource,
                settings,
            );
        }
        if !skip_branch_control {
            self.put_gate_check(
                rng,
                project,
                (check_types::TASK_CHECK, "Task Check"),
                resource,
                branch_control_settings(true),
            );
        }
        if skip_approval {
            "approval"
        } else {
            "branch control"
        }
    }

    fn put_gate_check(
        &mut self,
        rng: &mut SplitMix64,
        project: &ProjectInfo,
        (type_id, type_name): (&str, &str),
        resource: &Value,
        settings: Value,
    ) -> String {
        let id = self.next_id();
        let created = self.now_ms - (20 + rng.below(200) as i64) * DAY_MS;
        let url = format!(
            "https://dev.azure.com/{}/{}/_apis/pipelines/checks/configurations/{id}",
            self.name, project.id
        );
        let json = json!({
            "settings": settings, "createdBy": person(rng), "createdOn": iso(created), "modifiedBy": person(rng), "modifiedOn": iso(created),
            "timeout": 43200, "_links": {"self": {"href": url}}, "id": id, "version": 1,
            "type": {"id": type_id, "name": type_name}, "url": url, "resource": resource,
        });
        self.insert_raw(
            ResourceKind::CheckConfigurations,
            &project.id,
            &id.to_string(),
            json,
            created,
        );
        id.to_string()
    }

    fn plant_gate(
        &mut self,
        control: &'static str,
        kind: ResourceKind,
        scope: &str,
        id: &str,
        why: impl Into<String>,
    ) {
        self.planted.push(Planted {
            control,
            kind,
            id: InventoryItem::key_for(scope, id),
            why: why.into(),
        });
    }

    /// Rewrite one stored object in place (same id, same modification time).
    fn edit(&mut self, kind: ResourceKind, scope: &str, id: &str, change: impl FnOnce(&mut Value)) {
        let Some(object) = self.collection(kind).get(scope, id) else {
            return;
        };
        let modified = object.modified_ms;
        let mut value = parse(&object.json);
        change(&mut value);
        self.insert_raw(kind, scope, id, value, modified);
    }

    /// The checks of a project on one resource: (id, json).
    fn checks_on(&self, project: &str, resource_id: &str) -> Vec<(String, Value)> {
        self.collection(ResourceKind::CheckConfigurations)
            .scope(project, None)
            .map(|(_, o)| (o.ado_id.clone(), parse(&o.json)))
            .filter(|(_, c)| c["resource"]["id"] == resource_id)
            .collect()
    }

    /// Extend a repository's main-branch policies to its release branches (some repositories
    /// are left without), then plant STR-07 wherever the result falls short.
    pub(crate) fn protect_release_branches(
        &mut self,
        rng: &mut SplitMix64,
        project: &ProjectInfo,
        repository: &str,
    ) {
        let has_release = self
            .collection(ResourceKind::Refs)
            .scope(repository, None)
            .any(|(_, o)| o.ado_id.starts_with(RELEASE_PREFIX));
        if has_release && !rng.chance(UNPROTECTED_RELEASE) {
            let main_policies: Vec<String> = self
                .collection(ResourceKind::PolicyConfigurations)
                .scope(&project.id, None)
                .filter(|(_, o)| {
                    let scope = &parse(&o.json)["settings"]["scope"][0];
                    scope["repositoryId"] == repository && scope["refName"] == "refs/heads/main"
                })
                .map(|(_, o)| o.ado_id.clone())
                .collect();
            for id in main_policies {
                self.edit(
                    ResourceKind::PolicyConfigurations,
                    &project.id,
                    &id,
                    |policy| {
                        if let Some(scopes) = policy["settings"]["scope"].as_array_mut() {
                            scopes.push(json!({"refName": RELEASE_PREFIX, "matchKind": "Prefix", "repositoryId": repository}));
                        }
                    },
                );
            }
        }
        self.sync_release_plant(&project.id, repository);
    }

    /// Plant (or withdraw) STR-07 for a repository from what its policies now say.
    pub(crate) fn sync_release_plant(&mut self, project: &str, repository: &str) {
        let key = InventoryItem::key_for(project, repository);
        self.planted
            .retain(|p| !(p.control == "STR-07" && p.id == key));
        if let Some(why) = self.release_gap(project, repository) {
            self.planted.push(Planted {
                control: "STR-07",
                kind: ResourceKind::Repositories,
                id: key,
                why,
            });
        }
    }

    fn release_gap(&self, project: &str, repository: &str) -> Option<String> {
        let repo = parse(
            &self
                .collection(ResourceKind::Repositories)
                .get(project, repository)?
                .json,
        );
        if repo["isDisabled"] == true {
            return None;
        }
        let default_branch = repo["defaultBranch"].as_str().unwrap_or_default();
        let policies: Vec<Value> = self
            .collection(ResourceKind::PolicyConfigurations)
            .scope(project, None)
            .map(|(_, o)| parse(&o.json))
            .filter(|p| p["isDeleted"] != true && p["isEnabled"] != false)
            .collect();
        // A repository without any blocking policy on its default branch is BP-01's.
        if !policies
            .iter()
            .any(|p| live_blocking(p) && applies(p, repository, default_branch, default_branch))
        {
            return None;
        }
        let branches: Vec<String> = self
            .collection(ResourceKind::Refs)
            .scope(repository, None)
            .map(|(_, o)| o.ado_id.clone())
            .filter(|name| name.starts_with(RELEASE_PREFIX))
            .collect();
        branches.iter().find_map(|branch| {
            let covering: Vec<&Value> = policies
                .iter()
                .filter(|p| live_blocking(p) && applies(p, repository, branch, default_branch))
                .collect();
            let gaps = release_gaps(&covering);
            (!gaps.is_empty()).then(|| format!("{branch} does not require {}", gaps.join(", ")))
        })
    }

    fn gate_environments(
        &mut self,
        rng: &mut SplitMix64,
        plan: &Plan,
        index: usize,
        project: &ProjectInfo,
    ) {
        let environments: Vec<(String, String)> = self
            .collection(ResourceKind::Environments)
            .scope(&project.id, None)
            .map(|(_, o)| {
                let name = parse(&o.json)["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (o.ado_id.clone(), name)
            })
            .collect();
        for (id, name) in environments {
            let resource = json!({"type": "environment", "id": id, "name": name});
            let approvals: Vec<String> = self
                .checks_on(&project.id, &id)
                .into_iter()
                .filter(|(_, c)| c["type"]["id"] == check_types::APPROVAL)
                .map(|(check, _)| check)
                .collect();
            match name.as_str() {
                "test" => {
                    if plan.has(Flaw::TestUnapproved, index) {
                        self.plant_gate(
                            "STR-08",
                            ResourceKind::Environments,
                            &project.id,
                            &id,
                            "test has no approval check",
                        );
                        continue;
                    }
                    let approvers = if plan.has(Flaw::TestWrongApprover, index) {
                        let engineer = person(rng);
                        let why = format!(
                            "test is approved by {}, not the QA lead",
                            engineer["displayName"].as_str().unwrap_or_default()
                        );
                        self.plant_gate(
                            "STR-08",
                            ResourceKind::Environments,
                            &project.id,
                            &id,
                            why,
                        );
                        vec![engineer]
                    } else {
                        vec![group(project, "QA Leads")]
                    };
                    self.put_gate_check(
                        rng,
                        project,
                        (check_types::APPROVAL, "Approval"),
                        &resource,
                        approval_settings(approvers),
                    );
                }
                "staging" => {
                    if plan.has(Flaw::StagingWrongApprover, index) {
                        // The single engineer the rest of the simulator names stays.
                        if !approvals.is_empty() {
                            self.plant_gate(
                                "STR-09",
                                ResourceKind::Environments,
                                &project.id,
                                &id,
                                "staging is approved by an engineer, not the tech lead",
                            );
                        }
                        continue;
                    }
                    let tech_leads = group(project, "Tech Leads");
                    for check in &approvals {
                        let approvers = json!([tech_leads.clone()]);
                        self.edit(ResourceKind::CheckConfigurations, &project.id, check, |c| {
                            c["settings"]["approvers"] = approvers;
                        });
                    }
                    if approvals.is_empty() {
                        self.plant_gate(
                            "STR-09",
                            ResourceKind::Environments,
                            &project.id,
                            &id,
                            "staging has no approval check",
                        );
                    }
                }
                "production" => {
                    self.gate_production(rng, plan, index, project, &id, &resource, &approvals)
                }
                _ => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gate_production(
        &mut self,
        rng: &mut SplitMix64,
        plan: &Plan,
        index: usize,
        project: &ProjectInfo,
        id: &str,
        resource: &Value,
        approvals: &[String],
    ) {
        // Approvers of the approval check, when there is one (EN-01 plants production without).
        for check in approvals {
            let approvers = if plan.has(Flaw::ProductionSinglePerson, index) {
                let only = person(rng);
                let name = only["displayName"].as_str().unwrap_or_default().to_owned();
                self.plant_gate(
                    "EN-06",
                    ResourceKind::CheckConfigurations,
                    &project.id,
                    check,
                    format!("only {name} can approve production"),
                );
                self.plant_gate(
                    "STR-10",
                    ResourceKind::Environments,
                    &project.id,
                    id,
                    format!("production is approved by {name}, not the CAB"),
                );
                json!([only])
            } else if plan.has(Flaw::ProductionEngineers, index) {
                self.plant_gate(
                    "STR-10",
                    ResourceKind::Environments,
                    &project.id,
                    id,
                    "production is approved by two engineers, not the CAB",
                );
                json!(two_people(rng))
            } else {
                json!([group(project, "Change Advisory Board")])
            };
            self.edit(ResourceKind::CheckConfigurations, &project.id, check, |c| {
                c["settings"]["approvers"] = approvers;
            });
        }
        if plan.has(Flaw::NoBranchControl, index) {
            self.plant_gate(
                "EN-03",
                ResourceKind::Environments,
                &project.id,
                id,
                "production has no branch control",
            );
        } else {
            let lax = plan.has(Flaw::LaxBranchControl, index);
            let check = self.put_gate_check(
                rng,
                project,
                (check_types::TASK_CHECK, "Task Check"),
                resource,
                branch_control_settings(!lax),
            );
            if lax {
                self.plant_gate(
                    "EN-04",
                    ResourceKind::CheckConfigurations,
                    &project.id,
                    &check,
                    "branch control does not verify branch protection",
                );
            }
        }
        if plan.has(Flaw::NoExclusiveLock, index) {
            self.plant_gate(
                "EN-05",
                ResourceKind::Environments,
                &project.id,
                id,
                "production has no exclusive lock",
            );
        } else {
            self.put_gate_check(
                rng,
                project,
                (EXCLUSIVE_LOCK, "ExclusiveLock"),
                resource,
                json!({}),
            );
        }
        if plan.has(Flaw::DisabledCheck, index) {
            let hours: Vec<String> = self
                .checks_on(&project.id, id)
                .into_iter()
                .filter(|(_, c)| c["settings"]["definitionRef"]["name"] == "evaluatebusinesshours")
                .map(|(check, _)| check)
                .collect();
            for check in hours {
                self.edit(
                    ResourceKind::CheckConfigurations,
                    &project.id,
                    &check,
                    |c| {
                        c["isDisabled"] = json!(true);
                    },
                );
                self.plant_gate(
                    "EN-07",
                    ResourceKind::CheckConfigurations,
                    &project.id,
                    &check,
                    "the business-hours check on production is disabled",
                );
            }
        }
    }

    fn put_connection(
        &mut self,
        rng: &mut SplitMix64,
        project: &ProjectInfo,
        name: &str,
        (kind, url): (&str, &str),
        authorization: Value,
        ready: bool,
    ) -> String {
        let id = rng.guid();
        let created = self.now_ms - (30 + rng.below(250) as i64) * DAY_MS;
        let json = json!({
            "data": if kind == "azurerm" { json!({"environment": "AzureCloud", "scopeLevel": "Subscription", "subscriptionId": rng.guid(), "creationMode": "Manual"}) } else { json!({}) },
            "id": id, "name": name, "type": kind, "url": url,
            "createdBy": person(rng), "description": "", "authorization": authorization,
            "isShared": false, "isReady": ready, "owner": "Library",
            "serviceEndpointProjectReferences": [{"projectReference": {"id": project.id, "name": project.name}, "name": name, "description": ""}],
        });
        self.insert_raw(
            ResourceKind::ServiceEndpoints,
            &project.id,
            &id,
            json,
            created,
        );
        id
    }

    fn gate_service_connections(
        &mut self,
        rng: &mut SplitMix64,
        plan: &Plan,
        index: usize,
        project: &ProjectInfo,
    ) {
        let prefix = project.name.to_lowercase();
        let federated = |rng: &mut SplitMix64| {
            json!({"parameters": {"tenantid": rng.guid(), "serviceprincipalid": rng.guid(), "workloadIdentityFederationSubject": format!("sc://fabrikam/{}/{prefix}-azurerm-prod", project.name)},
                   "scheme": "WorkloadIdentityFederation"})
        };
        let authorization = federated(rng);
        let name = format!("{prefix}-azurerm-prod");
        let id = self.put_connection(
            rng,
            project,
            &name,
            ("azurerm", "https://management.azure.com/"),
            authorization,
            true,
        );
        let resource = json!({"type": "endpoint", "id": id, "name": name});
        // Without one of its two checks (alternately the approval or the branch control).
        let ungated = plan.has(Flaw::UngatedConnection, index);
        let even = index.is_multiple_of(2);
        let (skip_approval, skip_branch_control) = (ungated && even, ungated && !even);
        let missing = self.gate_production_resource(
            rng,
            project,
            &resource,
            skip_approval,
            skip_branch_control,
        );
        if ungated {
            self.plant_gate(
                "STR-11",
                ResourceKind::ServiceEndpoints,
                &project.id,
                &id,
                format!("production connection without {missing}"),
            );
        }
        if plan.has(Flaw::PasswordConnection, index) {
            let authorization = json!({"parameters": {"username": format!("{prefix}-ci"), "password": null}, "scheme": "UsernamePassword"});
            let id = self.put_connection(
                rng,
                project,
                &format!("{prefix}-artifactory"),
                ("generic", "https://artifactory.fabrikam.example"),
                authorization,
                true,
            );
            self.plant_gate(
                "SC-03",
                ResourceKind::ServiceEndpoints,
                &project.id,
                &id,
                "generic connection with a stored username and password",
            );
        }
        if plan.has(Flaw::NotReadyConnection, index) {
            let authorization = federated(rng);
            let id = self.put_connection(
                rng,
                project,
                &format!("{prefix}-azurerm-sandbox"),
                ("azurerm", "https://management.azure.com/"),
                authorization,
                false,
            );
            self.plant_gate(
                "SC-04",
                ResourceKind::ServiceEndpoints,
                &project.id,
                &id,
                "connection setup never completed (isReady false)",
            );
        }
    }

    fn gate_variable_groups(
        &mut self,
        rng: &mut SplitMix64,
        plan: &Plan,
        index: usize,
        project: &ProjectInfo,
    ) {
        let id = self.next_id().to_string();
        let name = format!("{}-prod", project.name.to_lowercase());
        let created = self.now_ms - (30 + rng.below(250) as i64) * DAY_MS;
        let vault = format!("kv-{}-prod", project.name.to_lowercase());
        let connection = self
            .collection(ResourceKind::ServiceEndpoints)
            .scope(&project.id, None)
            .find(|(_, o)| {
                parse(&o.json)["name"] == format!("{}-azurerm-prod", project.name.to_lowercase())
            })
            .map(|(_, o)| o.ado_id.clone())
            .unwrap_or_default();
        let inline = plan.has(Flaw::InlineProductionSecrets, index);
        let expired = !inline && plan.has(Flaw::ExpiredVaultSecret, index);
        let mut group_json = json!({
            "id": id, "type": "AzureKeyVault", "name": name, "description": "Production secrets",
            "providerData": {"serviceEndpointId": connection, "vault": vault, "lastRefreshedOn": iso(self.now_ms - DAY_MS)},
            "variables": {
                "dbPassword": {"isSecret": true, "value": null, "enabled": true, "contentType": "",
                               "expires": iso(self.now_ms + (if expired { -20 } else { 180 }) * DAY_MS)},
                "apiKey": {"isSecret": true, "value": null, "enabled": true, "contentType": "", "expires": iso(self.now_ms + 300 * DAY_MS)},
            },
            "createdBy": person(rng), "createdOn": iso(created), "modifiedBy": person(rng), "modifiedOn": iso(created),
            "isShared": false, "variableGroupProjectReferences": [{"projectReference": {"id": project.id, "name": project.name}, "name": name}],
        });
        if inline {
            group_json["type"] = json!("Vsts");
            if let Some(fields) = group_json.as_object_mut() {
                fields.remove("providerData");
            }
            group_json["variables"] = json!({"dbPassword": {"isSecret": true, "value": null}, "apiKey": {"isSecret": true, "value": null}});
            self.plant_gate(
                "VG-02",
                ResourceKind::VariableGroups,
                &project.id,
                &id,
                "production secrets stored in the library, not Key Vault",
            );
        }
        if expired {
            self.plant_gate(
                "VG-03",
                ResourceKind::VariableGroups,
                &project.id,
                &id,
                "dbPassword expired in Key Vault 20 days ago",
            );
        }
        self.insert_raw(
            ResourceKind::VariableGroups,
            &project.id,
            &id,
            group_json,
            created,
        );
        let resource = json!({"type": "variablegroup", "id": id, "name": name});
        let ungated = plan.has(Flaw::UngatedVariableGroup, index);
        // The opposite check to the connection's, so both kinds of gap occur.
        let even = index.is_multiple_of(2);
        let (skip_approval, skip_branch_control) = (ungated && !even, ungated && even);
        let missing = self.gate_production_resource(
            rng,
            project,
            &resource,
            skip_approval,
            skip_branch_control,
        );
        if ungated {
            self.plant_gate(
                "STR-12",
                ResourceKind::VariableGroups,
                &project.id,
                &id,
                format!("production variable group without {missing}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::profile::Profile;

    const CONTROLS: &[&str] = &[
        "EN-03", "EN-04", "EN-05", "EN-06", "EN-07", "SC-03", "SC-04", "VG-02", "VG-03", "STR-07",
        "STR-08", "STR-09", "STR-10", "STR-11", "STR-12",
    ];

    fn planted(org: &Org) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for p in org.planted.iter().filter(|p| CONTROLS.contains(&p.control)) {
            *counts.entry(p.control).or_default() += 1;
        }
        counts
    }

    #[test]
    fn every_gate_control_is_planted_at_the_acceptance_seeds() {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for seed in [1, 7, 42] {
            let org = Org::generate("fabrikam", seed, Profile::Medium, 1_790_000_000_000);
            let counts = planted(&org);
            eprintln!("seed {seed}: {counts:?}");
            for (control, n) in counts {
                *seen.entry(control).or_default() += n;
            }
        }
        for control in CONTROLS {
            assert!(
                seen.get(control).copied().unwrap_or(0) > 0,
                "{control} is never planted"
            );
        }
    }
}
