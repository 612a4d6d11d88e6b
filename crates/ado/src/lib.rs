//! A thin Azure DevOps REST client.
//!
//! Why our own client and not `azure_devops_rust_api`: see docs/adr/0001-own-ado-client.md.
//! The [`AdoClient`] trait is what services see; [`HttpAdoClient`] is the real thing.

pub mod audit_actions;
mod auth;
mod client;
pub mod config;
pub mod error;
pub mod wire;

use async_trait::async_trait;
use time::OffsetDateTime;
use tollgate_domain::{InventoryItem, ResourceKind};

pub use client::HttpAdoClient;
pub use config::{ClientConfig, Credential, RetryPolicy, ServicePrincipal};
pub use error::AdoError;

/// What to list: a kind, in a project or under a parent object, optionally only what changed.
#[derive(Clone, Debug)]
pub struct ListRequest {
    pub kind: ResourceKind,
    /// The project id, for project-scoped and child kinds.
    pub project: Option<String>,
    /// The parent object's id (repository, pipeline, environment) for child kinds.
    pub parent: Option<String>,
    /// Only objects changed since this time, where the endpoint supports it.
    pub since: Option<OffsetDateTime>,
}

impl ListRequest {
    pub fn organization(kind: ResourceKind) -> Self {
        Self {
            kind,
            project: None,
            parent: None,
            since: None,
        }
    }

    pub fn project(kind: ResourceKind, project: &str) -> Self {
        Self {
            kind,
            project: Some(project.to_owned()),
            parent: None,
            since: None,
        }
    }

    pub fn child(kind: ResourceKind, project: &str, parent: &str) -> Self {
        Self {
            kind,
            project: Some(project.to_owned()),
            parent: Some(parent.to_owned()),
            since: None,
        }
    }

    pub fn since(mut self, since: Option<OffsetDateTime>) -> Self {
        self.since = since;
        self
    }

    /// The scope the listed items are stored under: the parent, else the project, else none.
    pub fn scope(&self) -> String {
        self.parent
            .clone()
            .or_else(|| self.project.clone())
            .unwrap_or_default()
    }
}

/// One page of a list and the cursor for the next one (`None` on the last page).
#[derive(Debug)]
pub struct Page {
    pub items: Vec<InventoryItem>,
    pub next: Option<Cursor>,
}

/// Where the next page starts. Opaque: pass it back to [`AdoClient::list_page`] unchanged.
#[derive(Clone, Debug)]
pub struct Cursor(client::CursorState);

/// Request counters, for the sync summary and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStats {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    pub retries: u64,
    /// 429 responses received.
    pub throttled: u64,
    /// Times the client slowed itself down (Retry-After pause or low TSTU budget).
    pub paced: u64,
}

/// A check's decision for its plan: `POST {org}/{project}/_apis/distributedtask/hubs/{hub}/plans/{plan}/events`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanEvent {
    pub project_id: String,
    pub hub_name: String,
    pub plan_id: String,
    pub job_id: String,
    /// The check's `TaskInstanceId`.
    pub task_id: String,
    /// `succeeded` or `failed`.
    pub result: String,
}

impl PlanEvent {
    /// The ids travel in the URL path: only GUID-like values (letters, digits, `-`, `_`) are
    /// accepted, so a crafted header cannot point the token at another path.
    pub fn validate(&self) -> Result<(), AdoError> {
        let safe = |value: &str| {
            !value.is_empty()
                && value.len() <= 100
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        for (name, value) in [
            ("ProjectId", &self.project_id),
            ("HubName", &self.hub_name),
            ("PlanId", &self.plan_id),
            ("JobId", &self.job_id),
            ("TaskInstanceId", &self.task_id),
        ] {
            if !safe(value) {
                return Err(AdoError::Config(format!(
                    "{name} {value:?} is not an id (letters, digits, '-' and '_' only)"
                )));
            }
        }
        if !matches!(self.result.as_str(), "succeeded" | "failed") {
            return Err(AdoError::Config(format!(
                "a check result is succeeded or failed, not {:?}",
                self.result
            )));
        }
        Ok(())
    }
}

/// A pipeline run to queue.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunRequest {
    pub project: String,
    pub pipeline_id: u64,
    /// `refs/heads/main`; the pipeline's default branch when `None`.
    pub ref_name: Option<String>,
    /// The commit to build (`resources.repositories.self.version`); the head of `ref_name`
    /// when `None`. A rollback names the commit an earlier run deployed.
    #[serde(default)]
    pub version: Option<String>,
    /// Template parameters (`environment`, `version` …).
    pub template_parameters: std::collections::BTreeMap<String, String>,
}

/// The Azure DevOps operations tollgate's services use.
#[async_trait]
pub trait AdoClient: Send + Sync {
    fn organization(&self) -> &str;

    /// Fetch one page of a list. Transient failures are retried inside; what comes back is
    /// a page or an error that retrying will not fix.
    async fn list_page(
        &self,
        request: &ListRequest,
        cursor: Option<Cursor>,
    ) -> Result<Page, AdoError>;

    /// Every work item id in a project (WIQL, windowed): used to detect deletions.
    async fn work_item_ids(&self, project: &str) -> Result<Vec<u64>, AdoError>;

    /// Tell a check's plan how it was decided (Post Event, `TaskCompleted`). Authenticated with
    /// the job access token ADO sent with the check, never with tollgate's credential; sent
    /// only to this client's own organisation URL, never to a URL taken from a request, and
    /// without following redirects.
    async fn post_plan_event(
        &self,
        event: &PlanEvent,
        token: &tollgate_domain::SecretString,
    ) -> Result<(), AdoError>;

    /// Queue a run of a YAML pipeline (Pipelines Runs API). Returns the run as ADO returns it.
    async fn queue_run(&self, request: &RunRequest) -> Result<serde_json::Value, AdoError>;

    /// One run of a pipeline, as ADO returns it.
    async fn run(
        &self,
        project: &str,
        pipeline_id: u64,
        run_id: u64,
    ) -> Result<serde_json::Value, AdoError>;

    fn stats(&self) -> ClientStats;
}
