//! The HTTP surface of runs: the Runs API (queue, read; the list is the `pipeline_runs`
//! endpoint), Post Event for check callbacks, and the `/_sim` controls for checks, approvals,
//! run details and timing.

// Handlers return early with a finished `Response` for ADO-style errors.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_domain::ResourceKind;

use super::{
    CheckMode, Decided, ReceivedEvent, RestCheck, RunPlan, RunSettings, StagePlan, TaskResult,
};
use crate::model::{Org, ProjectInfo, iso};
use crate::server::{Shared, ado_error, check_api_version, json_response, now_ms, resolve_project};

type AppState = Arc<Shared>;

fn invalid(message: &str) -> Response {
    ado_error(
        StatusCode::BAD_REQUEST,
        "InvalidArgumentValueException",
        message,
    )
}

fn unauthorized(message: &str) -> Response {
    ado_error(
        StatusCode::UNAUTHORIZED,
        "UnauthorizedRequestException",
        message,
    )
}

fn project_not_found(project: &str) -> Response {
    ado_error(
        StatusCode::NOT_FOUND,
        "ProjectDoesNotExistWithNameException",
        &format!(
            "TF200016: The following project does not exist: {project}. Verify that the name of the project is correct and that the project exists on the specified Azure DevOps Server."
        ),
    )
}

fn environment_not_found(environment: &str, project: Option<&str>) -> Response {
    let scope = project
        .map(|p| format!(" in project {p}"))
        .unwrap_or_default();
    ado_error(
        StatusCode::NOT_FOUND,
        "EnvironmentNotFoundException",
        &format!("Environment {environment} does not exist{scope}."),
    )
}

fn pipeline_not_found(id: &str) -> Response {
    ado_error(
        StatusCode::NOT_FOUND,
        "PipelineNotFoundException",
        &format!("Pipeline with id {id} not found."),
    )
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &str, what: &str) -> Result<T, Response> {
    serde_json::from_str(body).map_err(|error| invalid(&format!("{what} is not valid: {error}")))
}

fn read_json(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or(Value::Null)
}

/// A project's environments in promotion order: the usual stage names by their place on the
/// way to production, others after them, each group by id (creation order).
fn environments(org: &Org, project: &ProjectInfo) -> Vec<(String, String)> {
    const ORDER: &[&str] = &[
        "dev",
        "development",
        "test",
        "qa",
        "uat",
        "staging",
        "stage",
        "preprod",
        "production",
        "prod",
        "dr",
    ];
    let mut environments: Vec<(String, String)> = org
        .collection(ResourceKind::Environments)
        .scope(&project.id, None)
        .map(|(_, o)| {
            let name = read_json(&o.json)["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (o.ado_id.clone(), name)
        })
        .collect();
    environments.sort_by_key(|(id, name)| {
        let rank = ORDER
            .iter()
            .position(|known| known.eq_ignore_ascii_case(name))
            .unwrap_or(ORDER.len());
        (rank, id.parse::<u64>().unwrap_or(u64::MAX))
    });
    environments
}

// ---------------------------------------------------------------------------------------------
// The Runs API.

/// `RunPipelineParameters`, the fields the simulator reads. Others (`variables`,
/// `yamlOverride` …) are accepted and ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunRequest {
    resources: Option<ResourcesParameters>,
    template_parameters: Option<BTreeMap<String, Value>>,
    stages_to_skip: Option<Vec<String>>,
    preview_run: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct ResourcesParameters {
    repositories: Option<BTreeMap<String, RepositoryParameters>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryParameters {
    ref_name: Option<String>,
    version: Option<String>,
}

/// `POST /{organization}/{project}/_apis/pipelines/{pipelineId}/runs`.
pub(crate) async fn queue(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(response) = check_api_version(&query) {
        return response;
    }
    let request: RunRequest = if body.trim().is_empty() {
        RunRequest::default()
    } else {
        match parse_json(&body, "The run request") {
            Ok(request) => request,
            Err(response) => return response,
        }
    };
    if request.preview_run == Some(true) {
        return invalid("previewRun: the simulator does not preview runs; queue one instead.");
    }
    let collection_uri = state.collection_uri(&headers);
    let queued = {
        let mut org = state.write_org();
        plan_run(&mut org, &state, &params, request, collection_uri)
    };
    match queued {
        Ok((plan, run)) => {
            super::driver::start(state.clone(), plan);
            json_response(run.to_string(), Vec::new())
        }
        Err(response) => response,
    }
}

/// Validate a run request and write the run: nothing is written unless all of it is valid.
fn plan_run(
    org: &mut Org,
    state: &Shared,
    params: &HashMap<String, String>,
    request: RunRequest,
    collection_uri: String,
) -> Result<(RunPlan, Value), Response> {
    let project_id = resolve_project(org, params)?.unwrap_or_default();
    let project = org
        .project(&project_id)
        .cloned()
        .ok_or_else(|| project_not_found(&project_id))?;
    let pipeline_id = params.get("parent").cloned().unwrap_or_default();
    let pipeline = org
        .collection(ResourceKind::Pipelines)
        .get(&project.id, &pipeline_id)
        .map(|o| read_json(&o.json))
        .ok_or_else(|| pipeline_not_found(&pipeline_id))?;
    let numeric_id = pipeline_id
        .parse::<u64>()
        .map_err(|_| pipeline_not_found(&pipeline_id))?;
    if pipeline["configuration"]["type"] != "yaml" {
        return Err(invalid(&format!(
            "Pipeline {pipeline_id} is a classic (designer) pipeline; the Runs API runs YAML pipelines only."
        )));
    }
    let repository_id = pipeline["configuration"]["repository"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let repository = org
        .collection(ResourceKind::Repositories)
        .get(&project.id, &repository_id)
        .map(|o| read_json(&o.json))
        .ok_or_else(|| {
            invalid(&format!(
                "The repository {repository_id} of pipeline {pipeline_id} no longer exists."
            ))
        })?;
    let self_repository = request
        .resources
        .and_then(|r| r.repositories)
        .and_then(|mut r| r.remove("self"))
        .unwrap_or_default();
    let branch = match self_repository.ref_name.as_deref().map(str::trim) {
        None | Some("") => repository["defaultBranch"]
            .as_str()
            .unwrap_or("refs/heads/main")
            .to_owned(),
        Some(name) if name.starts_with("refs/") => name.to_owned(),
        Some(name) => format!("refs/heads/{name}"),
    };
    let template_parameters = request.template_parameters.unwrap_or_default();
    let mut stages_available = environments(org, &project);
    if let Some(limit) = template_parameters.get("environment") {
        let Some(limit) = limit.as_str() else {
            return Err(invalid(
                "templateParameters.environment must be an environment's name.",
            ));
        };
        let position = stages_available
            .iter()
            .position(|(_, name)| name.eq_ignore_ascii_case(limit))
            .ok_or_else(|| environment_not_found(limit, Some(&project.name)))?;
        stages_available.truncate(position + 1);
    }
    let mut stage_names: Vec<String> = vec!["build".to_owned()];
    stage_names.extend(stages_available.iter().map(|(_, name)| name.clone()));
    let skipped = request.stages_to_skip.unwrap_or_default();
    if let Some(unknown) = skipped
        .iter()
        .find(|s| !stage_names.iter().any(|n| n.eq_ignore_ascii_case(s)))
    {
        return Err(invalid(&format!(
            "stagesToSkip: the run has no stage {unknown} (its stages: {}).",
            stage_names.join(", ")
        )));
    }

    // Everything is valid: allocate the run.
    let runs = &state.runs;
    let version = match self_repository.version.filter(|v| !v.trim().is_empty()) {
        Some(version) => version,
        None => org
            .collection(ResourceKind::Refs)
            .get(&repository_id, &branch)
            .and_then(|r| read_json(&r.json)["objectId"].as_str().map(str::to_owned))
            // A branch the simulator does not know: a commit of its own.
            .unwrap_or_else(|| {
                format!("{}{}", runs.guid(), runs.guid())
                    .chars()
                    .filter(char::is_ascii_hexdigit)
                    .take(40)
                    .collect()
            }),
    };
    let run_id = org.next_id();
    let created_ms = now_ms();
    let day = iso(created_ms)
        .get(..10)
        .map(|d| d.replace('-', ""))
        .unwrap_or_default();
    let is_skipped = |name: &str| skipped.iter().any(|s| s.eq_ignore_ascii_case(name));
    let mut stages = vec![StagePlan {
        id: runs.guid(),
        name: "build".to_owned(),
        job_id: runs.guid(),
        environment: None,
        skip: is_skipped("build"),
    }];
    stages.extend(stages_available.into_iter().map(|(id, name)| StagePlan {
        id: runs.guid(),
        job_id: runs.guid(),
        skip: is_skipped(&name),
        name: name.clone(),
        environment: Some((id, name)),
    }));
    let plan = RunPlan {
        run_id,
        number: format!("{day}.{run_id}"),
        pipeline_name: pipeline["name"].as_str().unwrap_or_default().to_owned(),
        pipeline_id: numeric_id,
        pipeline,
        repository,
        branch,
        version,
        requester: super::requester_for(run_id),
        plan_id: runs.guid(),
        timeline_id: runs.guid(),
        collection_uri,
        created_ms,
        template_parameters,
        stages,
        project,
    };
    let run = org.start_run(&plan);
    Ok((plan, run))
}

/// `GET /{organization}/{project}/_apis/pipelines/{pipelineId}/runs/{runId}`.
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = check_api_version(&query) {
        return response;
    }
    let org = state.read_org();
    let project = match resolve_project(&org, &params) {
        Ok(project) => project.unwrap_or_default(),
        Err(response) => return response,
    };
    let pipeline = params.get("parent").cloned().unwrap_or_default();
    if org
        .collection(ResourceKind::Pipelines)
        .get(&project, &pipeline)
        .is_none()
    {
        return pipeline_not_found(&pipeline);
    }
    let run = params.get("runId").cloned().unwrap_or_default();
    match org
        .collection(ResourceKind::PipelineRuns)
        .get(&pipeline, &run)
    {
        Some(object) => json_response(object.json.clone(), Vec::new()),
        None => ado_error(
            StatusCode::NOT_FOUND,
            "PipelineRunNotFoundException",
            &format!("Run {run} of pipeline {pipeline} was not found."),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Post Event: a check's decision.

/// `POST /{organization}/{projectId}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/events`.
/// Authenticated by the check's AuthToken alone (the route skips the PAT check); every call
/// naming a known plan is recorded in its run's detail.
pub(crate) async fn post_event(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(response) = check_api_version(&query) {
        return response;
    }
    let project = {
        let org = state.read_org();
        match resolve_project(&org, &params) {
            Ok(project) => project.unwrap_or_default(),
            Err(response) => return response,
        }
    };
    let plan_id = params.get("planId").cloned().unwrap_or_default();
    let hub = params.get("hubName").cloned().unwrap_or_default();
    let plan = state.runs.plan(&plan_id);
    let parsed = serde_json::from_str::<Value>(&body);
    let field = |name: &str| {
        parsed
            .as_ref()
            .ok()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut event = ReceivedEvent {
        received_at: iso(now_ms()),
        name: field("name"),
        task_id: field("taskId"),
        job_id: field("jobId"),
        result: field("result"),
        status: 0,
        outcome: "rejected",
        reason: None,
    };
    let answer = judge_event(
        &state,
        &headers,
        &hub,
        &plan_id,
        plan.as_ref(),
        &project,
        &parsed,
        &mut event,
    );
    let response = match answer {
        Ok(outcome) => {
            event.status = 204;
            event.outcome = outcome;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(response) => {
            event.status = response.status().as_u16();
            response
        }
    };
    if let Some((run_id, _)) = plan {
        state
            .runs
            .update(run_id, |detail| detail.events.push(event));
    }
    response
}

/// Decide what a Post Event call gets: the outcome to record with a 204, or the error answer
/// (its reason recorded).
#[allow(clippy::too_many_arguments)]
fn judge_event(
    state: &Shared,
    headers: &HeaderMap,
    hub: &str,
    plan_id: &str,
    plan: Option<&(u64, String)>,
    project: &str,
    parsed: &Result<Value, serde_json::Error>,
    event: &mut ReceivedEvent,
) -> Result<&'static str, Response> {
    let mut refuse = |response: Response, reason: String| {
        event.reason = Some(reason);
        Err(response)
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = bearer else {
        let reason = "Post Event takes the check's AuthToken as a bearer token.".to_owned();
        return refuse(unauthorized(&reason), reason);
    };
    let Some(grant) = state.runs.grant(token) else {
        let reason = "The AuthToken is unknown or has expired.".to_owned();
        return refuse(unauthorized(&reason), reason);
    };
    if !hub.eq_ignore_ascii_case("checks") {
        let reason = format!("The hub {hub} does not exist; checks report to the hub checks.");
        return refuse(
            ado_error(
                StatusCode::NOT_FOUND,
                "TaskOrchestrationPlanNotFoundException",
                &reason,
            ),
            reason,
        );
    }
    let Some((run_id, plan_project)) = plan else {
        let reason = format!("The plan {plan_id} does not exist.");
        return refuse(
            ado_error(
                StatusCode::NOT_FOUND,
                "TaskOrchestrationPlanNotFoundException",
                &reason,
            ),
            reason,
        );
    };
    if grant.plan_id != plan_id.to_ascii_lowercase()
        || grant.run_id != *run_id
        || grant.project_id != project.to_ascii_lowercase()
        || *plan_project != project.to_ascii_lowercase()
    {
        let reason =
            format!("The AuthToken was not issued for plan {plan_id} of project {project}.");
        return refuse(unauthorized(&reason), reason);
    }
    let body = match parsed {
        Ok(body) if body.is_object() => body,
        Ok(_) => {
            let reason = "The event must be a JSON object.".to_owned();
            return refuse(invalid(&reason), reason);
        }
        Err(error) => {
            let reason = format!("The event is not valid JSON: {error}");
            return refuse(invalid(&reason), reason);
        }
    };
    let name = body["name"].as_str().unwrap_or_default();
    match name {
        "TaskCompleted" => {}
        // Progress a check may report; only TaskCompleted decides.
        "TaskStarted" | "TaskAssigned" => return Ok("ignored"),
        other => {
            let reason = format!(
                "name: {other:?} is not an event the simulator takes (TaskCompleted, TaskStarted, TaskAssigned)."
            );
            return refuse(invalid(&reason), reason);
        }
    }
    let (Some(task_id), Some(job_id)) = (body["taskId"].as_str(), body["jobId"].as_str()) else {
        let reason = "TaskCompleted names its taskId and jobId.".to_owned();
        return refuse(invalid(&reason), reason);
    };
    let result = match body["result"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("succeeded") => TaskResult::Succeeded,
        Some("failed") => TaskResult::Failed,
        other => {
            let reason = format!("result: {other:?} is neither succeeded nor failed.");
            return refuse(invalid(&reason), reason);
        }
    };
    match state.runs.task(task_id) {
        Some((task_run, _)) if task_run != *run_id => {
            let reason = format!("The task {task_id} is not in plan {plan_id}.");
            return refuse(
                ado_error(StatusCode::NOT_FOUND, "TaskNotFoundException", &reason),
                reason,
            );
        }
        None => {
            let reason = format!("The task {task_id} is not in plan {plan_id}.");
            return refuse(
                ado_error(StatusCode::NOT_FOUND, "TaskNotFoundException", &reason),
                reason,
            );
        }
        Some((_, task_job)) if !task_job.eq_ignore_ascii_case(job_id) => {
            let reason = format!("jobId {job_id} is not the job of task {task_id}.");
            return refuse(invalid(&reason), reason);
        }
        Some(_) => {}
    }
    Ok(
        match state.runs.decide(task_id, result, &event.received_at) {
            Decided::Accepted => "accepted",
            Decided::Duplicate => "duplicate",
            Decided::Ignored | Decided::UnknownTask => "ignored",
        },
    )
}

// ---------------------------------------------------------------------------------------------
// `/_sim/checks/rest`.

/// `POST /_sim/checks/rest`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RestCheckRequest {
    project: String,
    environment: String,
    url: String,
    mode: CheckMode,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    #[serde(default)]
    interval_secs: Option<u64>,
}

/// ADO's Invoke REST API check takes a timeout of up to 30 days (in minutes).
const MAX_TIMEOUT_SECS: u64 = 30 * 24 * 3600;

pub(crate) async fn add_rest_check(State(state): State<AppState>, body: String) -> Response {
    let request: RestCheckRequest = match parse_json(&body, "The check") {
        Ok(request) => request,
        Err(response) => return response,
    };
    let url = match reqwest::Url::parse(request.url.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => url,
        _ => return invalid(&format!("url: {} is not an http(s) URL.", request.url)),
    };
    let basic_auth = match (request.username, request.password) {
        (Some(user), password) if !user.is_empty() => Some((user, password.unwrap_or_default())),
        (_, Some(password)) if !password.is_empty() => {
            return invalid("password: name the username too.");
        }
        _ => None,
    };
    let timeout_secs = request.timeout_secs.unwrap_or(30);
    if !(1..=MAX_TIMEOUT_SECS).contains(&timeout_secs) {
        return invalid(&format!(
            "timeoutSecs: between 1 and {MAX_TIMEOUT_SECS} (30 days)."
        ));
    }
    let interval_secs = request.interval_secs.unwrap_or(1);
    if interval_secs > timeout_secs {
        return invalid("intervalSecs: no longer than timeoutSecs.");
    }
    let now = now_ms();
    let mut org = state.write_org();
    let Some(project) = org.project(&request.project).cloned() else {
        return project_not_found(&request.project);
    };
    let Some((environment_id, environment_name)) =
        environments(&org, &project).into_iter().find(|(id, name)| {
            name.eq_ignore_ascii_case(&request.environment) || *id == request.environment
        })
    else {
        return environment_not_found(&request.environment, Some(&project.name));
    };
    let connection = state.runs.guid();
    let id = org.add_rest_check(
        &project,
        (&environment_id, &environment_name),
        request.mode,
        request.body.as_ref(),
        timeout_secs,
        interval_secs,
        &connection,
        now,
    );
    let check = RestCheck {
        id,
        project_id: project.id,
        environment_id,
        environment_name,
        url,
        mode: request.mode,
        basic_auth,
        body: request.body,
        timeout: Duration::from_secs(timeout_secs),
        interval: Duration::from_secs(interval_secs),
    };
    let shown = check.to_json();
    // Registered while the organisation is still locked: a stage reading its environment's
    // checks sees the configuration and its registration together, or neither.
    state.runs.register_check(check);
    drop(org);
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        shown.to_string(),
    )
        .into_response()
}

pub(crate) async fn list_rest_checks(State(state): State<AppState>) -> Response {
    let checks: Vec<Value> = state.runs.checks().iter().map(RestCheck::to_json).collect();
    json_response(
        json!({"count": checks.len(), "value": checks}).to_string(),
        Vec::new(),
    )
}

pub(crate) async fn delete_rest_check(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Response {
    let not_found = || {
        ado_error(
            StatusCode::NOT_FOUND,
            "CheckConfigurationNotFoundException",
            &format!("No Invoke REST API check {id} was registered through /_sim/checks/rest."),
        )
    };
    let Some(check) = id
        .parse()
        .ok()
        .and_then(|id| state.runs.unregister_check(id))
    else {
        return not_found();
    };
    let mut org = state.write_org();
    if let Some(project) = org.project(&check.project_id).cloned() {
        org.remove_check(&project, check.id, &check.environment_name, now_ms());
    }
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------------------------
// `/_sim/approvals`.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    environment: Option<String>,
}

fn holds(state: &Shared) -> Response {
    json_response(json!({"held": state.runs.held()}).to_string(), Vec::new())
}

pub(crate) async fn list_holds(State(state): State<AppState>) -> Response {
    holds(&state)
}

/// `POST /_sim/approvals/hold {"environment": NAME}`: approvals of every environment so named
/// wait for a release. Answers the held names and how many approval checks the hold gates.
pub(crate) async fn hold(State(state): State<AppState>, body: String) -> Response {
    let request: HoldRequest = match parse_json(&body, "The hold") {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Some(environment) = request.environment.filter(|e| !e.trim().is_empty()) else {
        return invalid("environment: name the environment whose approvals wait.");
    };
    let approvals = {
        let org = state.read_org();
        let mut environment_ids = Vec::new();
        for project in &org.projects {
            environment_ids.extend(
                environments(&org, project)
                    .into_iter()
                    .filter(|(_, name)| name.eq_ignore_ascii_case(&environment))
                    .map(|(id, _)| (project.id.clone(), id)),
            );
        }
        if environment_ids.is_empty() {
            return environment_not_found(&environment, None);
        }
        environment_ids
            .iter()
            .map(|(project, id)| {
                org.collection(ResourceKind::CheckConfigurations)
                    .scope(project, None)
                    .map(|(_, o)| read_json(&o.json))
                    .filter(|c| {
                        c["type"]["id"] == crate::model::check_types::APPROVAL
                            && c["resource"]["type"] == "environment"
                            && c["resource"]["id"].as_str() == Some(id.as_str())
                    })
                    .count()
            })
            .sum::<usize>()
    };
    state.runs.hold(&environment);
    json_response(
        json!({"held": state.runs.held(), "approvalChecks": approvals}).to_string(),
        Vec::new(),
    )
}

/// `POST /_sim/approvals/release` (`{"environment": NAME}`, or no body for all).
pub(crate) async fn release(State(state): State<AppState>, body: String) -> Response {
    let request: HoldRequest = if body.trim().is_empty() {
        HoldRequest::default()
    } else {
        match parse_json(&body, "The release") {
            Ok(request) => request,
            Err(response) => return response,
        }
    };
    state.runs.release(request.environment.as_deref());
    holds(&state)
}

// ---------------------------------------------------------------------------------------------
// `/_sim/runs`.

pub(crate) async fn list_runs(State(state): State<AppState>) -> Response {
    let runs = state.runs.details();
    json_response(
        json!({"count": runs.len(), "value": runs}).to_string(),
        Vec::new(),
    )
}

pub(crate) async fn run_detail(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match id.parse().ok().and_then(|id| state.runs.detail(id)) {
        Some(detail) => json_response(json!(detail).to_string(), Vec::new()),
        None => ado_error(
            StatusCode::NOT_FOUND,
            "PipelineRunNotFoundException",
            &format!("No run {id} was queued through the Runs API."),
        ),
    }
}

/// `GET|POST /_sim/runs/settings {"stageMs", "tokenLifetimeSecs"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SettingsRequest {
    stage_ms: Option<u64>,
    token_lifetime_secs: Option<u64>,
}

fn settings_body(settings: &RunSettings) -> Response {
    json_response(
        json!({"stageMs": settings.stage_duration.as_millis() as u64,
               "tokenLifetimeSecs": settings.token_lifetime.as_secs()})
        .to_string(),
        Vec::new(),
    )
}

pub(crate) async fn get_settings(State(state): State<AppState>) -> Response {
    settings_body(&state.runs.settings())
}

pub(crate) async fn set_settings(State(state): State<AppState>, body: String) -> Response {
    let request: SettingsRequest = match parse_json(&body, "The settings") {
        Ok(request) => request,
        Err(response) => return response,
    };
    let mut settings = state.runs.settings();
    if let Some(ms) = request.stage_ms {
        settings.stage_duration = Duration::from_millis(ms);
    }
    if let Some(secs) = request.token_lifetime_secs {
        settings.token_lifetime = Duration::from_secs(secs);
    }
    state.runs.set_settings(settings.clone());
    settings_body(&settings)
}
