//! Deployments queued through tollgate: one row per pipeline run tollgate asked ADO to start
//! for an environment (a deployment, or a rollback re-running an earlier run's commit).
//!
//! The row is written only after ADO accepted the run, in the transaction of its
//! `deployment.queued` audit record, so a refused or failed request leaves nothing behind.
//! Afterwards only its status changes (what ADO last said about the run).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::gate::Verdict;
use crate::{AuditDraft, StoreError};

/// Why the run was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    Deploy,
    /// A new run of an earlier successful run's commit.
    Rollback,
}

impl DeploymentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Deploy => "deploy",
            DeploymentKind::Rollback => "rollback",
        }
    }
}

/// Where a run stands, in ADO's words (`Run.state`), plus `queued` before ADO says more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunState {
    Queued,
    InProgress,
    Canceling,
    Completed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::InProgress => "inProgress",
            RunState::Canceling => "canceling",
            RunState::Completed => "completed",
        }
    }

    /// ADO's `state` (`unknown` and anything new read as queued: not started as far as we know).
    pub fn from_ado(raw: &str) -> Self {
        match raw {
            "inProgress" => RunState::InProgress,
            "canceling" => RunState::Canceling,
            "completed" => RunState::Completed,
            _ => RunState::Queued,
        }
    }
}

/// How a completed run ended (`Run.result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunResult {
    Succeeded,
    Failed,
    Canceled,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Succeeded => "succeeded",
            RunResult::Failed => "failed",
            RunResult::Canceled => "canceled",
        }
    }

    /// ADO's `result`; `unknown` (or nothing) is no result yet.
    pub fn from_ado(raw: &str) -> Option<Self> {
        match raw {
            "succeeded" => Some(RunResult::Succeeded),
            "failed" => Some(RunResult::Failed),
            "canceled" => Some(RunResult::Canceled),
            _ => None,
        }
    }
}

/// A deployment as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub kind: DeploymentKind,
    /// The project's name (as the inventory knows it, else as given).
    pub project: String,
    /// The project's id, when the inventory knows the project.
    pub project_id: Option<String>,
    pub pipeline_id: u64,
    pub pipeline: Option<String>,
    pub environment: String,
    /// The branch the run builds (`refs/heads/…`); the pipeline's default when `None`.
    pub ref_name: Option<String>,
    /// The release version asked for (template parameter `version`).
    pub version: Option<String>,
    /// The commit the run builds, once ADO named it.
    pub source_version: Option<String>,
    /// Template parameters sent with the run (`environment`, `version` and the caller's).
    pub parameters: BTreeMap<String, String>,
    /// The ADO run (build) id.
    pub run_id: u64,
    pub run_name: Option<String>,
    pub run_url: Option<String>,
    /// For a rollback: the run whose commit it re-deploys.
    pub rollback_of: Option<u64>,
    /// Who asked (the principal's subject, or the CLI's local user).
    pub requested_by: String,
    /// The gate's dry-run decision before queueing.
    pub decision_id: Option<String>,
    pub verdict: Verdict,
    pub state: RunState,
    pub result: Option<RunResult>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When ADO was last asked about the run.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl Deployment {
    pub fn succeeded(&self) -> bool {
        self.state == RunState::Completed && self.result == Some(RunResult::Succeeded)
    }

    pub fn is_final(&self) -> bool {
        self.state == RunState::Completed
    }
}

/// What ADO last said about a deployment's run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunStatus {
    pub state: RunState,
    pub result: Option<RunResult>,
    pub source_version: Option<String>,
    pub finished_at: Option<OffsetDateTime>,
    pub checked_at: OffsetDateTime,
}

#[derive(Clone, Debug, Default)]
pub struct DeploymentFilter {
    pub environment: Option<String>,
    /// The project's name or id.
    pub project: Option<String>,
    pub pipeline_id: Option<u64>,
    pub limit: u32,
}

#[async_trait]
pub trait DeploymentStore: Send + Sync {
    /// Store a queued deployment with its audit records, in one transaction. An id that
    /// exists is refused (`InvalidInput`); nothing is written then.
    async fn record_deployment(
        &self,
        tenant: &TenantId,
        deployment: &Deployment,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError>;

    async fn deployment(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Deployment>, StoreError>;

    /// Newest first (by creation, then id).
    async fn deployments(
        &self,
        tenant: &TenantId,
        filter: &DeploymentFilter,
    ) -> Result<Vec<Deployment>, StoreError>;

    /// Record what ADO says about the run now; returns the deployment as updated (`None`:
    /// no such deployment). A completed run's state is kept: a later, stale answer never
    /// turns it back into a running one.
    async fn update_run_status(
        &self,
        tenant: &TenantId,
        id: &str,
        status: &RunStatus,
    ) -> Result<Option<Deployment>, StoreError>;
}

/// Apply a status to a deployment: the one rule both backends use.
pub(crate) fn apply_status(deployment: &mut Deployment, status: &RunStatus) {
    deployment.updated_at = status.checked_at;
    if deployment.is_final() {
        return;
    }
    deployment.state = status.state;
    deployment.result = status.result;
    if status.source_version.is_some() {
        deployment.source_version = status.source_version.clone();
    }
    deployment.finished_at = status.finished_at;
}
