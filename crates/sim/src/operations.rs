//! Day-to-day operations of the organisation and what goes wrong in them: agent pools and
//! queues, secure files, teams, the audit history (bypasses, removed policies, streams,
//! visibility, leaked tokens, organisation policies), the work-item hierarchy across projects,
//! branches, and deployments to production.
//!
//! Generated after everything else, from a generator of their own (lent to the organisation
//! while its own helpers write runs, deployments and audit entries), so that adding them left
//! every other object of a seed as it was. Each planted fault is recorded in the manifest.

use serde_json::{Value, json};
use tollgate_domain::{InventoryItem, ResourceKind};

use crate::model::{Org, PEOPLE, Planted, ProjectInfo, check_types, identity, iso};
use crate::rng::SplitMix64;

const DAY_MS: i64 = 86_400_000;
/// Mixed into the seed so this generator's sequence differs from the organisation's.
const STREAM: u64 = 0x6f70_6572_6174_696f;

impl Org {
    pub(crate) fn generate_operations(&mut self, seed: u64) {
        let mut rng = SplitMix64::new(seed ^ STREAM);
        if self.projects.is_empty() {
            return;
        }
        self.plant_pool_faults(&mut rng);
        self.plant_secure_file_faults(&mut rng);
        self.plant_team_fault();
        self.plant_hierarchy_faults();
        self.plant_ref_faults(&mut rng);
        // These borrow the organisation's own helpers, which draw from its generator: lend
        // them ours for the duration.
        std::mem::swap(self.rng(), &mut rng);
        self.plant_audit_history();
        self.plant_deployment_faults();
        std::mem::swap(self.rng(), &mut rng);
    }

    /// The project at `index`, wrapping around for small organisations.
    fn nth_project(&self, index: usize) -> ProjectInfo {
        self.projects[index % self.projects.len()].clone()
    }

    /// Every object of a kind in a scope, parsed, in listing order.
    fn parsed(&self, kind: ResourceKind, scope: &str) -> Vec<(String, Value)> {
        self.collection(kind)
            .scope(scope, None)
            .filter_map(|(_, object)| {
                serde_json::from_str::<Value>(&object.json)
                    .ok()
                    .map(|value| (object.ado_id.clone(), value))
            })
            .collect()
    }

    /// Change one stored object in place; `modified_ms` stays unless given.
    fn rewrite(
        &mut self,
        kind: ResourceKind,
        scope: &str,
        ado_id: &str,
        modified_ms: Option<i64>,
        change: impl FnOnce(&mut Value),
    ) {
        let Some(object) = self.collection(kind).get(scope, ado_id) else {
            return;
        };
        let Ok(mut value) = serde_json::from_str::<Value>(&object.json) else {
            return;
        };
        let modified = modified_ms.unwrap_or(object.modified_ms);
        change(&mut value);
        self.insert_raw(kind, scope, ado_id, value, modified);
    }

    fn record(
        &mut self,
        control: &'static str,
        kind: ResourceKind,
        scope: &str,
        ado_id: &str,
        why: &str,
    ) {
        self.planted.push(Planted {
            control,
            kind,
            id: InventoryItem::key_for(scope, ado_id),
            why: why.to_owned(),
        });
    }

    fn days_ago(&self, rng: &mut SplitMix64, min: i64, max: i64) -> i64 {
        let span = ((max - min) * DAY_MS).max(1) as u64;
        self.now_ms - min * DAY_MS - rng.below(span) as i64
    }

    /// AP-02, AP-03 on self-hosted pools; AQ-01: a project still queues to a legacy hosted pool.
    fn plant_pool_faults(&mut self, rng: &mut SplitMix64) {
        let self_hosted: Vec<String> = self
            .parsed(ResourceKind::AgentPools, "")
            .into_iter()
            .filter(|(_, pool)| pool["isHosted"] == false)
            .map(|(id, _)| id)
            .collect();
        // The auto-provisioned pool (AP-01) lost its last agent: offered everywhere, served by nobody.
        if let Some(first) = self_hosted.first().cloned() {
            self.rewrite(ResourceKind::AgentPools, "", &first, None, |pool| {
                pool["size"] = json!(0);
            });
            self.record(
                "AP-03",
                ResourceKind::AgentPools,
                "",
                &first,
                "self-hosted pool without agents",
            );
        }
        if let Some(last) = self_hosted.last().cloned() {
            self.rewrite(ResourceKind::AgentPools, "", &last, None, |pool| {
                pool["autoUpdate"] = json!(false);
            });
            self.record(
                "AP-02",
                ResourceKind::AgentPools,
                "",
                &last,
                "agents never update",
            );
        }

        // The legacy hosted pool as the recorded pools list shows it, and one project's queue on it.
        let pool_id = self.next_id();
        let scope = rng.guid();
        let service = identity(
            "Microsoft.VisualStudio.Services.TFS",
            "tfs-service@fabrikam.example",
        );
        let created = self.days_ago(rng, 1_500, 2_000);
        let pool = json!({
            "createdOn": iso(created), "autoProvision": true, "autoUpdate": true, "autoSize": true, "targetSize": null,
            "agentCloudId": 1, "createdBy": service, "owner": service, "id": pool_id, "scope": scope, "name": "Hosted VS2017",
            "isHosted": true, "poolType": "automation", "size": 1, "isLegacy": true, "options": "none",
        });
        self.insert_raw(
            ResourceKind::AgentPools,
            "",
            &pool_id.to_string(),
            pool,
            created,
        );
        let project = self.nth_project(2);
        let queue_id = self.next_id();
        let queue = json!({
            "id": queue_id, "projectId": project.id, "name": "Hosted VS2017",
            "pool": {"id": pool_id, "scope": scope, "name": "Hosted VS2017", "isHosted": true, "poolType": "automation",
                     "size": 1, "isLegacy": true, "options": "none"},
        });
        self.insert_raw(
            ResourceKind::AgentQueues,
            &project.id,
            &queue_id.to_string(),
            queue,
            created,
        );
        self.record(
            "AQ-01",
            ResourceKind::AgentQueues,
            &project.id,
            &queue_id.to_string(),
            "queue on the retired Hosted VS2017 pool",
        );
    }

    /// SF-01: a production signing key without approval (and one with: the clean case);
    /// SF-02: a file untouched for well over a year; SF-03: a key id in a file name.
    fn plant_secure_file_faults(&mut self, rng: &mut SplitMix64) {
        let files_of = |org: &Org, project: &ProjectInfo| -> Vec<String> {
            org.parsed(ResourceKind::SecureFiles, &project.id)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        let first = self.nth_project(0);
        if let Some(file) = files_of(self, &first).first().cloned() {
            self.rewrite(ResourceKind::SecureFiles, &first.id, &file, None, |f| {
                f["name"] = json!("prod-signing.pfx");
            });
            self.record(
                "SF-01",
                ResourceKind::SecureFiles,
                &first.id,
                &file,
                "production signing certificate without an approval check",
            );
        }
        let second = self.nth_project(1);
        // Production key material with an approval: SF-01 passes it.
        if let Some(file) = files_of(self, &second).first().cloned()
            && second.id != first.id
        {
            self.rewrite(ResourceKind::SecureFiles, &second.id, &file, None, |f| {
                f["name"] = json!("production-api.pfx");
            });
            self.approval_on_secure_file(rng, &second, &file, "production-api.pfx");
        }
        let third = self.nth_project(2);
        if let Some(file) = files_of(self, &third).get(1).cloned() {
            let changed = self.days_ago(rng, 400, 600);
            self.rewrite(
                ResourceKind::SecureFiles,
                &third.id,
                &file,
                Some(changed),
                |f| {
                    f["createdOn"] = json!(iso(changed));
                    f["modifiedOn"] = json!(iso(changed));
                },
            );
            self.record(
                "SF-02",
                ResourceKind::SecureFiles,
                &third.id,
                &file,
                "not replaced for over a year",
            );
        }
        if let Some(file) = files_of(self, &first).last().cloned() {
            self.rewrite(ResourceKind::SecureFiles, &first.id, &file, None, |f| {
                // AWS's documented example access key id.
                f["name"] = json!("deploy-AKIAIOSFODNN7EXAMPLE.pem");
            });
            self.record(
                "SF-03",
                ResourceKind::SecureFiles,
                &first.id,
                &file,
                "an access key id in the file name",
            );
        }
    }

    /// An Approval check on a secure file, shaped as the environment approvals are.
    fn approval_on_secure_file(
        &mut self,
        rng: &mut SplitMix64,
        project: &ProjectInfo,
        file: &str,
        name: &str,
    ) {
        let id = self.next_id();
        let created = self.days_ago(rng, 20, 40);
        let person = |rng: &mut SplitMix64| {
            let (name, mail) = PEOPLE[rng.below(PEOPLE.len() as u64) as usize];
            identity(name, mail)
        };
        let url = format!(
            "https://dev.azure.com/{}/{}/_apis/pipelines/checks/configurations/{id}",
            self.name, project.id
        );
        let check = json!({
            "settings": {"approvers": [person(rng), person(rng)], "executionOrder": 1, "instructions": "Release signing only",
                         "blockedApprovers": [], "minRequiredApprovers": 1, "requesterCannotBeApprover": true},
            "createdBy": person(rng), "createdOn": iso(created), "modifiedBy": person(rng), "modifiedOn": iso(created),
            "timeout": 43200, "_links": {"self": {"href": url}}, "id": id, "version": 1,
            "type": {"id": check_types::APPROVAL, "name": "Approval"}, "url": url,
            "resource": {"type": "securefile", "id": file, "name": name},
        });
        self.insert_raw(
            ResourceKind::CheckConfigurations,
            &project.id,
            &id.to_string(),
            check,
            created,
        );
    }

    /// TM-01: one team nobody described.
    fn plant_team_fault(&mut self) {
        let project = self.nth_project(1);
        let Some((team, _)) = self.parsed(ResourceKind::Teams, &project.id).pop() else {
            return;
        };
        self.rewrite(ResourceKind::Teams, &project.id, &team, None, |t| {
            t["description"] = json!("");
        });
        self.record(
            "TM-01",
            ResourceKind::Teams,
            &project.id,
            &team,
            "team without a description",
        );
    }

    /// WI-04: a Feature closed over open stories; WI-03: a Task hung straight under a Feature;
    /// WI-05: a Task whose parent story is in another project.
    fn plant_hierarchy_faults(&mut self) {
        let first = self.nth_project(0);
        let items = self.parsed(ResourceKind::WorkItems, &first.id);
        let planted: Vec<String> = self.planted.iter().map(|p| p.id.clone()).collect();
        let free = |kind: &str| -> Vec<u64> {
            let mut ids: Vec<u64> = items
                .iter()
                .filter(|(id, item)| {
                    item["fields"]["System.WorkItemType"] == kind
                        && !planted.contains(&InventoryItem::key_for(&first.id, id))
                })
                .filter_map(|(id, _)| id.parse().ok())
                .collect();
            ids.sort_unstable();
            ids
        };
        let (features, stories, tasks) = (free("Feature"), free("User Story"), free("Task"));
        if let Some(feature) = features.first() {
            let key = feature.to_string();
            self.rewrite(ResourceKind::WorkItems, &first.id, &key, None, |item| {
                item["fields"]["System.State"] = json!("Closed");
            });
            self.record(
                "WI-04",
                ResourceKind::WorkItems,
                &first.id,
                &key,
                "feature closed while its stories are open",
            );
        }
        if let (Some(feature), Some(task)) = (features.get(1), tasks.first()) {
            self.reparent(&first, *task, &first, *feature);
            self.record(
                "WI-03",
                ResourceKind::WorkItems,
                &first.id,
                &task.to_string(),
                "a task's parent is a feature",
            );
        }
        let other = self.nth_project(1);
        if other.id == first.id {
            return;
        }
        let foreign_tasks: Vec<u64> = {
            let mut ids: Vec<u64> = self
                .parsed(ResourceKind::WorkItems, &other.id)
                .into_iter()
                .filter(|(_, item)| item["fields"]["System.WorkItemType"] == "Task")
                .filter_map(|(id, _)| id.parse().ok())
                .collect();
            ids.sort_unstable();
            ids
        };
        if let (Some(story), Some(task)) = (stories.first(), foreign_tasks.first()) {
            self.reparent(&other, *task, &first, *story);
            self.record(
                "WI-05",
                ResourceKind::WorkItems,
                &other.id,
                &task.to_string(),
                "a task's parent story is in another project",
            );
        }
    }

    /// Move a work item under a new parent, updating both sides' hierarchy links as ADO does.
    fn reparent(
        &mut self,
        project: &ProjectInfo,
        child: u64,
        parent_project: &ProjectInfo,
        parent: u64,
    ) {
        let url = |id: u64| {
            format!(
                "https://dev.azure.com/{}/_apis/wit/workItems/{id}",
                self.name
            )
        };
        let (child_url, parent_url) = (url(child), url(parent));
        let mut old_parent = None;
        self.rewrite(
            ResourceKind::WorkItems,
            &project.id,
            &child.to_string(),
            None,
            |item| {
                old_parent = item["fields"]["System.Parent"].as_u64();
                item["fields"]["System.Parent"] = json!(parent);
                if let Some(relations) = item["relations"].as_array_mut() {
                    relations.retain(|r| r["rel"] != "System.LinkTypes.Hierarchy-Reverse");
                    relations.push(
                        json!({"rel": "System.LinkTypes.Hierarchy-Reverse", "url": parent_url,
                                      "attributes": {"isLocked": false, "name": "Parent"}}),
                    );
                }
            },
        );
        if let Some(old) = old_parent {
            // The old parent is in the child's project (the generator never links across).
            self.rewrite(
                ResourceKind::WorkItems,
                &project.id,
                &old.to_string(),
                None,
                |item| {
                    if let Some(relations) = item["relations"].as_array_mut() {
                        relations.retain(|r| {
                            !(r["rel"] == "System.LinkTypes.Hierarchy-Forward"
                                && r["url"] == json!(child_url))
                        });
                    }
                },
            );
        }
        self.rewrite(
            ResourceKind::WorkItems,
            &parent_project.id,
            &parent.to_string(),
            None,
            |item| {
                if let Some(relations) = item["relations"].as_array_mut() {
                    relations.push(
                        json!({"rel": "System.LinkTypes.Hierarchy-Forward", "url": child_url,
                                      "attributes": {"isLocked": false, "name": "Child"}}),
                    );
                }
            },
        );
    }

    /// RF-01: a locked develop branch; RF-02: a branch outside the naming standard.
    fn plant_ref_faults(&mut self, rng: &mut SplitMix64) {
        let first = self.nth_project(0);
        if let Some((repo, _)) = self
            .parsed(ResourceKind::Repositories, &first.id)
            .first()
            .cloned()
        {
            let branch = "refs/heads/develop";
            if self
                .collection(ResourceKind::Refs)
                .get(&repo, branch)
                .is_some()
            {
                let (name, mail) = PEOPLE[rng.below(PEOPLE.len() as u64) as usize];
                let by = identity(name, mail);
                self.rewrite(ResourceKind::Refs, &repo, branch, None, |r| {
                    r["isLocked"] = json!(true);
                    r["isLockedBy"] = by;
                });
                self.record(
                    "RF-01",
                    ResourceKind::Refs,
                    &repo,
                    branch,
                    "develop left locked",
                );
            }
        }
        let second = self.nth_project(1);
        if let Some((repo, _)) = self
            .parsed(ResourceKind::Repositories, &second.id)
            .first()
            .cloned()
        {
            let branch = "refs/heads/bo-experiment";
            let (name, mail) = PEOPLE[1];
            let created = self.days_ago(rng, 5, 30);
            let json = json!({
                "name": branch, "objectId": rng.sha(), "creator": identity(name, mail),
                "url": format!("https://dev.azure.com/{}/{}/_apis/git/repositories/{repo}/refs?filter=heads/bo-experiment", self.name, second.id),
            });
            self.insert_raw(ResourceKind::Refs, &repo, branch, json, created);
            self.record(
                "RF-02",
                ResourceKind::Refs,
                &repo,
                branch,
                "a personal branch outside the naming standard",
            );
        }
    }

    /// AU-01 … AU-06: one entry of each kind of event, with the harmless entries around it.
    /// Uses the organisation's audit writer (with this module's generator lent to it).
    fn plant_audit_history(&mut self) {
        let day = |org: &mut Org, min: i64, max: i64| {
            let span = ((max - min) * DAY_MS) as u64;
            org.now_ms - min * DAY_MS - org.rng().below(span) as i64
        };

        // AU-01: a push past the branch policies of main.
        let first = self.nth_project(0);
        if let Some((repo_id, repo)) = self
            .parsed(ResourceKind::Repositories, &first.id)
            .first()
            .cloned()
        {
            let repo_name = repo["name"].as_str().unwrap_or_default().to_owned();
            let at = day(self, 1, 30);
            let id = self.audit_with_data(
                "Git.RefUpdatePoliciesBypassed",
                Some(&first),
                &format!("Policies on \"main\" were bypassed in Git repository \"{repo_name}\" in project {}", first.name),
                json!({"ProjectId": first.id, "ProjectName": first.name, "RepoId": repo_id, "RepoName": repo_name, "FriendlyName": "main"}),
                at,
            );
            self.record(
                "AU-01",
                ResourceKind::AuditLog,
                "",
                &id,
                "branch policies bypassed on main",
            );
        }

        // AU-02: a minimum-reviewers policy removed (after an unrelated one was created).
        let second = self.nth_project(1);
        if let Some((repo_id, repo)) = self
            .parsed(ResourceKind::Repositories, &second.id)
            .first()
            .cloned()
        {
            let repo_name = repo["name"].as_str().unwrap_or_default().to_owned();
            let created = day(self, 40, 60);
            self.audit_with_data(
                "Policy.PolicyConfigCreated",
                Some(&second),
                &format!("Created Build policy in project {}", second.name),
                json!({"PolicyTypeDisplayName": "Build", "ProjectId": second.id, "ProjectName": second.name,
                       "RepoId": repo_id, "RepoName": repo_name, "RefName": "refs/heads/main"}),
                created,
            );
            let at = day(self, 1, 30);
            let id = self.audit_with_data(
                "Policy.PolicyConfigRemoved",
                Some(&second),
                &format!("Removed Minimum number of reviewers policy in project {}", second.name),
                json!({"PolicyTypeDisplayName": "Minimum number of reviewers", "ProjectId": second.id, "ProjectName": second.name,
                       "RepoId": repo_id, "RepoName": repo_name, "RefName": "refs/heads/main"}),
                at,
            );
            self.record(
                "AU-02",
                ResourceKind::AuditLog,
                "",
                &id,
                "minimum-reviewers policy removed",
            );
        }

        // AU-03: the SIEM stream, set up and later switched off by hand.
        let stream = json!({"ConsumerType": "Splunk", "displayName": "siem.fabrikam.example"});
        let created = day(self, 60, 80);
        self.audit_with_data(
            "AuditLog.StreamCreated",
            None,
            "Stream for Splunk was set up to send auditing events to siem.fabrikam.example.",
            stream.clone(),
            created,
        );
        let at = day(self, 1, 30);
        let id = self.audit_with_data(
            "AuditLog.StreamDisabledByUser",
            None,
            "Stream for Splunk to send auditing data to siem.fabrikam.example was disabled.",
            stream,
            at,
        );
        self.record(
            "AU-03",
            ResourceKind::AuditLog,
            "",
            &id,
            "audit stream disabled",
        );

        // AU-04: a project made public for a while, then private again (PJ-01 sees only "now").
        let third = self.nth_project(2);
        let visibility = |from: &str, to: &str| json!({"ProjectId": third.id, "ProjectName": third.name, "PreviousProjectVisibility": from, "ProjectVisibility": to});
        let at = day(self, 15, 25);
        let id = self.audit_with_data(
            "Project.UpdateVisibilityCompleted",
            Some(&third),
            &format!(
                "Project {} visibility change from Private to Public was successful",
                third.name
            ),
            visibility("Private", "Public"),
            at,
        );
        self.record(
            "AU-04",
            ResourceKind::AuditLog,
            "",
            &id,
            "project made public",
        );
        let back = day(self, 1, 14);
        self.audit_with_data(
            "Project.UpdateVisibilityCompleted",
            Some(&third),
            &format!(
                "Project {} visibility change from Public to Private was successful",
                third.name
            ),
            visibility("Public", "Private"),
            back,
        );

        // AU-05: a token created, found in a public repository, revoked by the system.
        let (owner, _) = PEOPLE[4];
        let token = json!({"DisplayName": "release-bot", "OwnerName": owner});
        let created = day(self, 40, 60);
        self.audit_with_data(
            "Token.PatCreateEvent",
            None,
            "Personal Access Token \"release-bot\" was created.",
            token.clone(),
            created,
        );
        let at = day(self, 1, 30);
        let id = self.audit_with_data(
            "Token.PatPublicDiscoveryEvent",
            None,
            &format!("Personal Access Token \"release-bot\" associated with user \"{owner}\" was discovered in a public repository."),
            token.clone(),
            at,
        );
        self.record(
            "AU-05",
            ResourceKind::AuditLog,
            "",
            &id,
            "PAT found in a public repository",
        );
        self.audit_with_data(
            "Token.PatSystemRevokeEvent",
            None,
            &format!("Personal Access Token \"release-bot\" associated with user \"{owner}\" was revoked by the system."),
            token,
            at + 60_000,
        );

        // AU-06: SSH access turned off (tightening), later third-party OAuth access turned on.
        let tightened = day(self, 40, 60);
        self.audit_with_data(
            "OrganizationPolicy.PolicyValueUpdated",
            None,
            "Policy Policy.DisallowSecureShell was changed to True",
            json!({"PolicyName": "Policy.DisallowSecureShell", "PolicyValue": "True"}),
            tightened,
        );
        let at = day(self, 1, 30);
        let id = self.audit_with_data(
            "OrganizationPolicy.PolicyValueUpdated",
            None,
            "Policy Policy.DisallowOAuthAuthentication was changed to False",
            json!({"PolicyName": "Policy.DisallowOAuthAuthentication", "PolicyValue": "False"}),
            at,
        );
        self.record(
            "AU-06",
            ResourceKind::AuditLog,
            "",
            &id,
            "third-party OAuth access allowed",
        );
    }

    /// ED-01: production deployed from a feature branch's run; ED-02: a failed production
    /// deployment. Uses the organisation's run and deployment writers.
    fn plant_deployment_faults(&mut self) {
        let production = |org: &Org, project: &ProjectInfo| -> Option<u64> {
            org.parsed(ResourceKind::Environments, &project.id)
                .into_iter()
                .find(|(_, environment)| environment["name"] == "production")
                .and_then(|(id, _)| id.parse().ok())
        };
        let pipeline = |org: &Org, project: &ProjectInfo| -> Option<(u64, String, String)> {
            org.parsed(ResourceKind::Pipelines, &project.id)
                .into_iter()
                .find_map(|(id, p)| {
                    Some((
                        id.parse().ok()?,
                        p["name"].as_str()?.to_owned(),
                        p["configuration"]["repository"]["id"].as_str()?.to_owned(),
                    ))
                })
        };
        let first = self.nth_project(0);
        if let (Some(environment), Some((pipeline_id, name, repo))) =
            (production(self, &first), pipeline(self, &first))
        {
            let queued = self.now_ms - 2 * DAY_MS;
            self.add_run_from(
                &first,
                pipeline_id,
                &name,
                &repo,
                "refs/heads/feature/hotfix-login",
                queued,
            );
            let deployment =
                self.add_deployment(&first, environment, pipeline_id, queued + 600_000);
            self.record(
                "ED-01",
                ResourceKind::EnvironmentDeployments,
                &environment.to_string(),
                &deployment.to_string(),
                "production deployed from a feature branch",
            );
        }
        let second = self.nth_project(1);
        if let (Some(environment), Some((pipeline_id, _, _))) =
            (production(self, &second), pipeline(self, &second))
        {
            let at = self.now_ms - 3 * DAY_MS;
            let deployment = self.add_deployment(&second, environment, pipeline_id, at);
            self.rewrite(
                ResourceKind::EnvironmentDeployments,
                &environment.to_string(),
                &deployment.to_string(),
                None,
                |record| record["result"] = json!("failed"),
            );
            self.record(
                "ED-02",
                ResourceKind::EnvironmentDeployments,
                &environment.to_string(),
                &deployment.to_string(),
                "failed production deployment",
            );
        }
    }

    /// After a pipeline is deleted its runs are gone, so what its deployments ran from is no
    /// longer known: drop ED-01 plants on those deployments.
    pub(crate) fn forget_deployments_of(&mut self, pipeline_id: &str) {
        let doomed: Vec<String> = self
            .planted
            .iter()
            .filter(|p| p.control == "ED-01")
            .filter(|p| {
                let (scope, id) = p.id.split_once('/').unwrap_or(("", p.id.as_str()));
                self.collection(ResourceKind::EnvironmentDeployments)
                    .get(scope, id)
                    .and_then(|o| serde_json::from_str::<Value>(&o.json).ok())
                    .is_some_and(|d| {
                        d["definition"]["id"].as_u64() == pipeline_id.parse::<u64>().ok()
                    })
            })
            .map(|p| p.id.clone())
            .collect();
        self.planted
            .retain(|p| !(p.control == "ED-01" && doomed.contains(&p.id)));
    }
}
