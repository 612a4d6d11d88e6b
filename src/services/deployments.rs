//! Deployments: validate a change against the gate, queue a pipeline run for an environment,
//! follow it, and roll an environment back to the last commit that deployed there
//! successfully.
//!
//! Every run tollgate queues goes through the gate first, as a recorded dry run: a deny
//! queues nothing. Allowed and approval-required deployments are queued; the environment's
//! check in ADO (tollgate's gate, `POST /gate/ado/{tenant}`) judges the run again when its
//! stage is reached and holds it there until people approve. The deployment row is written
//! only after ADO accepted the run, together with its `deployment.queued` audit record.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tollgate_ado::{AdoClient, AdoError, RunRequest};
use tollgate_domain::{InventoryItem, ResourceKind, TenantId};
use tollgate_store::InventoryStore;
use tollgate_store::deployments::{
    Deployment, DeploymentFilter, DeploymentKind, DeploymentStore, RunResult, RunState, RunStatus,
};
use tollgate_store::gate::{ApprovalState, DecisionFilter, GateStore, Verdict};

use crate::services::audit_events::{Actor, AuditEvent, Record, Target};
use crate::services::gate::{
    ApprovalSummary, Clock, DeploymentRequest, GateAnswer, GateService, JudgedFinding, Outcome,
    RequestSource,
};

/// How many inventory rows one lookup reads at a time.
const PAGE: u32 = 1_000;
/// How many earlier deployments a rollback considers.
const ROLLBACK_HORIZON: u32 = 200;
/// How many runs a rollback asks ADO about to learn their commits.
const ROLLBACK_LOOKUPS: usize = 10;

/// A deployment to queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployRequest {
    /// The project's name or id; may be left out when the pipeline's name is unique.
    pub project: Option<String>,
    /// The pipeline's name (matched case-insensitively against the inventory).
    pub pipeline: Option<String>,
    pub pipeline_id: Option<u64>,
    pub environment: String,
    /// The branch to build: `main` or `refs/heads/main`; the pipeline's default when absent.
    pub branch: Option<String>,
    /// The release version, passed as the template parameter `version`.
    pub version: Option<String>,
    /// More template parameters.
    pub parameters: BTreeMap<String, String>,
}

/// An environment to roll back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRequest {
    pub project: Option<String>,
    pub environment: String,
    /// The pipeline whose deployments to consider; the one that deployed last when absent.
    pub pipeline: Option<String>,
    pub pipeline_id: Option<u64>,
}

/// A pipeline as the inventory knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedPipeline {
    pub project: String,
    pub project_id: Option<String>,
    pub pipeline_id: u64,
    pub pipeline: Option<String>,
}

/// What a deployment would do, before it does it.
#[derive(Clone, Debug, Serialize)]
pub struct DeployPlan {
    pub kind: DeploymentKind,
    pub pipeline: ResolvedPipeline,
    pub environment: String,
    pub ref_name: Option<String>,
    /// The commit to build (rollbacks).
    pub commit: Option<String>,
    pub version: Option<String>,
    pub parameters: BTreeMap<String, String>,
    pub rollback_of: Option<u64>,
    /// The gate's verdict now (judged, not recorded).
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

impl DeployPlan {
    fn run_request(&self) -> RunRequest {
        RunRequest {
            project: self
                .pipeline
                .project_id
                .clone()
                .unwrap_or_else(|| self.pipeline.project.clone()),
            pipeline_id: self.pipeline.pipeline_id,
            ref_name: self.ref_name.clone(),
            version: self.commit.clone(),
            template_parameters: self.parameters.clone(),
        }
    }

    fn gate_request(&self, actor: &Actor) -> DeploymentRequest {
        DeploymentRequest {
            project: self
                .pipeline
                .project_id
                .clone()
                .unwrap_or_else(|| self.pipeline.project.clone()),
            environment: self.environment.clone(),
            stage: Some(self.environment.clone()),
            pipeline_id: Some(self.pipeline.pipeline_id),
            pipeline: self.pipeline.pipeline.clone(),
            requested_for: Some(actor.id.clone()),
            source_branch: self.ref_name.clone(),
            source_version: self.commit.clone(),
            ..DeploymentRequest::default()
        }
    }
}

/// A queued deployment and the gate's dry-run verdict that let it through.
#[derive(Clone, Debug, Serialize)]
pub struct Queued {
    pub deployment: Deployment,
    pub gate: GateAnswer,
    /// What happens next, in words (e.g. that production waits for approval at its stage).
    pub note: String,
}

/// A gate decision about a deployment's run.
#[derive(Clone, Debug, Serialize)]
pub struct RunDecision {
    pub id: String,
    pub source: String,
    pub mode: String,
    pub environment: String,
    pub verdict: Verdict,
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
    pub reasons: Vec<String>,
    pub approval: Option<ApprovalSummary>,
}

/// Where a deployment stands.
#[derive(Clone, Debug, Serialize)]
pub struct DeploymentStatus {
    pub deployment: Deployment,
    /// The gate's decisions about the run (its environment checks), newest first.
    pub decisions: Vec<RunDecision>,
    /// A pending approval holds the run.
    pub waiting_for_approval: bool,
}

/// Why a deployment could not be done. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the gate denies this deployment: {}", .0.reasons().join("; "))]
    Denied(Box<GateAnswer>),
    #[error("{0}")]
    NothingToRollBack(String),
    #[error(
        "tenant {0} has no Azure DevOps organisation and credential configured; deployments need one ([ado] org_url and a PAT or service principal)"
    )]
    NotConfigured(String),
    #[error("Azure DevOps {failure} while {action}: {error}")]
    Ado {
        action: String,
        failure: AdoFailure,
        error: AdoError,
    },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What kind of ADO failure it was, for the caller's status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdoFailure {
    /// 401/403: tollgate's credential may not do it.
    Refused,
    /// 404: no such project, pipeline or environment in ADO.
    NotFound,
    /// Another 4xx: ADO refused the request as given.
    Rejected,
    /// 429/5xx, transport failures and bad answers, after the client's retries.
    Unavailable,
}

impl std::fmt::Display for AdoFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdoFailure::Refused => "refused tollgate's credential",
            AdoFailure::NotFound => "does not know it",
            AdoFailure::Rejected => "rejected the request",
            AdoFailure::Unavailable => "is unavailable",
        })
    }
}

impl AdoFailure {
    fn of(error: &AdoError) -> Self {
        match error {
            AdoError::Unauthorized { .. } | AdoError::Forbidden { .. } | AdoError::Token { .. } => {
                AdoFailure::Refused
            }
            AdoError::NotFound { .. } => AdoFailure::NotFound,
            AdoError::Status { status, .. } if *status == 429 || *status >= 500 => {
                AdoFailure::Unavailable
            }
            AdoError::Status { .. } | AdoError::Config(_) => AdoFailure::Rejected,
            AdoError::RetriesExhausted { .. } | AdoError::Decode { .. } => AdoFailure::Unavailable,
        }
    }
}

fn ado_error(action: impl Into<String>) -> impl FnOnce(AdoError) -> DeploymentError {
    let action = action.into();
    move |error| DeploymentError::Ado {
        action,
        failure: AdoFailure::of(&error),
        error,
    }
}

type Result<T, E = DeploymentError> = std::result::Result<T, E>;

/// Deployments for one tenant.
pub struct DeploymentService {
    pub tenant: TenantId,
    pub gate: Arc<GateService>,
    pub inventory: Arc<dyn InventoryStore>,
    pub deployments: Arc<dyn DeploymentStore>,
    pub gate_store: Arc<dyn GateStore>,
    /// Queues and reads runs; `None` when the tenant has no ADO credential.
    pub ado: Option<Arc<dyn AdoClient>>,
    /// When rows are created and runs checked: the wall clock, even when the gate judges at
    /// a fixed time, so that deployments stay in the order they were queued.
    pub clock: Clock,
}

/// `main` → `refs/heads/main`; a full ref stays as it is.
pub fn normalise_branch(branch: &str) -> Option<String> {
    let branch = branch.trim();
    if branch.is_empty() {
        return None;
    }
    Some(if branch.starts_with("refs/") {
        branch.to_owned()
    } else {
        format!("refs/heads/{branch}")
    })
}

fn text(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_time(raw: Option<String>) -> Option<OffsetDateTime> {
    raw.and_then(|raw| {
        OffsetDateTime::parse(&raw, &time::format_description::well_known::Rfc3339).ok()
    })
}

/// What ADO's Run says about its progress.
fn run_status(run: &Value, checked_at: OffsetDateTime) -> RunStatus {
    let state = RunState::from_ado(run.get("state").and_then(Value::as_str).unwrap_or(""));
    RunStatus {
        state,
        result: run
            .get("result")
            .and_then(Value::as_str)
            .and_then(RunResult::from_ado),
        source_version: text(run, "/resources/repositories/self/version"),
        finished_at: parse_time(text(run, "/finishedDate")),
        checked_at,
    }
}

/// Edit distance, for suggesting names close to a mistyped one.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Up to five of `candidates` that look like `wanted` (containing it, contained in it, or a
/// few edits away), closest first.
pub fn close_names<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted = wanted.to_lowercase();
    let mut scored: Vec<(usize, String)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let lower = candidate.to_lowercase();
            let edits = distance(&wanted, &lower);
            let related = lower.contains(&wanted)
                || wanted.contains(&lower)
                || edits <= (wanted.chars().count() / 3).max(2);
            related.then(|| (edits, candidate.to_owned()))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, name)| name).collect()
}

fn suggestion(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", close.join(", "))
    }
}

impl DeploymentService {
    fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    fn ado(&self) -> Result<&Arc<dyn AdoClient>> {
        self.ado
            .as_ref()
            .ok_or_else(|| DeploymentError::NotConfigured(self.tenant.to_string()))
    }

    async fn all_items(&self, kind: ResourceKind) -> anyhow::Result<Vec<InventoryItem>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .inventory
                .items(&self.tenant, kind, after.as_deref(), PAGE)
                .await?;
            let full = page.len() == PAGE as usize;
            after = page.last().map(|item| item.key.clone());
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// The project a name or id names in the inventory.
    async fn project(&self, name_or_id: &str) -> Result<Option<InventoryItem>> {
        let projects = self
            .all_items(ResourceKind::Projects)
            .await
            .context("reading the projects")?;
        Ok(projects.into_iter().find(|item| {
            item.ado_id.eq_ignore_ascii_case(name_or_id)
                || item
                    .name
                    .as_deref()
                    .is_some_and(|name| name.eq_ignore_ascii_case(name_or_id))
        }))
    }

    async fn project_names(&self) -> Vec<String> {
        self.all_items(ResourceKind::Projects)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|item| item.name)
            .collect()
    }

    /// Find a pipeline by id or name (case-insensitive), in one project or in all of them. A
    /// name that is unknown or names several pipelines is an error listing the close ones.
    pub async fn resolve_pipeline(
        &self,
        project: Option<&str>,
        name: Option<&str>,
        id: Option<u64>,
    ) -> Result<ResolvedPipeline> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let project = project.map(str::trim).filter(|p| !p.is_empty());
        if name.is_none() && id.is_none() {
            return Err(DeploymentError::Invalid(
                "name the pipeline (its name or id)".to_owned(),
            ));
        }
        let project_item = match project {
            Some(project) => match self.project(project).await? {
                Some(item) => Some(item),
                // ADO may know a project the inventory does not (not synced yet): a pipeline
                // given by id is queued there as asked, and ADO says whether it exists.
                None if name.is_none() => {
                    return Ok(ResolvedPipeline {
                        project: project.to_owned(),
                        project_id: None,
                        pipeline_id: id.unwrap_or_default(),
                        pipeline: None,
                    });
                }
                None => {
                    let names = self.project_names().await;
                    let close = close_names(project, names.iter().map(String::as_str));
                    return Err(DeploymentError::NotFound(format!(
                        "no project {project:?} in the inventory (run a sync if it is new){}",
                        suggestion(&close)
                    )));
                }
            },
            None => None,
        };
        let pipelines = self
            .all_items(ResourceKind::Pipelines)
            .await
            .context("reading the pipelines")?;
        let in_project: Vec<&InventoryItem> = pipelines
            .iter()
            .filter(|item| {
                project_item
                    .as_ref()
                    .is_none_or(|project| item.project == project.ado_id)
            })
            .collect();
        let matching: Vec<&InventoryItem> = in_project
            .iter()
            .copied()
            .filter(|item| {
                id.is_none_or(|id| item.ado_id == id.to_string())
                    && name.is_none_or(|name| {
                        item.name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    })
            })
            .collect();
        let projects = self
            .all_items(ResourceKind::Projects)
            .await
            .unwrap_or_default();
        let project_name = |project_id: &str| {
            projects
                .iter()
                .find(|p| p.ado_id == project_id)
                .and_then(|p| p.name.clone())
                .unwrap_or_else(|| project_id.to_owned())
        };
        let wanted = name
            .map(|n| format!("{n:?}"))
            .unwrap_or_else(|| format!("id {}", id.unwrap_or_default()));
        let scope = project
            .map(|p| format!(" in project {p}"))
            .unwrap_or_default();
        match matching.as_slice() {
            [one] => Ok(ResolvedPipeline {
                project: project_name(&one.project),
                project_id: Some(one.project.clone()),
                pipeline_id: one.ado_id.parse().map_err(|_| {
                    DeploymentError::Other(anyhow!("pipeline id {:?} is not a number", one.ado_id))
                })?,
                pipeline: one.name.clone(),
            }),
            [] => {
                let close = match name {
                    Some(name) => close_names(
                        name,
                        in_project.iter().filter_map(|item| item.name.as_deref()),
                    ),
                    None => Vec::new(),
                };
                Err(DeploymentError::NotFound(format!(
                    "no pipeline {wanted}{scope} in the inventory{}",
                    suggestion(&close)
                )))
            }
            several => {
                let listed: Vec<String> = several
                    .iter()
                    .map(|item| {
                        format!(
                            "{}/{} (id {})",
                            project_name(&item.project),
                            item.name.as_deref().unwrap_or("?"),
                            item.ado_id
                        )
                    })
                    .collect();
                Err(DeploymentError::Invalid(format!(
                    "{} pipelines match {wanted}: {}; name the project",
                    several.len(),
                    listed.join(", ")
                )))
            }
        }
    }

    /// The verdict the gate gives a deployment now, recorded as a dry run (API `validate`,
    /// CLI `validate`).
    pub async fn validate(
        &self,
        request: DeploymentRequest,
        source: RequestSource,
        actor: &Actor,
    ) -> Result<GateAnswer> {
        if request.project.trim().is_empty() || request.environment.trim().is_empty() {
            return Err(DeploymentError::Invalid(
                "a deployment names its project and environment".to_owned(),
            ));
        }
        Ok(self.gate.validate(request, source, actor).await?)
    }

    /// What `deploy` would queue and the gate's verdict now, recording nothing.
    pub async fn plan_deploy(&self, request: &DeployRequest) -> Result<DeployPlan> {
        let environment = request.environment.trim();
        if environment.is_empty() {
            return Err(DeploymentError::Invalid(
                "a deployment names its environment".to_owned(),
            ));
        }
        for reserved in ["environment", "version"] {
            if request.parameters.contains_key(reserved) {
                return Err(DeploymentError::Invalid(format!(
                    "the template parameter {reserved:?} is set by the deployment itself; use its own field"
                )));
            }
        }
        if let Some(bad) = request
            .parameters
            .keys()
            .find(|k| k.is_empty() || k.len() > 100 || k.chars().any(char::is_whitespace))
        {
            return Err(DeploymentError::Invalid(format!(
                "template parameter {bad:?}: a name without spaces, at most 100 characters"
            )));
        }
        let pipeline = self
            .resolve_pipeline(
                request.project.as_deref(),
                request.pipeline.as_deref(),
                request.pipeline_id,
            )
            .await?;
        let version = request
            .version
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let mut parameters = request.parameters.clone();
        parameters.insert("environment".to_owned(), environment.to_owned());
        if let Some(version) = &version {
            parameters.insert("version".to_owned(), version.clone());
        }
        let mut plan = DeployPlan {
            kind: DeploymentKind::Deploy,
            pipeline,
            environment: environment.to_owned(),
            ref_name: request.branch.as_deref().and_then(normalise_branch),
            commit: None,
            version,
            parameters,
            rollback_of: None,
            verdict: Verdict::Allow,
            reasons: Vec::new(),
        };
        self.judge(&mut plan).await?;
        Ok(plan)
    }

    async fn judge(&self, plan: &mut DeployPlan) -> Result<()> {
        let (verdict, findings, _) = self
            .gate
            // The gate's own clock: it may judge at a chosen time (TOLLGATE_FAKE_NOW).
            .judge(&plan.gate_request(&Actor::system()), (self.gate.clock)())
            .await?;
        plan.verdict = verdict;
        plan.reasons = reasons(&findings);
        Ok(())
    }

    /// Queue a pipeline run for an environment, through the gate. Denied: nothing is queued.
    pub async fn deploy(
        &self,
        request: &DeployRequest,
        source: RequestSource,
        actor: &Actor,
    ) -> Result<Queued> {
        self.ado()?;
        let plan = self.plan_deploy(request).await?;
        self.execute(plan, source, actor).await
    }

    /// Queue what a plan says, after the gate's recorded dry run allows it (or asks for
    /// approval, which the environment's check then enforces at the stage).
    pub async fn execute(
        &self,
        plan: DeployPlan,
        source: RequestSource,
        actor: &Actor,
    ) -> Result<Queued> {
        let ado = self.ado()?.clone();
        let answer = self
            .gate
            .validate(plan.gate_request(actor), source, actor)
            .await?;
        if answer.outcome() == Outcome::Denied {
            return Err(DeploymentError::Denied(Box::new(answer)));
        }
        let run = ado
            .queue_run(&plan.run_request())
            .await
            .map_err(ado_error(format!(
                "queueing pipeline {} for {}",
                plan.pipeline.pipeline_id, plan.environment
            )))?;
        let run_id = run.get("id").and_then(Value::as_u64).ok_or_else(|| {
            DeploymentError::Other(anyhow!(
                "ADO queued pipeline {} but its answer names no run id: {}",
                plan.pipeline.pipeline_id,
                run.to_string().chars().take(200).collect::<String>()
            ))
        })?;
        let now = self.now();
        let status = run_status(&run, now);
        let deployment = Deployment {
            id: new_id(now),
            kind: plan.kind,
            project: plan.pipeline.project.clone(),
            project_id: plan.pipeline.project_id.clone(),
            pipeline_id: plan.pipeline.pipeline_id,
            pipeline: plan
                .pipeline
                .pipeline
                .clone()
                .or_else(|| text(&run, "/pipeline/name")),
            environment: plan.environment.clone(),
            ref_name: plan
                .ref_name
                .clone()
                .or_else(|| text(&run, "/resources/repositories/self/refName")),
            version: plan.version.clone(),
            source_version: status.source_version.clone().or(plan.commit.clone()),
            parameters: plan.parameters.clone(),
            run_id,
            run_name: text(&run, "/name"),
            run_url: text(&run, "/_links/web/href").or_else(|| text(&run, "/url")),
            rollback_of: plan.rollback_of,
            requested_by: actor.id.clone(),
            decision_id: Some(answer.decision_id.clone()),
            verdict: answer.verdict,
            state: status.state,
            result: status.result,
            created_at: now,
            updated_at: now,
            finished_at: status.finished_at,
        };
        let record = Record::new(AuditEvent::DeploymentQueued, actor, now)
            .target(Target {
                kind: "deployment".to_owned(),
                id: deployment.id.clone(),
                name: Some(format!(
                    "{}/{}",
                    deployment.pipeline.as_deref().unwrap_or("?"),
                    deployment.environment
                )),
                project: Some(deployment.project.clone()),
            })
            .detail("kind", json!(deployment.kind.as_str()))
            .detail("environment", json!(deployment.environment))
            .detail("pipelineId", json!(deployment.pipeline_id))
            .detail("pipeline", json!(deployment.pipeline))
            .detail("runId", json!(run_id))
            .detail("refName", json!(deployment.ref_name))
            .detail("version", json!(deployment.version))
            .detail("commit", json!(deployment.source_version))
            .detail("rollbackOf", json!(deployment.rollback_of))
            .detail("decision", json!(answer.decision_id))
            .detail("verdict", json!(answer.verdict.as_str()))
            .detail("source", json!(source.as_str()))
            .draft();
        self.deployments
            .record_deployment(&self.tenant, &deployment, &[record])
            .await
            .with_context(|| {
                format!(
                    "ADO queued run {run_id}, but recording it failed; cancel the run in ADO or follow it there"
                )
            })?;
        let note = match answer.outcome() {
            Outcome::Pending => format!(
                "queued run {run_id}; {} needs approval: the environment's check (tollgate's gate) holds the stage until it is approved ({})",
                deployment.environment,
                answer.reasons().join("; ")
            ),
            _ => format!(
                "queued run {run_id}; the environment's check judges it again when its stage starts"
            ),
        };
        Ok(Queued {
            deployment,
            gate: answer,
            note,
        })
    }

    /// Deployments queued through tollgate, newest first.
    pub async fn list(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>> {
        let mut filter = filter.clone();
        // A project named differently from how it was stored (case, or its id): compare
        // with the inventory's spelling.
        if let Some(project) = filter.project.clone()
            && let Some(item) = self.project(&project).await?
        {
            filter.project = Some(item.ado_id);
        }
        Ok(self
            .deployments
            .deployments(&self.tenant, &filter)
            .await
            .context("listing deployments")?)
    }

    /// Where a deployment stands: its run as ADO reports it now (stored as its last known
    /// state), and the gate's decisions about that run.
    pub async fn status(&self, id: &str) -> Result<DeploymentStatus> {
        let deployment = self
            .deployments
            .deployment(&self.tenant, id)
            .await
            .context("reading the deployment")?
            .ok_or_else(|| DeploymentError::NotFound(format!("no deployment {id:?}")))?;
        let deployment = self.refresh(deployment).await?;
        let decisions = self
            .gate_store
            .decisions(
                &self.tenant,
                &DecisionFilter {
                    run_id: Some(deployment.run_id),
                    limit: 100,
                    ..DecisionFilter::default()
                },
            )
            .await
            .context("reading the run's gate decisions")?;
        let mut summaries = Vec::new();
        for decision in decisions {
            let approval = match &decision.approval_id {
                Some(approval) => self
                    .gate_store
                    .approval(&self.tenant, approval)
                    .await
                    .context("reading an approval")?,
                None => None,
            };
            let findings: Vec<JudgedFinding> =
                serde_json::from_str(decision.findings.as_str()).unwrap_or_default();
            summaries.push(RunDecision {
                id: decision.id,
                source: decision.source,
                mode: decision.mode,
                environment: decision.environment,
                verdict: decision.verdict,
                decided_at: decision.decided_at,
                reasons: reasons(&findings),
                approval: approval.as_ref().map(ApprovalSummary::of),
            });
        }
        let waiting_for_approval = !deployment.is_final()
            && summaries.iter().any(|d| {
                d.approval
                    .as_ref()
                    .is_some_and(|a| a.state == ApprovalState::Pending)
            });
        Ok(DeploymentStatus {
            deployment,
            decisions: summaries,
            waiting_for_approval,
        })
    }

    /// Ask ADO about a run that has not completed, and store the answer.
    async fn refresh(&self, deployment: Deployment) -> Result<Deployment> {
        if deployment.is_final() {
            return Ok(deployment);
        }
        let ado = self.ado()?;
        let project = deployment
            .project_id
            .clone()
            .unwrap_or_else(|| deployment.project.clone());
        let run = ado
            .run(&project, deployment.pipeline_id, deployment.run_id)
            .await
            .map_err(ado_error(format!("reading run {}", deployment.run_id)))?;
        let status = run_status(&run, self.now());
        Ok(self
            .deployments
            .update_run_status(&self.tenant, &deployment.id, &status)
            .await
            .context("storing the run's state")?
            .unwrap_or(deployment))
    }

    /// What a rollback would queue: a new run of the newest successful deployment to the
    /// environment that is not the current one (nor the current commit).
    pub async fn plan_rollback(&self, request: &RollbackRequest) -> Result<DeployPlan> {
        let environment = request.environment.trim();
        if environment.is_empty() {
            return Err(DeploymentError::Invalid(
                "a rollback names its environment".to_owned(),
            ));
        }
        let ado = self.ado()?.clone();
        let named_pipeline = request.pipeline.is_some() || request.pipeline_id.is_some();
        let (project, project_id, pipeline) = if named_pipeline {
            let pipeline = self
                .resolve_pipeline(
                    request.project.as_deref(),
                    request.pipeline.as_deref(),
                    request.pipeline_id,
                )
                .await?;
            (
                pipeline.project.clone(),
                pipeline.project_id.clone(),
                Some(pipeline),
            )
        } else {
            let Some(project) = request
                .project
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
            else {
                return Err(DeploymentError::Invalid(
                    "a rollback names its project or its pipeline".to_owned(),
                ));
            };
            match self.project(project).await? {
                Some(item) => (
                    item.name.clone().unwrap_or_else(|| project.to_owned()),
                    Some(item.ado_id),
                    None,
                ),
                None => (project.to_owned(), None, None),
            }
        };
        let mut candidates = self
            .candidates(&project, project_id.as_deref(), environment)
            .await?;
        let what = match &pipeline {
            Some(p) => format!(
                "pipeline {} to {environment}",
                p.pipeline
                    .clone()
                    .unwrap_or_else(|| p.pipeline_id.to_string())
            ),
            None => format!("{environment} in project {project}"),
        };
        let current_pipeline = match &pipeline {
            Some(p) => p.pipeline_id,
            None => match candidates.first() {
                Some(newest) => newest.pipeline_id,
                None => {
                    return Err(DeploymentError::NothingToRollBack(format!(
                        "no deployment of {what} is known (neither queued through tollgate nor in the synced inventory); nothing to roll back"
                    )));
                }
            },
        };
        candidates.retain(|c| c.pipeline_id == current_pipeline);
        let Some(current) = candidates.first().cloned() else {
            return Err(DeploymentError::NothingToRollBack(format!(
                "no deployment of {what} is known (neither queued through tollgate nor in the synced inventory); nothing to roll back"
            )));
        };
        let ado_project = project_id.clone().unwrap_or_else(|| project.clone());
        let mut lookups = 0;
        let mut learn = async |candidate: &mut Candidate| {
            if candidate.commit.is_none() && lookups < ROLLBACK_LOOKUPS {
                lookups += 1;
                if let Ok(run) = ado
                    .run(&ado_project, candidate.pipeline_id, candidate.run_id)
                    .await
                {
                    candidate.commit = text(&run, "/resources/repositories/self/version");
                    candidate.ref_name = candidate
                        .ref_name
                        .clone()
                        .or_else(|| text(&run, "/resources/repositories/self/refName"));
                }
            }
        };
        let mut current = current;
        learn(&mut current).await;
        let mut target = None;
        for candidate in candidates.iter_mut().skip(1) {
            if !candidate.succeeded {
                continue;
            }
            learn(candidate).await;
            let same_commit = candidate.commit.is_some() && candidate.commit == current.commit;
            if !same_commit {
                target = Some(candidate.clone());
                break;
            }
        }
        let Some(target) = target else {
            return Err(DeploymentError::NothingToRollBack(format!(
                "run {} is the current deployment of {what}, and no earlier run of another commit deployed there successfully; nothing to roll back to",
                current.run_id
            )));
        };
        let Some(commit) = target.commit.clone() else {
            return Err(DeploymentError::NothingToRollBack(format!(
                "run {} deployed {what} successfully, but neither tollgate nor ADO can say which commit it built",
                target.run_id
            )));
        };
        let mut parameters = target.parameters.clone();
        parameters.insert("environment".to_owned(), environment.to_owned());
        let mut plan = DeployPlan {
            kind: DeploymentKind::Rollback,
            pipeline: pipeline.unwrap_or(ResolvedPipeline {
                project,
                project_id,
                pipeline_id: target.pipeline_id,
                pipeline: target.pipeline.clone(),
            }),
            environment: environment.to_owned(),
            ref_name: target.ref_name.clone(),
            commit: Some(commit),
            version: parameters.get("version").cloned(),
            parameters,
            rollback_of: Some(target.run_id),
            verdict: Verdict::Allow,
            reasons: Vec::new(),
        };
        self.judge(&mut plan).await?;
        Ok(plan)
    }

    /// Re-run the last successful deployment's commit in the environment, through the gate.
    pub async fn rollback(
        &self,
        request: &RollbackRequest,
        source: RequestSource,
        actor: &Actor,
    ) -> Result<Queued> {
        let plan = self.plan_rollback(request).await?;
        self.execute(plan, source, actor).await
    }

    /// Earlier deployments to an environment, newest run first: tollgate's own (their state
    /// refreshed from ADO where it was not final) and the synced deployment records.
    async fn candidates(
        &self,
        project: &str,
        project_id: Option<&str>,
        environment: &str,
    ) -> Result<Vec<Candidate>> {
        let mut by_run: BTreeMap<u64, Candidate> = BTreeMap::new();
        let ours = self
            .deployments
            .deployments(
                &self.tenant,
                &DeploymentFilter {
                    project: Some(project_id.unwrap_or(project).to_owned()),
                    limit: ROLLBACK_HORIZON,
                    ..DeploymentFilter::default()
                },
            )
            .await
            .context("reading earlier deployments")?;
        let mut refreshes = 0;
        for deployment in ours {
            if !deployment.environment.eq_ignore_ascii_case(environment) {
                continue;
            }
            // Not final as stored: ask ADO (a run that cannot be read stays as it was). Only
            // the newest few: older runs that nobody followed are long over, and one of them
            // becoming the rollback target unasked is worse than leaving it out.
            let deployment = if deployment.is_final() || refreshes >= ROLLBACK_LOOKUPS {
                deployment
            } else {
                refreshes += 1;
                match self.refresh(deployment.clone()).await {
                    Ok(refreshed) => refreshed,
                    Err(_) => deployment,
                }
            };
            by_run.insert(
                deployment.run_id,
                Candidate {
                    run_id: deployment.run_id,
                    pipeline_id: deployment.pipeline_id,
                    pipeline: deployment.pipeline.clone(),
                    succeeded: deployment.succeeded(),
                    commit: deployment.source_version.clone(),
                    ref_name: deployment.ref_name.clone(),
                    parameters: deployment
                        .parameters
                        .iter()
                        .filter(|(k, _)| k.as_str() != "environment")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                },
            );
        }
        if let Some(project_id) = project_id {
            let environments = self
                .inventory
                .project_items(
                    &self.tenant,
                    ResourceKind::Environments,
                    project_id,
                    None,
                    PAGE,
                )
                .await
                .context("reading the project's environments")?;
            for item in environments.iter().filter(|e| {
                e.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(environment))
            }) {
                let keys: Vec<String> = self
                    .inventory
                    .keys(
                        &self.tenant,
                        ResourceKind::EnvironmentDeployments,
                        Some(&item.key),
                    )
                    .await
                    .context("listing deployment records")?
                    .into_iter()
                    .map(|k| k.key)
                    .collect();
                let records = self
                    .inventory
                    .items_by_keys(&self.tenant, ResourceKind::EnvironmentDeployments, &keys)
                    .await
                    .context("reading deployment records")?;
                for record in records {
                    let raw: Value = serde_json::from_str(&record.raw).unwrap_or(Value::Null);
                    let (Some(run_id), Some(pipeline_id)) = (
                        raw.pointer("/owner/id").and_then(Value::as_u64),
                        raw.pointer("/definition/id").and_then(Value::as_u64),
                    ) else {
                        continue;
                    };
                    let succeeded = raw.get("result").and_then(Value::as_str) == Some("succeeded");
                    by_run
                        .entry(run_id)
                        .and_modify(|known| known.succeeded |= succeeded)
                        .or_insert(Candidate {
                            run_id,
                            pipeline_id,
                            pipeline: text(&raw, "/definition/name"),
                            succeeded,
                            commit: None,
                            ref_name: None,
                            parameters: BTreeMap::new(),
                        });
                }
            }
        }
        // ADO run ids grow with time across an organisation: the highest is the newest.
        Ok(by_run.into_values().rev().collect())
    }
}

/// An earlier deployment a rollback may return to.
#[derive(Clone, Debug)]
struct Candidate {
    run_id: u64,
    pipeline_id: u64,
    pipeline: Option<String>,
    succeeded: bool,
    commit: Option<String>,
    ref_name: Option<String>,
    /// Its template parameters other than `environment`.
    parameters: BTreeMap<String, String>,
}

fn reasons(findings: &[JudgedFinding]) -> Vec<String> {
    findings
        .iter()
        .filter(|f| {
            matches!(
                f.enforced,
                Some(tollgate_policy::GateEffect::Deny | tollgate_policy::GateEffect::Approval)
            )
        })
        .map(|f| format!("{}: {}", f.rule, f.message))
        .collect()
}

/// A time-ordered unique id: `dp_` and a UUIDv7 without dashes.
fn new_id(now: OffsetDateTime) -> String {
    format!(
        "dp_{}",
        tollgate_audit::record::new_record_id(now).replace('-', "")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_suggest_what_was_probably_meant() {
        let names = ["payments-api", "payments-worker", "ledger", "Identity"];
        assert_eq!(
            close_names("payment-api", names),
            vec!["payments-api".to_owned()]
        );
        assert_eq!(
            close_names("payments", names),
            vec!["payments-api".to_owned(), "payments-worker".to_owned()]
        );
        assert_eq!(close_names("IDENTITY", names), vec!["Identity".to_owned()]);
        assert!(close_names("zebra-stripes", names).is_empty());
    }

    #[test]
    fn ado_failures_are_told_apart() {
        let url = || "https://dev.azure.com/fabrikam/x".to_owned();
        let status = |status| AdoError::Status {
            status,
            url: url(),
            message: String::new(),
        };
        let cases = [
            (AdoError::Unauthorized { url: url() }, AdoFailure::Refused),
            (
                AdoError::Forbidden {
                    url: url(),
                    message: String::new(),
                },
                AdoFailure::Refused,
            ),
            (
                AdoError::NotFound {
                    url: url(),
                    message: String::new(),
                },
                AdoFailure::NotFound,
            ),
            (status(400), AdoFailure::Rejected),
            (status(429), AdoFailure::Unavailable),
            (status(503), AdoFailure::Unavailable),
            (
                AdoError::RetriesExhausted {
                    url: url(),
                    attempts: 8,
                    elapsed_ms: 1,
                    last: "503".to_owned(),
                },
                AdoFailure::Unavailable,
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(AdoFailure::of(&error), expected, "{error}");
        }
    }

    #[test]
    fn branches_become_refs() {
        assert_eq!(normalise_branch("main").as_deref(), Some("refs/heads/main"));
        assert_eq!(
            normalise_branch("refs/tags/v1").as_deref(),
            Some("refs/tags/v1")
        );
        assert_eq!(normalise_branch("  "), None);
    }

    #[test]
    fn ado_runs_map_to_states_and_results() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let running = run_status(&json!({"state": "inProgress"}), now);
        assert_eq!(
            (running.state, running.result),
            (RunState::InProgress, None)
        );
        let done = run_status(
            &json!({"state": "completed", "result": "failed", "finishedDate": "2026-11-24T10:00:00Z",
                    "resources": {"repositories": {"self": {"version": "abc"}}}}),
            now,
        );
        assert_eq!(done.state, RunState::Completed);
        assert_eq!(done.result, Some(RunResult::Failed));
        assert_eq!(done.source_version.as_deref(), Some("abc"));
        assert!(done.finished_at.is_some());
        let odd = run_status(&json!({"state": "unknown", "result": "unknown"}), now);
        assert_eq!((odd.state, odd.result), (RunState::Queued, None));
    }
}
