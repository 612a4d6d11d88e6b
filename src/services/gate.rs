//! The deployment gate: judge one run entering one environment against the gate rules, with
//! the facts the inventory holds about it, and record the verdict; open an approval when
//! people must decide; post the decision back to ADO's check (callback mode).
//!
//! Inputs come from three places: ADO's *Invoke REST API* check (headers and body, see
//! docs/GATE.md), the API's and CLI's validation requests, and re-evaluations (backtests).
//! Everything the rules saw is stored with the decision and in its audit record, so a
//! verdict can be explained and replayed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tollgate_ado::{AdoClient, PlanEvent};
use tollgate_domain::{CanonicalJson, InventoryItem, ResourceKind, SecretString, TenantId};
use tollgate_policy::{GateEffect, GateFinding, PolicySet};
use tollgate_store::gate::{
    Approval, ApprovalChange, ApprovalOutcome, ApprovalRefusal, ApprovalState, ApprovalVote,
    CallbackState, CallbackTarget, DecisionFilter, DecisionWrite, GateDecision, GateStore,
    NewDecision, Verdict,
};
use tollgate_store::{AuditDraft, AuditStore, INVENTORY_VERSION, InventoryStore, NewJob};

use crate::auth::{Principal, Role};
use crate::services::FinalFailure;
use crate::services::audit_events::{Actor, AuditEvent, Record, Target, rfc3339};
use crate::services::capabilities::{Capabilities, Capability, Fallback, Setting};
use crate::services::decision_writer::DecisionWriter;
use crate::services::job_tokens::{JobTokens, TokenError};
use crate::services::memo::Memo;
use crate::services::notify::{ApprovalNotice, NoticeKind, Notifications, TryLater};
use crate::services::settings::Action;
use crate::services::shared_read::SharedRead;

/// The job that posts a decision to a check's plan.
pub const JOB_GATE_CALLBACK: &str = "gate.callback";
/// The job that expires a tenant's overdue approvals.
pub const JOB_APPROVALS_EXPIRE: &str = "approvals.expire";
/// Tells one channel's approvers about an approval (payload: approval, channel, notice).
pub const JOB_APPROVAL_NOTIFY: &str = "approval.notify";

/// A clock, injected so that tests and backtests judge at a chosen time.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// A change freeze: no deployments to the named environments between `start` and `end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
    #[serde(default = "all_environments")]
    pub environments: Vec<String>,
    #[serde(default)]
    pub reason: String,
}

fn all_environments() -> Vec<String> {
    vec!["*".to_owned()]
}

/// How the gate treats environments matching `pattern` (a glob, case-insensitive).
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentGate {
    pub pattern: String,
    /// Approvals from different people that a pending deployment needs.
    pub quorum: u32,
    /// The least role an approver must hold.
    pub approver_role: Role,
    /// Per rule: deny (as the rule says), warn, dry-run or off.
    pub actions: BTreeMap<String, Action>,
    /// Per rule: parameters over the rule's defaults.
    pub params: BTreeMap<String, Map<String, Value>>,
}

#[derive(Clone, Debug)]
pub struct GateSettings {
    pub timezone: String,
    /// Local dates (`YYYY-MM-DD`) with no production deployments.
    pub holidays: Vec<String>,
    pub freezes: Vec<Freeze>,
    /// The first matching entry applies; unmatched environments get the defaults.
    pub environments: Vec<EnvironmentGate>,
    pub approval_expiry: time::Duration,
    /// Where a person opens an approval (the notification's link): `{base}/api/v1/approvals/{id}`.
    pub public_url: Option<String>,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            timezone: "UTC".to_owned(),
            holidays: Vec::new(),
            freezes: Vec::new(),
            environments: Vec::new(),
            approval_expiry: time::Duration::hours(24),
            public_url: None,
        }
    }
}

impl GateSettings {
    fn environment(&self, name: &str) -> EnvironmentGate {
        self.environments
            .iter()
            .find(|gate| glob_matches(&gate.pattern, name))
            .cloned()
            .unwrap_or(EnvironmentGate {
                pattern: "*".to_owned(),
                quorum: 1,
                approver_role: Role::ReleaseManager,
                actions: BTreeMap::new(),
                params: BTreeMap::new(),
            })
    }
}

/// `*` matches any run of characters; case-insensitive.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    fn matches(pattern: &[char], name: &[char]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|skip| matches(rest, &name[skip..])),
            Some((c, rest)) => name
                .split_first()
                .is_some_and(|(n, name_rest)| n == c && matches(rest, name_rest)),
        }
    }
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let name: Vec<char> = name.to_lowercase().chars().collect();
    matches(&pattern, &name)
}

/// Who asks the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestSource {
    AdoCheck,
    Api,
    Cli,
    Mcp,
    Backtest,
}

impl RequestSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestSource::AdoCheck => "ado-check",
            RequestSource::Api => "api",
            RequestSource::Cli => "cli",
            RequestSource::Mcp => "mcp",
            RequestSource::Backtest => "backtest",
        }
    }
}

/// A run entering an environment, as far as the caller knows it. The gate fills the rest from
/// the inventory (the run's build record: requester, branch, commit, repository).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DeploymentRequest {
    /// Project name or id.
    pub project: String,
    pub environment: String,
    pub stage: Option<String>,
    /// The run (build) id.
    #[serde(deserialize_with = "number_or_text")]
    pub run_id: Option<u64>,
    #[serde(deserialize_with = "number_or_text")]
    pub pipeline_id: Option<u64>,
    pub pipeline: Option<String>,
    pub requested_for: Option<String>,
    pub source_branch: Option<String>,
    pub source_version: Option<String>,
    pub repository: Option<String>,
    /// Work items the caller links to the change (besides those of its pull requests).
    pub work_items: Vec<u64>,
}

/// An id as a number or as text: ADO expands `$(Build.BuildId)` inside the check body's JSON
/// strings, so the documented body sends `"runId": "4711"`.
fn number_or_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_u64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{number} is not an id"))),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an id"))),
        Some(other) => Err(serde::de::Error::custom(format!("{other} is not an id"))),
    }
}

/// The check's plan, from the documented headers.
#[derive(Clone, Debug)]
pub struct CheckContext {
    /// `PlanUrl` as received: must be the tenant's organisation.
    pub plan_url: String,
    pub target: CallbackTarget,
    pub auth_token: SecretString,
    pub callback: bool,
}

/// What a caller gets back.
#[derive(Clone, Debug, Serialize)]
pub struct GateAnswer {
    pub decision_id: String,
    pub verdict: Verdict,
    /// For a decision that required approval: where the approval stands.
    pub approval: Option<ApprovalSummary>,
    pub findings: Vec<JudgedFinding>,
    /// False when the same check was judged before and this is that decision.
    pub fresh: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApprovalSummary {
    pub id: String,
    pub state: ApprovalState,
    pub quorum: u32,
    pub approvals: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl ApprovalSummary {
    pub fn of(approval: &Approval) -> Self {
        Self {
            id: approval.id.clone(),
            state: approval.state,
            quorum: approval.quorum,
            approvals: approval
                .votes
                .iter()
                .filter(|v| v.decision == "approved")
                .count(),
            expires_at: approval.expires_at,
        }
    }
}

/// A rule's finding with the action configured for it in this environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgedFinding {
    pub rule: String,
    pub effect: GateEffect,
    pub action: String,
    /// The effect that counts after the action: `None` for dry-run.
    pub enforced: Option<GateEffect>,
    pub message: String,
    pub evidence: Value,
}

impl GateAnswer {
    /// What the run may do now: allowed, denied, or still waiting.
    pub fn outcome(&self) -> Outcome {
        match (self.verdict, &self.approval) {
            (Verdict::Allow, _) => Outcome::Allowed,
            (Verdict::Deny, _) => Outcome::Denied,
            (Verdict::Approval, Some(approval)) => match approval.state {
                ApprovalState::Approved => Outcome::Allowed,
                ApprovalState::Pending => Outcome::Pending,
                _ => Outcome::Denied,
            },
            (Verdict::Approval, None) => Outcome::Pending,
        }
    }

    /// The messages of the findings that decided it.
    pub fn reasons(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter(|f| matches!(f.enforced, Some(GateEffect::Deny | GateEffect::Approval)))
            .map(|f| format!("{}: {}", f.rule, f.message))
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allowed,
    Denied,
    Pending,
}

/// Why the gate would not judge a check.
#[derive(Debug, thiserror::Error)]
pub enum GateRefusal {
    #[error("PlanUrl {plan_url:?} is not this tenant's organisation ({registered})")]
    ForeignPlan {
        plan_url: String,
        registered: String,
    },
    #[error("the tenant has no registered organisation URL; the gate cannot call back")]
    NoOrganisation,
}

/// What an approver may do.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval {0}")]
    NotFound(String),
    #[error("deciding this approval needs the role {needed} (you are {held})")]
    RoleTooLow { needed: String, held: String },
    #[error(transparent)]
    Refused(#[from] ApprovalRefusal),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Everything the gate needs for one tenant.
pub struct GateService {
    pub tenant: TenantId,
    /// The registered organisation URL (`https://dev.azure.com/{org}/`).
    pub org_url: Option<String>,
    pub policies: Arc<PolicySet>,
    pub inventory: Arc<dyn InventoryStore>,
    pub gate_store: Arc<dyn GateStore>,
    pub audit: Arc<dyn AuditStore>,
    /// Posts callbacks; `None` when the tenant has no ADO credential.
    pub ado: Option<Arc<dyn AdoClient>>,
    pub settings: GateSettings,
    pub capabilities: Arc<Capabilities>,
    pub notifications: Arc<Notifications>,
    pub clock: Clock,
    /// Stores decisions in batches: the gate's group commit.
    pub writer: DecisionWriter,
    /// What the gate keeps between checks (`GateMemory::default()`).
    pub memory: GateMemory,
    /// Seals the job tokens kept for callbacks (never stored in clear).
    pub tokens: Arc<JobTokens>,
}

/// What one tenant's gate keeps between checks: each run's facts while the inventory's version
/// stays the same, each verdict for the same input within the same second, and each request's
/// whole judgement (input and findings encoded) for the same version and second. A burst of
/// checks about one run is judged once; a change to the inventory or the next second is
/// judged afresh.
pub struct GateMemory {
    facts: Memo<Facts>,
    verdicts: Memo<(Verdict, Vec<JudgedFinding>)>,
    /// Each request's judgement, encoded, for the inventory's version and the second it was
    /// judged in: a burst of checks about one run builds, judges and encodes its input once —
    /// the first check of a second judges, the ones arriving meanwhile wait for it rather
    /// than each judging the same input again (≈ 1 ms of CPU apiece, at every second's start).
    judgements: Memo<tokio::sync::OnceCell<Judged>>,
    /// The capability and the inventory's version, read once for every check that asked
    /// while the previous read was under way.
    latest: SharedRead<(Setting, Option<String>)>,
    /// Requests judged afresh (facts, rules, encoding) since the process started.
    judged_afresh: std::sync::atomic::AtomicU64,
}

impl GateMemory {
    /// How many requests were judged afresh rather than answered from a kept judgement.
    pub fn judged_afresh(&self) -> u64 {
        self.judged_afresh
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Runs whose facts are kept at once: a run's facts can be large (every alert of its
/// repository, every deployment of its pipeline), and a burst is about a handful of runs.
const RUNS_KEPT: usize = 128;

fn encoded_findings(findings: &[JudgedFinding]) -> Result<CanonicalJson> {
    let value = serde_json::to_value(findings).context("encoding the findings")?;
    CanonicalJson::new(&value).context("encoding the findings")
}

/// A judgement to keep (`Ok`), or the approval a check degrades to when the facts could not be
/// read (`Err`: answered, never kept).
type Judged = std::result::Result<Arc<Judgement>, Arc<Judgement>>;

/// What the rules made of one input, with the input and the findings in canonical form: the
/// decision row and the audit record of every check it answers copy these bytes.
struct Judgement {
    verdict: Verdict,
    findings: Vec<JudgedFinding>,
    findings_json: CanonicalJson,
    input: CanonicalJson,
    /// From the input's run: who asked, which pipeline, which run, which project.
    requested_by: Option<String>,
    pipeline: Option<String>,
    run_id: Option<u64>,
    project: Option<String>,
}

impl Judgement {
    fn new(verdict: Verdict, findings: Vec<JudgedFinding>, input: &Value) -> Result<Self> {
        let findings_json = encoded_findings(&findings)?;
        let run = input.get("run").unwrap_or(&Value::Null);
        Ok(Self {
            verdict,
            findings_json,
            input: CanonicalJson::new(input).context("encoding the rules' input")?,
            requested_by: text(run, &["requestedFor"]),
            pipeline: text(run, &["pipeline", "name"]),
            run_id: run.get("id").and_then(Value::as_u64),
            project: text(run, &["project"]),
            findings,
        })
    }

    /// The same judgement with one more finding and another verdict (a switched-off
    /// capability overriding the rules).
    fn overridden(&self, verdict: Verdict, finding: JudgedFinding) -> Result<Self> {
        let mut findings = self.findings.clone();
        findings.push(finding);
        let findings_json =
            CanonicalJson::new(&serde_json::to_value(&findings).context("encoding the findings")?)
                .context("encoding the findings")?;
        Ok(Self {
            verdict,
            findings,
            findings_json,
            input: self.input.clone(),
            requested_by: self.requested_by.clone(),
            pipeline: self.pipeline.clone(),
            run_id: self.run_id,
            project: self.project.clone(),
        })
    }
}

impl Default for GateMemory {
    fn default() -> Self {
        Self {
            facts: Memo::with_capacity(RUNS_KEPT),
            verdicts: Memo::default(),
            judgements: Memo::with_capacity(RUNS_KEPT),
            latest: SharedRead::default(),
            judged_afresh: Default::default(),
        }
    }
}

/// True when `plan_url` names the organisation at `registered` (same scheme, host, port and
/// organisation path; a trailing slash either way).
pub fn same_organisation(plan_url: &str, registered: &str) -> bool {
    let normalise = |url: &str| {
        let trimmed = url.trim().trim_end_matches('/').to_lowercase();
        // `https://host/org` — no query, fragment or user info may sneak in.
        if trimmed.contains(['?', '#', '@', '\\']) {
            return None;
        }
        Some(trimmed)
    };
    matches!((normalise(plan_url), normalise(registered)), (Some(a), Some(b)) if a == b)
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    let mut current = value;
    for key in path {
        current = current.get(*key)?;
    }
    match current {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn raw(item: &InventoryItem) -> Value {
    serde_json::from_str(&item.raw).unwrap_or(Value::Null)
}

impl GateService {
    /// The gate's clock (fixed by `TOLLGATE_FAKE_NOW` in demonstrations and tests).
    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// Judge a check call from ADO. The decision is keyed by (plan, job, task instance): the
    /// same check delivered twice gets the same decision (and its approval's current state).
    pub async fn check(
        &self,
        context: CheckContext,
        request: DeploymentRequest,
    ) -> Result<std::result::Result<GateAnswer, GateRefusal>> {
        let Some(registered) = self.org_url.as_deref() else {
            return Ok(Err(GateRefusal::NoOrganisation));
        };
        if !same_organisation(&context.plan_url, registered) {
            let refusal = GateRefusal::ForeignPlan {
                plan_url: context.plan_url.clone(),
                registered: registered.to_owned(),
            };
            let record = Record::new(
                AuditEvent::GateRefused,
                &Actor::ado_check(&context.target.project_id),
                self.now(),
            )
            .failure()
            .reason(refusal.to_string())
            .detail("planUrl", json!(context.plan_url))
            .detail("projectId", json!(context.target.project_id))
            .detail("planId", json!(context.target.plan_id))
            .draft();
            self.audit
                .append_audit(&self.tenant, &[record])
                .await
                .context("recording the refused check")?;
            return Ok(Err(refusal));
        }
        let key = format!(
            "ado:{}:{}:{}",
            context.target.plan_id, context.target.job_id, context.target.task_instance_id
        );
        // A check ADO delivers again is judged again, but the store keeps the first decision
        // under its key and returns it (with its approval's current state), so the answer is
        // the same; not reading it first saves every new check a round trip to the store.
        let mode = if context.callback { "callback" } else { "sync" };
        let decided = self
            .decide(
                request,
                RequestSource::AdoCheck,
                &Actor::ado_check(&context.target.project_id),
                key.clone(),
                mode,
                Some((context.target, context.auth_token)),
            )
            .await;
        match decided {
            Ok(answer) => Ok(Ok(answer)),
            // Judging again failed (the rules, the writer): a check decided before still gets
            // its decision, as it always does.
            Err(error) => match self.gate_store.decision_by_key(&self.tenant, &key).await {
                Ok(Some(existing)) => Ok(Ok(self.answer_for(existing, false).await?)),
                _ => Err(error),
            },
        }
    }

    /// Validate a deployment without recording an approval (API `validate`, CLI `gate check`):
    /// the verdict the gate would give now. The decision is recorded (and audited) as a
    /// dry run.
    pub async fn validate(
        &self,
        request: DeploymentRequest,
        source: RequestSource,
        actor: &Actor,
    ) -> Result<GateAnswer> {
        let key = format!("{}:{}", source.as_str(), new_id("", self.now()));
        self.decide(request, source, actor, key, "dry-run", None)
            .await
    }

    /// Judge without recording anything (backtests, benchmarks).
    pub async fn judge(
        &self,
        request: &DeploymentRequest,
        now: OffsetDateTime,
    ) -> Result<(Verdict, Vec<JudgedFinding>, Value)> {
        let environment = self.settings.environment(&request.environment);
        let input = self.input(request, &environment, now).await?;
        let (verdict, findings) = self.evaluate(&input, &environment)?;
        Ok((verdict, findings, input))
    }

    /// Judge as [`GateService::judge`] does, but read the facts and evaluate the rules even
    /// when the gate remembers both (benchmarks: what a check about a new run costs).
    pub async fn judge_afresh(
        &self,
        request: &DeploymentRequest,
        now: OffsetDateTime,
    ) -> Result<(Verdict, Vec<JudgedFinding>, Value)> {
        let environment = self.settings.environment(&request.environment);
        let facts = Facts::gather(&*self.inventory, &self.tenant, request).await?;
        let input = self.input_from(&facts, request, &environment, now);
        let (verdict, findings) = self.evaluate_afresh(&input, &environment)?;
        Ok((verdict, findings, input))
    }

    /// Judge a deployment that already ran, as the gate would have judged it at `at`
    /// (backtests): like [`GateService::judge`], except that only deployments that had
    /// finished by `at` count as earlier deployments (staging before production). Records
    /// nothing.
    pub async fn judge_replay(
        &self,
        request: &DeploymentRequest,
        at: OffsetDateTime,
    ) -> Result<(Verdict, Vec<JudgedFinding>, Value)> {
        let environment = self.settings.environment(&request.environment);
        let mut input = self.input(request, &environment, at).await?;
        if let Some(Value::Array(deployments)) = input.get_mut("deployments") {
            deployments.retain(|deployment| {
                deployment
                    .get("finishTime")
                    .and_then(Value::as_str)
                    .and_then(|finished| {
                        OffsetDateTime::parse(
                            finished,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .is_some_and(|finished| finished <= at)
            });
        }
        let (verdict, findings) = self.evaluate(&input, &environment)?;
        Ok((verdict, findings, input))
    }

    async fn decide(
        &self,
        request: DeploymentRequest,
        source: RequestSource,
        actor: &Actor,
        key: String,
        mode: &str,
        callback: Option<(CallbackTarget, SecretString)>,
    ) -> Result<GateAnswer> {
        let now = self.now();
        let environment = self.settings.environment(&request.environment);
        let (evaluate, version) = self
            .memory
            .latest
            .read(|| {
                self.capabilities.get_with(
                    &self.tenant,
                    Capability::GateEvaluate,
                    INVENTORY_VERSION,
                )
            })
            .await;
        let mut judgement = if evaluate.enabled {
            self.judgement(&request, &environment, now, version).await?
        } else {
            let (verdict, effect) = match evaluate.fallback {
                Fallback::Error => (Verdict::Deny, GateEffect::Deny),
                // Skipping the gate must not mean letting everything through silently; degrade
                // and manual both put people in the loop.
                Fallback::Skip | Fallback::Degrade | Fallback::Manual => {
                    (Verdict::Approval, GateEffect::Approval)
                }
            };
            let finding = JudgedFinding {
                rule: "capability:gate.evaluate".to_owned(),
                effect,
                action: evaluate.fallback.as_str().to_owned(),
                enforced: Some(effect),
                message: format!(
                    "policy evaluation is switched off (fallback {})",
                    evaluate.fallback.as_str()
                ),
                evidence: Value::Null,
            };
            Arc::new(Judgement::new(
                verdict,
                vec![finding],
                &json!({"request": request}),
            )?)
        };
        if judgement.verdict == Verdict::Approval {
            let approvals = self
                .capabilities
                .get(&self.tenant, Capability::GateApprovals)
                .await;
            if !approvals.enabled {
                judgement = Arc::new(judgement.overridden(
                    Verdict::Deny,
                    JudgedFinding {
                        rule: "capability:gate.approvals".to_owned(),
                        effect: GateEffect::Deny,
                        action: approvals.fallback.as_str().to_owned(),
                        enforced: Some(GateEffect::Deny),
                        message:
                            "approvals are switched off, so a deployment that needs one is denied"
                                .to_owned(),
                        evidence: Value::Null,
                    },
                )?);
            }
        }
        let verdict = judgement.verdict;
        let requested_by = judgement.requested_by.clone();
        let pipeline = judgement.pipeline.clone();
        let run_id = judgement.run_id;
        let project = judgement
            .project
            .clone()
            .unwrap_or_else(|| request.project.clone());
        let id = new_id("gd_", now);
        let is_callback = mode == "callback";
        let approval = (verdict == Verdict::Approval && mode != "dry-run").then(|| Approval {
            id: new_id("ap_", now),
            decision_id: id.clone(),
            state: ApprovalState::Pending,
            project: project.clone(),
            environment: request.environment.clone(),
            pipeline: pipeline.clone(),
            run_id,
            requested_by: requested_by.clone(),
            reasons: judgement
                .findings
                .iter()
                .filter(|f| f.enforced == Some(GateEffect::Approval))
                .map(|f| f.message.clone())
                .collect(),
            quorum: environment.quorum.max(1),
            approver_role: environment.approver_role.as_str().to_owned(),
            votes: Vec::new(),
            created_at: now,
            expires_at: now + self.settings.approval_expiry,
            closed_at: None,
            closed_by: None,
        });
        let decision = GateDecision {
            id: id.clone(),
            key,
            source: source.as_str().to_owned(),
            mode: mode.to_owned(),
            verdict,
            project: project.clone(),
            environment: request.environment.clone(),
            pipeline,
            run_id,
            requested_by,
            findings: judgement.findings_json.clone(),
            input: judgement.input.clone(),
            callback: callback.as_ref().map(|(target, _)| target.clone()),
            callback_state: is_callback.then_some(if verdict == Verdict::Approval {
                CallbackState::Waiting
            } else {
                CallbackState::Queued
            }),
            approval_id: approval.as_ref().map(|a| a.id.clone()),
            decided_at: now,
        };
        let callback_job =
            (is_callback && verdict != Verdict::Approval).then(|| callback_job(&decision.id));
        let notices = match &approval {
            Some(approval) => notice_jobs(
                &self.notice_channels().await,
                &approval.id,
                NOTICE_REQUESTED,
            ),
            None => Vec::new(),
        };
        let mut audit = vec![
            Record::new(AuditEvent::GateDecided, actor, now)
                .target(Target::new(
                    "deployment",
                    format!("{project}/{}", request.environment),
                ))
                .detail("decision", json!(id))
                .detail("verdict", json!(verdict.as_str()))
                .detail("mode", json!(mode))
                .detail("source", json!(source.as_str()))
                .detail("runId", json!(run_id))
                .detail_encoded("findings", judgement.findings_json.clone())
                .detail_encoded("input", judgement.input.clone())
                .draft(),
        ];
        if let Some(approval) = &approval {
            audit.push(approval_requested(approval, now));
        }
        let new = NewDecision {
            decision,
            // Only a callback needs the job's token later; a sync check's answer is its
            // response, so its token is not kept at all.
            callback_token: callback
                .filter(|_| is_callback)
                .map(|(_, token)| self.tokens.load()?.seal(&self.tenant, &id, &token))
                .transpose()?,
            approval: approval.clone(),
            callback_job,
            notices,
        };
        let recorded = self
            .writer
            .record(DecisionWrite { new, audit })
            .await
            .context("recording the gate decision")?;
        if recorded.created {
            // The decision as written: its approval is the one just opened, its findings the
            // judgement's (read nothing back, parse nothing again).
            return Ok(GateAnswer {
                decision_id: recorded.decision.id,
                verdict,
                approval: approval.as_ref().map(ApprovalSummary::of),
                findings: judgement.findings.clone(),
                fresh: true,
            });
        }
        self.answer_for(recorded.decision, false).await
    }

    /// The judgement of `request` at `now`: kept from a check about the same request within
    /// the same second at the same inventory version, or made now (and kept). Facts that
    /// cannot be read degrade the verdict to an approval, never to an allow.
    async fn judgement(
        &self,
        request: &DeploymentRequest,
        environment: &EnvironmentGate,
        now: OffsetDateTime,
        version: Option<String>,
    ) -> Result<Arc<Judgement>> {
        let second = now.replace_nanosecond(0).unwrap_or(now);
        let kept_under = match &version {
            Some(version) => Some((
                format!("{version}\n{}", second.unix_timestamp()),
                serde_json::to_string(request).context("encoding the request")?,
            )),
            None => None,
        };
        let Some((generation, key)) = kept_under else {
            return self
                .judge_now(request, environment, now, version)
                .await
                .map(|judged| judged.unwrap_or_else(|degraded| degraded));
        };
        let cell = self.memory.judgements.get_or_insert_with(
            &generation,
            &key,
            tokio::sync::OnceCell::new,
        );
        let judged = cell
            .get_or_try_init(|| self.judge_now(request, environment, now, version))
            .await?;
        match judged {
            Ok(judgement) => Ok(judgement.clone()),
            Err(degraded) => {
                // The checks waiting on this judgement share the degraded answer (rather than
                // each trying the store again in turn); the next check reads the facts again.
                self.memory.judgements.forget(&generation, &key, &cell);
                Ok(degraded.clone())
            }
        }
    }

    /// Judge `request` afresh: `Ok(judgement)` to keep, or `Err(degraded)` when the facts could
    /// not be read — an approval, never an allow, and not to be kept.
    async fn judge_now(
        &self,
        request: &DeploymentRequest,
        environment: &EnvironmentGate,
        now: OffsetDateTime,
        version: Option<String>,
    ) -> Result<Judged> {
        self.memory
            .judged_afresh
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.input_at(request, environment, now, version).await {
            Ok(input) => {
                let (verdict, findings) = self.evaluate(&input, environment)?;
                Ok(Ok(Arc::new(Judgement::new(verdict, findings, &input)?)))
            }
            Err(error) => {
                let degraded = JudgedFinding {
                    rule: "capability:gate.evaluate".to_owned(),
                    effect: GateEffect::Approval,
                    action: "degrade".to_owned(),
                    enforced: Some(GateEffect::Approval),
                    message: format!(
                        "the gate could not read the facts ({error:#}); people must approve"
                    ),
                    evidence: Value::Null,
                };
                Ok(Err(Arc::new(Judgement::new(
                    Verdict::Approval,
                    vec![degraded],
                    &json!({"request": request}),
                )?)))
            }
        }
    }

    async fn answer_for(&self, decision: GateDecision, fresh: bool) -> Result<GateAnswer> {
        let approval = match &decision.approval_id {
            Some(id) => self.gate_store.approval(&self.tenant, id).await?,
            None => None,
        };
        let findings: Vec<JudgedFinding> =
            serde_json::from_str(decision.findings.as_str()).unwrap_or_default();
        Ok(GateAnswer {
            decision_id: decision.id,
            verdict: decision.verdict,
            approval: approval.as_ref().map(ApprovalSummary::of),
            findings,
            fresh,
        })
    }

    /// Apply the environment's actions to the rules' findings and reach a verdict — or take
    /// the verdict already reached for the very same input and environment (the input holds
    /// the time to the second, so a verdict is kept within its second only).
    fn evaluate(
        &self,
        input: &Value,
        environment: &EnvironmentGate,
    ) -> Result<(Verdict, Vec<JudgedFinding>)> {
        let second = input.get("now").and_then(Value::as_str).unwrap_or_default();
        // The key is a digest: an input holds a run's facts and can be large.
        let key = {
            use sha2::{Digest as _, Sha256};
            let mut digest = Sha256::new();
            digest.update(environment.pattern.as_bytes());
            digest.update(b"\n");
            digest.update(input.to_string().as_bytes());
            format!("{:x}", digest.finalize())
        };
        if let Some(kept) = self.memory.verdicts.get(second, &key) {
            return Ok((*kept).clone());
        }
        let judged = self.evaluate_afresh(input, environment)?;
        self.memory
            .verdicts
            .put(second, key, Arc::new(judged.clone()));
        Ok(judged)
    }

    fn evaluate_afresh(
        &self,
        input: &Value,
        environment: &EnvironmentGate,
    ) -> Result<(Verdict, Vec<JudgedFinding>)> {
        let raw: Vec<GateFinding> = self
            .policies
            .evaluate_gate(input)
            .map_err(|error| anyhow!("evaluating the gate rules: {error}"))?;
        let mut judged = Vec::new();
        for finding in raw {
            let action = environment
                .actions
                .get(&finding.rule)
                .copied()
                .unwrap_or(Action::Deny);
            let enforced = match action {
                Action::Off => continue,
                Action::DryRun => None,
                Action::Warn => Some(GateEffect::Warn),
                Action::Deny => Some(finding.effect),
            };
            judged.push(JudgedFinding {
                rule: finding.rule,
                effect: finding.effect,
                action: action.as_str().to_owned(),
                enforced,
                message: finding.message,
                evidence: finding.evidence,
            });
        }
        let strongest = judged.iter().filter_map(|f| f.enforced).max();
        let verdict = match strongest {
            Some(GateEffect::Deny) => Verdict::Deny,
            Some(GateEffect::Approval) => Verdict::Approval,
            _ => Verdict::Allow,
        };
        Ok((verdict, judged))
    }

    /// The run's facts: read from the inventory, or kept from a check about the same run at
    /// the inventory's `version` (read before the facts, so kept facts are at least as fresh
    /// as the version they are kept under; no version, nothing kept).
    async fn facts(
        &self,
        request: &DeploymentRequest,
        version: Option<String>,
    ) -> Result<Arc<Facts>> {
        // Everything of the request but where it goes: the facts do not depend on it.
        let key = serde_json::to_string(&DeploymentRequest {
            environment: String::new(),
            stage: None,
            ..request.clone()
        })
        .context("encoding the request")?;
        if let Some(version) = &version
            && let Some(kept) = self.memory.facts.get(version, &key)
        {
            return Ok(kept);
        }
        let facts = Arc::new(Facts::gather(&*self.inventory, &self.tenant, request).await?);
        if let Some(version) = version {
            self.memory.facts.put(&version, key, facts.clone());
        }
        Ok(facts)
    }

    /// The rules' input: the request completed from the inventory.
    async fn input(
        &self,
        request: &DeploymentRequest,
        environment: &EnvironmentGate,
        now: OffsetDateTime,
    ) -> Result<Value> {
        let version = self
            .inventory
            .watermark(&self.tenant, INVENTORY_VERSION)
            .await
            .context("reading the inventory's version")?;
        self.input_at(request, environment, now, version).await
    }

    /// The rules' input, with the facts kept for the inventory's `version` if any.
    async fn input_at(
        &self,
        request: &DeploymentRequest,
        environment: &EnvironmentGate,
        now: OffsetDateTime,
        version: Option<String>,
    ) -> Result<Value> {
        let facts = self.facts(request, version).await?;
        Ok(self.input_from(&facts, request, environment, now))
    }

    fn input_from(
        &self,
        facts: &Facts,
        request: &DeploymentRequest,
        environment: &EnvironmentGate,
        now: OffsetDateTime,
    ) -> Value {
        let mut params = Map::new();
        for rule in self.policies.gate_rules() {
            let mut merged: Map<String, Value> = rule
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(overrides) = environment.params.get(&rule.id) {
                merged.extend(overrides.clone());
            }
            params.insert(rule.id.clone(), Value::Object(merged));
        }
        json!({
            "kind": "deployment",
            // Whole seconds: the rules judge days, hours and windows, and a burst of checks
            // within one second shares its verdicts (`GateMemory`).
            "now": rfc3339(now.replace_nanosecond(0).unwrap_or(now)),
            "environment": {"name": request.environment, "stage": request.stage},
            "run": facts.run.clone(),
            "build": facts.build.clone(),
            "pullRequests": facts.pull_requests.clone(),
            "workItems": facts.work_items.clone(),
            "alerts": facts.alerts.clone(),
            "deployments": facts.deployments.clone(),
            "approvals": [],
            "calendar": {
                "timezone": self.settings.timezone,
                "holidays": self.settings.holidays,
                "freezes": self.settings.freezes.iter().map(|f| json!({
                    "start": rfc3339(f.start), "end": rfc3339(f.end),
                    "environments": f.environments, "reason": f.reason,
                })).collect::<Vec<_>>(),
            },
            "params": params,
        })
    }

    /// The channels to tell about approvals now: none when none is configured or the
    /// notifications capability is off.
    async fn notice_channels(&self) -> Vec<String> {
        if self.notifications.is_empty() {
            return Vec::new();
        }
        let capability = self
            .capabilities
            .get(&self.tenant, Capability::Notifications)
            .await;
        if capability.enabled {
            self.notifications.names()
        } else {
            Vec::new()
        }
    }

    fn notice_of(&self, approval: &Approval, kind: NoticeKind) -> ApprovalNotice {
        let label = match kind {
            NoticeKind::Requested => NOTICE_REQUESTED,
            NoticeKind::Decided { .. } => NOTICE_DECIDED,
        };
        ApprovalNotice {
            // Approval ids are `ap_` and hex: no `.`.
            id: format!("msg_{}_{label}", approval.id),
            tenant: self.tenant.to_string(),
            approval_id: approval.id.clone(),
            kind,
            environment: approval.environment.clone(),
            pipeline: approval.pipeline.clone().unwrap_or_default(),
            run_id: approval.run_id,
            project: approval.project.clone(),
            requested_by: approval.requested_by.clone().unwrap_or_default(),
            reasons: approval.reasons.clone(),
            approvers: vec![approval.approver_role.clone()],
            quorum: approval.quorum,
            expires_at: approval.expires_at,
            link: self.settings.public_url.as_ref().map(|base| {
                format!(
                    "{}/api/v1/approvals/{}",
                    base.trim_end_matches('/'),
                    approval.id
                )
            }),
        }
    }

    /// Send one notice job's notice to its channel (the `approval.notify` job). A
    /// [`TryLater`] error leaves the job to be tried again later (the channel has already
    /// retried briefly); any other failure is a [`FinalFailure`], which dead-letters it.
    pub async fn send_notice(&self, payload: &Value) -> Result<()> {
        let field = |name: &str| {
            payload.get(name).and_then(Value::as_str).ok_or_else(|| {
                FinalFailure(format!("an {JOB_APPROVAL_NOTIFY} job names its {name}"))
            })
        };
        let (approval_id, channel, notice) =
            (field("approval")?, field("channel")?, field("notice")?);
        if self.notice_channels().await.is_empty() {
            // The worker may run as a process of its own, with its own configuration.
            tracing::warn!(tenant = %self.tenant, approval = approval_id, channel,
                "approval notice not sent: notifications are off, or none is configured here");
            return Ok(());
        }
        let approval = self
            .gate_store
            .approval(&self.tenant, approval_id)
            .await?
            .ok_or_else(|| FinalFailure(format!("no approval {approval_id}")))?;
        let kind = match notice {
            // "Approval needed" once it was decided would send approvers after a closed
            // approval (a notice retried, or late behind a backlog): the decision's notice
            // tells them instead.
            NOTICE_REQUESTED if approval.is_open() => NoticeKind::Requested,
            NOTICE_REQUESTED => {
                tracing::info!(tenant = %self.tenant, approval = approval_id, channel,
                    state = approval.state.as_str(), "approval notice skipped: already decided");
                return Ok(());
            }
            NOTICE_DECIDED => NoticeKind::Decided {
                state: approval.state.as_str().to_owned(),
                by: approval.closed_by.clone(),
            },
            other => {
                return Err(FinalFailure(format!("unknown approval notice {other:?}")).into());
            }
        };
        match self
            .notifications
            .send_to(channel, &self.notice_of(&approval, kind))
            .await
        {
            Some(Ok(())) => Ok(()),
            Some(Err(error)) if error.is::<TryLater>() => Err(error),
            // Sending again could post it twice, or cannot succeed: dead-letter the job.
            Some(Err(error)) => Err(FinalFailure(format!("{error:#}")).into()),
            None => {
                tracing::warn!(tenant = %self.tenant, approval = approval_id, channel,
                    "approval notice dropped: the channel is not configured here");
                Ok(())
            }
        }
    }

    pub async fn approvals(
        &self,
        state: Option<ApprovalState>,
        limit: u32,
    ) -> Result<Vec<Approval>> {
        Ok(self
            .gate_store
            .approvals(&self.tenant, state, limit)
            .await?)
    }

    pub async fn approval(&self, id: &str) -> Result<Option<Approval>> {
        Ok(self.gate_store.approval(&self.tenant, id).await?)
    }

    pub async fn decisions(&self, filter: &DecisionFilter) -> Result<Vec<GateDecision>> {
        Ok(self.gate_store.decisions(&self.tenant, filter).await?)
    }

    /// Approve or reject a pending approval. The approver must hold the approval's role; the
    /// requester cannot approve their own deployment; each person decides once.
    pub async fn decide_approval(
        &self,
        id: &str,
        principal: &Principal,
        approve: bool,
        comment: &str,
    ) -> std::result::Result<Approval, ApprovalError> {
        self.decide_approval_from(id, principal, approve, comment, RequestSource::Api)
            .await
    }

    /// [`Self::decide_approval`], naming the channel the vote came through in its audit
    /// record (`source`: api, mcp).
    pub async fn decide_approval_from(
        &self,
        id: &str,
        principal: &Principal,
        approve: bool,
        comment: &str,
        source: RequestSource,
    ) -> std::result::Result<Approval, ApprovalError> {
        let approval = self
            .gate_store
            .approval(&self.tenant, id)
            .await
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| ApprovalError::NotFound(id.to_owned()))?;
        let needed: Role = approval
            .approver_role
            .parse()
            .map_err(|error: String| anyhow!(error))?;
        if principal.role < needed {
            return Err(ApprovalError::RoleTooLow {
                needed: needed.as_str().to_owned(),
                held: principal.role.as_str().to_owned(),
            });
        }
        let now = self.now();
        let vote = ApprovalVote {
            by: principal.subject.clone(),
            role: principal.role.as_str().to_owned(),
            decision: if approve { "approved" } else { "rejected" }.to_owned(),
            comment: comment.to_owned(),
            at: now,
        };
        let actor = Actor::principal(principal);
        self.change_from(
            id,
            ApprovalChange::Vote(vote),
            &actor,
            AuditEvent::ApprovalDecided,
            Some(source),
        )
        .await
    }

    pub async fn cancel_approval(
        &self,
        id: &str,
        principal: &Principal,
    ) -> std::result::Result<Approval, ApprovalError> {
        let change = ApprovalChange::Cancel {
            by: principal.subject.clone(),
            at: self.now(),
        };
        self.change(
            id,
            change,
            &Actor::principal(principal),
            AuditEvent::ApprovalDecided,
        )
        .await
    }

    /// Expire the tenant's overdue approvals; returns how many expired.
    pub async fn expire_due(&self) -> Result<usize> {
        let now = self.now();
        let due = self.gate_store.due_approvals(&self.tenant, now).await?;
        let mut expired = 0;
        for id in due {
            match self
                .change(
                    &id,
                    ApprovalChange::Expire { at: now },
                    &Actor::system(),
                    AuditEvent::ApprovalExpired,
                )
                .await
            {
                Ok(_) => expired += 1,
                // Decided meanwhile: nothing to expire.
                Err(ApprovalError::Refused(_) | ApprovalError::NotFound(_)) => {}
                Err(ApprovalError::Other(error)) => return Err(error),
                Err(other) => return Err(anyhow!(other.to_string())),
            }
        }
        Ok(expired)
    }

    async fn change(
        &self,
        id: &str,
        change: ApprovalChange,
        actor: &Actor,
        event: AuditEvent,
    ) -> std::result::Result<Approval, ApprovalError> {
        self.change_from(id, change, actor, event, None).await
    }

    async fn change_from(
        &self,
        id: &str,
        change: ApprovalChange,
        actor: &Actor,
        event: AuditEvent,
        source: Option<RequestSource>,
    ) -> std::result::Result<Approval, ApprovalError> {
        let now = self.now();
        let comment = match &change {
            ApprovalChange::Vote(vote) => vote.comment.clone(),
            _ => String::new(),
        };
        let audit = |approval: &Approval| {
            let mut record = Record::new(event, actor, now)
                .target(Target::new("approval", approval.id.clone()))
                .detail("state", json!(approval.state.as_str()))
                .detail("environment", json!(approval.environment))
                .detail("runId", json!(approval.run_id))
                .detail("decision", json!(approval.decision_id))
                .detail("votes", json!(approval.votes.len()))
                .detail("quorum", json!(approval.quorum))
                .detail("comment", json!(comment));
            if let Some(source) = source {
                record = record.detail("source", json!(source.as_str()));
            }
            vec![record.draft()]
        };
        let callback = |_: &Approval, decision: &GateDecision| Some(callback_job(&decision.id));
        let channels = self.notice_channels().await;
        let notices = |approval: &Approval| notice_jobs(&channels, &approval.id, NOTICE_DECIDED);
        let outcome = self
            .gate_store
            .change_approval(&self.tenant, id, &change, &audit, &callback, &notices)
            .await
            .map_err(anyhow::Error::from)?;
        match outcome {
            ApprovalOutcome::NotFound => Err(ApprovalError::NotFound(id.to_owned())),
            ApprovalOutcome::Refused(refusal) => Err(ApprovalError::Refused(refusal)),
            ApprovalOutcome::Changed(approval) => Ok(*approval),
        }
    }

    /// Post a decision's result to its check's plan (the `gate.callback` job). Idempotent:
    /// a decision already sent is not sent again.
    pub async fn post_callback(&self, decision_id: &str) -> Result<CallbackState> {
        let decision = self
            .gate_store
            .decision(&self.tenant, decision_id)
            .await?
            .ok_or_else(|| anyhow!("no gate decision {decision_id}"))?;
        if matches!(
            decision.callback_state,
            Some(CallbackState::Sent | CallbackState::Failed)
        ) {
            return Ok(decision.callback_state.unwrap_or(CallbackState::Sent));
        }
        let target = decision
            .callback
            .clone()
            .ok_or_else(|| anyhow!("decision {decision_id} has no callback"))?;
        let answer = self.answer_for(decision.clone(), false).await?;
        let result = match answer.outcome() {
            Outcome::Allowed => "succeeded",
            Outcome::Denied => "failed",
            Outcome::Pending => bail!("decision {decision_id} is still waiting for its approval"),
        };
        let now = self.now();
        let record = |state: CallbackState, error: Option<String>| {
            let mut record = Record::new(AuditEvent::GateCallback, &Actor::system(), now)
                .target(Target::new("decision", decision_id.to_owned()))
                .detail("result", json!(result))
                .detail("planId", json!(target.plan_id))
                .detail("state", json!(state.as_str()));
            if let Some(error) = error {
                record = record.failure().reason(error);
            }
            record.draft()
        };
        let stored = self
            .gate_store
            .callback_token(&self.tenant, decision_id)
            .await?;
        let token = match stored {
            None => Err("the job token is gone".to_owned()),
            Some(stored) => match self.tokens.load()?.open(&self.tenant, decision_id, &stored) {
                Ok(token) => Ok(token),
                // Another replica's key, or this one's before its key file changed: the token
                // is kept and the job tried again (on another replica, or after the file is put
                // back) until its attempts run out.
                Err(error @ TokenError::OtherKey { .. }) => return Err(error.into()),
                // No key opens a damaged value: the check is told nothing and times out in
                // ADO; the record says why.
                Err(error @ TokenError::Damaged { .. }) => Err(error.to_string()),
            },
        };
        let token = match token {
            Ok(token) => token,
            Err(reason) => {
                tracing::warn!(tenant = %self.tenant, decision = decision_id, %reason,
                    "the gate cannot call back");
                let draft = record(CallbackState::Failed, Some(reason));
                self.gate_store
                    .finish_callback(&self.tenant, decision_id, CallbackState::Failed, &[draft])
                    .await?;
                return Ok(CallbackState::Failed);
            }
        };
        let ado = self
            .ado
            .as_ref()
            .ok_or_else(|| anyhow!("tenant {} has no ADO client to call back with", self.tenant))?;
        let event = PlanEvent {
            project_id: target.project_id.clone(),
            hub_name: target.hub_name.clone(),
            plan_id: target.plan_id.clone(),
            job_id: target.job_id.clone(),
            task_id: target.task_instance_id.clone(),
            result: result.to_owned(),
        };
        match ado.post_plan_event(&event, &token).await {
            Ok(()) => {
                self.gate_store
                    .finish_callback(
                        &self.tenant,
                        decision_id,
                        CallbackState::Sent,
                        &[record(CallbackState::Sent, None)],
                    )
                    .await?;
                Ok(CallbackState::Sent)
            }
            // The token was refused or the plan is gone: retrying cannot help.
            Err(
                error @ (tollgate_ado::AdoError::Unauthorized { .. }
                | tollgate_ado::AdoError::Forbidden { .. }
                | tollgate_ado::AdoError::NotFound { .. }
                | tollgate_ado::AdoError::Config(_)),
            ) => {
                self.gate_store
                    .finish_callback(
                        &self.tenant,
                        decision_id,
                        CallbackState::Failed,
                        &[record(CallbackState::Failed, Some(error.to_string()))],
                    )
                    .await?;
                Ok(CallbackState::Failed)
            }
            Err(error) => Err(anyhow!(error).context("posting the decision to the plan")),
        }
    }
}

/// A time-ordered unique id with a prefix that says what it names.
fn new_id(prefix: &str, now: OffsetDateTime) -> String {
    format!(
        "{prefix}{}",
        tollgate_audit::record::new_record_id(now).replace('-', "")
    )
}

const NOTICE_REQUESTED: &str = "requested";
const NOTICE_DECIDED: &str = "decided";

/// One job per channel, so a channel that is down is retried alone and the others are not
/// told twice. Enqueued with the approval's change, so a notice outlives a crash.
fn notice_jobs(channels: &[String], approval_id: &str, notice: &str) -> Vec<NewJob> {
    channels
        .iter()
        .map(|channel| NewJob {
            kind: JOB_APPROVAL_NOTIFY.to_owned(),
            payload: json!({"approval": approval_id, "channel": channel, "notice": notice}),
            dedupe_key: Some(format!("notify:{approval_id}:{notice}:{channel}")),
            run_after: OffsetDateTime::now_utc(),
            // ≈ 17 minutes of the queue's backoff: a chat service's short outage.
            max_attempts: 10,
        })
        .collect()
}

/// The job that posts the decision to the plan. It runs at once by the queue's clock, the wall
/// clock: the gate's own clock may be fixed (`TOLLGATE_FAKE_NOW`) to judge another day, and a
/// job scheduled on that day would wait for it.
fn callback_job(decision_id: &str) -> NewJob {
    NewJob {
        kind: JOB_GATE_CALLBACK.to_owned(),
        payload: json!({"decision": decision_id}),
        dedupe_key: Some(format!("callback:{decision_id}")),
        run_after: OffsetDateTime::now_utc(),
        max_attempts: 8,
    }
}

fn approval_requested(approval: &Approval, now: OffsetDateTime) -> AuditDraft {
    Record::new(AuditEvent::ApprovalRequested, &Actor::system(), now)
        .target(Target::new("approval", approval.id.clone()))
        .detail("environment", json!(approval.environment))
        .detail("project", json!(approval.project))
        .detail("runId", json!(approval.run_id))
        .detail("requestedBy", json!(approval.requested_by))
        .detail("quorum", json!(approval.quorum))
        .detail("approverRole", json!(approval.approver_role))
        .detail("reasons", json!(approval.reasons))
        .detail("expiresAt", json!(rfc3339(approval.expires_at)))
        .draft()
}

/// What the inventory knows about a run: its build, pull requests, work items, alerts in the
/// deployed repository and earlier deployments of the same pipeline.
#[derive(Default)]
struct Facts {
    run: Value,
    build: Value,
    pull_requests: Vec<Value>,
    work_items: Vec<Value>,
    alerts: Vec<Value>,
    deployments: Vec<Value>,
}

/// How many items of a kind one lookup reads at most (a project's pull requests …).
const SCAN_LIMIT: u32 = 1_000;

impl Facts {
    async fn gather(
        inventory: &dyn InventoryStore,
        tenant: &TenantId,
        request: &DeploymentRequest,
    ) -> Result<Self> {
        let project = Self::project(inventory, tenant, &request.project).await?;
        let (project_id, project_name) = match &project {
            Some(item) => (item.ado_id.clone(), item.name.clone().unwrap_or_default()),
            None => (request.project.clone(), request.project.clone()),
        };
        let build = match request.run_id {
            Some(id) => inventory
                .items_by_ado_ids(tenant, ResourceKind::Builds, &[id.to_string()])
                .await?
                .into_iter()
                .find(|item| item.project == project_id)
                .map(|item| raw(&item)),
            None => None,
        };
        let build = build.unwrap_or(Value::Null);
        let repository_id = text(&build, &["repository", "id"]);
        let repositories = inventory
            .project_items(
                tenant,
                ResourceKind::Repositories,
                &project_id,
                None,
                SCAN_LIMIT,
            )
            .await?;
        let repository = repositories.iter().find(|item| {
            repository_id.as_deref() == Some(item.ado_id.as_str())
                || request.repository.as_deref().is_some_and(|name| {
                    item.name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
        });
        let source_version = request
            .source_version
            .clone()
            .or_else(|| text(&build, &["sourceVersion"]));
        let requested_for = request.requested_for.clone().or_else(|| {
            text(&build, &["requestedFor", "uniqueName"])
                .or_else(|| text(&build, &["requestedFor", "displayName"]))
        });
        let run = json!({
            "id": request.run_id,
            "project": project_name,
            "projectId": project_id,
            "pipeline": {
                "id": request.pipeline_id.or_else(|| build.pointer("/definition/id").and_then(Value::as_u64)),
                "name": request.pipeline.clone().or_else(|| text(&build, &["definition", "name"])),
            },
            "repository": repository.and_then(|r| r.name.clone()).or_else(|| request.repository.clone()),
            "sourceBranch": request.source_branch.clone().or_else(|| text(&build, &["sourceBranch"])),
            "sourceVersion": source_version,
            "requestedFor": requested_for,
            "found": !build.is_null(),
        });
        let build_facts = json!({
            "id": request.run_id,
            "result": text(&build, &["result"]),
            "status": text(&build, &["status"]),
        });

        // Pull requests merged as this commit, in this repository.
        let mut pull_requests = Vec::new();
        let mut linked_work_items: BTreeSet<u64> = request.work_items.iter().copied().collect();
        if let (Some(repository), Some(version)) = (repository, source_version.as_deref()) {
            let mut after: Option<String> = None;
            loop {
                let page = inventory
                    .project_items(
                        tenant,
                        ResourceKind::PullRequests,
                        &project_id,
                        after.as_deref(),
                        SCAN_LIMIT,
                    )
                    .await?;
                // Only a pull request whose text holds the commit can have merged as it: the
                // test spares parsing every other one of the project's pull requests.
                for item in page.iter().filter(|item| item.raw.contains(version)) {
                    let pr = raw(item);
                    let same_repository = text(&pr, &["repository", "id"]).as_deref()
                        == Some(repository.ado_id.as_str());
                    let merged_as = text(&pr, &["lastMergeCommit", "commitId"]);
                    if same_repository && merged_as.as_deref() == Some(version) {
                        for reference in pr
                            .get("workItemRefs")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            if let Some(id) =
                                text(reference, &["id"]).and_then(|id| id.parse().ok())
                            {
                                linked_work_items.insert(id);
                            }
                        }
                        let last_pusher =
                            text(&pr, &["lastMergeSourceCommit", "committer", "email"]).or_else(
                                || text(&pr, &["lastMergeSourceCommit", "author", "email"]),
                            );
                        pull_requests.push(json!({
                            "id": pr.get("pullRequestId"),
                            "createdBy": pr.get("createdBy"),
                            "reviewers": pr.get("reviewers"),
                            "lastPusher": last_pusher,
                            "targetRefName": pr.get("targetRefName"),
                        }));
                    }
                }
                if page.len() < SCAN_LIMIT as usize {
                    break;
                }
                after = page.last().map(|item| item.key.clone());
            }
        }

        let work_items = if linked_work_items.is_empty() {
            Vec::new()
        } else {
            let ids: Vec<String> = linked_work_items.iter().map(u64::to_string).collect();
            inventory
                .items_by_ado_ids(tenant, ResourceKind::WorkItems, &ids)
                .await?
                .iter()
                .map(|item| {
                    let wi = raw(item);
                    json!({
                        "id": wi.get("id"),
                        "type": text(&wi, &["fields", "System.WorkItemType"]),
                        "state": text(&wi, &["fields", "System.State"]),
                        "title": text(&wi, &["fields", "System.Title"]),
                    })
                })
                .collect()
        };

        let mut alerts = Vec::new();
        if let Some(repository) = repository {
            let keys: Vec<String> = inventory
                .keys(tenant, ResourceKind::Alerts, Some(&repository.key))
                .await?
                .into_iter()
                .map(|k| k.key)
                .collect();
            for item in inventory
                .items_by_keys(tenant, ResourceKind::Alerts, &keys)
                .await?
            {
                let alert = raw(&item);
                alerts.push(json!({
                    "id": alert.get("alertId"),
                    "repository": repository.name,
                    "severity": text(&alert, &["severity"]),
                    "state": text(&alert, &["state"]),
                    "title": text(&alert, &["title"]),
                    "firstSeen": text(&alert, &["firstSeenDate"]),
                }));
            }
        }

        // Earlier deployments of this pipeline, with each environment's name.
        let mut deployments = Vec::new();
        let pipeline_id = run.pointer("/pipeline/id").and_then(Value::as_u64);
        if let Some(pipeline_id) = pipeline_id {
            let environments = inventory
                .project_items(
                    tenant,
                    ResourceKind::Environments,
                    &project_id,
                    None,
                    SCAN_LIMIT,
                )
                .await?;
            for environment in &environments {
                let keys: Vec<String> = inventory
                    .keys(
                        tenant,
                        ResourceKind::EnvironmentDeployments,
                        Some(&environment.key),
                    )
                    .await?
                    .into_iter()
                    .map(|k| k.key)
                    .collect();
                let pipeline_digits = pipeline_id.to_string();
                for item in inventory
                    .items_by_keys(tenant, ResourceKind::EnvironmentDeployments, &keys)
                    .await?
                    .into_iter()
                    // A record of this pipeline holds its id; most records of other pipelines
                    // are skipped without being parsed.
                    .filter(|item| item.raw.contains(&pipeline_digits))
                {
                    let record = raw(&item);
                    if record.pointer("/definition/id").and_then(Value::as_u64) != Some(pipeline_id)
                    {
                        continue;
                    }
                    let owner_run = record.pointer("/owner/id").and_then(Value::as_u64);
                    let owner_build = match owner_run {
                        Some(id) if Some(id) == request.run_id => build.clone(),
                        _ => Value::Null,
                    };
                    deployments.push(json!({
                        "environment": environment.name,
                        "runId": owner_run,
                        "sourceVersion": text(&owner_build, &["sourceVersion"]),
                        "result": text(&record, &["result"]),
                        "finishTime": text(&record, &["finishTime"]),
                    }));
                }
            }
        }

        Ok(Facts {
            run,
            build: build_facts,
            pull_requests,
            work_items,
            alerts,
            deployments,
        })
    }

    async fn project(
        inventory: &dyn InventoryStore,
        tenant: &TenantId,
        name_or_id: &str,
    ) -> Result<Option<InventoryItem>> {
        if name_or_id.is_empty() {
            return Ok(None);
        }
        let by_id = inventory
            .items_by_ado_ids(tenant, ResourceKind::Projects, &[name_or_id.to_owned()])
            .await?;
        if let Some(item) = by_id.into_iter().next() {
            return Ok(Some(item));
        }
        let all = inventory
            .items(tenant, ResourceKind::Projects, None, SCAN_LIMIT)
            .await?;
        Ok(all.into_iter().find(|item| {
            item.name
                .as_deref()
                .is_some_and(|name| name.eq_ignore_ascii_case(name_or_id))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_registered_organisation_is_the_same_organisation() {
        let registered = "https://dev.azure.com/fabrikam/";
        assert!(same_organisation(
            "https://dev.azure.com/fabrikam/",
            registered
        ));
        assert!(same_organisation(
            "https://dev.azure.com/Fabrikam",
            registered
        ));
        for foreign in [
            "https://dev.azure.com/contoso/",
            "https://dev.azure.com.evil.example/fabrikam/",
            "https://evil.example/fabrikam/",
            "http://dev.azure.com/fabrikam/",
            "https://dev.azure.com/fabrikam/?x=https://evil.example",
            "https://attacker@dev.azure.com/fabrikam/",
            "https://dev.azure.com/fabrikam/extra/",
            "",
        ] {
            assert!(!same_organisation(foreign, registered), "{foreign}");
        }
    }

    #[test]
    fn run_and_pipeline_ids_may_come_as_text_as_ados_macros_expand_them() {
        let request: DeploymentRequest = serde_json::from_value(
            json!({"environment": "production", "runId": "4711", "pipelineId": 12}),
        )
        .unwrap_or_default();
        assert_eq!(request.run_id, Some(4711));
        assert_eq!(request.pipeline_id, Some(12));
        let empty: DeploymentRequest =
            serde_json::from_value(json!({"environment": "production", "runId": ""}))
                .unwrap_or_default();
        assert_eq!(empty.run_id, None);
        for bad in [json!("$(Build.BuildId)"), json!(-1), json!([1])] {
            let error = serde_json::from_value::<DeploymentRequest>(
                json!({"environment": "production", "runId": bad}),
            );
            assert!(error.is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_match_case_insensitively() {
        assert!(glob_matches("prod-*", "PROD-eu"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("production", "Production"));
        assert!(!glob_matches("prod-*", "production"));
    }
}
