//! Inventory sync: pull an organisation through [`AdoClient`] into an [`InventoryStore`].
//!
//! A **full** sync lists every kind, parents before children, and replaces each kind
//! atomically once all of its pages are in. An **incremental** sync starts from the last
//! successful sync and re-reads only what can have changed:
//!
//! | kinds | how changes are found |
//! |---|---|
//! | audit log | `startTime` since the watermark (the changes feed for the next rows) |
//! | projects, pull requests | re-listed every time (cheap; votes change without audit entries) |
//! | configuration kinds (repos, policies, pipelines, environments, checks, service connections, variable groups, release definitions, …) | re-listed in the projects whose audit entries name them |
//! | builds, alerts | server-side "changed since" filters (`minTime`, `criteria.modifiedSince`) |
//! | work items | WIQL on `System.ChangedDate`, and an id listing to detect deletions |
//! | refs, runs, deployment records | listed for new parents, for pipelines with new builds and environments of projects with new builds; rows of vanished parents are dropped |
//!
//! Refs change with every push and ADO's audit log does not record pushes: between full
//! syncs they are kept current by the service hooks. An incremental sync asks its
//! [`ChangeHintSource`] what the events received in its window name (refs of pushed
//! repositories, repositories and service connections of projects) and re-reads those as well.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_ado::wire::{AuditLogEntry, Build};
use tollgate_ado::{AdoClient, AdoError, ClientStats, ListRequest};
use tollgate_domain::kind::ScopeLevel;
use tollgate_domain::{InventoryItem, ResourceKind, SyncRunId, TenantId};
use tollgate_store::{AuditDraft, InventoryStore, Replace, StoreError, StoredKey, SyncMode};

use crate::services::audit_events::{Actor, AuditEvent, Record, Target, ado_audit_draft};

/// Which sync to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeRequest {
    /// Incremental when a previous sync of the same organisation succeeded, full otherwise.
    Auto,
    Full,
    Incremental,
}

/// Told about progress as the sync runs; the CLI draws a bar or prints lines.
pub trait SyncProgress: Send + Sync {
    fn kind_started(&self, kind: ResourceKind, scopes: usize);
    fn page_stored(&self, kind: ResourceKind, items: usize);
    fn kind_finished(&self, outcome: &KindOutcome);
}

/// Progress that goes nowhere (tests, `--quiet`).
pub struct NoProgress;

impl SyncProgress for NoProgress {
    fn kind_started(&self, _: ResourceKind, _: usize) {}
    fn page_stored(&self, _: ResourceKind, _: usize) {}
    fn kind_finished(&self, _: &KindOutcome) {}
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KindStatus {
    Synced,
    /// Nothing could have changed, so nothing was fetched (incremental only).
    Unchanged,
    /// The credential may not read this kind (401/403); stored rows were left as they were.
    Skipped,
    /// Fetching failed for another reason; stored rows were left as they were.
    Failed,
}

#[derive(Clone, Debug, Serialize)]
pub struct KindOutcome {
    pub kind: ResourceKind,
    pub status: KindStatus,
    /// Scopes listed (the organisation, projects, or parent objects).
    pub scopes: u64,
    pub pages: u64,
    pub fetched: u64,
    /// Rows of this kind in the store afterwards.
    pub stored: u64,
    pub duration_ms: u64,
    /// Why a kind was skipped or failed.
    pub detail: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SyncSummary {
    pub run_id: i64,
    pub tenant: String,
    pub organization: String,
    pub mode: SyncMode,
    /// `ok` when every kind synced or was unchanged; `partial` when some kinds were skipped for
    /// lack of permission (still a base for the next incremental sync, which skips them
    /// again); `incomplete` when a kind failed (not a base: the next sync starts earlier).
    pub status: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub kinds: Vec<KindOutcome>,
    pub api: ClientStats,
}

impl SyncSummary {
    pub fn skipped(&self) -> impl Iterator<Item = &KindOutcome> {
        self.kinds
            .iter()
            .filter(|k| k.status == KindStatus::Skipped)
    }

    pub fn failed(&self) -> impl Iterator<Item = &KindOutcome> {
        self.kinds.iter().filter(|k| k.status == KindStatus::Failed)
    }
}

/// What service-hook events say changed, beyond what the audit log names: an incremental sync
/// re-reads these too. ADO's audit log records no pushes and not every repository or service
/// connection change, so without the events refs would go stale until the next full sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeHints {
    /// Kinds to re-list, per project id; `None`: in every project (the event named none).
    pub kinds: BTreeMap<ResourceKind, BTreeSet<Option<String>>>,
    /// Repositories (ADO ids) whose refs moved.
    pub pushed_repositories: BTreeSet<String>,
}

impl ChangeHints {
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.pushed_repositories.is_empty()
    }

    pub fn changed(&mut self, kind: ResourceKind, project: Option<&str>) {
        self.kinds
            .entry(kind)
            .or_default()
            .insert(project.map(str::to_owned));
    }
}

/// Where an incremental sync learns what the events since its window opened said changed.
#[async_trait::async_trait]
pub trait ChangeHintSource: Send + Sync {
    async fn hints_since(&self, since: OffsetDateTime) -> Result<ChangeHints>;
}

/// The watermark that remembers which organisation a tenant's inventory came from.
const ORGANIZATION_WATERMARK: &str = "sync.organization";

pub struct SyncService {
    ado: Arc<dyn AdoClient>,
    store: Arc<dyn InventoryStore>,
    tenant: TenantId,
    /// The organisation URL; an inventory from another organisation is never patched.
    org_url: String,
    concurrency: usize,
    overlap: Duration,
    hints: Option<Arc<dyn ChangeHintSource>>,
}

enum ScopeError {
    Ado(AdoError),
    Store(StoreError),
}

#[derive(Default)]
struct ScopeFetch {
    pages: u64,
    items: u64,
}

/// The result of listing one kind across its scopes.
struct Fetched {
    outcome: KindOutcome,
    /// Scopes that answered 404 (deleted while we listed): their rows go.
    vanished: Vec<String>,
}

type Inspect<'a> = Option<&'a (dyn Fn(&InventoryItem) + Sync)>;

impl SyncService {
    pub fn new(
        ado: Arc<dyn AdoClient>,
        store: Arc<dyn InventoryStore>,
        tenant: TenantId,
        org_url: String,
        concurrency: usize,
        overlap: Duration,
    ) -> Self {
        Self {
            ado,
            store,
            tenant,
            org_url,
            concurrency: concurrency.max(1),
            overlap,
            hints: None,
        }
    }

    /// Let incremental syncs also re-read what stored service-hook events name.
    #[must_use]
    pub fn with_change_hints(mut self, hints: Arc<dyn ChangeHintSource>) -> Self {
        self.hints = Some(hints);
        self
    }

    /// Run a sync and record it. An error means nothing usable happened (for example the
    /// credential was rejected); a kind that could not be read is reported in the summary.
    pub async fn run(&self, mode: ModeRequest, progress: &dyn SyncProgress) -> Result<SyncSummary> {
        let previous = self.store.last_successful_sync(&self.tenant).await?;
        let same_org = self
            .store
            .watermark(&self.tenant, ORGANIZATION_WATERMARK)
            .await?
            .as_deref()
            == Some(self.org_url.as_str());
        let since = previous
            .filter(|_| same_org)
            .map(|record| record.started_at - self.overlap);
        let (mode, since) = match (mode, since) {
            (ModeRequest::Full, _) | (ModeRequest::Auto, None) => (SyncMode::Full, None),
            (ModeRequest::Auto | ModeRequest::Incremental, Some(since)) => {
                (SyncMode::Incremental, Some(since))
            }
            (ModeRequest::Incremental, None) => bail!(
                "no earlier successful sync of {} in this database to continue from; run a full sync first",
                self.org_url
            ),
        };
        let started = Instant::now();
        let record = self.store.begin_sync(&self.tenant, mode).await?;
        // ADO's own audit entries seen in this run, recorded (once each) when it finishes.
        let ado_audit: Mutex<Vec<AuditDraft>> = Mutex::new(Vec::new());
        let outcome = match since {
            None => self.full(record.id, same_org, &ado_audit, progress).await,
            Some(since) => {
                self.incremental(record.id, since, &ado_audit, progress)
                    .await
            }
        };
        let kinds = match outcome {
            Ok(kinds) => kinds,
            Err(error) => {
                let summary = serde_json::json!({"error": format!("{error:#}")});
                let failed = Record::new(
                    AuditEvent::SyncCompleted,
                    &Actor::system(),
                    OffsetDateTime::now_utc(),
                )
                .failure()
                .reason(format!("{error:#}"))
                .target(Target::new("organization", &self.org_url))
                .detail("run", json!(record.id.0))
                .detail("mode", json!(mode.as_str()))
                .draft();
                let mut records = std::mem::take(&mut *lock(&ado_audit));
                records.push(failed);
                self.store
                    .finish_sync(&self.tenant, record.id, "failed", &summary, &records)
                    .await?;
                return Err(error);
            }
        };
        let mut kinds = merge_outcomes(kinds);
        let counts = self.store.counts(&self.tenant).await?;
        for outcome in &mut kinds {
            outcome.stored = counts.get(&outcome.kind).copied().unwrap_or(0);
        }
        let any = |status: KindStatus| kinds.iter().any(|k| k.status == status);
        let status = if any(KindStatus::Failed) {
            "incomplete"
        } else if any(KindStatus::Skipped) {
            "partial"
        } else {
            "ok"
        };
        let summary = SyncSummary {
            run_id: record.id.0,
            tenant: self.tenant.to_string(),
            organization: self.org_url.clone(),
            mode,
            status: status.to_owned(),
            started_at: record.started_at.format(&Rfc3339).unwrap_or_default(),
            duration_ms: started.elapsed().as_millis() as u64,
            kinds,
            api: self.ado.stats(),
        };
        let value = serde_json::to_value(&summary).context("serialising the sync summary")?;
        let kinds: Vec<serde_json::Value> = summary
            .kinds
            .iter()
            .map(|k| json!({"kind": k.kind.as_str(), "status": k.status, "stored": k.stored}))
            .collect();
        let completed = Record::new(
            AuditEvent::SyncCompleted,
            &Actor::system(),
            OffsetDateTime::now_utc(),
        )
        .target(Target::new("organization", &self.org_url))
        .detail("run", json!(summary.run_id))
        .detail("mode", json!(summary.mode.as_str()))
        .detail("status", json!(summary.status))
        .detail("duration_ms", json!(summary.duration_ms))
        .detail("kinds", json!(kinds))
        .draft();
        let mut records = std::mem::take(&mut *lock(&ado_audit));
        records.push(completed);
        self.store
            .finish_sync(&self.tenant, record.id, &summary.status, &value, &records)
            .await?;
        Ok(summary)
    }

    /// `same_org`: the stored inventory came from this organisation, so its audit history is
    /// kept; an inventory of another organisation is replaced in full, audit log included.
    async fn full(
        &self,
        run: SyncRunId,
        same_org: bool,
        ado_audit: &Mutex<Vec<AuditDraft>>,
        progress: &dyn SyncProgress,
    ) -> Result<Vec<KindOutcome>> {
        let collect_audit = |item: &InventoryItem| {
            if let Some(draft) = ado_audit_draft(&item.raw) {
                lock(ado_audit).push(draft);
            }
        };
        let mut outcomes = Vec::new();
        for kind in ResourceKind::ALL {
            let requests = self.requests_for(*kind, None).await?;
            let replace = if *kind == ResourceKind::AuditLog && same_org {
                // Audit entries are evidence: keep them after ADO's 90-day retention drops them.
                Replace::upsert_only()
            } else {
                Replace::all()
            };
            let watermarks = if *kind == ResourceKind::Projects {
                vec![(ORGANIZATION_WATERMARK.to_owned(), self.org_url.clone())]
            } else {
                Vec::new()
            };
            let inspect: Inspect<'_> = if *kind == ResourceKind::AuditLog {
                Some(&collect_audit)
            } else {
                None
            };
            let outcome = self
                .sync_kind(
                    run,
                    *kind,
                    requests,
                    replace,
                    &watermarks,
                    inspect,
                    progress,
                )
                .await?;
            if *kind == ResourceKind::Projects && outcome.status != KindStatus::Synced {
                bail!(
                    "cannot list the organisation's projects: {}",
                    outcome.detail.unwrap_or_default()
                );
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn incremental(
        &self,
        run: SyncRunId,
        since: OffsetDateTime,
        ado_audit: &Mutex<Vec<AuditDraft>>,
        progress: &dyn SyncProgress,
    ) -> Result<Vec<KindOutcome>> {
        use ResourceKind as K;
        let mut outcomes = Vec::new();

        // 1. The audit log says which configuration kinds changed, and where.
        let audit_hits: Mutex<Vec<(String, Option<String>)>> = Mutex::new(Vec::new());
        let collect_audit = |item: &InventoryItem| {
            if let Some(draft) = ado_audit_draft(&item.raw) {
                lock(ado_audit).push(draft);
            }
            if let Ok(entry) = serde_json::from_str::<AuditLogEntry>(&item.raw) {
                let project = entry.project_id.filter(|p| !p.is_empty());
                lock(&audit_hits).push((entry.action_id.unwrap_or_default(), project));
            }
        };
        let audit_request = ListRequest::organization(K::AuditLog).since(Some(since));
        let audit = self
            .sync_kind(
                run,
                K::AuditLog,
                vec![audit_request],
                Replace::upsert_only(),
                &[],
                Some(&collect_audit),
                progress,
            )
            .await?;
        let audit_available = audit.status == KindStatus::Synced;
        outcomes.push(audit);
        let mut changed: HashMap<ResourceKind, BTreeSet<Option<String>>> = HashMap::new();
        for (action, project) in lock(&audit_hits).drain(..) {
            for kind in tollgate_ado::audit_actions::kinds_changed_by(&action) {
                changed.entry(*kind).or_default().insert(project.clone());
            }
        }
        // Events are hints on top of the audit log: if they cannot be read, the sync still
        // does everything the audit log asks, and the next full sync catches the rest.
        let hints = match &self.hints {
            None => ChangeHints::default(),
            Some(source) => source.hints_since(since).await.unwrap_or_else(|error| {
                tracing::warn!(tenant = %self.tenant, error = %format!("{error:#}"),
                    "reading the service-hook events for this sync failed; syncing without them");
                ChangeHints::default()
            }),
        };
        for (kind, projects) in &hints.kinds {
            let entry = changed.entry(*kind).or_default();
            entry.extend(projects.iter().cloned());
        }

        // 2. Projects: always re-listed; new ones are synced in full, removed ones dropped.
        let projects_before = self.ado_ids(K::Projects).await?;
        let projects = self.requests_for(K::Projects, None).await?;
        let outcome = self
            .sync_kind(
                run,
                K::Projects,
                projects,
                Replace::all(),
                &[],
                None,
                progress,
            )
            .await?;
        if outcome.status != KindStatus::Synced {
            bail!(
                "cannot list the organisation's projects: {}",
                outcome.detail.unwrap_or_default()
            );
        }
        outcomes.push(outcome);
        let projects_now = self.ado_ids(K::Projects).await?;
        let new_projects: BTreeSet<String> =
            projects_now.difference(&projects_before).cloned().collect();
        let removed_projects: Vec<String> =
            projects_before.difference(&projects_now).cloned().collect();
        if !removed_projects.is_empty() {
            let drop_removed = Replace {
                projects: removed_projects,
                ..Replace::default()
            };
            for kind in ResourceKind::ALL
                .iter()
                .filter(|k| !matches!(k.scope_level(), ScopeLevel::Organization))
            {
                self.store
                    .commit_kind(&self.tenant, run, *kind, &drop_removed, &[])
                    .await?;
            }
        }
        let changed_in = |kind: ResourceKind| -> BTreeSet<String> {
            if !audit_available {
                return projects_now.clone();
            }
            let hits = changed.get(&kind);
            let everywhere = hits.is_some_and(|h| h.contains(&None));
            let mut projects: BTreeSet<String> = if everywhere {
                projects_now.clone()
            } else {
                hits.map(|h| {
                    h.iter()
                        .flatten()
                        .filter(|p| projects_now.contains(*p))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
            };
            projects.extend(new_projects.iter().cloned());
            projects
        };

        // 3. Organisation-level configuration.
        if !audit_available || changed.contains_key(&K::AgentPools) {
            let pools = self.requests_for(K::AgentPools, None).await?;
            outcomes.push(
                self.sync_kind(
                    run,
                    K::AgentPools,
                    pools,
                    Replace::all(),
                    &[],
                    None,
                    progress,
                )
                .await?,
            );
        } else {
            outcomes.push(unchanged(K::AgentPools));
        }

        let parent_kinds = [K::Repositories, K::Pipelines, K::Environments];
        let mut parents_before: HashMap<ResourceKind, Vec<StoredKey>> = HashMap::new();
        for parent in parent_kinds {
            parents_before.insert(parent, self.store.keys(&self.tenant, parent, None).await?);
        }

        // 4. Project-level kinds.
        let new_builds: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
        let collect_builds = |item: &InventoryItem| {
            let Ok(build) = serde_json::from_str::<Build>(&item.raw) else {
                return;
            };
            let queued = build
                .queue_time
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
            // Re-listed projects return old builds too; only builds queued since the
            // watermark can have added runs or deployment records.
            if queued.is_some_and(|queued| queued >= since)
                && let Some(definition) = build.definition.and_then(|d| d.id)
            {
                lock(&new_builds).insert((item.project.clone(), definition.0));
            }
        };
        for kind in ResourceKind::ALL
            .iter()
            .copied()
            .filter(|k| k.scope_level() == ScopeLevel::Project)
        {
            match kind {
                K::PullRequests => {
                    let requests = self.requests_for(kind, Some(&projects_now)).await?;
                    let replace = Replace {
                        scopes: projects_now.iter().cloned().collect(),
                        ..Replace::default()
                    };
                    outcomes.push(
                        self.sync_kind(run, kind, requests, replace, &[], None, progress)
                            .await?,
                    );
                }
                K::Builds | K::WorkItems => {
                    let relist = changed_in(kind)
                        .into_iter()
                        .filter(|p| kind == K::Builds || new_projects.contains(p))
                        .collect::<BTreeSet<_>>();
                    let delta: BTreeSet<String> =
                        projects_now.difference(&relist).cloned().collect();
                    let inspect: Inspect<'_> = if kind == K::Builds {
                        Some(&collect_builds)
                    } else {
                        None
                    };
                    if !relist.is_empty() {
                        let requests = self.requests_for(kind, Some(&relist)).await?;
                        let replace = Replace {
                            scopes: relist.iter().cloned().collect(),
                            ..Replace::default()
                        };
                        outcomes.push(
                            self.sync_kind(run, kind, requests, replace, &[], inspect, progress)
                                .await?,
                        );
                    }
                    let requests = self
                        .requests_for(kind, Some(&delta))
                        .await?
                        .into_iter()
                        .map(|r| r.since(Some(since)))
                        .collect();
                    outcomes.push(
                        self.sync_kind(
                            run,
                            kind,
                            requests,
                            Replace::upsert_only(),
                            &[],
                            inspect,
                            progress,
                        )
                        .await?,
                    );
                    if kind == K::WorkItems {
                        outcomes.push(self.drop_deleted_work_items(run, &delta, progress).await?);
                    }
                }
                _ => {
                    let projects = changed_in(kind);
                    if projects.is_empty() {
                        outcomes.push(unchanged(kind));
                        continue;
                    }
                    let requests = self.requests_for(kind, Some(&projects)).await?;
                    let replace = Replace {
                        scopes: projects.into_iter().collect(),
                        ..Replace::default()
                    };
                    outcomes.push(
                        self.sync_kind(run, kind, requests, replace, &[], None, progress)
                            .await?,
                    );
                }
            }
        }

        // 5. Children of repositories, pipelines and environments.
        let projects_with_builds: BTreeSet<String> = lock(&new_builds)
            .iter()
            .map(|(project, _)| project.clone())
            .collect();
        let pipelines_with_builds: BTreeSet<String> = lock(&new_builds)
            .iter()
            .map(|(project, definition)| InventoryItem::key_for(project, definition))
            .collect();
        for kind in ResourceKind::ALL.iter().copied() {
            let ScopeLevel::Parent(parent_kind) = kind.scope_level() else {
                continue;
            };
            let before: BTreeSet<String> = parents_before
                .get(&parent_kind)
                .map(|keys| keys.iter().map(|k| k.key.clone()).collect())
                .unwrap_or_default();
            let now = self.store.keys(&self.tenant, parent_kind, None).await?;
            let now_keys: BTreeSet<&str> = now.iter().map(|k| k.key.as_str()).collect();
            let vanished: Vec<String> = parents_before
                .get(&parent_kind)
                .map(|keys| {
                    keys.iter()
                        .filter(|k| !now_keys.contains(k.key.as_str()))
                        .map(|k| k.ado_id.clone())
                        .collect()
                })
                .unwrap_or_default();
            let relist: Vec<&StoredKey> = now
                .iter()
                .filter(|parent| {
                    !before.contains(&parent.key)
                        || (kind == K::Refs && hints.pushed_repositories.contains(&parent.ado_id))
                        || (kind == K::PipelineRuns && pipelines_with_builds.contains(&parent.key))
                        || (kind == K::EnvironmentDeployments
                            && projects_with_builds.contains(&parent.project))
                })
                .collect();
            let requests: Vec<ListRequest> = relist
                .iter()
                .map(|p| ListRequest::child(kind, &p.project, &p.ado_id))
                .collect();
            let mut scopes: Vec<String> = relist.iter().map(|p| p.ado_id.clone()).collect();
            scopes.extend(vanished);
            if requests.is_empty() && scopes.is_empty() && kind != K::Alerts {
                outcomes.push(unchanged(kind));
                continue;
            }
            let replace = Replace {
                scopes,
                ..Replace::default()
            };
            outcomes.push(
                self.sync_kind(run, kind, requests, replace, &[], None, progress)
                    .await?,
            );
            if kind == K::Alerts {
                let relisted: BTreeSet<&str> = relist.iter().map(|p| p.key.as_str()).collect();
                let delta: Vec<ListRequest> = now
                    .iter()
                    .filter(|p| !relisted.contains(p.key.as_str()))
                    .map(|p| ListRequest::child(kind, &p.project, &p.ado_id).since(Some(since)))
                    .collect();
                outcomes.push(
                    self.sync_kind(
                        run,
                        kind,
                        delta,
                        Replace::upsert_only(),
                        &[],
                        None,
                        progress,
                    )
                    .await?,
                );
            }
        }
        Ok(outcomes)
    }

    /// Work items deleted in ADO leave no audit entry: compare ADO's ids with ours.
    async fn drop_deleted_work_items(
        &self,
        run: SyncRunId,
        projects: &BTreeSet<String>,
        progress: &dyn SyncProgress,
    ) -> Result<KindOutcome> {
        let kind = ResourceKind::WorkItems;
        let started = Instant::now();
        let mut deleted = Vec::new();
        for project in projects {
            let in_ado: BTreeSet<String> = match self.ado.work_item_ids(project).await {
                Ok(ids) => ids.into_iter().map(|id| id.to_string()).collect(),
                Err(error) if error.is_not_found() => BTreeSet::new(),
                Err(error) => {
                    let outcome = failed(kind, &error, started);
                    progress.kind_finished(&outcome);
                    return Ok(outcome);
                }
            };
            for stored in self.store.keys(&self.tenant, kind, Some(project)).await? {
                if !in_ado.contains(&stored.ado_id) {
                    deleted.push(stored.key);
                }
            }
        }
        let stored = self
            .store
            .commit_kind(
                &self.tenant,
                run,
                kind,
                &Replace {
                    keys: deleted,
                    ..Replace::default()
                },
                &[],
            )
            .await?;
        Ok(KindOutcome {
            kind,
            status: KindStatus::Synced,
            scopes: projects.len() as u64,
            pages: 0,
            fetched: 0,
            stored,
            duration_ms: started.elapsed().as_millis() as u64,
            detail: None,
        })
    }

    /// Project ids in the store.
    async fn ado_ids(&self, kind: ResourceKind) -> Result<BTreeSet<String>> {
        Ok(self
            .store
            .keys(&self.tenant, kind, None)
            .await?
            .into_iter()
            .map(|k| k.ado_id)
            .collect())
    }

    /// The list requests covering a kind: the organisation, each project, or each parent.
    async fn requests_for(
        &self,
        kind: ResourceKind,
        projects: Option<&BTreeSet<String>>,
    ) -> Result<Vec<ListRequest>> {
        let in_scope = |project: &str| projects.is_none_or(|p| p.contains(project));
        Ok(match kind.scope_level() {
            ScopeLevel::Organization => vec![ListRequest::organization(kind)],
            ScopeLevel::Project => self
                .ado_ids(ResourceKind::Projects)
                .await?
                .into_iter()
                .filter(|p| in_scope(p))
                .map(|p| ListRequest::project(kind, &p))
                .collect(),
            ScopeLevel::Parent(parent) => self
                .store
                .keys(&self.tenant, parent, None)
                .await?
                .into_iter()
                .filter(|k| in_scope(&k.project))
                .map(|k| ListRequest::child(kind, &k.project, &k.ado_id))
                .collect(),
        })
    }

    /// List a kind across scopes (concurrently), stage every page, then commit or discard.
    #[allow(clippy::too_many_arguments)]
    async fn sync_kind(
        &self,
        run: SyncRunId,
        kind: ResourceKind,
        requests: Vec<ListRequest>,
        mut replace: Replace,
        watermarks: &[(String, String)],
        inspect: Inspect<'_>,
        progress: &dyn SyncProgress,
    ) -> Result<KindOutcome> {
        let started = Instant::now();
        progress.kind_started(kind, requests.len());
        let fetched = self
            .fetch_all(run, kind, requests, inspect, progress)
            .await?;
        let mut outcome = fetched.outcome;
        if outcome.status == KindStatus::Synced {
            replace.scopes.extend(fetched.vanished);
            outcome.stored = self
                .store
                .commit_kind(&self.tenant, run, kind, &replace, watermarks)
                .await
                .with_context(|| format!("storing {kind}"))?;
        } else {
            self.store.discard_staged(&self.tenant, run, kind).await?;
            outcome.stored = self
                .store
                .counts(&self.tenant)
                .await?
                .get(&kind)
                .copied()
                .unwrap_or(0);
        }
        outcome.duration_ms = started.elapsed().as_millis() as u64;
        progress.kind_finished(&outcome);
        Ok(outcome)
    }

    async fn fetch_all(
        &self,
        run: SyncRunId,
        kind: ResourceKind,
        requests: Vec<ListRequest>,
        inspect: Inspect<'_>,
        progress: &dyn SyncProgress,
    ) -> Result<Fetched> {
        let started = Instant::now();
        let scopes = requests.len() as u64;
        let results: Vec<(ListRequest, Result<ScopeFetch, ScopeError>)> = stream::iter(requests)
            .map(|request| async move {
                let result = self.fetch_scope(run, &request, inspect, progress).await;
                (request, result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut outcome = KindOutcome {
            kind,
            status: KindStatus::Synced,
            scopes,
            pages: 0,
            fetched: 0,
            stored: 0,
            duration_ms: 0,
            detail: None,
        };
        let mut vanished = Vec::new();
        let mut first_failure: Option<AdoError> = None;
        for (request, result) in results {
            match result {
                Ok(fetch) => {
                    outcome.pages += fetch.pages;
                    outcome.fetched += fetch.items;
                }
                Err(ScopeError::Store(error)) => {
                    return Err(error).with_context(|| format!("staging {kind}"));
                }
                // The project or parent was deleted while we listed: nothing of it remains.
                Err(ScopeError::Ado(error))
                    if error.is_not_found() && request.project.is_some() =>
                {
                    vanished.push(request.scope())
                }
                Err(ScopeError::Ado(error)) => {
                    if first_failure
                        .as_ref()
                        .is_none_or(|f| !f.is_permission_denied() && error.is_permission_denied())
                    {
                        first_failure = Some(error);
                    }
                }
            }
        }
        if let Some(error) = first_failure {
            outcome = KindOutcome {
                duration_ms: started.elapsed().as_millis() as u64,
                ..failed(kind, &error, started)
            };
            outcome.scopes = scopes;
        }
        Ok(Fetched { outcome, vanished })
    }

    async fn fetch_scope(
        &self,
        run: SyncRunId,
        request: &ListRequest,
        inspect: Inspect<'_>,
        progress: &dyn SyncProgress,
    ) -> Result<ScopeFetch, ScopeError> {
        let mut fetched = ScopeFetch::default();
        let mut cursor = None;
        loop {
            let page = self
                .ado
                .list_page(request, cursor)
                .await
                .map_err(ScopeError::Ado)?;
            if let Some(inspect) = inspect {
                page.items.iter().for_each(inspect);
            }
            self.store
                .stage(&self.tenant, run, &page.items)
                .await
                .map_err(ScopeError::Store)?;
            fetched.pages += 1;
            fetched.items += page.items.len() as u64;
            progress.page_stored(request.kind, page.items.len());
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(fetched),
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unchanged(kind: ResourceKind) -> KindOutcome {
    KindOutcome {
        kind,
        status: KindStatus::Unchanged,
        scopes: 0,
        pages: 0,
        fetched: 0,
        stored: 0,
        duration_ms: 0,
        detail: None,
    }
}

fn failed(kind: ResourceKind, error: &AdoError, started: Instant) -> KindOutcome {
    let status = if error.is_permission_denied() {
        KindStatus::Skipped
    } else {
        KindStatus::Failed
    };
    KindOutcome {
        kind,
        status,
        scopes: 0,
        pages: 0,
        fetched: 0,
        stored: 0,
        duration_ms: started.elapsed().as_millis() as u64,
        detail: Some(error.to_string()),
    }
}

/// One outcome per kind, in catalogue order: an incremental sync may touch a kind twice
/// (a re-list in some projects and a delta in the others).
fn merge_outcomes(outcomes: Vec<KindOutcome>) -> Vec<KindOutcome> {
    let mut merged: BTreeMap<usize, KindOutcome> = BTreeMap::new();
    for outcome in outcomes {
        let position = ResourceKind::ALL
            .iter()
            .position(|k| *k == outcome.kind)
            .unwrap_or(usize::MAX);
        match merged.get_mut(&position) {
            None => {
                merged.insert(position, outcome);
            }
            Some(existing) => {
                let rank = |s: KindStatus| match s {
                    KindStatus::Unchanged => 0,
                    KindStatus::Synced => 1,
                    KindStatus::Skipped => 2,
                    KindStatus::Failed => 3,
                };
                if rank(outcome.status) > rank(existing.status) {
                    existing.status = outcome.status;
                    existing.detail = outcome.detail.clone();
                }
                existing.scopes += outcome.scopes;
                existing.pages += outcome.pages;
                existing.fetched += outcome.fetched;
                existing.duration_ms += outcome.duration_ms;
            }
        }
    }
    merged.into_values().collect()
}
