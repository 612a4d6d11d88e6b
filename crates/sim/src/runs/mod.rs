//! Pipeline runs queued through the Runs API and driven through their stages in the background,
//! with the environment checks of each deployment stage evaluated as ADO evaluates them:
//!
//! - approvals of the organisation are granted at once, unless the environment is held
//!   (`POST /_sim/approvals/hold`), then the stage waits for `POST /_sim/approvals/release`;
//! - Invoke REST API checks registered through `POST /_sim/checks/rest` are called over HTTP
//!   with the documented headers (`PlanUrl`, `ProjectId`, `HubName`, `PlanId`, `JobId`,
//!   `TimelineId`, `TaskInstanceId`, `AuthToken`, `BuildId`) and the body template with its
//!   macros expanded, in the synchronous mode (ApiResponse: re-evaluated until the answer is 200
//!   with `status` `approved`, or the timeout) or the callback mode (the answer only
//!   acknowledges; the decision comes through the Post Event API with the AuthToken);
//! - other checks (business hours, branch control, exclusive lock, unregistered Invoke REST API
//!   checks) are not simulated and pass; disabled checks are not evaluated.
//!
//! A check that says no fails the stage; a check without a positive decision by its timeout
//! skips it; either way the later stages are skipped and the run fails. A deployment stage that
//! succeeds writes an environment deployment record. Stage changes raise
//! `ms.vss-pipelines.stage-state-changed-event`, a finished run `build.complete` and
//! `ms.vss-pipelines.run-state-changed-event`. `GET /_sim/runs/{id}` shows every call the
//! simulator made to a check and every callback it received.

pub(crate) mod api;
mod check;
mod driver;
mod records;

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;

use crate::model::ProjectInfo;
use crate::rng::SplitMix64;

/// How queued runs progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSettings {
    /// How long a stage runs once its checks have passed (the build stage too). Default 50 ms,
    /// so a run of five stages takes a quarter of a second.
    pub stage_duration: Duration,
    /// How long the AuthToken handed to each check evaluation stays valid. Default 48 h, as
    /// ADO documents it.
    pub token_lifetime: Duration,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            stage_duration: Duration::from_millis(50),
            token_lifetime: Duration::from_secs(48 * 3600),
        }
    }
}

/// How an Invoke REST API check completes (its "Completion event").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CheckMode {
    /// ApiResponse: the answer decides (200 and `eq(root['status'], 'approved')`).
    Sync,
    /// Callback: the answer only acknowledges; the decision comes through Post Event.
    Callback,
}

/// An Invoke REST API check registered through `POST /_sim/checks/rest`.
#[derive(Clone, Debug)]
pub(crate) struct RestCheck {
    /// Its check configuration id (the same object `checks/configurations` lists).
    pub id: u64,
    pub project_id: String,
    pub environment_id: String,
    pub environment_name: String,
    pub url: reqwest::Url,
    pub mode: CheckMode,
    pub basic_auth: Option<(String, String)>,
    /// The body template; `None` sends every macro under a readable key.
    pub body: Option<Value>,
    pub timeout: Duration,
    pub interval: Duration,
}

impl RestCheck {
    fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id, "projectId": self.project_id,
            "environment": {"id": self.environment_id, "name": self.environment_name},
            "url": self.url.as_str(), "mode": self.mode,
            "username": self.basic_auth.as_ref().map(|(user, _)| user),
            "body": self.body, "timeoutSecs": self.timeout.as_secs(),
            "intervalSecs": self.interval.as_secs(),
        })
    }
}

/// A decision sent back through Post Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskResult {
    Succeeded,
    Failed,
}

/// What an AuthToken was issued for: one check evaluation of one run's plan.
#[derive(Clone, Debug)]
struct Grant {
    run_id: u64,
    plan_id: String,
    project_id: String,
    expires: Instant,
}

/// One check evaluation, for the callbacks that name it.
struct Task {
    run_id: u64,
    job_id: String,
    status: TaskStatus,
}

/// Where a task stands.
enum TaskStatus {
    /// A callback-mode evaluation waiting for its decision.
    Waiting {
        decide: oneshot::Sender<TaskResult>,
        at: EvaluationAt,
    },
    /// The decision came.
    Decided,
    /// The evaluation ended without one (timed out, stopped, or a synchronous evaluation).
    Closed,
}

/// Where one evaluation is recorded in its run's detail.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EvaluationAt {
    pub run_id: u64,
    pub stage: usize,
    pub check: usize,
    pub evaluation: usize,
}

/// A run as `GET /_sim/runs/{id}` shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunDetail {
    pub id: u64,
    pub name: String,
    pub project: Value,
    pub pipeline: Value,
    pub state: &'static str,
    pub result: Option<&'static str>,
    pub created_date: String,
    pub finished_date: Option<String>,
    pub source_branch: String,
    pub source_version: String,
    pub requested_for: Value,
    pub template_parameters: BTreeMap<String, Value>,
    pub plan_id: String,
    pub timeline_id: String,
    pub collection_uri: String,
    pub stages: Vec<StageDetail>,
    /// Every Post Event call that named this run's plan, accepted or not.
    pub events: Vec<ReceivedEvent>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StageDetail {
    pub name: String,
    pub environment: Option<Value>,
    pub job_id: String,
    /// `notStarted`, `waiting` (for checks), `running` or `completed`.
    pub state: &'static str,
    /// `succeeded`, `failed` or `skipped` once completed.
    pub result: Option<&'static str>,
    /// Why a stage failed or was skipped.
    pub reason: Option<String>,
    pub start_time: Option<String>,
    pub finish_time: Option<String>,
    pub deployment_record_id: Option<u64>,
    pub checks: Vec<CheckDetail>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckDetail {
    pub check_id: String,
    /// `approval`, `invokeRESTAPI`, or the check's type name for checks not simulated.
    #[serde(rename = "type")]
    pub check_type: String,
    pub name: String,
    pub mode: Option<CheckMode>,
    /// approval: `waitingForRelease`, `approved`; invokeRESTAPI: `evaluating`, `passed`,
    /// `failed`, `timedOut`, `canceled`; others: `notSimulated` (passes) or `disabled`.
    pub state: &'static str,
    /// For approvals: who may approve, and whether the approval waited for a release.
    pub approvers: Option<Vec<String>>,
    pub held: bool,
    pub evaluations: Vec<Evaluation>,
}

/// One call the simulator made to a check.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Evaluation {
    pub task_instance_id: String,
    pub started_at: String,
    pub url: String,
    /// The headers sent, AuthToken and the basic-auth credential redacted.
    pub request_headers: BTreeMap<String, String>,
    pub request_body: Value,
    pub response_status: Option<u16>,
    pub response_body: Option<Value>,
    /// Why there was no status (connection refused, timeout).
    pub error: Option<String>,
    /// sync: `approved` or `notApproved`; callback: `acknowledged` or `notAcknowledged`
    /// (`pending` until the answer came).
    pub decision: &'static str,
    /// The decision that came back through Post Event (callback mode).
    pub callback: Option<CallbackRecord>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CallbackRecord {
    pub received_at: String,
    pub result: &'static str,
}

/// One Post Event call naming a run's plan.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReceivedEvent {
    pub received_at: String,
    pub name: Option<String>,
    pub task_id: Option<String>,
    pub job_id: Option<String>,
    pub result: Option<String>,
    /// The status the simulator answered.
    pub status: u16,
    /// `accepted`, `duplicate` (the task was already decided), `ignored` (no evaluation waits
    /// for it any more) or `rejected`.
    pub outcome: &'static str,
    pub reason: Option<String>,
}

pub(crate) struct Runs {
    settings: Mutex<RunSettings>,
    client: Result<reqwest::Client, String>,
    ids: Mutex<SplitMix64>,
    token_counter: AtomicU64,
    token_keys: RandomState,
    checks: Mutex<BTreeMap<u64, RestCheck>>,
    /// Environment names (lower case) whose approvals wait for a release.
    holds: watch::Sender<BTreeSet<String>>,
    details: Mutex<BTreeMap<u64, RunDetail>>,
    /// Plan id (lower case) → (run id, project id).
    plans: Mutex<HashMap<String, (u64, String)>>,
    grants: Mutex<HashMap<String, Grant>>,
    /// Task instance id (lower case) → its evaluation.
    tasks: Mutex<HashMap<String, Task>>,
    drivers: Mutex<Vec<AbortHandle>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Runs {
    pub(crate) fn new(settings: RunSettings) -> Self {
        let client = reqwest::Client::builder()
            // A redirect is no decision, and a check's token must never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("VSServices/16.255 (tollgate-sim checks)")
            .build()
            .map_err(|error| format!("no HTTP client: {error}"));
        // Plan, job and task ids must differ between simulators, or a gate that remembers
        // decisions would take a restarted simulator's runs for ones it has decided.
        let keys = RandomState::new();
        let mut seed = keys.build_hasher();
        seed.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let (holds, _) = watch::channel(BTreeSet::new());
        Self {
            settings: Mutex::new(settings),
            client,
            ids: Mutex::new(SplitMix64::new(seed.finish())),
            token_counter: AtomicU64::new(0),
            token_keys: keys,
            checks: Mutex::new(BTreeMap::new()),
            holds,
            details: Mutex::new(BTreeMap::new()),
            plans: Mutex::new(HashMap::new()),
            grants: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
            drivers: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn settings(&self) -> RunSettings {
        lock(&self.settings).clone()
    }

    pub(crate) fn set_settings(&self, settings: RunSettings) {
        *lock(&self.settings) = settings;
    }

    pub(crate) fn guid(&self) -> String {
        lock(&self.ids).guid()
    }

    /// A fresh AuthToken: 256 bits from keyed SipHash over a counter, with keys the standard
    /// library draws from the operating system. Unguessable enough for a simulator, and no
    /// random-number crate to add.
    fn random_token(&self) -> String {
        use base64::Engine as _;
        let counter = self.token_counter.fetch_add(1, Ordering::Relaxed);
        let mut bytes = Vec::with_capacity(32);
        for lane in 0..4u64 {
            let mut hasher = self.token_keys.build_hasher();
            hasher.write_u64(counter);
            hasher.write_u64(lane);
            bytes.extend_from_slice(&hasher.finish().to_le_bytes());
        }
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Issue the AuthToken of one check evaluation.
    fn issue_token(&self, run_id: u64, plan_id: &str, project_id: &str) -> String {
        let token = self.random_token();
        let expires = Instant::now() + self.settings().token_lifetime;
        let mut grants = lock(&self.grants);
        let now = Instant::now();
        grants.retain(|_, grant| grant.expires > now);
        grants.insert(
            token.clone(),
            Grant {
                run_id,
                plan_id: plan_id.to_ascii_lowercase(),
                project_id: project_id.to_ascii_lowercase(),
                expires,
            },
        );
        token
    }

    /// Whether a bearer token is a check's AuthToken that has not expired (such a token may
    /// read the organisation's APIs, as ADO's job tokens may).
    pub(crate) fn token_is_live(&self, token: &str) -> bool {
        lock(&self.grants)
            .get(token)
            .is_some_and(|grant| grant.expires > Instant::now())
    }

    fn grant(&self, token: &str) -> Option<Grant> {
        lock(&self.grants)
            .get(token)
            .filter(|grant| grant.expires > Instant::now())
            .cloned()
    }

    pub(crate) fn client(&self) -> Result<&reqwest::Client, String> {
        self.client.as_ref().map_err(Clone::clone)
    }

    pub(crate) fn register_check(&self, check: RestCheck) {
        lock(&self.checks).insert(check.id, check);
    }

    pub(crate) fn unregister_check(&self, id: u64) -> Option<RestCheck> {
        lock(&self.checks).remove(&id)
    }

    pub(crate) fn check(&self, id: u64) -> Option<RestCheck> {
        lock(&self.checks).get(&id).cloned()
    }

    pub(crate) fn checks(&self) -> Vec<RestCheck> {
        lock(&self.checks).values().cloned().collect()
    }

    pub(crate) fn hold(&self, environment: &str) {
        let name = environment.to_lowercase();
        self.holds.send_modify(|held| {
            held.insert(name);
        });
    }

    /// Release one environment, or every one.
    pub(crate) fn release(&self, environment: Option<&str>) {
        self.holds.send_modify(|held| match environment {
            Some(name) => {
                held.remove(&name.to_lowercase());
            }
            None => held.clear(),
        });
    }

    pub(crate) fn held(&self) -> Vec<String> {
        self.holds.borrow().iter().cloned().collect()
    }

    pub(crate) fn is_held(&self, environment: &str) -> bool {
        self.holds.borrow().contains(&environment.to_lowercase())
    }

    /// Wait until an environment is not held.
    pub(crate) async fn until_released(&self, environment: &str) {
        let name = environment.to_lowercase();
        let mut holds = self.holds.subscribe();
        while holds.borrow_and_update().contains(&name) {
            if holds.changed().await.is_err() {
                return;
            }
        }
    }

    fn add_run(&self, detail: RunDetail) {
        lock(&self.plans).insert(
            detail.plan_id.to_ascii_lowercase(),
            (
                detail.id,
                detail.project["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
            ),
        );
        lock(&self.details).insert(detail.id, detail);
    }

    pub(crate) fn detail(&self, run_id: u64) -> Option<RunDetail> {
        lock(&self.details).get(&run_id).cloned()
    }

    pub(crate) fn details(&self) -> Vec<RunDetail> {
        lock(&self.details).values().cloned().collect()
    }

    /// Change a run's detail (a no-op for an unknown run).
    pub(crate) fn update<T>(
        &self,
        run_id: u64,
        change: impl FnOnce(&mut RunDetail) -> T,
    ) -> Option<T> {
        lock(&self.details).get_mut(&run_id).map(change)
    }

    pub(crate) fn update_stage(
        &self,
        run_id: u64,
        stage: usize,
        change: impl FnOnce(&mut StageDetail),
    ) {
        self.update(run_id, |detail| detail.stages.get_mut(stage).map(change));
    }

    pub(crate) fn update_check(
        &self,
        run_id: u64,
        stage: usize,
        check: usize,
        change: impl FnOnce(&mut CheckDetail),
    ) {
        self.update_stage(run_id, stage, |detail| {
            if let Some(check) = detail.checks.get_mut(check) {
                change(check);
            }
        });
    }

    fn update_evaluation(&self, at: EvaluationAt, change: impl FnOnce(&mut Evaluation)) {
        self.update_check(at.run_id, at.stage, at.check, |check| {
            if let Some(evaluation) = check.evaluations.get_mut(at.evaluation) {
                change(evaluation);
            }
        });
    }

    fn plan(&self, plan_id: &str) -> Option<(u64, String)> {
        lock(&self.plans)
            .get(&plan_id.to_ascii_lowercase())
            .cloned()
    }

    /// Start waiting for the decision of a callback-mode evaluation.
    fn expect_callback(
        &self,
        task_id: &str,
        job_id: &str,
        at: EvaluationAt,
    ) -> oneshot::Receiver<TaskResult> {
        let (decide, decision) = oneshot::channel();
        lock(&self.tasks).insert(
            task_id.to_ascii_lowercase(),
            Task {
                run_id: at.run_id,
                job_id: job_id.to_ascii_lowercase(),
                status: TaskStatus::Waiting { decide, at },
            },
        );
        decision
    }

    /// A task no callback decides: a synchronous evaluation.
    fn open_closed_task(&self, task_id: &str, run_id: u64, job_id: &str) {
        lock(&self.tasks).insert(
            task_id.to_ascii_lowercase(),
            Task {
                run_id,
                job_id: job_id.to_ascii_lowercase(),
                status: TaskStatus::Closed,
            },
        );
    }

    /// A callback-mode evaluation ended without a decision (timed out or stopped).
    fn close_task(&self, task_id: &str) {
        if let Some(task) = lock(&self.tasks).get_mut(&task_id.to_ascii_lowercase())
            && matches!(task.status, TaskStatus::Waiting { .. })
        {
            task.status = TaskStatus::Closed;
        }
    }

    /// The run and job of a task.
    fn task(&self, task_id: &str) -> Option<(u64, String)> {
        lock(&self.tasks)
            .get(&task_id.to_ascii_lowercase())
            .map(|task| (task.run_id, task.job_id.clone()))
    }

    /// Hand a decision to the evaluation waiting for it. Returns what became of it.
    fn decide(&self, task_id: &str, result: TaskResult, received_at: &str) -> Decided {
        let mut tasks = lock(&self.tasks);
        let Some(task) = tasks.get_mut(&task_id.to_ascii_lowercase()) else {
            return Decided::UnknownTask;
        };
        let (decide, at) = match std::mem::replace(&mut task.status, TaskStatus::Decided) {
            TaskStatus::Waiting { decide, at } => (decide, at),
            TaskStatus::Decided => return Decided::Duplicate,
            TaskStatus::Closed => {
                task.status = TaskStatus::Closed;
                return Decided::Ignored;
            }
        };
        drop(tasks);
        self.update_evaluation(at, |evaluation| {
            evaluation.callback = Some(CallbackRecord {
                received_at: received_at.to_owned(),
                result: match result {
                    TaskResult::Succeeded => "succeeded",
                    TaskResult::Failed => "failed",
                },
            });
        });
        // A closed receiver means the evaluation ended meanwhile; the record stands.
        let _ = decide.send(result);
        Decided::Accepted
    }

    fn add_driver(&self, handle: AbortHandle) {
        let mut drivers = lock(&self.drivers);
        drivers.retain(|driver| !driver.is_finished());
        drivers.push(handle);
    }

    /// Stop every run in progress (the simulator is going away).
    pub(crate) fn shutdown(&self) {
        for driver in lock(&self.drivers).drain(..) {
            driver.abort();
        }
    }
}

/// What became of a callback's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decided {
    Accepted,
    Duplicate,
    Ignored,
    UnknownTask,
}

/// Who queued a run: one of the organisation's people, the same for the same run, drawn
/// without the organisation's generator (so runs leave the seed's random mutations alone).
fn requester_for(run_id: u64) -> Value {
    let (name, mail) = crate::model::PEOPLE
        [(run_id.wrapping_mul(0x9e37_79b9) % crate::model::PEOPLE.len() as u64) as usize];
    crate::model::identity(name, mail)
}

/// Everything a run was queued with; fixed for its life.
#[derive(Clone, Debug)]
pub(crate) struct RunPlan {
    pub run_id: u64,
    pub number: String,
    pub project: ProjectInfo,
    pub pipeline_id: u64,
    pub pipeline_name: String,
    pub pipeline: Value,
    pub repository: Value,
    pub branch: String,
    pub version: String,
    pub requester: Value,
    pub plan_id: String,
    pub timeline_id: String,
    /// `PlanUrl`: the simulator's collection URI with a trailing slash.
    pub collection_uri: String,
    pub created_ms: i64,
    pub template_parameters: BTreeMap<String, Value>,
    pub stages: Vec<StagePlan>,
}

#[derive(Clone, Debug)]
pub(crate) struct StagePlan {
    /// The stage's timeline record id.
    pub id: String,
    pub name: String,
    pub job_id: String,
    /// The environment a deployment stage targets: (id, name).
    pub environment: Option<(String, String)>,
    /// Named in `stagesToSkip`.
    pub skip: bool,
}

impl RunPlan {
    pub(crate) fn repository_name(&self) -> String {
        self.repository["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub(crate) fn repository_id(&self) -> String {
        self.repository["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn detail(&self) -> RunDetail {
        RunDetail {
            id: self.run_id,
            name: self.number.clone(),
            project: serde_json::json!({"id": self.project.id, "name": self.project.name}),
            pipeline: serde_json::json!({"id": self.pipeline_id, "name": self.pipeline_name}),
            state: "inProgress",
            result: None,
            created_date: crate::model::iso(self.created_ms),
            finished_date: None,
            source_branch: self.branch.clone(),
            source_version: self.version.clone(),
            requested_for: self.requester.clone(),
            template_parameters: self.template_parameters.clone(),
            plan_id: self.plan_id.clone(),
            timeline_id: self.timeline_id.clone(),
            collection_uri: self.collection_uri.clone(),
            stages: self
                .stages
                .iter()
                .map(|stage| StageDetail {
                    name: stage.name.clone(),
                    environment: stage
                        .environment
                        .as_ref()
                        .map(|(id, name)| serde_json::json!({"id": id, "name": name})),
                    job_id: stage.job_id.clone(),
                    state: "notStarted",
                    result: None,
                    reason: None,
                    start_time: None,
                    finish_time: None,
                    deployment_record_id: None,
                    checks: Vec::new(),
                })
                .collect(),
            events: Vec::new(),
        }
    }
}
