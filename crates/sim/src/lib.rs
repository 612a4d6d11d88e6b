//! The ADO simulator: a synthetic organisation behind an ADO-shaped REST server.
//!
//! No machine here reaches Azure DevOps, so this is how tollgate is developed, tested,
//! demonstrated and benchmarked. It serves the published REST shapes (routes come from the
//! same endpoint table as the client; payload shapes follow ado-fixtures), pages as ADO pages,
//! meters a TSTU-style budget, injects faults on request and counts every call.
//!
//! Control endpoints: `GET /_sim/manifest` (counts per kind and planted misconfigurations),
//! `GET|DELETE /_sim/calls`, `GET|POST /_sim/faults`, `POST /_sim/mutate`,
//! `GET|DELETE /_sim/deliveries`.
//!
//! Service hooks ([`hooks`]): the Subscriptions API at `/{organization}/_apis/hooks/subscriptions`
//! (list, create, read, replace, delete, shaped like the published examples). Changes made
//! through `POST /_sim/mutate` raise the events ADO raises for them (`git.push`,
//! `git.repo.created`, `workitem.updated` …; configuration changes such as a weakened policy
//! raise none, only audit entries), POSTed in the background to every enabled Web Hooks
//! subscription that wants them, in order per subscription, with ADO's retry and probation
//! rules on the schedule of [`SimConfig::hooks`]. `GET /_sim/deliveries` lists every attempt:
//! `{"count", "value": [{"subscription_id", "event_id", "event_type", "url", "attempt",
//! "status", "error", "outcome", "time"}]}`; `DELETE` clears it.
//!
//! Pipeline runs ([`runs`]): `POST /{organization}/{project}/_apis/pipelines/{id}/runs` queues a
//! run of a YAML pipeline (also a build), driven in the background through a `build` stage and
//! one stage per environment of its project. A stage that targets an environment evaluates the
//! environment's checks first: approvals are granted (unless held through
//! `/_sim/approvals/hold`), Invoke REST API checks registered through `/_sim/checks/rest` are
//! called over HTTP with the headers and body ADO sends, in the synchronous (ApiResponse) or the
//! callback mode, whose decisions come back through the Post Event API. Successful deployment
//! stages write environment deployment records; stage and run changes raise the pipelines
//! service-hook events. `GET /_sim/runs/{id}` shows every call and callback.

mod gates;
pub mod hooks;
pub mod model;
pub mod mutate;
mod operations;
pub mod profile;
pub mod release;
mod rng;
pub mod runs;
mod server;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tollgate_domain::ResourceKind;

pub use hooks::{HookDelivery, HookEvent};
pub use model::{Org, Planted};
pub use mutate::{MutateError, MutateRequest, Mutation, MutationKind};
pub use profile::Profile;
pub use runs::RunSettings;
pub use server::Faults;

/// How to run a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub organization: String,
    pub seed: u64,
    pub profile: Profile,
    pub faults: Faults,
    /// Requests allowed per `tstu_window` before 429 (0: unlimited). Real ADO meters TSTUs,
    /// an unpublished cost per call; one request per unit is the simulator's stand-in.
    pub tstu_budget: u32,
    pub tstu_window: Duration,
    /// Accept only this PAT (any non-empty PAT when unset).
    pub pat: Option<String>,
    /// Accept only this client secret at the token endpoint (any non-empty one when unset).
    pub client_secret: Option<String>,
    pub token_lifetime_secs: u64,
    /// Kinds whose endpoints answer 403, as for an identity without permission.
    pub forbidden: Vec<ResourceKind>,
    /// The organisation's "today" in Unix milliseconds; default: today's midnight UTC, so one
    /// seed gives the same organisation all day.
    pub now_ms: Option<i64>,
    /// The retry and probation schedule of service-hook deliveries.
    pub hooks: HookDelivery,
    /// How queued pipeline runs progress (stage duration, AuthToken lifetime).
    pub runs: RunSettings,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            organization: "fabrikam".to_owned(),
            seed: 1,
            profile: Profile::Small,
            faults: Faults::default(),
            tstu_budget: 0,
            tstu_window: Duration::from_secs(10),
            pat: None,
            client_secret: None,
            token_lifetime_secs: 3600,
            forbidden: Vec::new(),
            now_ms: None,
            hooks: HookDelivery::default(),
            runs: RunSettings::default(),
        }
    }
}

/// A simulator bound to a listener.
pub struct Simulator {
    shared: Arc<server::Shared>,
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        const DAY_MS: i64 = 86_400_000;
        let now_ms = config
            .now_ms
            .unwrap_or_else(|| server::now_ms().div_euclid(DAY_MS) * DAY_MS);
        let org = Org::generate(&config.organization, config.seed, config.profile, now_ms);
        Self {
            shared: Arc::new(server::Shared::new(config, org)),
        }
    }

    pub fn router(&self) -> axum::Router {
        server::router(self.shared.clone())
    }

    /// Object counts per kind right now.
    pub fn counts(&self) -> std::collections::BTreeMap<ResourceKind, usize> {
        self.shared.read_org().counts()
    }

    /// The fewest requests a client needs to list everything (see [`Org::minimum_requests`]).
    pub fn minimum_requests(&self) -> std::collections::BTreeMap<ResourceKind, u64> {
        self.shared.read_org().minimum_requests()
    }

    /// Change the faults of a simulator that is not serving yet.
    pub fn with_faults(self, faults: Faults) -> Self {
        self.shared.set_faults(faults);
        self
    }

    /// Serve until the task is dropped.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        // Checks are told where to call back (PlanUrl): this listener.
        if let Ok(local) = listener.local_addr() {
            self.shared.set_base_url(format!("http://{local}"));
        }
        axum::serve(listener, self.router()).await
    }

    /// Bind a loopback port and serve in the background (for tests and `tollgate demo`).
    pub async fn spawn(self, address: &str) -> std::io::Result<RunningSimulator> {
        let listener = TcpListener::bind(address).await?;
        let local = listener.local_addr()?;
        let organization = self.shared.read_org().name.clone();
        self.shared.set_base_url(format!("http://{local}"));
        let router = self.router();
        let task = tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(RunningSimulator {
            base_url: format!("http://{local}"),
            organization,
            task,
            hooks: self.shared.hooks.clone(),
            runs: self.shared.runs.clone(),
        })
    }
}

/// A simulator serving in the background; dropping it stops the server and its deliveries.
pub struct RunningSimulator {
    pub base_url: String,
    pub organization: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    hooks: std::sync::Arc<hooks::Hooks>,
    runs: std::sync::Arc<runs::Runs>,
}

impl RunningSimulator {
    /// The organisation URL to give `tollgate sync --org`.
    pub fn org_url(&self) -> String {
        format!("{}/{}", self.base_url, self.organization)
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        self.task.abort();
        // Deliveries and runs stop with the server, as pending retries and check evaluations
        // would outlive it otherwise.
        self.hooks.shutdown();
        self.runs.shutdown();
    }
}
