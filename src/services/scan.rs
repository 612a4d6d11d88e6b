//! Evaluate the control catalog over the stored inventory and keep findings current.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::{InventoryItem, ResourceKind, TenantId};
use tollgate_policy::{ControlMeta, PolicySet, Severity};
use tollgate_store::{
    Coverage, FindingStatus, FindingStore, InventoryStore, LifecycleCounts, Observation,
};

use crate::services::facts::Facts;
use crate::services::settings::{Action, PolicySettings, ScopedSetting};

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

pub struct ScanService {
    store: Arc<dyn InventoryStore>,
    findings: Arc<dyn FindingStore>,
    policies: Arc<PolicySet>,
    load_problems: Vec<String>,
    tenant: TenantId,
    settings: Arc<PolicySettings>,
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
        Ok(Self {
            store,
            findings,
            policies,
            load_problems,
            tenant,
            settings,
        })
    }

    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    fn active_controls(&self) -> Vec<&ControlMeta> {
        self.policies.controls().iter().collect()
    }

    /// Evaluate every enabled control over the whole inventory and update the findings.
    pub async fn scan(&self, now: OffsetDateTime) -> Result<ScanReport> {
        let started = Instant::now();
        let now_text = now.format(&Rfc3339).context("formatting the clock")?;
        let facts = Arc::new(Facts::load(self.store.as_ref(), &self.tenant, now).await?);
        let controls = self.active_controls();
        let kinds: BTreeSet<ResourceKind> = controls.iter().map(|c| c.kind).collect();
        let meta: BTreeMap<&str, &ControlMeta> =
            controls.iter().map(|c| (c.id.as_str(), *c)).collect();
        let mut observations = Vec::new();
        let mut failures: BTreeMap<String, (u64, String)> = BTreeMap::new();
        let mut resources = 0u64;
        for kind in &kinds {
            let defaults: Arc<Vec<(String, Map<String, Value>)>> = Arc::new(
                self.policies
                    .controls_for(*kind)
                    .map(|c| {
                        (
                            c.id.clone(),
                            c.parameters
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        )
                    })
                    .collect(),
            );
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .store
                    .items(&self.tenant, *kind, after.as_deref(), 1_000)
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.key.clone());
                resources += page.len() as u64;
                let context = PageContext {
                    policies: self.policies.clone(),
                    facts: facts.clone(),
                    settings: self.settings.clone(),
                    defaults: defaults.clone(),
                    now: now_text.clone(),
                };
                let evaluated = tokio::task::spawn_blocking(move || evaluate_page(&context, page))
                    .await
                    .context("evaluation task")??;
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
        let coverage = Coverage {
            controls: controls
                .iter()
                .filter(|c| !skipped.contains(c.id.as_str()))
                .map(|c| c.id.clone())
                .collect(),
            kinds: kinds.iter().copied().collect(),
            keys: None,
        };
        let lifecycle = self
            .findings
            .apply_observations(&self.tenant, &observations, &coverage, now)
            .await?;
        self.report(
            now_text,
            started,
            controls.len(),
            resources,
            lifecycle,
            not_evaluated,
        )
        .await
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

    async fn report(
        &self,
        scanned_at: String,
        started: Instant,
        controls_evaluated: usize,
        resources_evaluated: u64,
        lifecycle: LifecycleCounts,
        not_evaluated: Vec<NotEvaluated>,
    ) -> Result<ScanReport> {
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
            by_severity,
            lifecycle,
            findings,
            waived,
            dry_run,
            not_evaluated,
            load_problems: self.load_problems.clone(),
            controls,
        })
    }
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

impl PageContext {
    fn evaluate(&self, item: &InventoryItem, found: &mut PageOutcome) {
        let raw: Value = serde_json::from_str(&item.raw).unwrap_or(Value::Null);
        let placement =
            self.facts
                .names()
                .place(item.kind, &item.project, &item.scope, &item.ado_id, &raw);
        let mut params = Map::new();
        let mut actions: BTreeMap<&str, Action> = BTreeMap::new();
        for (control, defaults) in self.defaults.iter() {
            let resolved = self.settings.resolve(control, defaults, &placement);
            actions.insert(control, resolved.action);
            params.insert(control.clone(), Value::Object(resolved.params));
        }
        if actions.values().all(|a| *a == Action::Off) {
            return;
        }
        let input = json!({
            "kind": item.kind.as_str(), "key": item.key, "project": item.project, "scope": item.scope,
            "related": self.facts.related(item, &raw), "resource": raw, "params": params, "now": self.now,
        });
        let (violations, errors) = self.policies.evaluate_each(&input);
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
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = page.len().div_ceil(threads).max(1);
    let results: Vec<PageOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = page
            .chunks(chunk)
            .map(|items| {
                scope.spawn(move || {
                    let mut found = PageOutcome::default();
                    for item in items {
                        context.evaluate(item, &mut found);
                    }
                    found
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut all = PageOutcome::default();
    for outcome in results {
        all.violations.extend(outcome.violations);
        for (control, (count, first)) in outcome.errors {
            let entry = all.errors.entry(control).or_insert((0, first));
            entry.0 += count;
        }
    }
    Ok(all)
}
