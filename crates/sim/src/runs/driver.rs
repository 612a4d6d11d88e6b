//! A run driven through its stages in the background: each deployment stage evaluates its
//! environment's checks, runs, and writes its deployment record; every stage change and the
//! run's completion raise the pipelines service-hook events.

use std::sync::Arc;

use serde_json::Value;
use tokio::task::JoinSet;
use tollgate_domain::ResourceKind;

use super::check::{self, Outcome};
use super::{CheckDetail, RestCheck, RunPlan};
use crate::hooks::events::{self, StageChange};
use crate::model::{check_types, iso};
use crate::server::{Shared, now_ms};

/// Queue a run's driver. The run's detail exists before its first stage starts.
pub(super) fn start(shared: Arc<Shared>, plan: RunPlan) {
    shared.runs.add_run(plan.detail());
    let runs = shared.runs.clone();
    let driver = tokio::spawn(drive(shared, Arc::new(plan)));
    runs.add_driver(driver.abort_handle());
}

/// How a stage ended.
enum StageEnd {
    Succeeded,
    /// A check said no.
    Failed,
    /// A check gave no positive decision by its timeout.
    Skipped,
}

async fn drive(shared: Arc<Shared>, plan: Arc<RunPlan>) {
    let mut blocked_by: Option<String> = None;
    for (index, stage) in plan.stages.iter().enumerate() {
        if let Some(reason) = &blocked_by {
            complete(&shared, &plan, index, "skipped", Some(reason.clone()));
            continue;
        }
        if stage.skip {
            complete(
                &shared,
                &plan,
                index,
                "skipped",
                Some("named in stagesToSkip".to_owned()),
            );
            continue;
        }
        match run_stage(&shared, &plan, index).await {
            StageEnd::Succeeded => {}
            StageEnd::Failed => blocked_by = Some(format!("stage {} failed", stage.name)),
            StageEnd::Skipped => blocked_by = Some(format!("stage {} was skipped", stage.name)),
        }
    }
    finish(
        &shared,
        &plan,
        if blocked_by.is_some() {
            "failed"
        } else {
            "succeeded"
        },
    );
}

/// One of the checks on a stage's environment.
enum StageCheck {
    Approval {
        id: String,
        approvers: Vec<String>,
    },
    Rest(Box<RestCheck>),
    /// Not simulated: passes (or, disabled, is not evaluated at all).
    Other {
        id: String,
        type_name: String,
        name: String,
        disabled: bool,
    },
}

impl StageCheck {
    fn detail(&self) -> CheckDetail {
        let (check_id, check_type, name, mode, state, approvers) = match self {
            StageCheck::Approval { id, approvers } => (
                id.clone(),
                "approval".to_owned(),
                "Approval".to_owned(),
                None,
                "pending",
                Some(approvers.clone()),
            ),
            StageCheck::Rest(check) => (
                check.id.to_string(),
                super::records::INVOKE_REST_API_NAME.to_owned(),
                "Invoke REST API".to_owned(),
                Some(check.mode),
                "pending",
                None,
            ),
            StageCheck::Other {
                id,
                type_name,
                name,
                disabled,
            } => (
                id.clone(),
                type_name.clone(),
                name.clone(),
                None,
                if *disabled {
                    "disabled"
                } else {
                    "notSimulated"
                },
                None,
            ),
        };
        CheckDetail {
            check_id,
            check_type,
            name,
            mode,
            state,
            approvers,
            held: false,
            evaluations: Vec::new(),
        }
    }

    /// Whether the stage waits for this check (an approval or a call).
    fn waits(&self) -> bool {
        matches!(self, StageCheck::Approval { .. } | StageCheck::Rest(_))
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The checks on an environment now, in the order the organisation lists them.
fn checks_on(shared: &Shared, plan: &RunPlan, environment_id: &str) -> Vec<StageCheck> {
    let org = shared.read_org();
    org.collection(ResourceKind::CheckConfigurations)
        .scope(&plan.project.id, None)
        .filter_map(|(_, object)| serde_json::from_str::<Value>(&object.json).ok())
        .filter(|check| {
            check["resource"]["type"] == "environment"
                && text(&check["resource"]["id"]) == environment_id
        })
        .map(|check| {
            let id = text(&check["id"]);
            let registered = id.parse().ok().and_then(|id| shared.runs.check(id));
            let disabled = check["isDisabled"] == true;
            match registered {
                Some(rest) if !disabled => StageCheck::Rest(Box::new(rest)),
                _ if !disabled && check["type"]["id"] == check_types::APPROVAL => {
                    StageCheck::Approval {
                        id,
                        approvers: check["settings"]["approvers"]
                            .as_array()
                            .map(|approvers| {
                                approvers.iter().map(|a| text(&a["displayName"])).collect()
                            })
                            .unwrap_or_default(),
                    }
                }
                _ => {
                    let settings = &check["settings"];
                    let name = [&settings["displayName"], &settings["definitionRef"]["name"]]
                        .into_iter()
                        .map(text)
                        .find(|n| !n.is_empty())
                        .unwrap_or_else(|| text(&check["type"]["name"]));
                    StageCheck::Other {
                        id,
                        type_name: text(&check["type"]["name"]),
                        name,
                        disabled,
                    }
                }
            }
        })
        .collect()
}

async fn run_stage(shared: &Arc<Shared>, plan: &Arc<RunPlan>, index: usize) -> StageEnd {
    let runs = &shared.runs;
    let run_id = plan.run_id;
    let Some(stage) = plan.stages.get(index) else {
        return StageEnd::Succeeded;
    };
    let queued_ms = now_ms();
    if let Some((environment_id, environment_name)) = &stage.environment {
        let checks = checks_on(shared, plan, environment_id);
        runs.update_stage(run_id, index, |detail| {
            detail.checks = checks.iter().map(StageCheck::detail).collect();
        });
        if checks.iter().any(StageCheck::waits) {
            change(shared, plan, index, "waiting", None, None);
        }
        for (slot, check) in checks.iter().enumerate() {
            if !matches!(check, StageCheck::Approval { .. }) {
                continue;
            }
            if runs.is_held(environment_name) {
                runs.update_check(run_id, index, slot, |detail| {
                    detail.state = "waitingForRelease";
                    detail.held = true;
                });
                runs.until_released(environment_name).await;
            }
            runs.update_check(run_id, index, slot, |detail| detail.state = "approved");
        }
        if let Some(end) = evaluate_rest_checks(shared, plan, index, checks).await {
            return end;
        }
    }
    let started_ms = now_ms();
    runs.update_stage(run_id, index, |detail| {
        detail.start_time = Some(iso(started_ms));
    });
    change(shared, plan, index, "running", None, None);
    tokio::time::sleep(runs.settings().stage_duration).await;
    if let Some((environment_id, environment_name)) = &stage.environment {
        let (request, owner) = (runs.guid(), runs.guid());
        let record = shared.write_org().record_deployment(
            plan,
            (environment_id, environment_name),
            &stage.name,
            &request,
            &owner,
            (queued_ms, started_ms, now_ms()),
        );
        runs.update_stage(run_id, index, |detail| {
            detail.deployment_record_id = Some(record);
        });
    }
    complete(shared, plan, index, "succeeded", None);
    StageEnd::Succeeded
}

/// Evaluate the registered Invoke REST API checks of a stage together, as ADO does ("allowed to
/// deploy only when all checks pass"). `None` when all passed; otherwise the stage is completed
/// and how it ended is returned.
async fn evaluate_rest_checks(
    shared: &Arc<Shared>,
    plan: &Arc<RunPlan>,
    index: usize,
    checks: Vec<StageCheck>,
) -> Option<StageEnd> {
    let runs = &shared.runs;
    let run_id = plan.run_id;
    let mut evaluations = JoinSet::new();
    let mut pending = Vec::new();
    for (slot, check) in checks.into_iter().enumerate() {
        let StageCheck::Rest(check) = check else {
            continue;
        };
        runs.update_check(run_id, index, slot, |detail| detail.state = "evaluating");
        pending.push(slot);
        let (shared, plan) = (shared.clone(), plan.clone());
        evaluations.spawn(async move {
            (
                slot,
                check::evaluate(shared, plan, index, slot, *check).await,
            )
        });
    }
    let mut failed = None;
    let mut timed_out = None;
    while let Some(joined) = evaluations.join_next().await {
        // An evaluation that panicked gave no decision; it stays pending and counts as one
        // that timed out below.
        let Ok((slot, outcome)) = joined else {
            continue;
        };
        pending.retain(|p| *p != slot);
        let state = match outcome {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timedOut",
        };
        runs.update_check(run_id, index, slot, |detail| detail.state = state);
        match outcome {
            Outcome::Passed => {}
            Outcome::Failed => {
                failed = Some(slot);
                break;
            }
            Outcome::TimedOut => timed_out = timed_out.or(Some(slot)),
        }
    }
    if let Some(slot) = failed {
        // "A single final negative decision causes the pipeline to be denied access": the
        // other evaluations stop.
        evaluations.abort_all();
        for other in pending.iter().filter(|p| **p != slot) {
            runs.update_check(run_id, index, *other, |detail| detail.state = "canceled");
        }
        let reason = format!(
            "check {} decided failed",
            check_id(shared, run_id, index, slot)
        );
        complete(shared, plan, index, "failed", Some(reason));
        return Some(StageEnd::Failed);
    }
    if let Some(slot) = timed_out.or(pending.first().copied()) {
        let reason = format!(
            "no positive decision from check {} within its timeout",
            check_id(shared, run_id, index, slot)
        );
        complete(shared, plan, index, "skipped", Some(reason));
        return Some(StageEnd::Skipped);
    }
    None
}

fn check_id(shared: &Shared, run_id: u64, stage: usize, slot: usize) -> String {
    shared
        .runs
        .update(run_id, |detail| {
            detail
                .stages
                .get(stage)
                .and_then(|s| s.checks.get(slot))
                .map(|c| c.check_id.clone())
        })
        .flatten()
        .unwrap_or_default()
}

/// Complete a stage with a result and raise its event.
fn complete(
    shared: &Shared,
    plan: &RunPlan,
    index: usize,
    result: &'static str,
    reason: Option<String>,
) {
    change(shared, plan, index, "completed", Some(result), reason);
}

/// Record a stage's new state and raise `ms.vss-pipelines.stage-state-changed-event`.
fn change(
    shared: &Shared,
    plan: &RunPlan,
    index: usize,
    state: &'static str,
    result: Option<&'static str>,
    reason: Option<String>,
) {
    let Some(stage) = plan.stages.get(index) else {
        return;
    };
    let at = iso(now_ms());
    shared.runs.update_stage(plan.run_id, index, |detail| {
        detail.state = state;
        detail.result = result;
        if reason.is_some() {
            detail.reason = reason;
        }
        if state == "completed" {
            detail.finish_time = Some(at);
        }
    });
    let current = shared.read_org().run_and_build(plan);
    // A pipeline deleted meanwhile took its runs along: nothing left to raise events about.
    let Some((run, build)) = current else {
        return;
    };
    let event = events::stage_state_changed(
        &StageChange {
            id: &stage.id,
            name: &stage.name,
            state,
            result,
        },
        &run,
        &build,
        Some(&plan.repository),
        &shared.hooks.organization_url(),
    );
    shared.hooks.publish(vec![event]);
}

/// Complete the run and its build; raise `build.complete` and
/// `ms.vss-pipelines.run-state-changed-event`.
fn finish(shared: &Shared, plan: &RunPlan, result: &'static str) {
    let finished_ms = now_ms();
    let finished = shared.write_org().finish_run(plan, result, finished_ms);
    shared.runs.update(plan.run_id, |detail| {
        detail.state = "completed";
        detail.result = Some(result);
        detail.finished_date = Some(iso(finished_ms));
    });
    if let Some((run, build)) = finished {
        let organization_url = shared.hooks.organization_url();
        shared.hooks.publish(vec![
            events::build_complete(&build, &organization_url),
            events::run_state_changed(&run, &build, Some(&plan.repository), &organization_url),
        ]);
    }
}
