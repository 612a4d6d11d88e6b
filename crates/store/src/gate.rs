//! Gate decisions and approvals.
//!
//! A decision is what the gate answered for one check evaluation (or one validation through
//! the API); it is keyed idempotently, so ADO delivering the same check twice gets the same
//! answer and opens no second approval. An approval is the people's part of a decision that
//! required one: pending until a quorum approves, anyone entitled rejects, someone cancels
//! it, or it expires. The state machine lives here ([`Approval::apply`]) so that both
//! backends decide transitions the same way, inside the transaction that locked the row.
//!
//! The callback token ADO sent with a check (its job access token) is kept in its own column,
//! only until the callback is made: it is never part of the decision document, so no listing
//! or export can carry it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tollgate_domain::{CanonicalJson, TenantId};

use crate::{AuditDraft, NewJob, StoreError};

/// What the gate answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Deny,
    /// People must approve before the run proceeds.
    Approval,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Approval => "approval",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "allow" => Some(Verdict::Allow),
            "deny" => Some(Verdict::Deny),
            "approval" => Some(Verdict::Approval),
            _ => None,
        }
    }
}

/// A stored verdict column, read back.
pub(crate) fn verdict_column(raw: &str) -> Result<Verdict, StoreError> {
    Verdict::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("gate verdict {raw:?}")))
}

/// A run id as the integer column stores it (both backends use signed 64 bits).
pub(crate) fn run_column(run_id: u64) -> Result<i64, StoreError> {
    i64::try_from(run_id)
        .map_err(|_| StoreError::InvalidInput(format!("run id {run_id} is out of range")))
}

/// Where ADO waits for a callback decision (the check's plan).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackTarget {
    pub project_id: String,
    pub hub_name: String,
    pub plan_id: String,
    pub job_id: String,
    pub task_instance_id: String,
}

/// Where a callback stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    /// Waiting for the approval to be decided.
    Waiting,
    /// The decision is known; a `gate.callback` job will post it.
    Queued,
    Sent,
    /// Posting failed for good (ADO refused it or the token expired).
    Failed,
}

impl CallbackState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackState::Waiting => "waiting",
            CallbackState::Queued => "queued",
            CallbackState::Sent => "sent",
            CallbackState::Failed => "failed",
        }
    }
}

/// A decision as stored (without the callback token).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    pub id: String,
    /// The idempotency key: `ado:{plan}:{job}:{task instance}` for checks.
    pub key: String,
    /// `ado-check`, `api`, `cli`, `mcp`.
    pub source: String,
    /// `sync`, `callback` or `dry-run`.
    pub mode: String,
    pub verdict: Verdict,
    pub project: String,
    pub environment: String,
    pub pipeline: Option<String>,
    pub run_id: Option<u64>,
    pub requested_by: Option<String>,
    /// What each gate rule said (rule, effect, action, message, evidence).
    pub findings: CanonicalJson,
    /// The input the rules judged (facts, without secrets), for audit and backtests. Shared
    /// by every decision a burst of checks about one run makes (encoded once).
    pub input: CanonicalJson,
    pub callback: Option<CallbackTarget>,
    pub callback_state: Option<CallbackState>,
    pub approval_id: Option<String>,
    pub decided_at: OffsetDateTime,
}

/// The state of an approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Rejected,
    Expired,
    Cancelled,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Expired => "expired",
            ApprovalState::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            ApprovalState::Pending,
            ApprovalState::Approved,
            ApprovalState::Rejected,
            ApprovalState::Expired,
            ApprovalState::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == raw)
    }
}

/// One person's decision on an approval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApprovalVote {
    pub by: String,
    pub role: String,
    /// `approved` or `rejected`.
    pub decision: String,
    #[serde(default)]
    pub comment: String,
    pub at: OffsetDateTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub decision_id: String,
    pub state: ApprovalState,
    pub project: String,
    pub environment: String,
    pub pipeline: Option<String>,
    pub run_id: Option<u64>,
    pub requested_by: Option<String>,
    /// Why the gate asked for it (the approval findings' messages).
    pub reasons: Vec<String>,
    /// Approvals needed from different people.
    pub quorum: u32,
    /// The least role an approver must hold.
    pub approver_role: String,
    pub votes: Vec<ApprovalVote>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub closed_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub closed_by: Option<String>,
}

/// Why a change to an approval was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalRefusal {
    #[error("the approval is {0}, no longer pending")]
    NotPending(&'static str),
    #[error("{0} has already decided on this approval")]
    AlreadyVoted(String),
    #[error("the person who requested the deployment cannot approve it")]
    SelfApproval,
    #[error("a decision must be approved or rejected")]
    UnknownDecision,
}

/// A decision's or an approval's JSON document, as both backends store it.
pub(crate) fn document<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|error| StoreError::InvalidInput(format!("cannot encode: {error}")))
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    raw: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|error| StoreError::Corrupt(format!("{what}: {error}")))
}

/// What to do to an approval.
#[derive(Clone, Debug)]
pub enum ApprovalChange {
    Vote(ApprovalVote),
    Cancel { by: String, at: OffsetDateTime },
    Expire { at: OffsetDateTime },
}

impl Approval {
    /// Apply a change: the one state machine both backends use. Approved once `quorum`
    /// different people approved; rejected by the first rejection; expiry and cancellation
    /// end a pending approval only.
    pub fn apply(&mut self, change: &ApprovalChange) -> Result<(), ApprovalRefusal> {
        if self.state != ApprovalState::Pending {
            return Err(ApprovalRefusal::NotPending(self.state.as_str()));
        }
        match change {
            ApprovalChange::Vote(vote) => {
                let who = vote.by.to_lowercase();
                if self.votes.iter().any(|v| v.by.to_lowercase() == who) {
                    return Err(ApprovalRefusal::AlreadyVoted(vote.by.clone()));
                }
                if vote.decision == "approved"
                    && self
                        .requested_by
                        .as_deref()
                        .is_some_and(|requester| requester.to_lowercase() == who)
                {
                    return Err(ApprovalRefusal::SelfApproval);
                }
                match vote.decision.as_str() {
                    "approved" => {
                        self.votes.push(vote.clone());
                        let approvals = self
                            .votes
                            .iter()
                            .filter(|v| v.decision == "approved")
                            .count();
                        if approvals >= self.quorum.max(1) as usize {
                            self.state = ApprovalState::Approved;
                            self.closed_at = Some(vote.at);
                            self.closed_by = Some(vote.by.clone());
                        }
                    }
                    "rejected" => {
                        self.votes.push(vote.clone());
                        self.state = ApprovalState::Rejected;
                        self.closed_at = Some(vote.at);
                        self.closed_by = Some(vote.by.clone());
                    }
                    _ => return Err(ApprovalRefusal::UnknownDecision),
                }
            }
            ApprovalChange::Cancel { by, at } => {
                self.state = ApprovalState::Cancelled;
                self.closed_at = Some(*at);
                self.closed_by = Some(by.clone());
            }
            ApprovalChange::Expire { at } => {
                self.state = ApprovalState::Expired;
                self.closed_at = Some(*at);
            }
        }
        Ok(())
    }

    pub fn is_open(&self) -> bool {
        self.state == ApprovalState::Pending
    }
}

/// A decision to store, with what comes with it.
#[derive(Clone, Debug)]
pub struct NewDecision {
    pub decision: GateDecision,
    /// The job token to post the callback with (callback mode only).
    pub callback_token: Option<String>,
    /// The approval the decision opens (verdict `approval`).
    pub approval: Option<Approval>,
    /// The callback job, when the verdict is final at once (callback mode, allow or deny).
    pub callback_job: Option<NewJob>,
    /// Jobs that tell approvers about the approval (one per notification channel), enqueued
    /// with it so a notice outlives a crash and a channel that is down.
    pub notices: Vec<NewJob>,
}

/// One decision of a batch, with the audit records to append if it is stored.
#[derive(Clone, Debug)]
pub struct DecisionWrite {
    pub new: NewDecision,
    pub audit: Vec<AuditDraft>,
}

/// The audit records of the decisions a batch created (a decision stored before brings none).
pub(crate) fn created_audit<'a>(
    batch: &'a [DecisionWrite],
    recorded: &[Stored],
) -> Vec<&'a AuditDraft> {
    batch
        .iter()
        .zip(recorded)
        .filter(|(_, stored)| stored.created())
        .flat_map(|(write, _)| &write.audit)
        .collect()
}

/// What storing one decision of a batch did.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    Created,
    /// A decision with the same key was stored before (or earlier in the batch): this one.
    Existing(Box<GateDecision>),
}

impl Stored {
    pub fn created(&self) -> bool {
        matches!(self, Stored::Created)
    }

    /// What storing `written` did: the decision as written when it was created, else the one
    /// stored before.
    pub fn recorded(self, written: GateDecision) -> RecordedDecision {
        match self {
            Stored::Created => RecordedDecision {
                decision: written,
                created: true,
            },
            Stored::Existing(decision) => RecordedDecision {
                decision: *decision,
                created: false,
            },
        }
    }
}

/// What storing a decision did.
#[derive(Clone, Debug)]
pub struct RecordedDecision {
    pub decision: GateDecision,
    /// False when a decision with the same key existed: it is returned as it was.
    pub created: bool,
}

/// What changing an approval did.
#[derive(Clone, Debug)]
pub enum ApprovalOutcome {
    Changed(Box<Approval>),
    Refused(ApprovalRefusal),
    NotFound,
}

/// Audit records for an approval change, made from the approval as changed.
pub type ApprovalAudit<'a> = &'a (dyn Fn(&Approval) -> Vec<AuditDraft> + Send + Sync);

/// The callback job to enqueue once an approval closes (for decisions waiting on it).
pub type CallbackJob<'a> = &'a (dyn Fn(&Approval, &GateDecision) -> Option<NewJob> + Send + Sync);

/// The jobs that tell approvers an approval closed, enqueued in the same transaction.
pub type ApprovalNotices<'a> = &'a (dyn Fn(&Approval) -> Vec<NewJob> + Send + Sync);

#[derive(Clone, Debug, Default)]
pub struct DecisionFilter {
    pub environment: Option<String>,
    pub since: Option<OffsetDateTime>,
    /// Only decisions about this run (the ADO run/build id).
    pub run_id: Option<u64>,
    pub limit: u32,
}

/// The `source` of decisions that answered ADO's check (the others are validations and dry
/// runs through the API or the command line).
pub const SOURCE_ADO_CHECK: &str = "ado-check";

/// A decision ADO's check received, without its document: what bypass detection matches
/// deployment records against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckDecision {
    pub decision_id: String,
    pub run_id: Option<u64>,
    pub environment: String,
    pub verdict: Verdict,
    pub decided_at: OffsetDateTime,
}

#[async_trait]
pub trait GateStore: Send + Sync {
    /// Store a decision, its approval and its callback job in one transaction, with its audit
    /// records. A decision whose key exists is not stored again; the stored one is returned.
    async fn record_decision(
        &self,
        tenant: &TenantId,
        new: &NewDecision,
        audit: &[AuditDraft],
    ) -> Result<RecordedDecision, StoreError> {
        let batch = [DecisionWrite {
            new: new.clone(),
            audit: audit.to_vec(),
        }];
        let stored = self.record_decisions(tenant, &batch).await?.pop();
        match stored {
            Some(stored) => Ok(stored.recorded(new.decision.clone())),
            None => Err(StoreError::Corrupt(
                "a batch of one recorded nothing".to_owned(),
            )),
        }
    }

    /// Store several decisions as [`GateStore::record_decision`] does, in one transaction (one
    /// commit, one turn of the audit log's lock): the gate's group commit. The answers are in
    /// the batch's order; a key met earlier in the batch counts as existing. Any failure
    /// stores none of them. A created decision is not returned (the caller has it: copying
    /// every decision's input back would cost the writer as much as storing it).
    async fn record_decisions(
        &self,
        tenant: &TenantId,
        batch: &[DecisionWrite],
    ) -> Result<Vec<Stored>, StoreError>;

    async fn decision(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<GateDecision>, StoreError>;

    async fn decision_by_key(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> Result<Option<GateDecision>, StoreError>;

    /// Newest first.
    async fn decisions(
        &self,
        tenant: &TenantId,
        filter: &DecisionFilter,
    ) -> Result<Vec<GateDecision>, StoreError>;

    /// Every decision answered to ADO's check (source [`SOURCE_ADO_CHECK`]), oldest first.
    /// Reads columns only, never the documents: it runs on every evaluation of the findings.
    async fn check_decisions(&self, tenant: &TenantId) -> Result<Vec<CheckDecision>, StoreError>;

    /// The token to post a decision's callback with, while it is kept.
    async fn callback_token(
        &self,
        tenant: &TenantId,
        decision_id: &str,
    ) -> Result<Option<String>, StoreError>;

    /// The callback was posted (or failed for good): record it and forget the token.
    async fn finish_callback(
        &self,
        tenant: &TenantId,
        decision_id: &str,
        state: CallbackState,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError>;

    async fn approval(&self, tenant: &TenantId, id: &str) -> Result<Option<Approval>, StoreError>;

    /// Newest first; `state` filters.
    async fn approvals(
        &self,
        tenant: &TenantId,
        state: Option<ApprovalState>,
        limit: u32,
    ) -> Result<Vec<Approval>, StoreError>;

    /// Change one approval under a row lock, with its audit records. When it closes, the
    /// decision that opened it gets the callback job `callback` makes and the jobs `notices`
    /// makes are enqueued, all in the same transaction.
    async fn change_approval(
        &self,
        tenant: &TenantId,
        id: &str,
        change: &ApprovalChange,
        audit: ApprovalAudit<'_>,
        callback: CallbackJob<'_>,
        notices: ApprovalNotices<'_>,
    ) -> Result<ApprovalOutcome, StoreError>;

    /// The ids of pending approvals whose expiry is at or before `now`.
    async fn due_approvals(
        &self,
        tenant: &TenantId,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError>;
}
