//! The lenient wire models against Microsoft's published Azure DevOps payloads.
//!
//! Every file under `tests/fixtures/` is a byte-for-byte copy of a payload Microsoft published
//! (REST spec examples, live responses recorded by the Azure DevOps CLI team, service-hook
//! samples from the docs); `tests/fixtures/SOURCE.md` says where each one came from. These
//! tests feed them through the same entry points the client uses (`wire::parse_list`,
//! `wire::extract`, `wire::parse_audit_page`), so a model change that would reject a real
//! payload fails here instead of failing a customer's sync.
//!
//! The fixtures are read from this crate's own directory only: the shared fixture collection
//! they were copied from is not part of the build and may not exist where tests run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failure by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;
use tollgate_ado::wire;
use tollgate_domain::kind::ScopeLevel;
use tollgate_domain::{InventoryItem, ResourceKind};

use ResourceKind as K;
use Shape::{AuditPage, List, Single};

/// How a fixture file wraps the object or list we feed to the wire models.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// A `vsts-rest-api-specs` example: `{"parameters": …, "responses": {"200": {"body": …}}}`.
    Spec,
    /// A raw response body, as recorded from live traffic.
    Recorded,
    /// A service-hook event sample; the object sits under these keys. Used only where
    /// Microsoft publishes no REST example of the kind, or where the event's copy of the
    /// object is a second, independent published shape worth holding the models to.
    Event(&'static [&'static str]),
}

/// Which wire entry point the payload goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// A `{"count", "value": [...]}` list body: `wire::parse_list`.
    List,
    /// One object (a GET by id, or an object embedded in an event): `wire::extract`.
    Single,
    /// An audit-log page: `wire::parse_audit_page`.
    AuditPage,
}

struct Fixture {
    kind: ResourceKind,
    /// Relative to `tests/fixtures/`.
    path: &'static str,
    source: Source,
    shape: Shape,
}

const fn spec(kind: ResourceKind, path: &'static str, shape: Shape) -> Fixture {
    Fixture {
        kind,
        path,
        source: Source::Spec,
        shape,
    }
}

const fn recorded(kind: ResourceKind, path: &'static str, shape: Shape) -> Fixture {
    Fixture {
        kind,
        path,
        source: Source::Recorded,
        shape,
    }
}

const fn event(kind: ResourceKind, path: &'static str, keys: &'static [&'static str]) -> Fixture {
    Fixture {
        kind,
        path,
        source: Source::Event(keys),
        shape: Shape::Single,
    }
}

// Service-hook sample files, named once because several kinds read the same event.
const RUN_STATE_CHANGED: &str = "events/ms.vss-pipelines.run-state-changed-event.json";
const STAGE_STATE_CHANGED: &str = "events/ms.vss-pipelines.stage-state-changed-event.json";
const JOB_STATE_CHANGED: &str = "events/ms.vss-pipelines.job-state-changed-event.json";
const ALERT_CREATED: &str = "events/docs-2025/ms.vss-alerts.alert-created-event.json";
const ALERT_STATE_CHANGED: &str = "events/docs-2025/ms.vss-alerts.alert-state-changed-event.json";
const ALERT_UPDATED: &str = "events/docs-2025/ms.vss-alerts.alert-updated-event.json";

const RELEASE_LIST: &str = "spec/release/definitions/GET__ListAllReleaseDefinitions.json";
const RELEASE_LIST_ENVIRONMENTS: &str =
    "spec/release/definitions/GET__ListAllReleaseDefinitionsWithEnvironmentsExpanded.json";
const RELEASE_LIST_ARTIFACTS: &str =
    "spec/release/definitions/GET_ListAllReleaseDefinitionsWithArtifactsExpanded.json";
const RELEASE_GET: &str = "spec/release/definitions/GET__GetReleaseDefinition.json";
const RELEASE_CREATED: &str = "spec/release/definitions/POST__CreateReleaseDefinition.json";
const RELEASE_UPDATED: &str = "spec/release/definitions/PUT__UpdateReleaseDefinition.json";

/// Every copied fixture, with the kind it proves and how to read it.
const FIXTURES: &[Fixture] = &[
    // projects
    spec(K::Projects, "spec/core/projects/GET__projects.json", List),
    spec(
        K::Projects,
        "spec/core/historical-5.0/projects/GET__projects__projectName__includeCapabilities-true.json",
        Single,
    ),
    recorded(
        K::Projects,
        "recorded/test_devops_projects_CreateListShowDelete/06_GET_200_projects.json",
        List,
    ),
    recorded(
        K::Projects,
        "recorded/test_devops_projects_CreateListShowDelete/05_GET_200_projects_projectTest000001.json",
        Single,
    ),
    // agent_pools: only the CLI recordings exist (no spec example of pools).
    recorded(
        K::AgentPools,
        "recorded/test_pipeline_pools_and_agents/01_GET_200_distributedtask_pools.json",
        List,
    ),
    recorded(
        K::AgentPools,
        "recorded/test_pipeline_pools_and_agents/02_GET_200_distributedtask_pools_2.json",
        Single,
    ),
    // audit_log
    spec(
        K::AuditLog,
        "spec/audit/auditLog/GET__AuditLog_QueryLog_by_date.json",
        AuditPage,
    ),
    // teams
    spec(
        K::Teams,
        "spec/core/teams/GET__projects__projectId__teams.json",
        List,
    ),
    spec(
        K::Teams,
        "spec/core/teams/GET__projects__projectId__teams__teamId_.json",
        Single,
    ),
    spec(
        K::Teams,
        "spec/core/historical-5.0/teams/GET__projects__projectId__teams__top-_top___skip-_skip_.json",
        List,
    ),
    recorded(
        K::Teams,
        "recorded/test_boards_iterations/07_POST_201_projects_IterationProj_000001_teams.json",
        Single,
    ),
    // repositories
    spec(
        K::Repositories,
        "spec/git/repositories/GET__git_repositories.json",
        List,
    ),
    spec(
        K::Repositories,
        "spec/git/repositories/GET__git_repositories__repositoryId_.json",
        Single,
    ),
    recorded(
        K::Repositories,
        "recorded/test_repos_createListShowDelete/02_GET_200_RepoCreateListShowDeleteTests_git_repositories.json",
        List,
    ),
    recorded(
        K::Repositories,
        "recorded/test_repos_createListShowDelete/03_GET_200_RepoCreateListShowDeleteTests_git_repositories_ID.json",
        Single,
    ),
    event(
        K::Repositories,
        "events/docs-2025/git.repo.created.json",
        &["resource", "repository"],
    ),
    // refs
    spec(
        K::Refs,
        "spec/git/refs/GET__git_repositories__repositoryId__refs.json",
        List,
    ),
    spec(
        K::Refs,
        "spec/git/refs/GET__git_repositories__repositoryId__refs_tags.json",
        List,
    ),
    recorded(
        K::Refs,
        "recorded/test_ref_createListUpdateDelete/10_GET_200_refsTests000001_git_repositories_refsTests000002_refs.json",
        List,
    ),
    // policy_configurations
    spec(
        K::PolicyConfigurations,
        "spec/policy/configurations/GET__policy_configurations.json",
        List,
    ),
    spec(
        K::PolicyConfigurations,
        "spec/policy/configurations/GET__policy_configurations__configurationId_.json",
        Single,
    ),
    spec(
        K::PolicyConfigurations,
        "spec/policy/historical-5.0/configurations/GET__policy_configurations__configurationId__revisions.json",
        List,
    ),
    recorded(
        K::PolicyConfigurations,
        "recorded/test_repos_policies_createUpdateShowListDelete/24_GET_200_ID_policy_configurations.json",
        List,
    ),
    recorded(
        K::PolicyConfigurations,
        "recorded/test_repos_policies_createUpdateShowListDelete/25_GET_200_ID_policy_configurations_90.json",
        Single,
    ),
    // pull_requests
    spec(
        K::PullRequests,
        "spec/git/pullRequests/GET__git_repositories__repositoryId__pullRequests.json",
        List,
    ),
    spec(
        K::PullRequests,
        "spec/git/pullRequests/GET__git_repositories__repositoryId__pullRequests__pullRequestId_.json",
        Single,
    ),
    recorded(
        K::PullRequests,
        "recorded/test_pull_request_createUpdateVoteListAbandonReactivateCompleteReviewers/08_GET_200_PullRequestLiveTest_git_repositories_ID_pullRequests.json",
        List,
    ),
    recorded(
        K::PullRequests,
        "recorded/test_pull_request_createUpdateVoteListAbandonReactivateCompleteReviewers/16_GET_200_git_pullRequests_57.json",
        Single,
    ),
    recorded(
        K::PullRequests,
        "recorded/test_pull_request_policies_workitems/01_GET_200_PullRequestLiveTest_git_repositories_PullRequestLiveTest_pullRequests.json",
        List,
    ),
    event(
        K::PullRequests,
        "events/git.pullrequest.created.json",
        &["resource"],
    ),
    // build_definitions
    spec(
        K::BuildDefinitions,
        "spec/build/historical-5.0/definitions/GET__build_definitions.json",
        List,
    ),
    spec(
        K::BuildDefinitions,
        "spec/build/historical-5.0/definitions/GET__build_definitions__definitionId_.json",
        Single,
    ),
    recorded(
        K::BuildDefinitions,
        "recorded/test_build_definition_listShow/01_GET_200_buildtests_build_Definitions.json",
        List,
    ),
    recorded(
        K::BuildDefinitions,
        "recorded/test_build_definition_listShow/02_GET_200_buildtests_build_Definitions_20.json",
        Single,
    ),
    // builds
    spec(
        K::Builds,
        "spec/build/historical-5.0/builds/GET__build_builds_definitions-_definitionId__statusFilter-completed__top-1.json",
        List,
    ),
    spec(
        K::Builds,
        "spec/build/historical-5.0/builds/GET__build_builds__knownBuildId_.json",
        Single,
    ),
    recorded(
        K::Builds,
        "recorded/test_build_listQueueShow/04_GET_200_buildtests_build_Builds.json",
        List,
    ),
    recorded(
        K::Builds,
        "recorded/test_build_listQueueShow/03_GET_200_buildtests_build_Builds_638.json",
        Single,
    ),
    event(K::Builds, "events/build.complete.json", &["resource"]),
    // pipelines: no published Pipelines-API example; the pipeline objects embedded in the
    // `ms.vss-pipelines.*` service-hook samples are the only published shape.
    event(K::Pipelines, RUN_STATE_CHANGED, &["resource", "pipeline"]),
    event(K::Pipelines, STAGE_STATE_CHANGED, &["resource", "pipeline"]),
    event(K::Pipelines, JOB_STATE_CHANGED, &["resource", "pipeline"]),
    // pipeline_runs: likewise, only the run objects inside those samples.
    event(K::PipelineRuns, RUN_STATE_CHANGED, &["resource", "run"]),
    event(K::PipelineRuns, STAGE_STATE_CHANGED, &["resource", "run"]),
    event(K::PipelineRuns, JOB_STATE_CHANGED, &["resource", "run"]),
    // check_configurations
    spec(
        K::CheckConfigurations,
        "spec/checks/configurations/GET__CheckConfigurationsOnResource.json",
        List,
    ),
    spec(
        K::CheckConfigurations,
        "spec/checks/configurations/GET__CheckConfiguration.json",
        Single,
    ),
    spec(
        K::CheckConfigurations,
        "spec/checks/queryconfigurations/POST__QueryCheckConfigurationsOnResources.json",
        List,
    ),
    // service_endpoints
    spec(
        K::ServiceEndpoints,
        "spec/serviceendpoint/endpoints/ListEndpoints.json",
        List,
    ),
    spec(
        K::ServiceEndpoints,
        "spec/serviceendpoint/endpoints/GET__ServiceEndpoints.json",
        List,
    ),
    spec(
        K::ServiceEndpoints,
        "spec/serviceendpoint/endpoints/GetServiceEndpointDetails.json",
        Single,
    ),
    event(
        K::ServiceEndpoints,
        "events/docs-2025/ms.vss-endpoint.endpoint-created.json",
        &["resource"],
    ),
    // variable_groups
    spec(
        K::VariableGroups,
        "spec/distributedtask/variablegroups/GET_VariableGroupsByIds.json",
        List,
    ),
    spec(
        K::VariableGroups,
        "spec/distributedtask/variablegroups/GET_VariableGroup.json",
        Single,
    ),
    recorded(
        K::VariableGroups,
        "recorded/test_variable_group/10_GET_200_varGroupTests000001_distributedtask_variablegroups.json",
        List,
    ),
    recorded(
        K::VariableGroups,
        "recorded/test_variable_group/26_GET_200_varGroupTests000001_distributedtask_variablegroups_48.json",
        Single,
    ),
    // agent_queues
    spec(
        K::AgentQueues,
        "spec/distributedtask/historical-5.0/queues/GET__distributedtask_queues.json",
        List,
    ),
    spec(
        K::AgentQueues,
        "spec/distributedtask/historical-5.0/queues/GET__distributedtask_queues__queueId_.json",
        Single,
    ),
    recorded(
        K::AgentQueues,
        "recorded/test_pipeline_queues/06_GET_200_pipelineQueueTests000001_distributedtask_queues.json",
        List,
    ),
    recorded(
        K::AgentQueues,
        "recorded/test_pipeline_queues/07_GET_200_pipelineQueueTests000001_distributedtask_queues_3916.json",
        Single,
    ),
    // work_items
    spec(
        K::WorkItems,
        "spec/wit/workItems/GET__wit_WorkItems_ids-_ids_.json",
        List,
    ),
    spec(
        K::WorkItems,
        "spec/wit/workItems/GET__wit_WorkItems_ids-_ids___expand-all.json",
        List,
    ),
    spec(
        K::WorkItems,
        "spec/wit/workItems/GET__wit_WorkItems_id.json",
        Single,
    ),
    spec(
        K::WorkItems,
        "spec/wit/workItemsBatch/POST__wit_WorkItemsBatch_ids-_ids__fields-_columns_.json",
        List,
    ),
    recorded(
        K::WorkItems,
        "recorded/test_boards_releations_create_remove/14_GET_200_wit_workItems_973.json",
        Single,
    ),
    recorded(
        K::WorkItems,
        "recorded/test_queryShow/02_GET_200_wit_workItems.json",
        List,
    ),
    event(K::WorkItems, "events/workitem.created.json", &["resource"]),
    // release_definitions: the list (plain and with each `$expand` Microsoft published) and
    // the full definition as Definitions_Get, Create and Update return it.
    spec(K::ReleaseDefinitions, RELEASE_LIST, List),
    spec(K::ReleaseDefinitions, RELEASE_LIST_ENVIRONMENTS, List),
    spec(K::ReleaseDefinitions, RELEASE_LIST_ARTIFACTS, List),
    spec(K::ReleaseDefinitions, RELEASE_GET, Single),
    spec(K::ReleaseDefinitions, RELEASE_CREATED, Single),
    spec(K::ReleaseDefinitions, RELEASE_UPDATED, Single),
    // alerts: no published Advanced Security REST example; the alert object inside the three
    // `ms.vss-alerts.*` service-hook samples is the only published shape.
    event(K::Alerts, ALERT_CREATED, &["resource"]),
    event(K::Alerts, ALERT_STATE_CHANGED, &["resource"]),
    event(K::Alerts, ALERT_UPDATED, &["resource"]),
];

/// Kinds Microsoft has published no payload for, anywhere we looked (spec examples at HEAD
/// and in history, the docs' service-hook samples, the CLI's recorded traffic). Their wire
/// models are checked only against the OpenAPI schema by reading, not by a test. Adding a
/// kind to `ResourceKind` without either a fixture or an entry here fails
/// `every_resource_kind_has_a_fixture_or_a_documented_reason_it_has_none`.
const NO_PUBLISHED_PAYLOAD: &[(ResourceKind, &str)] = &[
    // `_apis/distributedtask/environments` / `_apis/pipelines/environments`: no example in
    // vsts-rest-api-specs, and no service-hook sample embeds an environment (the
    // `approval-pending` / `approval-completed` samples carry `"resource": null`).
    (
        K::Environments,
        "no spec example and no event sample embeds an environment",
    ),
    // `environments/{id}/environmentdeploymentrecords`: schema only (`SCHEMA-DIGEST.md`).
    (
        K::EnvironmentDeployments,
        "no spec example of environment deployment records",
    ),
    // `_apis/distributedtask/securefiles`: not even an OpenAPI definition is published.
    (
        K::SecureFiles,
        "no spec, no example and no event sample for secure files",
    ),
];

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture's text, minus a UTF-8 byte-order mark: some Microsoft JSON files start with
/// one and serde_json (rightly) refuses it.
fn read(path: &str) -> String {
    let full = fixtures_dir().join(path);
    let text = fs::read_to_string(&full)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", full.display()));
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

/// One member of a JSON object, still raw, so that what reaches the wire models is exactly
/// the published bytes rather than a re-serialised copy.
fn member<'a>(path: &str, object: &'a RawValue, key: &str) -> &'a RawValue {
    let members: BTreeMap<String, &'a RawValue> = serde_json::from_str(object.get())
        .unwrap_or_else(|error| panic!("{path}: expected an object around {key:?}: {error}"));
    members
        .get(key)
        .copied()
        .unwrap_or_else(|| panic!("{path}: no member {key:?}"))
}

/// The payload inside a fixture file: the spec example's 200 body, the recorded body as is,
/// or the object an event sample embeds.
fn payload<'a>(fixture: &Fixture, text: &'a str) -> &'a RawValue {
    let root: &RawValue = serde_json::from_str(text)
        .unwrap_or_else(|error| panic!("{}: not JSON: {error}", fixture.path));
    match fixture.source {
        Source::Recorded => root,
        Source::Spec => {
            let responses = member(fixture.path, root, "responses");
            let ok = member(fixture.path, responses, "200");
            member(fixture.path, ok, "body")
        }
        Source::Event(keys) => keys
            .iter()
            .fold(root, |object, key| member(fixture.path, object, key)),
    }
}

/// The scope the client would list a kind under; any non-empty stand-in will do for project
/// and child kinds, but it must be empty for organisation kinds (their keys are unqualified).
fn scope_for(kind: ResourceKind) -> &'static str {
    match kind.scope_level() {
        ScopeLevel::Organization => "",
        ScopeLevel::Project => "project-under-test",
        ScopeLevel::Parent(_) => "parent-under-test",
    }
}

/// Run one fixture through the wire entry point its shape calls for, and check what every
/// inventory item must satisfy whatever its kind.
fn load(fixture: &Fixture) -> Vec<InventoryItem> {
    let text = read(fixture.path);
    let body = payload(fixture, &text);
    let kind = fixture.kind;
    let scope = scope_for(kind);
    let path = fixture.path;
    let items = match fixture.shape {
        Shape::List => wire::parse_list(kind, scope, body.get())
            .unwrap_or_else(|error| panic!("{path}: parse_list({kind}) failed: {error}")),
        Shape::Single => vec![
            wire::extract(kind, scope, body)
                .unwrap_or_else(|error| panic!("{path}: extract({kind}) failed: {error}")),
        ],
        Shape::AuditPage => {
            wire::parse_audit_page(body.get())
                .unwrap_or_else(|error| panic!("{path}: parse_audit_page failed: {error}"))
                .0
        }
    };

    // An empty list would prove nothing about the model, so no fixture may be one.
    assert!(!items.is_empty(), "{path}: yielded no items");
    if fixture.shape == Shape::List {
        // Nothing may be dropped on the way: one item per published object.
        let published: serde_json::Value = serde_json::from_str(body.get()).unwrap();
        let expected = published["value"].as_array().map_or(0, Vec::len);
        assert_eq!(items.len(), expected, "{path}: items lost");
    }
    for item in &items {
        assert_eq!(item.kind, kind, "{path}");
        assert!(!item.ado_id.trim().is_empty(), "{path}: empty ado_id");
        assert_eq!(item.scope, scope, "{path}");
        assert_eq!(
            item.key,
            InventoryItem::key_for(scope, &item.ado_id),
            "{path}"
        );
        // The stored raw JSON must be the published bytes, not a re-serialisation: the
        // policy engine and diffs read it, and a round trip would reorder or drop fields.
        assert!(
            text.contains(&item.raw),
            "{path}: raw JSON of {} is not a verbatim slice of the fixture",
            item.ado_id
        );
        serde_json::from_str::<serde_json::Value>(&item.raw)
            .unwrap_or_else(|error| panic!("{path}: raw JSON of {} invalid: {error}", item.ado_id));
    }
    items
}

/// The fixtures that cover `kind`, by path, each already loaded and checked.
struct Covered(BTreeMap<&'static str, Vec<InventoryItem>>);

impl Covered {
    /// The item with this id from one fixture.
    fn item(&self, path: &str, ado_id: &str) -> &InventoryItem {
        let items = self
            .0
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not a fixture of this kind"));
        items
            .iter()
            .find(|item| item.ado_id == ado_id)
            .unwrap_or_else(|| {
                let ids: Vec<&str> = items.iter().map(|i| i.ado_id.as_str()).collect();
                panic!("{path}: no item {ado_id:?}; have {ids:?}")
            })
    }

    fn items(&self, path: &str) -> &[InventoryItem] {
        self.0
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not a fixture of this kind"))
    }
}

/// Check that `kind` is covered by exactly `expected` (the list in each per-kind test is the
/// human-readable record of its coverage, and must agree with `FIXTURES`), then load them all.
fn covered(kind: ResourceKind, expected: &[&str]) -> Covered {
    let listed: BTreeSet<&str> = FIXTURES
        .iter()
        .filter(|fixture| fixture.kind == kind)
        .map(|fixture| fixture.path)
        .collect();
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    assert_eq!(
        listed, expected,
        "fixtures for {kind} drifted from FIXTURES"
    );
    Covered(
        FIXTURES
            .iter()
            .filter(|fixture| fixture.kind == kind)
            .map(|fixture| (fixture.path, load(fixture)))
            .collect(),
    )
}

fn name(item: &InventoryItem) -> Option<&str> {
    item.name.as_deref()
}

fn revision(item: &InventoryItem) -> Option<&str> {
    item.revision.as_deref()
}

// ---------------------------------------------------------------------------------------
// One test per kind: which fixtures cover it, that each deserializes, and a few values.
// ---------------------------------------------------------------------------------------

#[test]
fn every_published_project_payload_deserializes() {
    let spec_list = "spec/core/projects/GET__projects.json";
    let spec_one = "spec/core/historical-5.0/projects/GET__projects__projectName__includeCapabilities-true.json";
    let live_list = "recorded/test_devops_projects_CreateListShowDelete/06_GET_200_projects.json";
    let live_one = "recorded/test_devops_projects_CreateListShowDelete/05_GET_200_projects_projectTest000001.json";
    let got = covered(K::Projects, &[spec_list, spec_one, live_list, live_one]);

    let tfvc = got.item(spec_list, "eb6e4656-77fc-42a1-9181-4c6d8e9da5d1");
    assert_eq!(name(tfvc), Some("Fabrikam-Fiber-TFVC"));
    assert_eq!(got.items(spec_list).len(), 3);
    // Organisation-wide kind: the key is the bare id.
    assert_eq!(tfvc.key, "eb6e4656-77fc-42a1-9181-4c6d8e9da5d1");
    assert_eq!(got.items(live_list).len(), 12);
    let created = got.item(live_one, "c9b977bd-dba8-4fe9-92a0-a9a893c98643");
    assert_eq!(name(created), Some("projectTest000001"));
    assert_eq!(revision(created), Some("4640"));
}

#[test]
fn every_published_agent_pool_payload_deserializes() {
    let list = "recorded/test_pipeline_pools_and_agents/01_GET_200_distributedtask_pools.json";
    let one = "recorded/test_pipeline_pools_and_agents/02_GET_200_distributedtask_pools_2.json";
    let got = covered(K::AgentPools, &[list, one]);

    // Pool ids are numbers on the wire; the inventory spells them as text.
    assert_eq!(name(got.item(list, "2")), Some("Hosted"));
    assert_eq!(name(got.item(one, "2")), Some("Hosted"));
}

#[test]
fn every_published_audit_log_page_deserializes() {
    let page = "spec/audit/auditLog/GET__AuditLog_QueryLog_by_date.json";
    let got = covered(K::AuditLog, &[page]);

    let entries = got.items(page);
    assert_eq!(entries.len(), 2);
    let access = got.item(
        page,
        "2518505060978539161;00000064-0000-8888-8000-000000000000;86fbe369-3f5d-4f52-9ab0-3be7db271948",
    );
    assert_eq!(name(access), Some("AuditLog.AccessLog"));
    assert_eq!(name(&entries[1]), Some("Project.CreateCompleted"));
}

#[test]
fn the_published_last_audit_page_yields_no_continuation_token() {
    // Microsoft's example carries a continuationToken together with "hasMore": false; the
    // token must not be followed, or a sync would loop on the last page.
    let fixture = FIXTURES
        .iter()
        .find(|fixture| fixture.shape == Shape::AuditPage)
        .unwrap();
    let text = read(fixture.path);
    let body = payload(fixture, &text);
    assert!(body.get().contains("\"continuationToken\""));
    let (items, next) = wire::parse_audit_page(body.get()).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(next, None);
}

#[test]
fn every_published_team_payload_deserializes() {
    let list = "spec/core/teams/GET__projects__projectId__teams.json";
    let one = "spec/core/teams/GET__projects__projectId__teams__teamId_.json";
    let paged = "spec/core/historical-5.0/teams/GET__projects__projectId__teams__top-_top___skip-_skip_.json";
    let created =
        "recorded/test_boards_iterations/07_POST_201_projects_IterationProj_000001_teams.json";
    let got = covered(K::Teams, &[list, one, paged, created]);

    let qa = got.item(list, "564e8204-a90b-4432-883b-d4363c6125ca");
    assert_eq!(name(qa), Some("Quality assurance"));
    assert_eq!(
        qa.key,
        "project-under-test/564e8204-a90b-4432-883b-d4363c6125ca"
    );
    assert_eq!(
        name(got.item(created, "3f4fedbd-0dd6-4ca3-85f3-842e0ca64fcd")),
        Some("teamName1_000002")
    );
}

#[test]
fn every_published_repository_payload_deserializes() {
    let list = "spec/git/repositories/GET__git_repositories.json";
    let one = "spec/git/repositories/GET__git_repositories__repositoryId_.json";
    let live_list = "recorded/test_repos_createListShowDelete/02_GET_200_RepoCreateListShowDeleteTests_git_repositories.json";
    let live_one = "recorded/test_repos_createListShowDelete/03_GET_200_RepoCreateListShowDeleteTests_git_repositories_ID.json";
    let created = "events/docs-2025/git.repo.created.json";
    let got = covered(K::Repositories, &[list, one, live_list, live_one, created]);

    assert_eq!(
        name(got.item(list, "278d5cd2-584d-4b63-824a-2ba458937249")),
        Some("Fabrikam-Fiber-Git")
    );
    assert_eq!(
        name(got.item(one, "5febef5a-833d-4e14-b9c0-14cb638f91e6")),
        Some("AnotherRepository")
    );
    assert_eq!(got.items(live_list).len(), 11);
    assert_eq!(
        name(got.item(live_one, "491109c5-b179-4c98-862a-506e04f8345e")),
        Some("KyrgtPBo")
    );
    // The 2025 docs anonymise ids into non-GUIDs; ids are opaque text to us, so that is fine.
    assert_eq!(
        name(got.item(created, "c2c2c2c2-dddd-eeee-ffff-a3a3a3a3a3a3")),
        Some("Fabrikam-Fiber-Git")
    );
}

#[test]
fn every_published_ref_payload_deserializes() {
    let all = "spec/git/refs/GET__git_repositories__repositoryId__refs.json";
    let tags = "spec/git/refs/GET__git_repositories__repositoryId__refs_tags.json";
    let live = "recorded/test_ref_createListUpdateDelete/10_GET_200_refsTests000001_git_repositories_refsTests000002_refs.json";
    let got = covered(K::Refs, &[all, tags, live]);

    // A ref has no id of its own: the name identifies it and the commit it points at is its
    // revision, so moving a branch shows up as a revision change.
    let master = got.item(all, "refs/heads/master");
    assert_eq!(name(master), Some("refs/heads/master"));
    assert_eq!(
        revision(master),
        Some("ffe9cba521f00d7f60e322845072238635edb451")
    );
    assert_eq!(got.items(all).len(), 7);
    assert_eq!(
        revision(got.item(tags, "refs/tags/v0.1")),
        Some("917131a709996c5cfe188c3b57e9a6ad90e8b85c")
    );
    assert_eq!(
        revision(got.item(live, "refs/heads/master")),
        Some("c06ae011e801fea6e915d5a779f3322e6f5301a1")
    );
}

#[test]
fn every_published_policy_configuration_payload_deserializes() {
    let list = "spec/policy/configurations/GET__policy_configurations.json";
    let one = "spec/policy/configurations/GET__policy_configurations__configurationId_.json";
    let revisions = "spec/policy/historical-5.0/configurations/GET__policy_configurations__configurationId__revisions.json";
    let live_list = "recorded/test_repos_policies_createUpdateShowListDelete/24_GET_200_ID_policy_configurations.json";
    let live_one = "recorded/test_repos_policies_createUpdateShowListDelete/25_GET_200_ID_policy_configurations_90.json";
    let got = covered(
        K::PolicyConfigurations,
        &[list, one, revisions, live_list, live_one],
    );

    // The name is the policy type's display name; the revision is the configuration's.
    let reviewers = got.item(list, "17");
    assert_eq!(name(reviewers), Some("Required reviewers"));
    assert_eq!(revision(reviewers), Some("2"));
    assert_eq!(name(got.item(list, "18")), Some("Minimum approval count"));
    assert_eq!(name(got.item(list, "19")), Some("Build"));
    assert_eq!(revision(got.item(one, "17")), Some("2"));
    // The revisions endpoint lists the same configuration id once per revision.
    let history: Vec<Option<&str>> = got.items(revisions).iter().map(revision).collect();
    assert_eq!(history, vec![Some("2"), Some("1")]);
    let merge = got.item(live_one, "90");
    assert_eq!(name(merge), Some("Require a merge strategy"));
    assert_eq!(revision(merge), Some("2"));
    assert_eq!(revision(got.item(live_list, "90")), Some("2"));
}

#[test]
fn every_published_pull_request_payload_deserializes() {
    let list = "spec/git/pullRequests/GET__git_repositories__repositoryId__pullRequests.json";
    let one = "spec/git/pullRequests/GET__git_repositories__repositoryId__pullRequests__pullRequestId_.json";
    let live_list = "recorded/test_pull_request_createUpdateVoteListAbandonReactivateCompleteReviewers/08_GET_200_PullRequestLiveTest_git_repositories_ID_pullRequests.json";
    let live_one = "recorded/test_pull_request_createUpdateVoteListAbandonReactivateCompleteReviewers/16_GET_200_git_pullRequests_57.json";
    let live_list_2 = "recorded/test_pull_request_policies_workitems/01_GET_200_PullRequestLiveTest_git_repositories_PullRequestLiveTest_pullRequests.json";
    let created = "events/git.pullrequest.created.json";
    let got = covered(
        K::PullRequests,
        &[list, one, live_list, live_one, live_list_2, created],
    );

    // The id is `pullRequestId`, not `id` (pull requests have none).
    assert_eq!(name(got.item(list, "22")), Some("A new feature"));
    assert_eq!(
        name(got.item(list, "21")),
        Some("Added known issues document")
    );
    assert_eq!(name(got.item(one, "22")), Some("A new feature"));
    assert_eq!(
        name(got.item(live_one, "57")),
        Some("Fixing a bug in cli engine")
    );
    assert_eq!(got.items(live_list_2).len(), 2);
    assert!(!got.items(created)[0].ado_id.is_empty());
}

#[test]
fn every_published_build_definition_payload_deserializes() {
    let list = "spec/build/historical-5.0/definitions/GET__build_definitions.json";
    let one = "spec/build/historical-5.0/definitions/GET__build_definitions__definitionId_.json";
    let live_list =
        "recorded/test_build_definition_listShow/01_GET_200_buildtests_build_Definitions.json";
    let live_one =
        "recorded/test_build_definition_listShow/02_GET_200_buildtests_build_Definitions_20.json";
    let got = covered(K::BuildDefinitions, &[list, one, live_list, live_one]);

    let vso = got.item(list, "25");
    assert_eq!(name(vso), Some("VsoBuildApi"));
    assert_eq!(revision(vso), Some("10"));
    // A XAML definition in the same list publishes no revision at all.
    let xaml = got.item(list, "2");
    assert_eq!(name(xaml), Some("MyWebSite CI"));
    assert_eq!(revision(xaml), None);
    assert_eq!(revision(got.item(one, "29")), Some("1"));
    let live = got.item(live_one, "20");
    assert_eq!(name(live), Some("BuildTests Definition1"));
    assert_eq!(revision(live), Some("4"));
    assert_eq!(got.items(live_list).len(), 2);
}

#[test]
fn every_published_build_payload_deserializes() {
    let list = "spec/build/historical-5.0/builds/GET__build_builds_definitions-_definitionId__statusFilter-completed__top-1.json";
    let one = "spec/build/historical-5.0/builds/GET__build_builds__knownBuildId_.json";
    let live_list = "recorded/test_build_listQueueShow/04_GET_200_buildtests_build_Builds.json";
    let live_one = "recorded/test_build_listQueueShow/03_GET_200_buildtests_build_Builds_638.json";
    let completed = "events/build.complete.json";
    let got = covered(K::Builds, &[list, one, live_list, live_one, completed]);

    // The name is the build number.
    assert_eq!(name(got.item(list, "391")), Some("20150716.2"));
    assert_eq!(name(got.item(one, "391")), Some("20150716.2"));
    assert_eq!(got.items(live_list).len(), 4);
    assert_eq!(name(got.item(live_list, "638")), Some("20260401.4"));
    assert_eq!(name(got.item(live_one, "638")), Some("20260401.4"));
    assert!(got.items(completed)[0].name.is_some());
}

#[test]
fn every_published_pipeline_object_deserializes() {
    let got = covered(
        K::Pipelines,
        &[RUN_STATE_CHANGED, STAGE_STATE_CHANGED, JOB_STATE_CHANGED],
    );

    // As published, the run-state sample's pipeline says id 11 while its URL says
    // `Pipelines/1`; we take the `id` field, as the client would.
    let pipeline = got.item(RUN_STATE_CHANGED, "11");
    assert_eq!(name(pipeline), Some("TEST-CI"));
    assert_eq!(revision(pipeline), Some("1"));
    assert_eq!(revision(got.item(STAGE_STATE_CHANGED, "2")), Some("2"));
    assert_eq!(name(got.item(JOB_STATE_CHANGED, "2")), Some("TEST-CI"));
}

#[test]
fn every_published_pipeline_run_object_deserializes() {
    let got = covered(
        K::PipelineRuns,
        &[RUN_STATE_CHANGED, STAGE_STATE_CHANGED, JOB_STATE_CHANGED],
    );

    let run = got.item(RUN_STATE_CHANGED, "11");
    assert_eq!(name(run), Some("11"));
    // A child kind: the key is qualified by the parent pipeline.
    assert_eq!(run.key, "parent-under-test/11");
    assert_eq!(name(got.item(STAGE_STATE_CHANGED, "2")), Some("2"));
    assert_eq!(name(got.item(JOB_STATE_CHANGED, "2")), Some("2"));
}

#[test]
fn every_published_check_configuration_payload_deserializes() {
    let list = "spec/checks/configurations/GET__CheckConfigurationsOnResource.json";
    let one = "spec/checks/configurations/GET__CheckConfiguration.json";
    let query = "spec/checks/queryconfigurations/POST__QueryCheckConfigurationsOnResources.json";
    let got = covered(K::CheckConfigurations, &[list, one, query]);

    // The name is the check type's name (Approval, Task Check, …).
    assert_eq!(name(got.item(list, "22")), Some("Approval"));
    assert_eq!(name(got.item(list, "23")), Some("Task Check"));
    assert_eq!(name(got.item(one, "16")), Some("Task Check"));
    assert_eq!(got.items(query).len(), 12);
    // The revision is the configuration's `version`. That field only appears in the 7.2
    // schema, and no published example carries it, so these all come out without one: change
    // detection for checks cannot lean on the revision for such payloads.
    for item in got.0.values().flatten() {
        let raw: serde_json::Value = serde_json::from_str(&item.raw).unwrap();
        // AdoId spells a number as its digits and a string as itself.
        let version = raw
            .get("version")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        assert_eq!(item.revision, version, "check {}", item.ado_id);
    }
}

#[test]
fn every_published_service_endpoint_payload_deserializes() {
    let list = "spec/serviceendpoint/endpoints/ListEndpoints.json";
    let filtered = "spec/serviceendpoint/endpoints/GET__ServiceEndpoints.json";
    let one = "spec/serviceendpoint/endpoints/GetServiceEndpointDetails.json";
    let created = "events/docs-2025/ms.vss-endpoint.endpoint-created.json";
    let got = covered(K::ServiceEndpoints, &[list, filtered, one, created]);

    let generic = "5e47a0d8-c745-44f8-8f93-784f18ff31c4";
    assert_eq!(name(got.item(list, generic)), Some("MyNewServiceEndpoint"));
    assert_eq!(name(got.item(one, generic)), Some("MyNewServiceEndpoint"));
    assert_eq!(
        name(got.item(filtered, "4b16dc87-22a0-45f9-82d8-2e295c4597c6")),
        Some("TestEndpoint")
    );
    // The event sample publishes `"authorization": null`; the model must take it.
    assert_eq!(
        name(got.item(created, "b1b1b1b1-cccc-dddd-eeee-f2f2f2f2f2f2")),
        Some("Sample service connection")
    );
}

#[test]
fn every_published_variable_group_payload_deserializes() {
    let list = "spec/distributedtask/variablegroups/GET_VariableGroupsByIds.json";
    let one = "spec/distributedtask/variablegroups/GET_VariableGroup.json";
    let live_list = "recorded/test_variable_group/10_GET_200_varGroupTests000001_distributedtask_variablegroups.json";
    let live_one = "recorded/test_variable_group/26_GET_200_varGroupTests000001_distributedtask_variablegroups_48.json";
    let got = covered(K::VariableGroups, &[list, one, live_list, live_one]);

    // As published, both groups in this example have id 1; parse_list keeps both.
    let names: Vec<Option<&str>> = got.items(list).iter().map(name).collect();
    assert_eq!(
        names,
        vec![Some("TestVariableGroup1"), Some("TestVariableGroup2")]
    );
    assert_eq!(name(got.item(one, "1")), Some("TestVariableGroup1"));
    assert_eq!(name(got.item(live_list, "47")), Some("group1"));
    assert_eq!(name(got.item(live_one, "48")), Some("newGroup"));
}

#[test]
fn every_published_agent_queue_payload_deserializes() {
    let list = "spec/distributedtask/historical-5.0/queues/GET__distributedtask_queues.json";
    let one =
        "spec/distributedtask/historical-5.0/queues/GET__distributedtask_queues__queueId_.json";
    let live_list = "recorded/test_pipeline_queues/06_GET_200_pipelineQueueTests000001_distributedtask_queues.json";
    let live_one = "recorded/test_pipeline_queues/07_GET_200_pipelineQueueTests000001_distributedtask_queues_3916.json";
    let got = covered(K::AgentQueues, &[list, one, live_list, live_one]);

    assert_eq!(name(got.item(list, "1")), Some("Default"));
    assert_eq!(name(got.item(one, "4")), Some("myNewQueue"));
    assert_eq!(got.items(live_list).len(), 9);
    assert_eq!(name(got.item(live_one, "3916")), Some("Default"));
}

#[test]
fn every_published_work_item_payload_deserializes() {
    let list = "spec/wit/workItems/GET__wit_WorkItems_ids-_ids_.json";
    let expanded = "spec/wit/workItems/GET__wit_WorkItems_ids-_ids___expand-all.json";
    let one = "spec/wit/workItems/GET__wit_WorkItems_id.json";
    let batch = "spec/wit/workItemsBatch/POST__wit_WorkItemsBatch_ids-_ids__fields-_columns_.json";
    let live_one =
        "recorded/test_boards_releations_create_remove/14_GET_200_wit_workItems_973.json";
    let live_list = "recorded/test_queryShow/02_GET_200_wit_workItems.json";
    let created = "events/workitem.created.json";
    let got = covered(
        K::WorkItems,
        &[list, expanded, one, batch, live_one, live_list, created],
    );

    // The name is `fields["System.Title"]`, the revision is `rev`.
    let epic = got.item(one, "12");
    assert_eq!(name(epic), Some("Epic 2"));
    assert_eq!(revision(epic), Some("3"));
    let js = got.item(list, "299");
    assert_eq!(
        name(js),
        Some("JavaScript implementation for Microsoft Account")
    );
    assert_eq!(revision(js), Some("7"));
    // `$expand=all` adds relations; the same item must still come out the same.
    assert_eq!(name(got.item(expanded, "299")), name(js));
    assert_eq!(revision(got.item(batch, "299")), Some("7"));
    let task = got.item(live_one, "973");
    assert_eq!(name(task), Some("Task_0"));
    assert_eq!(revision(task), Some("1"));
    assert_eq!(name(got.item(live_list, "41")), Some("Test2"));
    assert_eq!(revision(got.item(live_list, "41")), Some("5"));
    assert!(got.items(created)[0].name.is_some());
}

#[test]
fn every_published_release_definition_payload_deserializes() {
    let got = covered(
        K::ReleaseDefinitions,
        &[
            RELEASE_LIST,
            RELEASE_LIST_ENVIRONMENTS,
            RELEASE_LIST_ARTIFACTS,
            RELEASE_GET,
            RELEASE_CREATED,
            RELEASE_UPDATED,
        ],
    );

    for list in [
        RELEASE_LIST,
        RELEASE_LIST_ENVIRONMENTS,
        RELEASE_LIST_ARTIFACTS,
    ] {
        let shuttle = got.item(list, "1");
        assert_eq!(name(shuttle), Some("MyShuttle.CD"));
        assert_eq!(revision(shuttle), Some("3"));
        assert_eq!(shuttle.key, "project-under-test/1");
    }
    let web = got.item(RELEASE_GET, "40");
    assert_eq!(name(web), Some("Fabrikam-web"));
    assert_eq!(revision(web), Some("1"));
    assert_eq!(revision(got.item(RELEASE_CREATED, "42")), Some("1"));
    assert_eq!(revision(got.item(RELEASE_UPDATED, "43")), Some("2"));
}

#[test]
fn release_definition_lists_are_summaries_so_the_client_reads_each_definition() {
    // Why the endpoint table gives release definitions a detail path: even with
    // `$expand=Environments` the list's stages carry no approvals, gates, conditions or
    // variables; only the definition read by id has them.
    let stages = |path: &str| -> Vec<serde_json::Value> {
        let item = &FIXTURES
            .iter()
            .find(|fixture| fixture.path == path)
            .map(load)
            .unwrap()[0];
        let raw: serde_json::Value = serde_json::from_str(&item.raw).unwrap();
        raw["environments"].as_array().cloned().unwrap_or_default()
    };
    let listed = stages(RELEASE_LIST_ENVIRONMENTS);
    assert_eq!(listed.len(), 4);
    for stage in &listed {
        for field in [
            "preDeployApprovals",
            "preDeploymentGates",
            "conditions",
            "variables",
        ] {
            assert!(
                stage.get(field).is_none(),
                "listed stage has {field}: {stage}"
            );
        }
    }
    let read = stages(RELEASE_GET);
    let production = &read[0];
    assert_eq!(production["name"], "PROD");
    assert_eq!(
        production["preDeployApprovals"]["approvals"][0]["isAutomated"],
        false
    );
    assert_eq!(
        production["preDeployApprovals"]["approvalOptions"]["releaseCreatorCanBeApprover"],
        true
    );
    assert!(production["preDeploymentGates"].is_object());
    assert!(production["conditions"].is_array());
    let endpoint = tollgate_domain::ado_api::endpoint_for(K::ReleaseDefinitions);
    assert_eq!(
        endpoint.detail_path,
        Some("/{organization}/{project}/_apis/release/definitions/{id}")
    );
}

#[test]
fn every_published_alert_object_deserializes() {
    let got = covered(
        K::Alerts,
        &[ALERT_CREATED, ALERT_STATE_CHANGED, ALERT_UPDATED],
    );

    // The id is `alertId`; the samples publish null dates, which the model must take.
    for path in [ALERT_CREATED, ALERT_STATE_CHANGED, ALERT_UPDATED] {
        let alert = got.item(path, "1");
        assert_eq!(name(alert), Some("Alert title"));
        assert_eq!(alert.key, "parent-under-test/1");
    }
}

// ---------------------------------------------------------------------------------------
// Coverage guards: no kind, and no copied file, may go untested without anyone noticing.
// ---------------------------------------------------------------------------------------

#[test]
fn every_resource_kind_has_a_fixture_or_a_documented_reason_it_has_none() {
    let with_fixture: BTreeSet<ResourceKind> =
        FIXTURES.iter().map(|fixture| fixture.kind).collect();
    let without: BTreeSet<ResourceKind> = NO_PUBLISHED_PAYLOAD.iter().map(|(k, _)| *k).collect();
    for kind in ResourceKind::ALL {
        assert!(
            with_fixture.contains(kind) || without.contains(kind),
            "{kind} has no fixture and is not in NO_PUBLISHED_PAYLOAD: add a published \
             payload under tests/fixtures/ or document why none exists"
        );
    }
    // A kind that gains a fixture must leave the list, so the list stays true.
    for kind in &without {
        assert!(
            !with_fixture.contains(kind),
            "{kind} has a fixture now; remove it from NO_PUBLISHED_PAYLOAD"
        );
    }
    for (kind, reason) in NO_PUBLISHED_PAYLOAD {
        assert!(!reason.trim().is_empty(), "{kind} needs a reason");
    }
}

#[test]
fn every_fixture_deserializes_with_a_non_empty_id() {
    // Already implied by the per-kind tests; kept as one sweep so a fixture added to FIXTURES
    // without a per-kind assertion is still exercised.
    for fixture in FIXTURES {
        load(fixture);
    }
}

fn json_files_under(dir: &Path, root: &Path, found: &mut BTreeSet<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files_under(&path, root, found);
        } else if path.extension().is_some_and(|ext| ext == "json") {
            let relative = path.strip_prefix(root).unwrap();
            found.insert(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn every_copied_fixture_file_is_exercised_and_every_listed_one_exists() {
    let root = fixtures_dir();
    let mut on_disk = BTreeSet::new();
    json_files_under(&root, &root, &mut on_disk);
    let listed: BTreeSet<String> = FIXTURES
        .iter()
        .map(|fixture| fixture.path.to_owned())
        .collect();
    let unused: Vec<&String> = on_disk.difference(&listed).collect();
    let missing: Vec<&String> = listed.difference(&on_disk).collect();
    assert!(unused.is_empty(), "fixtures no test reads: {unused:?}");
    assert!(
        missing.is_empty(),
        "listed fixtures not on disk: {missing:?}"
    );
}

#[test]
fn every_fixture_has_its_origin_recorded_in_source_md() {
    // Provenance and licence live in SOURCE.md; a fixture without a row there could not be
    // traced back to what Microsoft published.
    let source = fs::read_to_string(fixtures_dir().join("SOURCE.md")).unwrap();
    let paths: BTreeSet<&str> = FIXTURES.iter().map(|fixture| fixture.path).collect();
    for path in paths {
        assert!(
            source.contains(&format!("`{path}`")),
            "SOURCE.md has no row for {path}"
        );
    }
    for (kind, _) in NO_PUBLISHED_PAYLOAD {
        assert!(
            source.contains(kind.as_str()),
            "SOURCE.md does not mention {kind} among the kinds with no published payload"
        );
    }
}
