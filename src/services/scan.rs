//! Evaluate the control catalog over the stored inventory and keep findings current.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::{InventoryItem, ResourceKind, SyncRunId, TenantId};
use tollgate_policy::{ControlMeta, Evaluator, InputParts, PolicySet, Severity};
use tollgate_store::{
    Coverage, FindingStatus, FindingStore, InventoryChange, InventoryStore, LifecycleCounts,
    Observation, SyncMode,
};

use crate::services::bypass::GateWatch;
use crate::services::facts::{Dependent, FactScope, Facts, StoredJson, dependents, for_each_item};
use crate::services::settings::{Action, Placement, PolicySettings, ScopedSetting};

/// Which controls run, how their findings act and with which parameters (configuration).
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub scoped: Vec<ScopedSetting>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReportFinding {
    pub control: String,
    pub title: String,
    pub severity: Severity,
    /// deny, warn or dry-run (configured per scope).
    pub action: String,
    pub status: FindingStatus,
    pub resource_kind: ResourceKind,
    pub resource_key: String,
    pub resource_name: Option<String>,
    pub project: String,
    pub message: String,
    pub evidence: Value,
    pub remediation: String,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct NotEvaluated {
    pub control: String,
    pub title: String,
    pub kind: ResourceKind,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ControlSummary {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub kind: ResourceKind,
    pub description: String,
    pub remediation: String,
    pub frameworks: Vec<String>,
    pub findings: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScanReport {
    pub tenant: String,
    pub scanned_at: String,
    pub duration_ms: u64,
    pub controls_evaluated: usize,
    pub resources_evaluated: u64,
    /// Whether everything was judged or only what changed, and why.
    pub evaluation: EvaluationScope,
    /// Active (open or reopened) findings per severity.
    pub by_severity: BTreeMap<Severity, u64>,
    pub lifecycle: LifecycleCounts,
    /// Active findings, most severe first.
    pub findings: Vec<ReportFinding>,
    /// Findings covered by a waiver.
    pub waived: Vec<ReportFinding>,
    /// Findings of controls in dry-run: reported, never counted.
    pub dry_run: Vec<ReportFinding>,
    pub not_evaluated: Vec<NotEvaluated>,
    /// Policy files that could not be loaded (file:line: reason).
    pub load_problems: Vec<String>,
    pub controls: Vec<ControlSummary>,
    /// The process's peak resident memory, when the command line reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_kib: Option<u64>,
}

impl ScanReport {
    /// The most severe active finding whose action is deny, for `--fail-on`.
    pub fn worst(&self) -> Option<Severity> {
        self.findings
            .iter()
            .filter(|f| f.action == "deny")
            .map(|f| f.severity)
            .max()
    }
}

/// What a scan is asked to judge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Evaluation {
    /// Only what incremental syncs changed since the last evaluation (and what depends on
    /// it), whenever that gives the same findings as judging everything; else everything.
    #[default]
    Auto,
    /// Every resource.
    All,
}

/// How much a scan judged, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct EvaluationScope {
    /// `all` or `changed`.
    pub mode: &'static str,
    pub reason: String,
    /// For `changed`: how many inventory changes were consumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<u64>,
}

/// The outcome of judging, before the report is assembled.
pub struct Evaluated {
    pub scanned_at: String,
    pub controls_evaluated: usize,
    pub resources_evaluated: u64,
    pub lifecycle: LifecycleCounts,
    pub not_evaluated: Vec<NotEvaluated>,
    pub evaluation: EvaluationScope,
}

enum Plan {
    All {
        /// The newest finished sync whose state is judged.
        through: Option<SyncRunId>,
        reason: String,
    },
    Changed {
        through: SyncRunId,
        changes: u64,
        targets: BTreeSet<Dependent>,
        /// Keys deleted since the last evaluation: their findings are fixed.
        deleted: BTreeSet<String>,
    },
}

/// Clock-dependent controls (SLAs, staleness) are judged again at least this often, since
/// a changed-only evaluation sees a resource only when it changes.
const FULL_EVALUATION_INTERVAL: time::Duration = time::Duration::hours(24);
const WATERMARK_EVALUATED_RUN: &str = "scan.evaluated_run";
const WATERMARK_FINGERPRINT: &str = "scan.fingerprint";
const WATERMARK_FULL_AT: &str = "scan.full_evaluation_at";
/// Items read and judged per page.
const PAGE: u32 = 1_000;

pub struct ScanService {
    store: Arc<dyn InventoryStore>,
    findings: Arc<dyn FindingStore>,
    policies: Arc<PolicySet>,
    load_problems: Vec<String>,
    tenant: TenantId,
    settings: Arc<PolicySettings>,
    /// The policies and their configuration: findings judged under another fingerprint
    /// are judged again in full.
    fingerprint: String,
    scoped: Vec<ScopedSetting>,
    /// Where deployment records are matched with the gate's decisions (GATE-10).
    gate_watch: Option<GateWatch>,
}

impl ScanService {
    pub fn new(
        store: Arc<dyn InventoryStore>,
        findings: Arc<dyn FindingStore>,
        policies: Arc<PolicySet>,
        load_problems: Vec<String>,
        tenant: TenantId,
        options: ScanOptions,
    ) -> Result<Self> {
        let ids: Vec<String> = policies.controls().iter().map(|c| c.id.clone()).collect();
        let settings = Arc::new(
            PolicySettings::new(&options.scoped, &ids)
                .context("[[policy.scoped]] configuration")?,
        );
        let configured =
            serde_json::to_string(&options.scoped).context("fingerprinting settings")?;
        let fingerprint = format!(
            "{}-{}",
            policies.fingerprint(),
            tollgate_policy::stable_digest(configured.as_bytes())
        );
        Ok(Self {
            store,
            findings,
            policies,
            load_problems,
            tenant,
            settings,
            fingerprint,
            scoped: options.scoped,
            gate_watch: None,
        })
    }

    /// Judge deployment records against the gate's decisions (GATE-10). What the gate is
    /// expected to judge is part of the fingerprint: changing it judges everything again.
    pub fn with_gate_watch(mut self, watch: GateWatch) -> Self {
        self.fingerprint = format!(
            "{}-{}",
            self.fingerprint,
            tollgate_policy::stable_digest(watch.fingerprint().as_bytes())
        );
        self.gate_watch = Some(watch);
        self
    }

    /// The `related` facts of a scope, with the gate's decisions when they are watched.
    async fn facts(&self, now: OffsetDateTime, scope: FactScope<'_>) -> Result<Facts> {
        let facts = Facts::load(self.store.as_ref(), &self.tenant, now, scope).await?;
        let gate = match &self.gate_watch {
            Some(watch) => Some(
                watch
                    .load(&self.tenant)
                    .await
                    .context("reading the gate's decisions")?,
            ),
            None => None,
        };
        Ok(facts.with_gate(gate))
    }

    /// The configured actions and parameters per scope.
    pub fn scoped_settings(&self) -> &[ScopedSetting] {
        &self.scoped
    }

    /// Policy files that failed to load (`file:line: reason`).
    pub fn load_problems(&self) -> &[String] {
        &self.load_problems
    }

    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    fn active_controls(&self) -> Vec<&ControlMeta> {
        self.policies.controls().iter().collect()
    }

    /// Evaluate and update the findings, then report every active finding.
    pub async fn scan(&self, now: OffsetDateTime, requested: Evaluation) -> Result<ScanReport> {
        let started = Instant::now();
        let evaluated = self.evaluate(now, requested).await?;
        self.report(evaluated, started).await
    }

    /// Decide what to judge: everything, or only what incremental syncs changed since the
    /// last evaluation (and what depends on it).
    async fn plan(&self, requested: Evaluation, now: OffsetDateTime) -> Result<Plan> {
        let evaluated_run = self
            .store
            .watermark(&self.tenant, WATERMARK_EVALUATED_RUN)
            .await?
            .and_then(|run| run.parse().ok())
            .map(SyncRunId);
        let runs = self.store.syncs_since(&self.tenant, evaluated_run).await?;
        // Stop before a sync that is still running: its changes are not all recorded yet.
        let through = runs
            .iter()
            .take_while(|run| run.finished_at.is_some())
            .map(|run| run.id)
            .last()
            .or(evaluated_run);
        let all = |reason: &str| Plan::All {
            through,
            reason: reason.to_owned(),
        };
        if requested == Evaluation::All {
            return Ok(all("requested"));
        }
        let Some(evaluated_run) = evaluated_run else {
            return Ok(all("no earlier evaluation"));
        };
        let fingerprint = self
            .store
            .watermark(&self.tenant, WATERMARK_FINGERPRINT)
            .await?;
        if fingerprint.as_deref() != Some(self.fingerprint_at(now).await?.as_str()) {
            return Ok(all(
                "policies, their configuration or the active waivers changed",
            ));
        }
        let full_at = self
            .store
            .watermark(&self.tenant, WATERMARK_FULL_AT)
            .await?
            .and_then(|at| OffsetDateTime::parse(&at, &Rfc3339).ok());
        if full_at.is_none_or(|at| now - at > FULL_EVALUATION_INTERVAL) {
            return Ok(all(
                "the last full evaluation is over 24 h old (clock-dependent controls are judged again)",
            ));
        }
        let Some(through) = through else {
            return Ok(all("no inventory"));
        };
        if runs
            .iter()
            .any(|run| run.id <= through && run.mode == SyncMode::Full)
        {
            return Ok(all("a full sync ran since the last evaluation"));
        }
        let changes: Vec<InventoryChange> = self
            .store
            .changes_since(&self.tenant, evaluated_run)
            .await?
            .into_iter()
            .filter(|change| change.run <= through)
            .collect();
        let mut deleted: BTreeSet<String> = BTreeSet::new();
        let mut targets: BTreeSet<Dependent> = BTreeSet::new();
        for change in &changes {
            if change.deleted {
                deleted.insert(change.key.clone());
            } else {
                targets.insert(Dependent::Key(change.kind, change.key.clone()));
            }
            targets.extend(dependents(change));
        }
        Ok(Plan::Changed {
            through,
            changes: changes.len() as u64,
            targets,
            deleted,
        })
    }

    /// Judge what the plan names and apply the observations to the findings.
    pub async fn evaluate(&self, now: OffsetDateTime, requested: Evaluation) -> Result<Evaluated> {
        let now_text = now.format(&Rfc3339).context("formatting the clock")?;
        let plan = self.plan(requested, now).await?;
        let controls = self.active_controls();
        let kinds: BTreeSet<ResourceKind> = controls.iter().map(|c| c.kind).collect();
        let meta: BTreeMap<&str, &ControlMeta> =
            controls.iter().map(|c| (c.id.as_str(), *c)).collect();

        // The items to judge, a kind at a time; for a changed-only plan, gathered up front.
        let mut chosen: BTreeMap<ResourceKind, Vec<InventoryItem>> = BTreeMap::new();
        let mut projects: BTreeSet<String> = BTreeSet::new();
        if let Plan::Changed { targets, .. } = &plan {
            let mut keys: BTreeMap<ResourceKind, Vec<String>> = BTreeMap::new();
            for target in targets {
                match target {
                    Dependent::Key(kind, key) if kinds.contains(kind) => {
                        keys.entry(*kind).or_default().push(key.clone());
                    }
                    Dependent::ProjectKind(kind, project) if kinds.contains(kind) => {
                        let mut after: Option<String> = None;
                        loop {
                            let page = self
                                .store
                                .project_items(&self.tenant, *kind, project, after.as_deref(), PAGE)
                                .await?;
                            let Some(last) = page.last() else { break };
                            after = Some(last.key.clone());
                            chosen.entry(*kind).or_default().extend(page);
                        }
                    }
                    _ => {}
                }
            }
            for (kind, keys) in keys {
                let found = self.store.items_by_keys(&self.tenant, kind, &keys).await?;
                chosen.entry(kind).or_default().extend(found);
            }
            for items in chosen.values_mut() {
                items.sort_by(|a, b| a.key.cmp(&b.key));
                items.dedup_by(|a, b| a.key == b.key);
                for item in items.iter() {
                    projects.insert(item.project.clone());
                    if item.kind == ResourceKind::Projects {
                        projects.insert(item.key.clone());
                    }
                }
            }
        }
        let judging: BTreeSet<ResourceKind> = chosen.keys().copied().collect();
        let fact_scope = match &plan {
            Plan::All { .. } => FactScope::All,
            Plan::Changed { .. } => FactScope::Projects {
                projects: &projects,
                judging: &judging,
            },
        };
        let started = Instant::now();
        let facts = Arc::new(self.facts(now, fact_scope).await?);
        tracing::debug!(tenant = %self.tenant, elapsed_ms = started.elapsed().as_millis(), "facts loaded");
        let started = Instant::now();

        let mut observations = Vec::new();
        let mut failures: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let mut resources = 0u64;
        let mut evaluated_keys: Vec<String> = Vec::new();
        for kind in &kinds {
            let defaults = Arc::new(self.control_defaults(*kind));
            let mut listed = chosen.remove(kind).unwrap_or_default().into_iter();
            let mut after: Option<String> = None;
            // While one page is evaluated on the blocking pool the next is read, so the cores
            // are not idle while the store answers.
            let mut page = self
                .next_page(&plan, *kind, &mut listed, &mut after)
                .await?;
            while !page.is_empty() {
                resources += page.len() as u64;
                if let Plan::Changed { .. } = &plan {
                    evaluated_keys.extend(page.iter().map(|item| item.key.clone()));
                }
                let context = PageContext {
                    policies: self.policies.clone(),
                    facts: facts.clone(),
                    settings: self.settings.clone(),
                    defaults: defaults.clone(),
                    now: now_text.clone(),
                };
                let evaluating = tokio::task::spawn_blocking(move || evaluate_page(&context, page));
                let next = self.next_page(&plan, *kind, &mut listed, &mut after).await;
                let evaluated = evaluating.await.context("evaluation task")??;
                page = next?;
                for (control, (count, first)) in evaluated.errors {
                    let entry = failures.entry(control).or_insert((0, first));
                    entry.0 += count;
                }
                observations.extend(evaluated.violations.into_iter().filter_map(
                    |(item, violation, action)| {
                        let control = meta.get(violation.control.as_str())?;
                        Some(Observation {
                            control: violation.control,
                            resource_kind: item.kind,
                            resource_key: item.key,
                            resource_name: item.name,
                            project: item.project,
                            severity: control.severity.as_str().to_owned(),
                            action: action.as_str().to_owned(),
                            message: violation.message,
                            evidence: violation.evidence,
                        })
                    },
                ));
            }
        }
        tracing::debug!(tenant = %self.tenant, resources, elapsed_ms = started.elapsed().as_millis(), "resources judged");
        let observations = merge_repeats(observations);
        let mut not_evaluated = self.not_evaluated(&controls).await?;
        // A control that failed on some resources is reported, and its earlier findings are
        // left alone rather than marked fixed by a run that could not judge them.
        for (control, (count, first)) in failures {
            let Some(meta) = meta.get(control.as_str()) else {
                continue;
            };
            not_evaluated.push(NotEvaluated {
                control: control.clone(),
                title: meta.title.clone(),
                kind: meta.kind,
                reason: format!("evaluation failed on {count} resource(s); first: {first}"),
            });
        }
        let skipped: BTreeSet<&str> = not_evaluated.iter().map(|n| n.control.as_str()).collect();
        let keys = match &plan {
            Plan::All { .. } => None,
            Plan::Changed { deleted, .. } => {
                evaluated_keys.extend(deleted.iter().cloned());
                Some(evaluated_keys)
            }
        };
        let coverage = Coverage {
            controls: controls
                .iter()
                .filter(|c| !skipped.contains(c.id.as_str()))
                .map(|c| c.id.clone())
                .collect(),
            kinds: kinds.iter().copied().collect(),
            keys,
        };
        let lifecycle = self
            .findings
            .apply_observations(
                &self.tenant,
                &observations,
                &coverage,
                now,
                &|transitions, counts| {
                    evaluation_records(transitions, counts, observations.len(), now)
                },
            )
            .await?;
        self.record_evaluation(&plan, now, &now_text).await?;
        let scope = match plan {
            Plan::All { reason, .. } => EvaluationScope {
                mode: "all",
                reason,
                changes: None,
            },
            Plan::Changed { changes, .. } => EvaluationScope {
                mode: "changed",
                reason: "only what incremental syncs changed, and what depends on it".to_owned(),
                changes: Some(changes),
            },
        };
        Ok(Evaluated {
            scanned_at: now_text,
            controls_evaluated: controls.len(),
            resources_evaluated: resources,
            lifecycle,
            not_evaluated,
            evaluation: scope,
        })
    }

    /// The next page of a kind to judge: from the store for a full evaluation, from the items
    /// gathered up front for a changed-only one. Empty when the kind is done.
    async fn next_page(
        &self,
        plan: &Plan,
        kind: ResourceKind,
        listed: &mut std::vec::IntoIter<InventoryItem>,
        after: &mut Option<String>,
    ) -> Result<Vec<InventoryItem>> {
        let page: Vec<InventoryItem> = match plan {
            Plan::All { .. } => {
                self.store
                    .items(&self.tenant, kind, after.as_deref(), PAGE)
                    .await?
            }
            Plan::Changed { .. } => listed.by_ref().take(PAGE as usize).collect(),
        };
        if let Some(last) = page.last() {
            *after = Some(last.key.clone());
        }
        Ok(page)
    }

    /// Visit the policy input of every resource a full evaluation would judge, as it would
    /// judge it (for benchmarks and for inspecting what a control sees).
    pub async fn for_each_input(
        &self,
        now: OffsetDateTime,
        mut visit: impl FnMut(&Value),
    ) -> Result<()> {
        let now_text = now.format(&Rfc3339).context("formatting the clock")?;
        let facts = Arc::new(self.facts(now, FactScope::All).await?);
        let kinds: BTreeSet<ResourceKind> = self.active_controls().iter().map(|c| c.kind).collect();
        for kind in kinds {
            let context = PageContext {
                policies: self.policies.clone(),
                facts: facts.clone(),
                settings: self.settings.clone(),
                defaults: Arc::new(self.control_defaults(kind)),
                now: now_text.clone(),
            };
            let mut resolutions = Resolutions::new();
            for_each_item(self.store.as_ref(), &self.tenant, kind, |item| {
                if let Some((mut input, resolution)) = context.input(&item, &mut resolutions) {
                    input["resource"] = StoredJson::new(&item.raw).value().clone();
                    input["params"] = resolution.params.clone();
                    visit(&input);
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Each control of a kind with its default parameters.
    fn control_defaults(&self, kind: ResourceKind) -> Vec<(String, Map<String, Value>)> {
        self.policies
            .controls_for(kind)
            .map(|c| {
                (
                    c.id.clone(),
                    c.parameters
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            })
            .collect()
    }

    /// The rules findings are judged under: the policy set, its configuration and the
    /// waivers active at `now` (a waiver added, removed or expired changes findings without
    /// any inventory change).
    async fn fingerprint_at(&self, now: OffsetDateTime) -> Result<String> {
        let mut active: Vec<String> = self
            .findings
            .waivers(&self.tenant)
            .await?
            .iter()
            .filter(|waiver| waiver.expires_at > now)
            .map(|waiver| format!("{}:{}", waiver.id, waiver.expires_at.unix_timestamp()))
            .collect();
        active.sort();
        Ok(format!(
            "{}-{}",
            self.fingerprint,
            tollgate_policy::stable_digest(active.join(",").as_bytes())
        ))
    }

    /// Remember what has been judged, under which rules, and forget the consumed changes.
    async fn record_evaluation(
        &self,
        plan: &Plan,
        now: OffsetDateTime,
        now_text: &str,
    ) -> Result<()> {
        let through = match plan {
            Plan::All { through, .. } => *through,
            Plan::Changed { through, .. } => Some(*through),
        };
        let Some(through) = through else {
            return Ok(());
        };
        self.store
            .set_watermark(
                &self.tenant,
                WATERMARK_EVALUATED_RUN,
                &through.0.to_string(),
            )
            .await?;
        let fingerprint = self.fingerprint_at(now).await?;
        self.store
            .set_watermark(&self.tenant, WATERMARK_FINGERPRINT, &fingerprint)
            .await?;
        if let Plan::All { .. } = plan {
            self.store
                .set_watermark(&self.tenant, WATERMARK_FULL_AT, now_text)
                .await?;
        }
        self.store.prune_changes(&self.tenant, through).await?;
        Ok(())
    }

    /// Controls that could not run: their kind was not readable in the last sync.
    async fn not_evaluated(&self, controls: &[&ControlMeta]) -> Result<Vec<NotEvaluated>> {
        let last = self.store.last_successful_sync(&self.tenant).await?;
        let statuses: BTreeMap<String, (String, String)> = last
            .as_ref()
            .and_then(|sync| sync.summary.as_ref())
            .and_then(|summary| summary["kinds"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|k| {
                let kind = k["kind"].as_str().unwrap_or_default().to_owned();
                (
                    kind,
                    (
                        k["status"].as_str().unwrap_or_default().to_owned(),
                        k["detail"].as_str().unwrap_or_default().to_owned(),
                    ),
                )
            })
            .collect();
        Ok(controls
            .iter()
            .filter_map(|control| {
                let reason = match (&last, statuses.get(control.kind.as_str())) {
                    (None, _) => "no inventory: run `tollgate sync` first".to_owned(),
                    (Some(_), Some((status, detail))) if status == "skipped" => {
                        format!(
                            "missing permission to read {} ({}): {detail}",
                            control.kind, control.permission
                        )
                    }
                    (Some(_), Some((status, detail))) if status == "failed" => {
                        format!("{} could not be synced: {detail}", control.kind)
                    }
                    _ => return None,
                };
                Some(NotEvaluated {
                    control: control.id.clone(),
                    title: control.title.clone(),
                    kind: control.kind,
                    reason,
                })
            })
            .collect())
    }

    async fn report(&self, evaluated: Evaluated, started: Instant) -> Result<ScanReport> {
        let Evaluated {
            scanned_at,
            controls_evaluated,
            resources_evaluated,
            lifecycle,
            not_evaluated,
            evaluation,
        } = evaluated;
        let stored = self
            .findings
            .findings(
                &self.tenant,
                &[
                    FindingStatus::Open,
                    FindingStatus::Reopened,
                    FindingStatus::Waived,
                ],
            )
            .await?;
        let mut findings = Vec::new();
        let mut waived = Vec::new();
        let mut dry_run = Vec::new();
        let mut per_control: BTreeMap<String, u64> = BTreeMap::new();
        for finding in stored {
            let Some(control) = self.policies.control(&finding.control) else {
                continue;
            };
            let report = ReportFinding {
                control: finding.control.clone(),
                title: control.title.clone(),
                severity: control.severity,
                action: finding.action.clone(),
                status: finding.status,
                resource_kind: finding.resource_kind,
                resource_key: finding.resource_key.clone(),
                resource_name: finding.resource_name.clone(),
                project: finding.project.clone(),
                message: finding.message.clone(),
                evidence: finding.evidence.clone(),
                remediation: control.remediation.clone(),
                first_seen: finding.first_seen.format(&Rfc3339).unwrap_or_default(),
                last_seen: finding.last_seen.format(&Rfc3339).unwrap_or_default(),
            };
            if finding.status == FindingStatus::Waived {
                waived.push(report);
            } else if finding.action == Action::DryRun.as_str() {
                dry_run.push(report);
            } else {
                *per_control.entry(finding.control).or_default() += 1;
                findings.push(report);
            }
        }
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.control.cmp(&b.control))
                .then(a.resource_key.cmp(&b.resource_key))
        });
        let mut by_severity: BTreeMap<Severity, u64> =
            Severity::ALL.iter().map(|s| (*s, 0)).collect();
        for finding in &findings {
            *by_severity.entry(finding.severity).or_default() += 1;
        }
        let controls = self
            .policies
            .controls()
            .iter()
            .map(|c| ControlSummary {
                id: c.id.clone(),
                title: c.title.clone(),
                severity: c.severity,
                kind: c.kind,
                description: c.description.clone(),
                remediation: c.remediation.clone(),
                frameworks: c.frameworks.clone(),
                findings: per_control.get(&c.id).copied().unwrap_or(0),
            })
            .collect();
        Ok(ScanReport {
            tenant: self.tenant.to_string(),
            scanned_at,
            duration_ms: started.elapsed().as_millis() as u64,
            controls_evaluated,
            resources_evaluated,
            evaluation,
            by_severity,
            lifecycle,
            findings,
            waived,
            dry_run,
            not_evaluated,
            load_problems: self.load_problems.clone(),
            controls,
            peak_rss_kib: None,
        })
    }
}

/// A control that objects to one resource several times makes one finding: its messages
/// joined, its evidence `{"violations": [each violation's evidence]}`.
fn merge_repeats(observations: Vec<Observation>) -> Vec<Observation> {
    let mut grouped: BTreeMap<(String, String), Vec<Observation>> = BTreeMap::new();
    for observation in observations {
        grouped
            .entry((
                observation.control.clone(),
                observation.resource_key.clone(),
            ))
            .or_default()
            .push(observation);
    }
    grouped
        .into_values()
        .filter_map(|mut repeats| {
            if repeats.len() < 2 {
                return repeats.pop();
            }
            repeats.sort_by(|a, b| a.message.cmp(&b.message));
            let message = repeats
                .iter()
                .map(|o| o.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            let evidence: Vec<Value> = repeats.iter_mut().map(|o| o.evidence.take()).collect();
            let mut first = repeats.swap_remove(0);
            first.message = message;
            first.evidence = json!({ "violations": evidence });
            Some(first)
        })
        .collect()
}

/// What evaluating a page found: violations with their action, and per control the
/// resources it failed on.
#[derive(Default)]
struct PageOutcome {
    violations: Vec<(InventoryItem, tollgate_policy::Violation, Action)>,
    /// Control id → (resources it failed on, the first error).
    errors: BTreeMap<String, (u64, String)>,
}

/// Everything a page's evaluation needs, shared with the blocking pool.
struct PageContext {
    policies: Arc<PolicySet>,
    facts: Arc<Facts>,
    settings: Arc<PolicySettings>,
    /// The kind's controls with their METADATA parameter defaults.
    defaults: Arc<Vec<(String, Map<String, Value>)>>,
    now: String,
}

/// Each control's parameters and action at one placement: the same for every resource
/// there, so resolved once per placement rather than once per resource.
struct Resolution<'a> {
    /// `{control id: {param: value}}`, the input's `params`.
    params: Value,
    actions: BTreeMap<&'a str, Action>,
}

/// The resolutions one thread has made, by placement.
type Resolutions<'a> = HashMap<Placement, Rc<Resolution<'a>>>;

impl PageContext {
    /// The policy input for one resource (docs/POLICY-INPUT.md) without its `resource` (the
    /// engine reads the stored text) and `params`, and the resolution (params and each
    /// control's action) at its placement; `None` when every control is off for it.
    fn input<'a>(
        &'a self,
        item: &InventoryItem,
        resolutions: &mut Resolutions<'a>,
    ) -> Option<(Value, Rc<Resolution<'a>>)> {
        let raw = StoredJson::new(&item.raw);
        let placement =
            self.facts
                .names()
                .place(item.kind, &item.project, &item.scope, &item.ado_id, &raw);
        let resolution = resolutions
            .entry(placement)
            .or_insert_with_key(|placement| Rc::new(self.resolve(placement)))
            .clone();
        if resolution.actions.values().all(|a| *a == Action::Off) {
            return None;
        }
        let mut input = Map::new();
        input.insert("kind".to_owned(), Value::from(item.kind.as_str()));
        input.insert("key".to_owned(), Value::from(item.key.as_str()));
        input.insert("project".to_owned(), Value::from(item.project.as_str()));
        input.insert("scope".to_owned(), Value::from(item.scope.as_str()));
        input.insert("related".to_owned(), self.facts.related(item, &raw));
        input.insert("now".to_owned(), Value::from(self.now.as_str()));
        Some((Value::Object(input), resolution))
    }

    fn resolve(&self, placement: &Placement) -> Resolution<'_> {
        let mut params = Map::new();
        let mut actions: BTreeMap<&str, Action> = BTreeMap::new();
        for (control, defaults) in self.defaults.iter() {
            let resolved = self.settings.resolve(control, defaults, placement);
            actions.insert(control, resolved.action);
            params.insert(control.clone(), Value::Object(resolved.params));
        }
        Resolution {
            params: Value::Object(params),
            actions,
        }
    }

    fn evaluate<'a>(
        &'a self,
        item: &InventoryItem,
        evaluator: &mut Evaluator<'_>,
        resolutions: &mut Resolutions<'a>,
        found: &mut PageOutcome,
    ) {
        let Some((input, resolution)) = self.input(item, resolutions) else {
            return;
        };
        let (violations, errors) = evaluator.evaluate_each_parts(&InputParts {
            fields: &input,
            resource: &item.raw,
            params: &resolution.params,
        });
        let actions = &resolution.actions;
        for violation in violations {
            let action = actions
                .get(violation.control.as_str())
                .copied()
                .unwrap_or_default();
            if action != Action::Off {
                found.violations.push((item.clone(), violation, action));
            }
        }
        for (control, error) in errors {
            if actions.get(control.as_str()) == Some(&Action::Off) {
                continue;
            }
            let entry = found
                .errors
                .entry(control)
                .or_insert_with(|| (0, format!("{} {}: {error}", item.kind, item.key)));
            entry.0 += 1;
        }
    }
}

/// Evaluate one page of resources on the blocking pool, split across the machine's cores.
fn evaluate_page(context: &PageContext, page: Vec<InventoryItem>) -> Result<PageOutcome> {
    // Each thread takes the next few resources until none are left, so a thread that drew
    // cheap resources does not sit idle while another finishes a costly half of the page.
    const BATCH: usize = 16;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(page.len().div_ceil(BATCH).max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut batches: Vec<(usize, PageOutcome)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (page, next) = (&page, &next);
                scope.spawn(move || {
                    let mut done = Vec::new();
                    let mut evaluator = context.policies.evaluator();
                    let mut resolutions = Resolutions::new();
                    loop {
                        let start = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                        let items = page.get(start..(start + BATCH).min(page.len()));
                        let Some(items) = items.filter(|items| !items.is_empty()) else {
                            break;
                        };
                        let mut found = PageOutcome::default();
                        for item in items {
                            context.evaluate(item, &mut evaluator, &mut resolutions, &mut found);
                        }
                        done.push((start, found));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .flatten()
            .collect()
    });
    // In page order, whichever thread judged what: the first error of a control is then the
    // same on every run.
    batches.sort_by_key(|(start, _)| *start);
    let mut all = PageOutcome::default();
    for (_, outcome) in batches {
        all.violations.extend(outcome.violations);
        for (control, (count, first)) in outcome.errors {
            let entry = all.errors.entry(control).or_insert((0, first));
            entry.0 += count;
        }
    }
    Ok(all)
}

/// The audit records of one evaluation: the run, and each finding that opened, reopened or
/// was fixed (unchanged findings are not repeated every run).
fn evaluation_records(
    transitions: &[tollgate_store::FindingTransition<'_>],
    counts: &tollgate_store::LifecycleCounts,
    observed: usize,
    now: OffsetDateTime,
) -> Vec<tollgate_store::AuditDraft> {
    use crate::services::audit_events::{Actor, AuditEvent, AuditSeverity, Record, Target};
    let system = Actor::system();
    let mut records = vec![
        Record::new(AuditEvent::EvaluationCompleted, &system, now)
            .detail(
                "counts",
                serde_json::json!({
                    "violations": observed, "opened": counts.opened, "reopened": counts.reopened,
                    "still_open": counts.still_open, "fixed": counts.fixed, "waived": counts.waived,
                }),
            )
            .draft(),
    ];
    for transition in transitions {
        let event = match transition.to {
            FindingStatus::Fixed => AuditEvent::FindingFixed,
            _ => AuditEvent::FindingOpened,
        };
        let mut target = Target::new(transition.resource_kind, transition.resource_key);
        let mut record = Record::new(event, &system, now)
            .detail("control", serde_json::json!(transition.control));
        if let Some(observation) = transition.observation {
            target.name = observation.resource_name.clone();
            target.project = Some(observation.project.clone()).filter(|p| !p.is_empty());
            let severity = match observation.severity.as_str() {
                "critical" => AuditSeverity::Critical,
                "high" => AuditSeverity::High,
                "medium" => AuditSeverity::Medium,
                "low" => AuditSeverity::Low,
                _ => AuditSeverity::Informational,
            };
            record = record
                .severity(severity)
                .reason(observation.message.chars().take(1_000).collect::<String>())
                .detail("action", serde_json::json!(observation.action))
                .detail(
                    "reopened",
                    serde_json::json!(transition.to == FindingStatus::Reopened),
                );
        }
        records.push(record.target(target).draft());
    }
    records
}
