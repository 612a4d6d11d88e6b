//! The synthetic organisation: every object as the JSON ADO would send, generated
//! deterministically from a seed and a profile, with documented misconfigurations planted.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use serde::Serialize;
use serde_json::{Value, json};
use tollgate_domain::{InventoryItem, ResourceKind};

use crate::profile::{Profile, Sizes};
use crate::rng::SplitMix64;

const DAY_MS: i64 = 86_400_000;

/// Branch policy type ids, as ADO publishes them.
pub mod policy_types {
    pub const MINIMUM_REVIEWERS: &str = "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd";
    pub const BUILD: &str = "0609b952-1397-4640-95ec-e00a01b2c241";
    pub const WORK_ITEM_LINKING: &str = "40e92b44-2fe1-4dd6-b3d8-74a9c21d0c6e";
    pub const COMMENT_REQUIREMENTS: &str = "c6a1889d-b943-4856-b76f-9e46bb6b0df2";
}

/// Check type ids, as the Approvals and Checks API publishes them.
pub mod check_types {
    pub const APPROVAL: &str = "8c6f20a7-a545-4486-9777-f762fafe0d4d";
    pub const TASK_CHECK: &str = "fe1de3ee-a436-41b4-bb20-f6eb4cb879a7";
}

/// One object as stored by the simulator: its id, its JSON and when it last changed.
#[derive(Clone, Debug)]
pub struct SimObject {
    pub ado_id: String,
    pub json: String,
    pub modified_ms: i64,
}

/// The objects of one kind, ordered by scope then id (the order ADO lists them in).
#[derive(Clone, Debug, Default)]
pub struct Collection {
    items: BTreeMap<String, SimObject>,
}

fn sort_key(scope: &str, ado_id: &str) -> String {
    match ado_id.parse::<u64>() {
        Ok(number) => format!("{scope}\u{1}{number:020}"),
        Err(_) => format!("{scope}\u{1}{ado_id}"),
    }
}

impl Collection {
    pub fn insert(&mut self, scope: &str, object: SimObject) {
        self.items.insert(sort_key(scope, &object.ado_id), object);
    }

    pub fn remove(&mut self, scope: &str, ado_id: &str) -> Option<SimObject> {
        self.items.remove(&sort_key(scope, ado_id))
    }

    pub fn get(&self, scope: &str, ado_id: &str) -> Option<&SimObject> {
        self.items.get(&sort_key(scope, ado_id))
    }

    /// The objects in one scope, starting at `from` (a sort key) when given.
    pub fn scope<'a>(
        &'a self,
        scope: &str,
        from: Option<&str>,
    ) -> impl Iterator<Item = (&'a String, &'a SimObject)> + use<'a> {
        let start = match from {
            Some(key) if key.starts_with(&format!("{scope}\u{1}")) => key.to_owned(),
            _ => format!("{scope}\u{1}"),
        };
        let end = format!("{scope}\u{2}");
        self.items
            .range::<String, _>((Bound::Included(start), Bound::Excluded(end)))
    }

    pub fn remove_scope(&mut self, scope: &str) -> usize {
        let keys: Vec<String> = self
            .scope(scope, None)
            .map(|(key, _)| key.clone())
            .collect();
        keys.iter().for_each(|key| {
            self.items.remove(key);
        });
        keys.len()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Every object with the scope it is listed under.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SimObject)> + '_ {
        self.items.iter().map(|(key, object)| {
            (
                key.split_once('\u{1}')
                    .map(|(scope, _)| scope)
                    .unwrap_or_default(),
                object,
            )
        })
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What distinguishes one Advanced Security alert from another.
#[derive(Clone, Copy, Debug)]
pub struct AlertSpec<'a> {
    pub alert_type: &'a str,
    pub severity: &'a str,
    pub first_seen: i64,
    pub state: &'a str,
}

/// A misconfiguration put in the organisation on purpose, for scans to find.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Planted {
    /// The stable control id that should fire (the control catalog uses the same ids).
    pub control: &'static str,
    pub kind: ResourceKind,
    /// The inventory key of the object, as tollgate stores it.
    pub id: String,
    pub why: String,
}

#[derive(Clone, Debug)]
pub struct ProjectInfo {
    pub id: String,
    pub name: String,
}

/// The whole synthetic organisation.
pub struct Org {
    pub name: String,
    pub profile: Profile,
    pub projects: Vec<ProjectInfo>,
    collections: HashMap<ResourceKind, Collection>,
    pub planted: Vec<Planted>,
    /// The organisation's "today": generated timestamps are relative to it.
    pub now_ms: i64,
    rng: SplitMix64,
    next_number: u64,
    audit_sequence: u64,
    /// The latest run of each pipeline: (run id, build number). Deployment records name the
    /// run that deployed as their owner.
    last_run: HashMap<u64, (u64, String)>,
}

const PROJECT_NAMES: &[&str] = &[
    "Payments",
    "Checkout",
    "Identity",
    "Ledger",
    "Catalog",
    "Search",
    "Notifications",
    "Billing",
    "Inventory",
    "Shipping",
    "Reporting",
    "Mobile",
    "Web",
    "Platform",
    "Data",
    "Risk",
    "Fraud",
    "Pricing",
    "Loyalty",
    "Support",
];

pub(crate) const PEOPLE: &[(&str, &str)] = &[
    ("Ana Souza", "ana@fabrikam.example"),
    ("Bo Chen", "bo@fabrikam.example"),
    ("Chidi Okafor", "chidi@fabrikam.example"),
    ("Dana Levi", "dana@fabrikam.example"),
    ("Erik Berg", "erik@fabrikam.example"),
    ("Fatima Khan", "fatima@fabrikam.example"),
];

pub fn iso(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let nanos = (ms.rem_euclid(1000) * 1_000_000) as u32;
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map(|t| t.replace_nanosecond(nanos).unwrap_or(t))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Org {
    /// Generate the organisation for a seed and profile. `now_ms` anchors every timestamp.
    pub fn generate(name: &str, seed: u64, profile: Profile, now_ms: i64) -> Self {
        let mut org = Org {
            name: name.to_owned(),
            profile,
            projects: Vec::new(),
            collections: ResourceKind::ALL
                .iter()
                .map(|kind| (*kind, Collection::default()))
                .collect(),
            planted: Vec::new(),
            now_ms,
            rng: SplitMix64::new(seed),
            next_number: 1,
            audit_sequence: 0,
            last_run: HashMap::new(),
        };
        let sizes = profile.sizes();
        org.generate_agent_pools(&sizes);
        for index in 0..sizes.projects {
            org.generate_project(index, &sizes);
        }
        // Last, from a generator of its own: release definitions leave the rest unchanged.
        org.generate_release_definitions(seed, &sizes);
        // Then pools, library, teams, audit history, hierarchy, refs and deployments, also
        // from a generator of their own.
        org.generate_operations(seed);
        // Last of all the strategy's gates (gates.rs), from a generator of their own: they
        // edit checks and policies of the finished organisation and plant from what they see.
        org.generate_gates(seed);
        org
    }

    pub fn collection(&self, kind: ResourceKind) -> &Collection {
        static EMPTY: std::sync::OnceLock<Collection> = std::sync::OnceLock::new();
        self.collections
            .get(&kind)
            .unwrap_or_else(|| EMPTY.get_or_init(Collection::default))
    }

    fn collection_mut(&mut self, kind: ResourceKind) -> &mut Collection {
        self.collections.entry(kind).or_default()
    }

    /// The fewest requests any client needs to list every kind, given the page sizes of the
    /// endpoint table: the yardstick for the sync benchmark (calls made ÷ this ≥ 1).
    pub fn minimum_requests(&self) -> BTreeMap<ResourceKind, u64> {
        use tollgate_domain::ado_api::{
            Paging, WIQL_MAX_RESULTS, WORK_ITEMS_BATCH_MAX, endpoint_for,
        };
        use tollgate_domain::kind::ScopeLevel;
        let mut minimum = BTreeMap::new();
        for kind in ResourceKind::ALL {
            let endpoint = endpoint_for(*kind);
            let scopes: Vec<String> = match kind.scope_level() {
                ScopeLevel::Organization => vec![String::new()],
                ScopeLevel::Project => self.projects.iter().map(|p| p.id.clone()).collect(),
                ScopeLevel::Parent(parent) => self
                    .collection(parent)
                    .iter()
                    .map(|(_, o)| o.ado_id.clone())
                    .collect(),
            };
            let page = u64::from(endpoint.page_size.max(1));
            let requests: u64 = scopes
                .iter()
                .map(|scope| {
                    let n = self.collection(*kind).scope(scope, None).count() as u64;
                    // Lists of summaries: one more read per object (the endpoint's detail path).
                    let details = if endpoint.detail_path.is_some() { n } else { 0 };
                    details
                        + match endpoint.paging {
                            Paging::Single => 1,
                            Paging::HeaderToken | Paging::BodyToken => n.div_ceil(page).max(1),
                            // A full last page can only be known to be last by asking once more.
                            Paging::TopSkip | Paging::IdSeek => n / page + 1,
                            Paging::WiqlBatch => {
                                n / u64::from(WIQL_MAX_RESULTS)
                                    + 1
                                    + n.div_ceil(u64::from(WORK_ITEMS_BATCH_MAX))
                            }
                        }
                })
                .sum();
            minimum.insert(*kind, requests);
        }
        minimum
    }

    pub fn counts(&self) -> BTreeMap<ResourceKind, usize> {
        ResourceKind::ALL
            .iter()
            .map(|kind| (*kind, self.collection(*kind).len()))
            .collect()
    }

    pub fn project(&self, id_or_name: &str) -> Option<&ProjectInfo> {
        self.projects
            .iter()
            .find(|p| p.id == id_or_name || p.name.eq_ignore_ascii_case(id_or_name))
    }

    fn number(&mut self) -> u64 {
        let number = self.next_number;
        self.next_number += 1;
        number
    }

    fn person(&mut self) -> Value {
        let (name, mail) = PEOPLE[self.rng.below(PEOPLE.len() as u64) as usize];
        identity(name, mail)
    }

    /// A time between `days_ago_max` and `days_ago_min` days before the organisation's today.
    fn past(&mut self, days_ago_min: i64, days_ago_max: i64) -> i64 {
        let span = ((days_ago_max - days_ago_min) * DAY_MS).max(1) as u64;
        self.now_ms - days_ago_min * DAY_MS - self.rng.below(span) as i64
    }

    fn put(
        &mut self,
        kind: ResourceKind,
        scope: &str,
        ado_id: &str,
        json: Value,
        modified_ms: i64,
    ) {
        let object = SimObject {
            ado_id: ado_id.to_owned(),
            json: json.to_string(),
            modified_ms,
        };
        self.collection_mut(kind).insert(scope, object);
    }

    fn plant(
        &mut self,
        control: &'static str,
        kind: ResourceKind,
        scope: &str,
        ado_id: &str,
        why: impl Into<String>,
    ) {
        let planted = Planted {
            control,
            kind,
            id: InventoryItem::key_for(scope, ado_id),
            why: why.into(),
        };
        self.planted.push(planted);
    }

    pub(crate) fn base(&self) -> String {
        format!("https://dev.azure.com/{}", self.name)
    }

    /// Append an audit-log entry, as ADO records configuration changes.
    pub fn audit(
        &mut self,
        action_id: &str,
        project: Option<&ProjectInfo>,
        details: &str,
        at_ms: i64,
    ) {
        self.audit_with_data(action_id, project, details, json!({}), at_ms);
    }

    /// Append an audit-log entry with its `data` (the fields its details text names, as the
    /// auditing events list documents them). Returns the entry's id, its inventory key.
    pub fn audit_with_data(
        &mut self,
        action_id: &str,
        project: Option<&ProjectInfo>,
        details: &str,
        data: Value,
        at_ms: i64,
    ) -> String {
        self.audit_sequence += 1;
        let sequence = self.audit_sequence;
        let correlation = self.rng.guid();
        let (actor, mail) = PEOPLE[self.rng.below(PEOPLE.len() as u64) as usize];
        let area = action_id.split('.').next().unwrap_or_default().to_owned();
        let id = format!(
            "{};{sequence:08};{correlation}",
            2_518_505_060_978_539_161u64 - sequence
        );
        let entry = json!({
            "id": id,
            "correlationId": correlation,
            "activityId": self.rng.guid(),
            "actorCUID": self.rng.guid(),
            "actorUserId": self.rng.guid(),
            "actorUPN": mail,
            "authenticationMechanism": "AAD_Cookie",
            "timestamp": iso(at_ms),
            "scopeType": if project.is_some() { "project" } else { "organization" },
            "scopeDisplayName": project.map(|p| format!("{} (Project)", p.name)).unwrap_or_else(|| format!("{} (Organization)", self.name)),
            "scopeId": project.map(|p| p.id.clone()).unwrap_or_default(),
            "projectId": project.map(|p| p.id.clone()),
            "projectName": project.map(|p| p.name.clone()),
            "ipAddress": "10.0.0.1",
            "userAgent": "tollgate-sim",
            "actionId": action_id,
            "data": data,
            "details": details,
            "area": area,
            "category": "modify",
            "categoryDisplayName": "Modify",
            "actorDisplayName": actor,
        });
        self.put(
            ResourceKind::AuditLog,
            "",
            &sequence.to_string(),
            entry,
            at_ms,
        );
        id
    }

    fn generate_agent_pools(&mut self, sizes: &Sizes) {
        for index in 0..sizes.agent_pools {
            let id = self.number();
            let hosted = index == 0;
            let name = if hosted {
                "Azure Pipelines".to_owned()
            } else {
                format!("SelfHosted-{index}")
            };
            // One self-hosted pool is auto-provisioned into every project: any project's
            // pipelines can then run on machines another team controls.
            let auto_provision = index == 1;
            let created = self.past(200, 400);
            let pool = json!({
                "createdOn": iso(created), "autoProvision": auto_provision, "autoUpdate": true, "autoSize": hosted,
                "targetSize": null, "agentCloudId": null, "createdBy": self.person(), "owner": self.person(),
                "id": id, "scope": self.rng.guid(), "name": name, "isHosted": hosted, "poolType": "automation",
                "size": 1 + self.rng.below(8), "isLegacy": false, "options": "none",
            });
            self.put(ResourceKind::AgentPools, "", &id.to_string(), pool, created);
            if auto_provision {
                self.plant(
                    "AP-01",
                    ResourceKind::AgentPools,
                    "",
                    &id.to_string(),
                    "self-hosted pool auto-provisioned to every project",
                );
            }
        }
    }

    fn generate_project(&mut self, index: usize, sizes: &Sizes) {
        let base_name = PROJECT_NAMES[index % PROJECT_NAMES.len()];
        let name = if index < PROJECT_NAMES.len() {
            base_name.to_owned()
        } else {
            format!("{base_name}-{index}")
        };
        let project = ProjectInfo {
            id: self.rng.guid(),
            name,
        };
        let created = self.past(300, 500);
        let project_json = json!({
            "id": project.id, "name": project.name, "description": format!("{} services", project.name),
            "url": format!("{}/_apis/projects/{}", self.base(), project.id), "state": "wellFormed",
            "revision": 400 + index, "visibility": "private", "lastUpdateTime": iso(created),
        });
        self.put(
            ResourceKind::Projects,
            "",
            &project.id,
            project_json,
            created,
        );
        self.projects.push(project.clone());
        self.audit(
            "Project.CreateCompleted",
            Some(&project),
            "Project created",
            created,
        );

        for team in 0..sizes.teams {
            let id = self.rng.guid();
            let team_name = if team == 0 {
                format!("{} Team", project.name)
            } else {
                format!("{} Squad {team}", project.name)
            };
            let json = json!({
                "id": id, "name": team_name, "url": format!("{}/_apis/projects/{}/teams/{id}", self.base(), project.id),
                "description": format!("{team_name}: builds and runs the {} services", project.name),
                "identityUrl": format!("https://vssps.dev.azure.com/{}/_apis/Identities/{id}", self.name),
                "projectName": project.name, "projectId": project.id,
            });
            self.put(ResourceKind::Teams, &project.id, &id, json, created);
        }

        let repo_ids: Vec<String> = (0..sizes.repos)
            .map(|r| self.generate_repository(&project, r, sizes, None))
            .collect();
        let pipeline_ids: Vec<u64> = (0..sizes.pipelines)
            .map(|p| self.generate_pipeline(&project, p, &repo_ids, sizes))
            .collect();
        self.generate_environments(&project, &pipeline_ids, sizes);
        self.generate_library(&project, sizes);
        self.generate_work_items(&project, sizes, index == 0);
    }

    pub(crate) fn project_ref(&self, project: &ProjectInfo) -> Value {
        json!({"id": project.id, "name": project.name, "url": format!("{}/_apis/projects/{}", self.base(), project.id),
               "state": "wellFormed", "visibility": "private"})
    }

    pub fn repository_json(&self, project: &ProjectInfo, id: &str, name: &str) -> Value {
        json!({
            "id": id, "name": name, "url": format!("{}/{}/_apis/git/repositories/{id}", self.base(), project.id),
            "project": self.project_ref(project), "defaultBranch": "refs/heads/main", "size": 1_048_576,
            "remoteUrl": format!("{}/{}/_git/{name}", self.base(), project.name),
            "sshUrl": format!("git@ssh.dev.azure.com:v3/{}/{}/{name}", self.name, project.name),
            "webUrl": format!("{}/{}/_git/{name}", self.base(), project.name),
            "isDisabled": false, "isInMaintenance": false,
        })
    }

    /// Create a repository with its branches, policies, pull requests and alerts. Returns its id.
    pub fn generate_repository(
        &mut self,
        project: &ProjectInfo,
        index: usize,
        sizes: &Sizes,
        created_ms: Option<i64>,
    ) -> String {
        let id = self.rng.guid();
        let name = format!("{}-svc-{index:02}", project.name.to_lowercase());
        let created = created_ms.unwrap_or_else(|| self.past(100, 300));
        let json = self.repository_json(project, &id, &name);
        self.put(ResourceKind::Repositories, &project.id, &id, json, created);
        self.audit(
            "Git.RepositoryCreated",
            Some(project),
            &format!("Created repository {name}"),
            created,
        );

        let mut branches = vec!["refs/heads/main".to_owned()];
        branches.extend((0..sizes.extra_branches).map(|b| match b {
            0 => "refs/heads/develop".to_owned(),
            1 => "refs/heads/release/1.0".to_owned(),
            other => format!("refs/heads/feature/change-{other}"),
        }));
        for branch in &branches {
            let json = json!({
                "name": branch, "objectId": self.rng.sha(), "creator": self.person(),
                "url": format!("{}/{}/_apis/git/repositories/{id}/refs?filter={}", self.base(), project.id, branch.trim_start_matches("refs/")),
            });
            self.put(ResourceKind::Refs, &id, branch, json, created);
        }

        self.generate_branch_policies(project, &id, &name, created);
        for _ in 0..sizes.pull_requests_per_repo {
            self.generate_pull_request(project, &id, &name);
        }
        for _ in 0..sizes.alerts_per_repo {
            self.generate_alert(project, &id, &name);
        }
        id
    }

    fn generate_branch_policies(
        &mut self,
        project: &ProjectInfo,
        repo_id: &str,
        repo_name: &str,
        created: i64,
    ) {
        let roll = self.rng.next_f64();
        if roll < 0.05 {
            self.plant(
                "BP-01",
                ResourceKind::Repositories,
                &project.id,
                repo_id,
                format!("{repo_name}: no blocking policy on main"),
            );
            return;
        }
        let scope =
            json!([{"refName": "refs/heads/main", "matchKind": "Exact", "repositoryId": repo_id}]);
        let mut settings = json!({
            "minimumApproverCount": 2, "creatorVoteCounts": false, "allowDownvotes": false,
            "resetOnSourcePush": true, "requireVoteOnLastIteration": true, "blockLastPusherVote": true, "scope": scope,
        });
        let weakness = self.rng.next_f64();
        let planted: Option<(&'static str, &str)> = if weakness < 0.08 {
            settings["minimumApproverCount"] = json!(1);
            Some(("BP-02", "fewer than 2 required approvers"))
        } else if weakness < 0.14 {
            settings["creatorVoteCounts"] = json!(true);
            Some(("BP-03", "the author's own vote counts"))
        } else if weakness < 0.20 {
            settings["resetOnSourcePush"] = json!(false);
            settings["requireVoteOnLastIteration"] = json!(false);
            Some(("BP-04", "votes survive new pushes"))
        } else {
            None
        };
        let reviewers_id = self.put_policy(
            project,
            policy_types::MINIMUM_REVIEWERS,
            "Minimum number of reviewers",
            settings,
            created,
        );
        if let Some((control, why)) = planted {
            self.plant(
                control,
                ResourceKind::PolicyConfigurations,
                &project.id,
                &reviewers_id.to_string(),
                format!("{repo_name}: {why}"),
            );
        }
        let build = json!({"buildDefinitionId": 1, "queueOnSourceUpdateOnly": true, "manualQueueOnly": false,
                           "displayName": "PR build", "validDuration": 720.0, "scope": scope});
        self.put_policy(project, policy_types::BUILD, "Build", build, created);
        self.put_policy(
            project,
            policy_types::WORK_ITEM_LINKING,
            "Work item linking",
            json!({"scope": scope}),
            created,
        );
        self.put_policy(
            project,
            policy_types::COMMENT_REQUIREMENTS,
            "Comment requirements",
            json!({"scope": scope}),
            created,
        );
    }

    fn put_policy(
        &mut self,
        project: &ProjectInfo,
        type_id: &str,
        type_name: &str,
        settings: Value,
        created: i64,
    ) -> u64 {
        let id = self.number();
        let json = json!({
            "createdBy": self.person(), "createdDate": iso(created), "isEnabled": true, "isBlocking": true,
            "isDeleted": false, "settings": settings, "isEnterpriseManaged": false,
            "_links": {"self": {"href": format!("{}/{}/_apis/policy/configurations/{id}", self.base(), project.id)}},
            "revision": 1, "id": id, "url": format!("{}/{}/_apis/policy/configurations/{id}", self.base(), project.id),
            "type": {"id": type_id, "url": format!("{}/{}/_apis/policy/types/{type_id}", self.base(), project.id), "displayName": type_name},
        });
        self.put(
            ResourceKind::PolicyConfigurations,
            &project.id,
            &id.to_string(),
            json,
            created,
        );
        id
    }

    fn generate_pull_request(&mut self, project: &ProjectInfo, repo_id: &str, repo_name: &str) {
        let id = self.number();
        let created = self.past(1, 90);
        let author = self.person();
        let completed = self.rng.chance(0.7);
        let self_approved = self.rng.chance(0.04);
        let reviewers = if self_approved {
            vec![
                json!({"vote": 10, "hasDeclined": false, "isFlagged": false, "id": author["id"], "displayName": author["displayName"], "uniqueName": author["uniqueName"]}),
            ]
        } else {
            let first = self.person();
            let mut second = self.person();
            if second["id"] == first["id"] || second["id"] == author["id"] {
                second = identity("Review Bot", "review-bot@fabrikam.example");
            }
            [first, second]
                .into_iter()
                .filter(|r| r["id"] != author["id"])
                .map(|r| json!({"vote": 10, "hasDeclined": false, "isFlagged": false, "id": r["id"], "displayName": r["displayName"], "uniqueName": r["uniqueName"]}))
                .collect()
        };
        let json = json!({
            "repository": {"id": repo_id, "name": repo_name, "project": self.project_ref(project)},
            "pullRequestId": id, "codeReviewId": id, "status": if completed { "completed" } else { "active" },
            "createdBy": author, "creationDate": iso(created), "closedDate": if completed { json!(iso(created + DAY_MS)) } else { Value::Null },
            "title": format!("feat: change {id} in {repo_name}"), "description": "",
            "sourceRefName": format!("refs/heads/feature/pr-{id}"), "targetRefName": "refs/heads/main",
            "mergeStatus": "succeeded", "isDraft": false, "mergeId": self.rng.guid(),
            "lastMergeSourceCommit": {"commitId": self.rng.sha()}, "reviewers": reviewers,
            "url": format!("{}/{}/_apis/git/repositories/{repo_id}/pullRequests/{id}", self.base(), project.id),
            "supportsIterations": true,
        });
        self.put(
            ResourceKind::PullRequests,
            &project.id,
            &id.to_string(),
            json,
            created,
        );
        if self_approved {
            self.plant(
                "BP-17",
                ResourceKind::PullRequests,
                &project.id,
                &id.to_string(),
                "the only approval is the author's",
            );
        }
    }

    pub fn alert_json(
        &mut self,
        project: &ProjectInfo,
        repo_id: &str,
        repo_name: &str,
        id: u64,
        spec: AlertSpec<'_>,
    ) -> Value {
        let AlertSpec {
            alert_type,
            severity,
            first_seen,
            state,
        } = spec;
        let (tool, rule) = match alert_type {
            "dependency" => (
                "AdvancedSecurity-Dependency-Scanning",
                json!({"id": format!("GHSA-{id:04}"), "name": "Vulnerable package", "opaqueId": format!("CVE-2026-{:05}", id % 99_999)}),
            ),
            "secret" => (
                "AdvancedSecurity-Secret-Scanning",
                json!({"id": "azure_storage_account_key", "name": "Azure storage account key"}),
            ),
            _ => (
                "CodeQL",
                json!({"id": "cs/sql-injection", "name": "SQL query built from user-controlled sources"}),
            ),
        };
        json!({
            "alertId": id, "severity": severity, "title": format!("{} in {repo_name}", rule["name"].as_str().unwrap_or("finding")),
            "tools": [{"name": tool, "rules": [rule.clone()]}], "rule": rule,
            "repositoryUrl": format!("{}/{}/_git/{repo_name}", self.base(), project.name),
            "gitRef": "refs/heads/main", "state": state, "alertType": alert_type,
            "firstSeenDate": iso(first_seen), "lastSeenDate": iso(self.now_ms - DAY_MS), "introducedDate": iso(first_seen),
            "physicalLocations": [{"filePath": "src/app.cs", "region": {"lineStart": 10 + id % 200}}],
            "repositoryId": repo_id,
        })
    }

    fn generate_alert(&mut self, project: &ProjectInfo, repo_id: &str, repo_name: &str) {
        let id = self.number();
        let alert_type = ["dependency", "code", "secret"][self.rng.below(3) as usize];
        let roll = self.rng.next_f64();
        // AS-02: a leaked secret left open for days (any severity; this one is inside AS-01's
        // 7-day high SLA so only AS-02 fires).
        let stale_secret = alert_type == "secret" && (0.03..0.06).contains(&roll);
        // Open alerts are young enough to be inside their SLA, except the planted ones.
        // (Every branch draws from the generator as it always has: seeds keep their objects.)
        let (severity, state, first_seen) = if roll < 0.03 {
            ("critical", "active", self.past(10, 40))
        } else if stale_secret {
            ("high", "active", self.past(2, 6))
        } else if roll < 0.50 {
            ("low", "active", self.past(0, 60))
        } else if roll < 0.75 {
            ("medium", "active", self.past(0, 20))
        } else {
            (
                ["high", "critical", "medium"][self.rng.below(3) as usize],
                "fixed",
                self.past(30, 200),
            )
        };
        // Secrets are revoked and their alerts closed within hours: clean secret alerts are
        // already fixed.
        let state = if alert_type == "secret" && state == "active" && roll >= 0.03 && !stale_secret
        {
            "fixed"
        } else {
            state
        };
        // A few closed alerts were dismissed instead; AS-03: one of those without a comment.
        let dismissal = if (0.75..0.77).contains(&roll) {
            Some(("falsePositive", ""))
        } else if (0.77..0.80).contains(&roll) {
            Some((
                "acceptedRisk",
                "Not reachable from any entry point; accepted by the security lead until the next upgrade.",
            ))
        } else {
            None
        };
        let state = if dismissal.is_some() {
            "dismissed"
        } else {
            state
        };
        let spec = AlertSpec {
            alert_type,
            severity,
            first_seen,
            state,
        };
        let mut json = self.alert_json(project, repo_id, repo_name, id, spec);
        if let Some((dismissal_type, message)) = dismissal {
            let (name, mail) = PEOPLE[(id % PEOPLE.len() as u64) as usize];
            let by = identity(name, mail);
            json["dismissal"] = json!({"dismissalId": id, "dismissalType": dismissal_type, "message": message,
                                       "stateChangedBy": by["id"], "stateChangedByIdentity": by});
        }
        self.put(
            ResourceKind::Alerts,
            repo_id,
            &id.to_string(),
            json,
            first_seen,
        );
        if roll < 0.03 {
            self.plant(
                "AS-01",
                ResourceKind::Alerts,
                repo_id,
                &id.to_string(),
                "critical alert open past its 24 h SLA",
            );
        }
        if alert_type == "secret" && state == "active" {
            self.plant(
                "AS-02",
                ResourceKind::Alerts,
                repo_id,
                &id.to_string(),
                "secret alert open for days",
            );
        }
        if dismissal.is_some_and(|(_, message)| message.is_empty()) {
            self.plant(
                "AS-03",
                ResourceKind::Alerts,
                repo_id,
                &id.to_string(),
                "dismissed as a false positive without a comment",
            );
        }
    }

    fn generate_pipeline(
        &mut self,
        project: &ProjectInfo,
        index: usize,
        repo_ids: &[String],
        sizes: &Sizes,
    ) -> u64 {
        let id = self.number();
        let name = format!("{}-pipeline-{index:03}", project.name.to_lowercase());
        let created = self.past(60, 300);
        let repo_id = repo_ids
            .get(index % repo_ids.len().max(1))
            .cloned()
            .unwrap_or_default();
        let classic = self.rng.chance(0.04);
        let process = if classic {
            json!({"type": 1})
        } else {
            json!({"yamlFilename": "azure-pipelines.yml", "type": 2})
        };
        let definition = json!({
            "id": id, "name": name, "url": format!("{}/{}/_apis/build/Definitions/{id}", self.base(), project.id),
            "path": "\\", "type": "build", "queueStatus": "enabled", "revision": 1, "createdDate": iso(created),
            "project": self.project_ref(project), "process": process,
            "repository": {"id": repo_id, "type": "TfsGit", "defaultBranch": "refs/heads/main"},
            "queue": {"id": 1, "name": "Azure Pipelines", "pool": {"id": 1, "name": "Azure Pipelines", "isHosted": true}},
        });
        self.put(
            ResourceKind::BuildDefinitions,
            &project.id,
            &id.to_string(),
            definition,
            created,
        );
        if classic {
            self.plant(
                "PL-01",
                ResourceKind::BuildDefinitions,
                &project.id,
                &id.to_string(),
                "classic (designer) pipeline, not YAML",
            );
        }
        let pipeline = json!({
            "_links": {"self": {"href": format!("{}/{}/_apis/pipelines/{id}", self.base(), project.id)}},
            "url": format!("{}/{}/_apis/pipelines/{id}?revision=1", self.base(), project.id),
            "id": id, "revision": 1, "name": name, "folder": "\\",
            "configuration": if classic { json!({"type": "designerJson"}) } else {
                json!({"type": "yaml", "path": "azure-pipelines.yml", "repository": {"id": repo_id, "type": "azureReposGit"}})
            },
        });
        self.put(
            ResourceKind::Pipelines,
            &project.id,
            &id.to_string(),
            pipeline,
            created,
        );
        for _ in 0..sizes.runs_per_pipeline {
            let at = self.past(0, 30);
            self.add_run(project, id, &name, &repo_id, at);
        }
        id
    }

    /// A pipeline run: the build and the run are one object in ADO, listed by two APIs.
    pub fn add_run(
        &mut self,
        project: &ProjectInfo,
        pipeline_id: u64,
        pipeline_name: &str,
        repo_id: &str,
        queued_ms: i64,
    ) -> u64 {
        self.add_run_from(
            project,
            pipeline_id,
            pipeline_name,
            repo_id,
            "refs/heads/main",
            queued_ms,
        )
    }

    /// A run of a branch other than main.
    pub fn add_run_from(
        &mut self,
        project: &ProjectInfo,
        pipeline_id: u64,
        pipeline_name: &str,
        repo_id: &str,
        branch: &str,
        queued_ms: i64,
    ) -> u64 {
        let id = self.number();
        let number = format!("{}.{}", &iso(queued_ms)[..10].replace('-', ""), id);
        let sha = self.rng.sha();
        let requester = self.person();
        let build = json!({
            "id": id, "buildNumber": number, "status": "completed", "result": "succeeded",
            "queueTime": iso(queued_ms), "startTime": iso(queued_ms + 5_000), "finishTime": iso(queued_ms + 300_000),
            "url": format!("{}/{}/_apis/build/Builds/{id}", self.base(), project.id),
            "definition": {"id": pipeline_id, "name": pipeline_name, "path": "\\", "type": "build", "queueStatus": "enabled", "revision": 1, "project": self.project_ref(project)},
            "project": self.project_ref(project), "uri": format!("vstfs:///Build/Build/{id}"),
            "sourceBranch": branch, "sourceVersion": sha, "priority": "normal", "reason": "individualCI",
            "requestedFor": requester, "repository": {"id": repo_id, "type": "TfsGit"}, "keepForever": false,
        });
        self.put(
            ResourceKind::Builds,
            &project.id,
            &id.to_string(),
            build,
            queued_ms,
        );
        let run = json!({
            "_links": {"self": {"href": format!("{}/{}/_apis/pipelines/{pipeline_id}/runs/{id}", self.base(), project.id)}},
            "pipeline": {"url": format!("{}/{}/_apis/pipelines/{pipeline_id}", self.base(), project.id), "id": pipeline_id, "revision": 1, "name": pipeline_name, "folder": "\\"},
            "state": "completed", "result": "succeeded", "createdDate": iso(queued_ms), "finishedDate": iso(queued_ms + 300_000),
            "url": format!("{}/{}/_apis/pipelines/{pipeline_id}/runs/{id}", self.base(), project.id),
            "resources": {"repositories": {"self": {"repository": {"id": repo_id, "type": "azureReposGit"}, "refName": branch, "version": sha}}},
            "id": id, "name": number,
        });
        self.last_run.insert(pipeline_id, (id, number.clone()));
        self.put(
            ResourceKind::PipelineRuns,
            &pipeline_id.to_string(),
            &id.to_string(),
            run,
            queued_ms,
        );
        id
    }

    fn generate_environments(
        &mut self,
        project: &ProjectInfo,
        pipeline_ids: &[u64],
        sizes: &Sizes,
    ) {
        let names = ["dev", "test", "staging", "production", "dr"];
        let unprotected_production = self.rng.chance(0.5);
        let self_approval = self.rng.chance(0.5);
        for index in 0..sizes.environments {
            let id = self.number();
            let name = names
                .get(index)
                .map(|n| (*n).to_owned())
                .unwrap_or_else(|| format!("env-{index}"));
            let created = self.past(100, 300);
            let json = json!({
                "id": id, "name": name, "description": format!("{} {name}", project.name),
                "createdBy": self.person(), "createdOn": iso(created), "lastModifiedBy": self.person(), "lastModifiedOn": iso(created),
                "project": {"id": project.id, "name": project.name},
            });
            self.put(
                ResourceKind::Environments,
                &project.id,
                &id.to_string(),
                json,
                created,
            );
            for deployment in 0..sizes.deployments_per_environment {
                let pipeline = pipeline_ids
                    .get(deployment % pipeline_ids.len().max(1))
                    .copied()
                    .unwrap_or_default();
                let at = self.past(0, 60);
                self.add_deployment(project, id, pipeline, at);
            }
            let resource = json!({"type": "environment", "id": id.to_string(), "name": name});
            let approval = |requester_can_approve: bool, approvers: Value| {
                json!({"approvers": approvers, "executionOrder": 1, "instructions": "", "blockedApprovers": [],
                       "minRequiredApprovers": 1, "requesterCannotBeApprover": !requester_can_approve})
            };
            match name.as_str() {
                "staging" => {
                    let settings = approval(false, json!([self.person()]));
                    self.put_check(
                        project,
                        check_types::APPROVAL,
                        "Approval",
                        &resource,
                        settings,
                        created,
                    );
                }
                "production" => {
                    if unprotected_production {
                        self.plant(
                            "EN-01",
                            ResourceKind::Environments,
                            &project.id,
                            &id.to_string(),
                            "production has no approval check",
                        );
                    } else {
                        let settings =
                            approval(self_approval, json!([self.person(), self.person()]));
                        let check = self.put_check(
                            project,
                            check_types::APPROVAL,
                            "Approval",
                            &resource,
                            settings,
                            created,
                        );
                        if self_approval {
                            self.plant(
                                "EN-02",
                                ResourceKind::CheckConfigurations,
                                &project.id,
                                &check.to_string(),
                                "the requester may approve their own deployment",
                            );
                        }
                    }
                    let hours = json!({"definitionRef": {"id": "445fde2f-6c39-441c-807f-8a59ff2e075f", "name": "evaluatebusinesshours", "version": "0.0.1"},
                                       "displayName": "Business Hours", "inputs": {"businessDays": "Monday,Tuesday,Wednesday,Thursday,Friday", "timeZone": "UTC", "startTime": "08:00", "endTime": "17:00"},
                                       "retryInterval": 5});
                    self.put_check(
                        project,
                        check_types::TASK_CHECK,
                        "Task Check",
                        &resource,
                        hours,
                        created,
                    );
                    // No published example of an Invoke REST API check configuration exists; this
                    // shape follows the Task Check examples with the task's name.
                    let gate = json!({"definitionRef": {"id": "9c3e8943-130d-4c78-ac63-8af81df62dfb", "name": "invokerestapi", "version": "1.0.0"},
                                      "displayName": "tollgate deployment gate", "inputs": {"method": "POST", "waitForCompletion": "true"}, "retryInterval": 5});
                    self.put_check(
                        project,
                        check_types::TASK_CHECK,
                        "Task Check",
                        &resource,
                        gate,
                        created,
                    );
                }
                _ => {}
            }
        }
    }

    pub fn add_deployment(
        &mut self,
        project: &ProjectInfo,
        environment_id: u64,
        pipeline_id: u64,
        at_ms: i64,
    ) -> u64 {
        let id = self.number();
        // For planType Build the owner is the run (build) that deployed: the pipeline's latest.
        let owner = match self.last_run.get(&pipeline_id) {
            Some((run, number)) => json!({"id": run, "name": number}),
            None => json!({"id": id, "name": format!("run-{id}")}),
        };
        let json = json!({
            "id": id, "requestIdentifier": self.rng.guid(), "environmentId": environment_id, "serviceOwner": self.rng.guid(),
            "scopeId": project.id, "resourceId": 0, "planType": "Build", "planId": self.rng.guid(),
            "stageName": "Deploy", "jobName": "Deploy", "stageAttempt": 1, "jobAttempt": 1,
            "definition": {"id": pipeline_id, "name": format!("pipeline-{pipeline_id}")}, "owner": owner,
            "result": "succeeded", "queueTime": iso(at_ms), "startTime": iso(at_ms + 10_000), "finishTime": iso(at_ms + 120_000),
        });
        self.put(
            ResourceKind::EnvironmentDeployments,
            &environment_id.to_string(),
            &id.to_string(),
            json,
            at_ms,
        );
        id
    }

    fn put_check(
        &mut self,
        project: &ProjectInfo,
        type_id: &str,
        type_name: &str,
        resource: &Value,
        settings: Value,
        created: i64,
    ) -> u64 {
        let id = self.number();
        let json = json!({
            "settings": settings, "createdBy": self.person(), "createdOn": iso(created), "modifiedBy": self.person(), "modifiedOn": iso(created),
            "timeout": 43200, "_links": {"self": {"href": format!("{}/{}/_apis/pipelines/checks/configurations/{id}", self.base(), project.id)}},
            "id": id, "version": 1, "type": {"id": type_id, "name": type_name},
            "url": format!("{}/{}/_apis/pipelines/checks/configurations/{id}", self.base(), project.id), "resource": resource,
        });
        self.put(
            ResourceKind::CheckConfigurations,
            &project.id,
            &id.to_string(),
            json,
            created,
        );
        id
    }

    fn generate_library(&mut self, project: &ProjectInfo, sizes: &Sizes) {
        for index in 0..sizes.service_endpoints {
            let id = self.rng.guid();
            let created = self.past(50, 300);
            let (kind, scheme, control) = match (index, self.rng.next_f64()) {
                (0, roll) if roll < 0.5 => (
                    "azurerm",
                    "ServicePrincipal",
                    Some(("SC-01", "Azure connection uses a stored client secret")),
                ),
                (1, roll) if roll < 0.5 => (
                    "github",
                    "PersonalAccessToken",
                    Some(("SC-02", "GitHub connection backed by a PAT")),
                ),
                (1, _) => ("github", "InstallationToken", None),
                _ => ("azurerm", "WorkloadIdentityFederation", None),
            };
            let name = format!("{}-{kind}-{index}", project.name.to_lowercase());
            let json = json!({
                "data": {"environment": "AzureCloud", "scopeLevel": "Subscription", "subscriptionId": self.rng.guid()},
                "id": id, "name": name, "type": kind,
                "url": if kind == "github" { "https://github.com" } else { "https://management.azure.com/" },
                "createdBy": self.person(), "description": "",
                "authorization": {"parameters": {"tenantid": self.rng.guid(), "serviceprincipalid": self.rng.guid()}, "scheme": scheme},
                "isShared": false, "isReady": true, "owner": "Library",
                "serviceEndpointProjectReferences": [{"projectReference": {"id": project.id, "name": project.name}, "name": name, "description": ""}],
            });
            self.put(
                ResourceKind::ServiceEndpoints,
                &project.id,
                &id,
                json,
                created,
            );
            if let Some((control, why)) = control {
                self.plant(
                    control,
                    ResourceKind::ServiceEndpoints,
                    &project.id,
                    &id,
                    why,
                );
            }
        }
        for index in 0..sizes.variable_groups {
            let id = self.number();
            let created = self.past(50, 300);
            let plain_secret = self.rng.chance(0.15);
            let mut variables = json!({"apiUrl": {"value": "https://api.example"}, "dbPassword": {"isSecret": true, "value": null}});
            if plain_secret {
                variables["dbPassword"] = json!({"value": "Winter2026!"});
            }
            let json = json!({
                "variables": variables, "id": id, "type": "Vsts", "name": format!("{}-vars-{index}", project.name.to_lowercase()),
                "description": "", "createdBy": self.person(), "createdOn": iso(created), "modifiedBy": self.person(), "modifiedOn": iso(created),
                "isShared": false, "variableGroupProjectReferences": [{"projectReference": {"id": project.id, "name": project.name}, "name": format!("vars-{index}")}],
            });
            self.put(
                ResourceKind::VariableGroups,
                &project.id,
                &id.to_string(),
                json,
                created,
            );
            if plain_secret {
                self.plant(
                    "VG-01",
                    ResourceKind::VariableGroups,
                    &project.id,
                    &id.to_string(),
                    "dbPassword stored as plain text",
                );
            }
        }
        for index in 0..sizes.queues {
            let id = self.number();
            let hosted = index == 0;
            let json = json!({"id": id, "projectId": project.id, "name": if hosted { "Azure Pipelines".to_owned() } else { format!("SelfHosted-{index}") },
                              "pool": {"id": index + 1, "scope": self.rng.guid(), "name": if hosted { "Azure Pipelines".to_owned() } else { format!("SelfHosted-{index}") },
                                       "isHosted": hosted, "poolType": "automation", "size": 1, "isLegacy": false, "options": "none"}});
            let created = self.past(50, 300);
            self.put(
                ResourceKind::AgentQueues,
                &project.id,
                &id.to_string(),
                json,
                created,
            );
        }
        for index in 0..sizes.secure_files {
            let id = self.rng.guid();
            let created = self.past(50, 300);
            let json = json!({"id": id, "name": format!("signing-{index}.pfx"), "createdBy": self.person(), "createdOn": iso(created),
                              "modifiedBy": self.person(), "modifiedOn": iso(created), "properties": {}});
            self.put(ResourceKind::SecureFiles, &project.id, &id, json, created);
        }
    }

    fn generate_work_items(
        &mut self,
        project: &ProjectInfo,
        sizes: &Sizes,
        plant_hierarchy_faults: bool,
    ) {
        let total = sizes.work_items;
        let epics = (total / 50).max(1);
        let features = (total / 10).max(1);
        let stories = (total * 3 / 10).max(1);
        let first = self.next_number;
        self.next_number += total as u64;
        let id_of = |i: usize| first + i as u64;
        let mut parents: Vec<Option<u64>> = (0..total)
            .map(|i| {
                if i < epics {
                    None
                } else if i < epics + features {
                    Some(id_of(i % epics))
                } else if i < epics + features + stories {
                    Some(id_of(epics + i % features))
                } else {
                    Some(id_of(epics + features + i % stories))
                }
            })
            .collect();
        let mut planted = Vec::new();
        if plant_hierarchy_faults && total > epics + features + stories + 2 {
            let orphan = total - 1;
            parents[orphan] = None;
            planted.push(("WI-01", id_of(orphan), "task with no parent"));
            // Two features that are each other's parent: a cycle in the hierarchy.
            let (a, b) = (epics, epics + 1);
            parents[a] = Some(id_of(b));
            parents[b] = Some(id_of(a));
            planted.push(("WI-02", id_of(a), "parent cycle"));
            planted.push(("WI-02", id_of(b), "parent cycle"));
            // A Feature's parent must be an Epic.
            planted.push(("WI-03", id_of(a), "a feature's parent is a feature"));
            planted.push(("WI-03", id_of(b), "a feature's parent is a feature"));
        }
        let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
        for (i, parent) in parents.iter().enumerate() {
            if let Some(parent) = parent {
                children.entry(*parent).or_default().push(id_of(i));
            }
        }
        for (i, parent) in parents.iter().enumerate() {
            let id = id_of(i);
            let kind = if i < epics {
                "Epic"
            } else if i < epics + features {
                "Feature"
            } else if i < epics + features + stories {
                "User Story"
            } else {
                "Task"
            };
            let changed = self.past(1, 200);
            let json = self.work_item_json(
                project,
                id,
                kind,
                1,
                changed,
                *parent,
                children.get(&id).map(Vec::as_slice).unwrap_or_default(),
            );
            self.put(
                ResourceKind::WorkItems,
                &project.id,
                &id.to_string(),
                json,
                changed,
            );
        }
        for (control, id, why) in planted {
            self.plant(
                control,
                ResourceKind::WorkItems,
                &project.id,
                &id.to_string(),
                why,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn work_item_json(
        &mut self,
        project: &ProjectInfo,
        id: u64,
        kind: &str,
        rev: u64,
        changed_ms: i64,
        parent: Option<u64>,
        children: &[u64],
    ) -> Value {
        let state = ["New", "Active", "Resolved", "Closed"][(id % 4) as usize];
        // A parent is closed only once its children are (WI-04): parents stay in progress.
        let state = if state == "Closed" && !children.is_empty() {
            "Active"
        } else {
            state
        };
        let mut relations: Vec<Value> = parent
            .map(|p| json!({"rel": "System.LinkTypes.Hierarchy-Reverse", "url": format!("{}/_apis/wit/workItems/{p}", self.base()), "attributes": {"isLocked": false, "name": "Parent"}}))
            .into_iter()
            .collect();
        relations.extend(children.iter().map(|c| {
            json!({"rel": "System.LinkTypes.Hierarchy-Forward", "url": format!("{}/_apis/wit/workItems/{c}", self.base()), "attributes": {"isLocked": false, "name": "Child"}})
        }));
        let mut fields = json!({
            "System.Id": id, "System.AreaPath": project.name, "System.TeamProject": project.name,
            "System.IterationPath": format!("{}\\Sprint {}", project.name, 1 + id % 12), "System.WorkItemType": kind,
            "System.State": state, "System.Reason": "New", "System.CreatedDate": iso(changed_ms - 7 * DAY_MS),
            "System.CreatedBy": self.person(), "System.ChangedDate": iso(changed_ms), "System.ChangedBy": self.person(),
            "System.Title": format!("{kind} {id}"), "Microsoft.VSTS.Common.Priority": 1 + id % 4,
        });
        if let Some(parent) = parent {
            fields["System.Parent"] = json!(parent);
        }
        json!({"id": id, "rev": rev, "fields": fields, "relations": relations,
               "_links": {"self": {"href": format!("{}/_apis/wit/workItems/{id}", self.base())}},
               "url": format!("{}/_apis/wit/workItems/{id}", self.base())})
    }

    pub(crate) fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.number()
    }

    /// Make a run the latest of its pipeline: deployment records written later name it.
    pub(crate) fn remember_run(&mut self, pipeline_id: u64, run_id: u64, number: &str) {
        self.last_run
            .insert(pipeline_id, (run_id, number.to_owned()));
    }

    pub(crate) fn insert_raw(
        &mut self,
        kind: ResourceKind,
        scope: &str,
        ado_id: &str,
        json: Value,
        modified_ms: i64,
    ) {
        self.put(kind, scope, ado_id, json, modified_ms);
    }

    pub(crate) fn remove_raw(
        &mut self,
        kind: ResourceKind,
        scope: &str,
        ado_id: &str,
    ) -> Option<SimObject> {
        self.collection_mut(kind).remove(scope, ado_id)
    }

    pub(crate) fn remove_scope(&mut self, kind: ResourceKind, scope: &str) -> usize {
        self.collection_mut(kind).remove_scope(scope)
    }

    /// Drop planted entries whose object no longer exists (after a deletion mutation).
    pub(crate) fn forget_planted(&mut self, kind: ResourceKind, key: &str) {
        self.planted.retain(|p| !(p.kind == kind && p.id == key));
    }
}

pub(crate) fn identity(name: &str, mail: &str) -> Value {
    // Deterministic ids derived from the mail address, so a person is one identity everywhere.
    let hash = mail.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        hash >> 32,
        (hash >> 16) & 0xffff,
        hash & 0xfff,
        (hash >> 4) & 0xfff,
        hash & 0xffff_ffff_ffff
    );
    json!({"displayName": name, "id": id, "uniqueName": mail,
           "url": format!("https://vssps.dev.azure.com/fabrikam/_apis/Identities/{id}"), "descriptor": format!("aad.{id}")})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_generates_the_same_organisation() {
        let a = Org::generate("fabrikam", 42, Profile::Small, 1_790_000_000_000);
        let b = Org::generate("fabrikam", 42, Profile::Small, 1_790_000_000_000);
        assert_eq!(a.counts(), b.counts());
        assert_eq!(a.planted, b.planted);
        let c = Org::generate("fabrikam", 43, Profile::Small, 1_790_000_000_000);
        assert_ne!(
            a.projects.first().map(|p| p.id.clone()),
            c.projects.first().map(|p| p.id.clone())
        );
    }

    #[test]
    fn every_kind_is_populated_and_planted_objects_exist() {
        let org = Org::generate("fabrikam", 1, Profile::Small, 1_790_000_000_000);
        for (kind, count) in org.counts() {
            assert!(count > 0, "{kind} is empty");
        }
        assert!(!org.planted.is_empty());
        for planted in &org.planted {
            // Scopes hold no "/", ref names do: split at the first one.
            let (scope, ado_id) = planted
                .id
                .split_once('/')
                .unwrap_or(("", planted.id.as_str()));
            // Audit entries are stored by sequence; tollgate keys them by their entry id.
            let exists = if planted.kind == ResourceKind::AuditLog {
                org.collection(planted.kind).iter().any(|(_, o)| {
                    serde_json::from_str::<Value>(&o.json).is_ok_and(|e| e["id"] == *ado_id)
                })
            } else {
                org.collection(planted.kind).get(scope, ado_id).is_some()
            };
            assert!(exists, "{planted:?} does not exist");
        }
    }

    #[test]
    fn the_large_profile_meets_the_documented_sizes() {
        let sizes = Profile::Large.sizes();
        assert!(sizes.projects * sizes.repos >= 1_000);
        assert!(sizes.projects * sizes.pipelines >= 5_000);
        assert!(sizes.projects * sizes.work_items >= 100_000);
        assert!(sizes.projects * sizes.repos * sizes.alerts_per_repo >= 20_000);
    }
}
