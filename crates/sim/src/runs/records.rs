//! The organisation's objects a run writes: its build and run (one object in ADO, listed by two
//! APIs), environment deployment records, the check configurations `/_sim/checks/rest` adds,
//! and the planted entries that keep the manifest true about them.

use serde_json::{Value, json};
use tollgate_domain::{InventoryItem, ResourceKind};

use super::{CheckMode, RunPlan};
use crate::model::{Org, Planted, ProjectInfo, check_types, identity, iso};

/// The Invoke REST API task a Task Check runs.
pub(crate) const INVOKE_REST_API_TASK: &str = "9c3e8943-130d-4c78-ac63-8af81df62dfb";
pub(crate) const INVOKE_REST_API_NAME: &str = "invokeRESTAPI";
/// The success criterion the gate documents for the synchronous mode.
pub(crate) const SUCCESS_CRITERIA: &str = "eq(root['status'], 'approved')";

/// The branches PL-05, PL-06 and ED-01 treat as protected (their default parameters).
pub(crate) fn protected_branch(branch: &str) -> bool {
    let branch = branch.to_lowercase();
    branch == "refs/heads/main"
        || branch == "refs/heads/master"
        || branch.starts_with("refs/heads/release/")
}

/// The environment names ED-01 treats as production (its default parameters).
fn production_environment(name: &str) -> bool {
    let name = name.to_lowercase();
    name == "production"
        || name == "prod"
        || name.starts_with("prod-")
        || name.starts_with("production-")
}

/// Who the simulator's own changes are made by.
fn simulator_identity() -> Value {
    identity("Tollgate Sim", "sim@fabrikam.example")
}

impl Org {
    fn run_urls(&self, plan: &RunPlan) -> (String, String, String) {
        let base = self.base();
        let project = &plan.project.id;
        let pipeline = plan.pipeline_id;
        (
            format!(
                "{base}/{project}/_apis/pipelines/{pipeline}/runs/{}",
                plan.run_id
            ),
            format!("{base}/{project}/_build/results?buildId={}", plan.run_id),
            format!("{base}/{project}/_apis/pipelines/{pipeline}"),
        )
    }

    /// Write a queued run and its build, in progress. Returns the run as the Runs API shows it.
    pub(crate) fn start_run(&mut self, plan: &RunPlan) -> Value {
        let (run_url, web, pipeline_url) = self.run_urls(plan);
        let revision = plan.pipeline["revision"].as_u64().unwrap_or(1);
        let folder = plan.pipeline["folder"].as_str().unwrap_or("\\").to_owned();
        let queued = iso(plan.created_ms);
        let project_ref = self.project_ref(&plan.project);
        let base = self.base();
        let build = json!({
            "id": plan.run_id, "buildNumber": plan.number, "status": "inProgress",
            "queueTime": queued, "startTime": queued,
            "url": format!("{base}/{}/_apis/build/Builds/{}", plan.project.id, plan.run_id),
            "definition": {"id": plan.pipeline_id, "name": plan.pipeline_name, "path": folder, "type": "build",
                           "queueStatus": "enabled", "revision": revision, "project": project_ref},
            "project": project_ref, "uri": format!("vstfs:///Build/Build/{}", plan.run_id),
            "sourceBranch": plan.branch, "sourceVersion": plan.version, "priority": "normal",
            // A run queued through the Runs API is a manual run, as in ADO.
            "reason": "manual", "requestedFor": plan.requester, "requestedBy": plan.requester,
            "repository": {"id": plan.repository_id(), "type": "TfsGit"}, "keepForever": false,
            "templateParameters": plan.template_parameters,
        });
        let run = json!({
            "_links": {
                "self": {"href": run_url}, "web": {"href": web},
                "pipeline.web": {"href": format!("{base}/{}/_build/definition?definitionId={}", plan.project.id, plan.pipeline_id)},
                "pipeline": {"href": format!("{pipeline_url}?revision={revision}")},
            },
            "templateParameters": plan.template_parameters,
            "pipeline": {"url": format!("{pipeline_url}?revision={revision}"), "id": plan.pipeline_id,
                         "revision": revision, "name": plan.pipeline_name, "folder": folder},
            "state": "inProgress", "createdDate": queued, "url": run_url,
            "resources": {"repositories": {"self": {
                "repository": {"id": plan.repository_id(), "type": "azureReposGit"},
                "refName": plan.branch, "version": plan.version}}},
            "id": plan.run_id, "name": plan.number,
        });
        let id = plan.run_id.to_string();
        self.insert_raw(
            ResourceKind::Builds,
            &plan.project.id,
            &id,
            build,
            plan.created_ms,
        );
        self.insert_raw(
            ResourceKind::PipelineRuns,
            &plan.pipeline_id.to_string(),
            &id,
            run.clone(),
            plan.created_ms,
        );
        self.remember_run(plan.pipeline_id, plan.run_id, &plan.number);
        if protected_branch(&plan.branch) {
            self.planted.push(Planted {
                control: "PL-06",
                kind: ResourceKind::Builds,
                id: InventoryItem::key_for(&plan.project.id, &id),
                why: format!("{} queued by hand through the Runs API", plan.branch),
            });
        }
        run
    }

    /// The run and its build as they are now (`None` once the pipeline was deleted).
    pub(crate) fn run_and_build(&self, plan: &RunPlan) -> Option<(Value, Value)> {
        let id = plan.run_id.to_string();
        let read = |kind: ResourceKind, scope: &str| -> Option<Value> {
            self.collection(kind)
                .get(scope, &id)
                .and_then(|o| serde_json::from_str(&o.json).ok())
        };
        Some((
            read(ResourceKind::PipelineRuns, &plan.pipeline_id.to_string())?,
            read(ResourceKind::Builds, &plan.project.id)?,
        ))
    }

    /// Complete a run and its build. Returns both as they are now.
    pub(crate) fn finish_run(
        &mut self,
        plan: &RunPlan,
        result: &str,
        finished_ms: i64,
    ) -> Option<(Value, Value)> {
        let (mut run, mut build) = self.run_and_build(plan)?;
        let finished = iso(finished_ms);
        run["state"] = json!("completed");
        run["result"] = json!(result);
        run["finishedDate"] = json!(finished);
        build["status"] = json!("completed");
        build["result"] = json!(result);
        build["finishTime"] = json!(finished);
        let id = plan.run_id.to_string();
        self.insert_raw(
            ResourceKind::Builds,
            &plan.project.id,
            &id,
            build.clone(),
            finished_ms,
        );
        self.insert_raw(
            ResourceKind::PipelineRuns,
            &plan.pipeline_id.to_string(),
            &id,
            run.clone(),
            finished_ms,
        );
        if result == "failed" && protected_branch(&plan.branch) {
            self.planted.push(Planted {
                control: "PL-05",
                kind: ResourceKind::Builds,
                id: InventoryItem::key_for(&plan.project.id, &id),
                why: format!("run of {} failed at an environment check", plan.branch),
            });
        }
        Some((run, build))
    }

    /// The deployment record of a deployment stage that succeeded, in the shape the generated
    /// records have. Returns its id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_deployment(
        &mut self,
        plan: &RunPlan,
        environment: (&str, &str),
        stage: &str,
        request_identifier: &str,
        service_owner: &str,
        (queued_ms, started_ms, finished_ms): (i64, i64, i64),
    ) -> u64 {
        let (environment_id, environment_name) = environment;
        let id = self.next_id();
        let json = json!({
            "id": id, "requestIdentifier": request_identifier,
            "environmentId": environment_id.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(environment_id)),
            "serviceOwner": service_owner, "scopeId": plan.project.id, "resourceId": 0, "planType": "Build",
            "planId": plan.plan_id, "stageName": stage, "jobName": "Deploy", "stageAttempt": 1, "jobAttempt": 1,
            "definition": {"id": plan.pipeline_id, "name": plan.pipeline_name},
            "owner": {"id": plan.run_id, "name": plan.number},
            "result": "succeeded", "queueTime": iso(queued_ms), "startTime": iso(started_ms), "finishTime": iso(finished_ms),
        });
        self.insert_raw(
            ResourceKind::EnvironmentDeployments,
            environment_id,
            &id.to_string(),
            json,
            finished_ms,
        );
        if production_environment(environment_name) && !protected_branch(&plan.branch) {
            self.planted.push(Planted {
                control: "ED-01",
                kind: ResourceKind::EnvironmentDeployments,
                id: InventoryItem::key_for(environment_id, &id.to_string()),
                why: format!("{environment_name} deployed from {}", plan.branch),
            });
        }
        id
    }

    /// The check configuration of a registered Invoke REST API check: a Task Check running the
    /// InvokeRESTAPI task, shaped like the published Task Check configurations. The URL and
    /// credential live in a Generic service connection in ADO; the simulator keeps them in its
    /// registration and names no connection object (one would be judged by SC-03).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_rest_check(
        &mut self,
        project: &ProjectInfo,
        environment: (&str, &str),
        mode: CheckMode,
        body: Option<&Value>,
        timeout_secs: u64,
        interval_secs: u64,
        connection_id: &str,
        now_ms: i64,
    ) -> u64 {
        let (environment_id, environment_name) = environment;
        let id = self.next_id();
        let by = simulator_identity();
        let base = self.base();
        let headers = json!({
            "Content-Type": "application/json", "PlanUrl": "$(system.CollectionUri)",
            "ProjectId": "$(system.TeamProjectId)", "HubName": "$(system.HostType)",
            "PlanId": "$(system.PlanId)", "JobId": "$(system.JobId)", "TimelineId": "$(system.TimelineId)",
            "TaskInstanceId": "$(system.TaskInstanceId)", "AuthToken": "$(system.AccessToken)",
            "BuildId": "$(build.BuildId)",
        });
        let mut inputs = json!({
            "connectedServiceNameSelector": "connectedServiceName", "connectedServiceName": connection_id,
            "method": "POST", "headers": headers.to_string(),
            "body": body.map(Value::to_string).unwrap_or_default(), "urlSuffix": "",
            "waitForCompletion": if mode == CheckMode::Callback { "true" } else { "false" },
        });
        if mode == CheckMode::Sync {
            inputs["successCriteria"] = json!(SUCCESS_CRITERIA);
        }
        // ADO keeps both intervals in minutes.
        let minutes = |seconds: u64| seconds.div_ceil(60);
        let json = json!({
            "settings": {
                "definitionRef": {"id": INVOKE_REST_API_TASK, "name": INVOKE_REST_API_NAME, "version": "1.0.0"},
                "displayName": "Invoke REST API", "inputs": inputs,
                "retryInterval": if mode == CheckMode::Callback { 0 } else { minutes(interval_secs) },
            },
            "createdBy": by, "createdOn": iso(now_ms), "modifiedBy": by, "modifiedOn": iso(now_ms),
            "timeout": minutes(timeout_secs),
            "_links": {"self": {"href": format!("{base}/{}/_apis/pipelines/checks/configurations/{id}", project.id)}},
            "id": id, "version": 1, "type": {"id": check_types::TASK_CHECK, "name": "Task Check"},
            "url": format!("{base}/{}/_apis/pipelines/checks/configurations/{id}", project.id),
            "resource": {"type": "environment", "id": environment_id, "name": environment_name},
        });
        self.insert_raw(
            ResourceKind::CheckConfigurations,
            &project.id,
            &id.to_string(),
            json,
            now_ms,
        );
        self.audit(
            "CheckConfiguration.Created",
            Some(project),
            &format!("Invoke REST API check added to environment {environment_name}"),
            now_ms,
        );
        id
    }

    /// Remove a check configuration the simulator added. Returns whether it existed.
    pub(crate) fn remove_check(
        &mut self,
        project: &ProjectInfo,
        id: u64,
        environment_name: &str,
        now_ms: i64,
    ) -> bool {
        let removed = self
            .remove_raw(
                ResourceKind::CheckConfigurations,
                &project.id,
                &id.to_string(),
            )
            .is_some();
        if removed {
            self.audit(
                "CheckConfiguration.Deleted",
                Some(project),
                &format!("Invoke REST API check removed from environment {environment_name}"),
                now_ms,
            );
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_branches_and_production_names_follow_the_controls_defaults() {
        assert!(protected_branch("refs/heads/main"));
        assert!(protected_branch("refs/heads/Release/2.0"));
        assert!(!protected_branch("refs/heads/feature/x"));
        assert!(!protected_branch("refs/heads/mainline"));
        assert!(production_environment("Production"));
        assert!(production_environment("prod-eu"));
        assert!(production_environment("production-eu"));
        assert!(!production_environment("staging"));
        assert!(!production_environment("preprod"));
    }
}
