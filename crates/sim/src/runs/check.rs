//! One Invoke REST API check evaluated as ADO evaluates it ("Invoke Azure Function / REST API
//! checks"; ado-fixtures `checks/invoke-rest-api/NOTES.md`): a POST with the run information in
//! the headers and the body template's macros expanded; in the synchronous mode re-evaluated
//! every interval until the answer is 200 with `eq(root['status'], 'approved')` or the timeout
//! comes; in the callback mode sent once, the decision awaited through Post Event until the
//! timeout. Each evaluation has a new TaskInstanceId and AuthToken.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::{CheckMode, Evaluation, EvaluationAt, RestCheck, RunPlan, Runs, TaskResult};
use crate::model::iso;
use crate::server::{Shared, now_ms};

/// "Azure Pipelines evaluates a single check instance at most 2,000 times."
const MAX_EVALUATIONS: u32 = 2_000;
/// The InvokeRESTAPI task "returns success within 20 seconds": no call waits longer.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How much of an answer the run detail keeps.
const KEPT_ANSWER: usize = 4_096;
const REDACTED: &str = "********";

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Passed,
    /// A negative decision (a callback with `failed`).
    Failed,
    /// No positive decision by the timeout.
    TimedOut,
}

/// The predefined variables a check's body may name, with their values for one evaluation.
/// Names match case-insensitively, as ADO's macro syntax does.
fn macros(plan: &RunPlan, stage: usize, task_instance_id: &str) -> Vec<(&'static str, String)> {
    let stage = plan.stages.get(stage);
    let (environment_id, environment_name) = stage
        .and_then(|s| s.environment.clone())
        .unwrap_or_default();
    let branch_name = plan
        .branch
        .strip_prefix("refs/heads/")
        .unwrap_or(&plan.branch)
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    vec![
        (
            "System.StageName",
            stage.map(|s| s.name.clone()).unwrap_or_default(),
        ),
        ("Environment.Name", environment_name),
        ("Environment.Id", environment_id),
        ("Build.BuildId", plan.run_id.to_string()),
        ("Build.BuildNumber", plan.number.clone()),
        ("System.DefinitionId", plan.pipeline_id.to_string()),
        ("Build.DefinitionName", plan.pipeline_name.clone()),
        ("Build.RequestedFor", text(&plan.requester["displayName"])),
        (
            "Build.RequestedForEmail",
            text(&plan.requester["uniqueName"]),
        ),
        ("Build.RequestedForId", text(&plan.requester["id"])),
        ("Build.SourceBranch", plan.branch.clone()),
        ("Build.SourceBranchName", branch_name),
        ("Build.SourceVersion", plan.version.clone()),
        ("Build.Repository.Name", plan.repository_name()),
        ("Build.Repository.Id", plan.repository_id()),
        ("System.TeamProject", plan.project.name.clone()),
        ("System.TeamProjectId", plan.project.id.clone()),
        ("System.PlanId", plan.plan_id.clone()),
        (
            "System.JobId",
            stage.map(|s| s.job_id.clone()).unwrap_or_default(),
        ),
        ("System.TimelineId", plan.timeline_id.clone()),
        ("System.TaskInstanceId", task_instance_id.to_owned()),
        ("System.CollectionUri", plan.collection_uri.clone()),
        ("System.HostType", "checks".to_owned()),
    ]
}

fn text(value: &Value) -> String {
    value.as_str().map(str::to_owned).unwrap_or_default()
}

/// The body sent when a check names none: every macro under a readable key.
fn default_body() -> Value {
    json!({
        "stageName": "$(System.StageName)", "environmentName": "$(Environment.Name)",
        "buildId": "$(Build.BuildId)", "definitionId": "$(System.DefinitionId)",
        "requestedFor": "$(Build.RequestedFor)", "requestedForEmail": "$(Build.RequestedForEmail)",
        "sourceBranch": "$(Build.SourceBranch)", "sourceVersion": "$(Build.SourceVersion)",
        "repositoryName": "$(Build.Repository.Name)", "teamProject": "$(System.TeamProject)",
        "teamProjectId": "$(System.TeamProjectId)", "planId": "$(System.PlanId)",
        "jobId": "$(System.JobId)", "taskInstanceId": "$(System.TaskInstanceId)",
        "collectionUri": "$(System.CollectionUri)",
    })
}

/// Replace every `$(Name)` whose name is known; unknown macros stay as written, as in ADO.
pub(super) fn expand(text: &str, macros: &[(&'static str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("$(") {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let Some(end) = from.find(')') else {
            out.push_str(from);
            return out;
        };
        let name = from.get(2..end).unwrap_or_default();
        match macros
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name.trim()))
        {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(from.get(..=end).unwrap_or_default()),
        }
        rest = from.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

fn expand_json(template: &Value, macros: &[(&'static str, String)]) -> Value {
    match template {
        Value::String(text) => Value::String(expand(text, macros)),
        Value::Array(items) => Value::Array(items.iter().map(|i| expand_json(i, macros)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| (name.clone(), expand_json(value, macros)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

/// `eq(root['status'], 'approved')`: ADO compares strings ordinally, ignoring case.
pub(super) fn approves(status: Option<u16>, body: &str) -> bool {
    status == Some(200)
        && serde_json::from_str::<Value>(body).is_ok_and(|answer| {
            answer["status"]
                .as_str()
                .is_some_and(|status| status.eq_ignore_ascii_case("approved"))
        })
}

/// What a check answered.
struct Answer {
    status: Option<u16>,
    body: String,
}

/// Marks a callback-mode evaluation closed however it ends, so a later callback for it is
/// told apart from one for an unknown task.
struct CloseOnDrop<'a> {
    runs: &'a Runs,
    task_instance_id: String,
}

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.runs.close_task(&self.task_instance_id);
    }
}

/// Evaluate one check until it decides or its timeout comes.
pub(super) async fn evaluate(
    shared: Arc<Shared>,
    plan: Arc<RunPlan>,
    stage: usize,
    slot: usize,
    check: RestCheck,
) -> Outcome {
    let deadline = Instant::now() + check.timeout;
    let runs = &*shared.runs;
    match check.mode {
        CheckMode::Sync => {
            let mut evaluations = 0;
            loop {
                let (answer, _) = call(runs, &plan, stage, slot, &check, deadline).await;
                if approves(answer.status, &answer.body) {
                    return Outcome::Passed;
                }
                evaluations += 1;
                let next = Instant::now() + check.interval;
                if check.interval.is_zero() || evaluations >= MAX_EVALUATIONS || next >= deadline {
                    // No positive decision: the stage waits out the timeout, then is skipped.
                    tokio::time::sleep_until(deadline.into()).await;
                    return Outcome::TimedOut;
                }
                tokio::time::sleep_until(next.into()).await;
            }
        }
        CheckMode::Callback => {
            // "Azure Pipelines doesn't retry asynchronous checks": one delivery, acknowledged
            // or not, then the decision or the timeout.
            let (_, waiting) = call(runs, &plan, stage, slot, &check, deadline).await;
            let Some((decision, _closed)) = waiting else {
                return Outcome::TimedOut;
            };
            match tokio::time::timeout_at(deadline.into(), decision).await {
                Ok(Ok(TaskResult::Succeeded)) => Outcome::Passed,
                Ok(Ok(TaskResult::Failed)) => Outcome::Failed,
                Ok(Err(_)) | Err(_) => Outcome::TimedOut,
            }
        }
    }
}

/// A callback-mode evaluation's decision, and the guard that closes its task.
type Waiting<'a> = (oneshot::Receiver<TaskResult>, CloseOnDrop<'a>);

/// One evaluation: issue its TaskInstanceId and AuthToken, record it, POST, record the answer.
/// In the callback mode the task waits for its decision before the POST goes out (a gate may
/// call back before it answers); the guard returned closes it however the evaluation ends.
async fn call<'a>(
    runs: &'a Runs,
    plan: &RunPlan,
    stage: usize,
    slot: usize,
    check: &RestCheck,
    deadline: Instant,
) -> (Answer, Option<Waiting<'a>>) {
    let task_instance_id = runs.guid();
    let job_id = plan
        .stages
        .get(stage)
        .map(|s| s.job_id.clone())
        .unwrap_or_default();
    let token = runs.issue_token(plan.run_id, &plan.plan_id, &plan.project.id);
    let macros = macros(plan, stage, &task_instance_id);
    let body = expand_json(check.body.as_ref().unwrap_or(&default_body()), &macros);
    // The headers the documentation sets by default, plus the two its examples add
    // (TimelineId, BuildId) and the content type.
    let headers: Vec<(&str, String)> = vec![
        ("Content-Type", "application/json".to_owned()),
        ("PlanUrl", plan.collection_uri.clone()),
        ("ProjectId", plan.project.id.clone()),
        ("HubName", "checks".to_owned()),
        ("PlanId", plan.plan_id.clone()),
        ("JobId", job_id.clone()),
        ("TimelineId", plan.timeline_id.clone()),
        ("TaskInstanceId", task_instance_id.clone()),
        ("AuthToken", token),
        ("BuildId", plan.run_id.to_string()),
    ];
    let mut recorded: BTreeMap<String, String> = headers
        .iter()
        .map(|(name, value)| {
            let shown = if *name == "AuthToken" {
                REDACTED.to_owned()
            } else {
                value.clone()
            };
            ((*name).to_owned(), shown)
        })
        .collect();
    if check.basic_auth.is_some() {
        recorded.insert("Authorization".to_owned(), format!("Basic {REDACTED}"));
    }
    let evaluation = Evaluation {
        task_instance_id: task_instance_id.clone(),
        started_at: iso(now_ms()),
        url: check.url.to_string(),
        request_headers: recorded,
        request_body: body.clone(),
        response_status: None,
        response_body: None,
        error: None,
        decision: "pending",
        callback: None,
    };
    let index = runs
        .update(plan.run_id, |detail| {
            let evaluations = &mut detail
                .stages
                .get_mut(stage)?
                .checks
                .get_mut(slot)?
                .evaluations;
            evaluations.push(evaluation);
            Some(evaluations.len() - 1)
        })
        .flatten()
        .unwrap_or_default();
    let at = EvaluationAt {
        run_id: plan.run_id,
        stage,
        check: slot,
        evaluation: index,
    };
    let waiting = match check.mode {
        CheckMode::Callback => {
            let decision = runs.expect_callback(&task_instance_id, &job_id, at);
            let closed = CloseOnDrop {
                runs,
                task_instance_id,
            };
            Some((decision, closed))
        }
        CheckMode::Sync => {
            runs.open_closed_task(&task_instance_id, plan.run_id, &job_id);
            None
        }
    };

    let answer = post(runs, check, &headers, &body, deadline).await;
    let (status, text, error) = match answer {
        Ok(answer) => (answer.status, answer.body, None),
        Err(error) => (None, String::new(), Some(error)),
    };
    let verdict = match check.mode {
        CheckMode::Sync if approves(status, &text) => "approved",
        CheckMode::Sync => "notApproved",
        CheckMode::Callback if status.is_some_and(|s| s < 400) => "acknowledged",
        CheckMode::Callback => "notAcknowledged",
    };
    let kept: String = text.chars().take(KEPT_ANSWER).collect();
    runs.update_evaluation(at, |evaluation| {
        evaluation.response_status = status;
        evaluation.response_body =
            status.map(|_| serde_json::from_str::<Value>(&kept).unwrap_or(Value::String(kept)));
        evaluation.error = error;
        evaluation.decision = verdict;
    });
    (Answer { status, body: text }, waiting)
}

async fn post(
    runs: &Runs,
    check: &RestCheck,
    headers: &[(&str, String)],
    body: &Value,
    deadline: Instant,
) -> Result<Answer, String> {
    let client = runs.client()?;
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .clamp(Duration::from_millis(100), CALL_TIMEOUT);
    let mut request = client
        .post(check.url.clone())
        .timeout(remaining)
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    if let Some((user, password)) = &check.basic_auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Ok(Answer {
        status: Some(status),
        body,
    })
}

/// The text of an error and its causes ("error sending request …: connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macros_expand_case_insensitively_and_unknown_ones_stay() {
        let macros = vec![
            ("Build.BuildId", "42".to_owned()),
            ("System.StageName", "production".to_owned()),
        ];
        assert_eq!(
            expand(
                "$(build.buildid) to $(System.StageName) by $(Who.Knows)",
                &macros
            ),
            "42 to production by $(Who.Knows)"
        );
        assert_eq!(
            expand("unterminated $(Build.BuildId", &macros),
            "unterminated $(Build.BuildId"
        );
        assert_eq!(
            expand_json(&json!({"a": ["$(Build.BuildId)", 1, null]}), &macros),
            json!({"a": ["42", 1, null]})
        );
    }

    #[test]
    fn only_a_200_saying_approved_passes() {
        assert!(approves(Some(200), r#"{"status":"approved"}"#));
        assert!(approves(
            Some(200),
            r#"{"status":"Approved","reason":"ok"}"#
        ));
        assert!(!approves(Some(200), r#"{"status":"pending"}"#));
        assert!(!approves(Some(200), "approved"));
        assert!(!approves(Some(201), r#"{"status":"approved"}"#));
        assert!(!approves(Some(403), r#"{"status":"approved"}"#));
        assert!(!approves(None, ""));
    }
}
