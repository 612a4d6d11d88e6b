//! `tollgate gate backtest`: replay the deployments the inventory holds against the gate
//! rules as they are configured now, and report what the gate would have blocked.
//!
//! Each deployment record in the window becomes the [`DeploymentRequest`] its check would have
//! sent (project, environment, stage, run, pipeline; the requester, branch and commit come from
//! the run's build, as for a live check) and is judged at the time it started, so calendar
//! rules (weekends, holidays, business hours, freezes) judge the time it really ran. Only
//! deployments that had finished by then count as earlier deployments. Everything else the
//! rules read (pull requests, work items, alerts) is the inventory as it is now.
//!
//! Read-only: nothing is recorded, no approval is opened, nothing is audited.
//!
//! Teams: tollgate syncs teams but not their members, so a requester cannot be placed in a
//! team; deployments are grouped by their project ([`TEAM_BASIS`]).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::{InventoryItem, ResourceKind};
use tollgate_policy::GateEffect;
use tollgate_store::gate::Verdict;

use crate::services::audit_events::rfc3339;
use crate::services::gate::{DeploymentRequest, GateService, glob_matches};

/// What "team" means in a backtest report.
pub const TEAM_BASIS: &str = "project";

/// How often progress is reported, in replayed deployments.
pub const PROGRESS_EVERY: usize = 100;

const PAGE: u32 = 1_000;

/// The start of the window: a duration back from now (`30d`, `12h`) or a date (`2026-10-01`,
/// midnight UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    Ago(time::Duration),
    Date(time::Date),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("since {0:?}: use a number of days or hours back (30d, 12h) or a date (2026-10-01)")]
pub struct BadSince(String);

impl FromStr for Since {
    type Err = BadSince;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let text = raw.trim();
        let bad = || BadSince(raw.to_owned());
        if let Ok(date) = time::Date::parse(
            text,
            time::macros::format_description!("[year]-[month]-[day]"),
        ) {
            return Ok(Since::Date(date));
        }
        let (number, unit) = text.split_at(text.len().saturating_sub(1));
        // Digits only: "+3d", "-3d" and "3.5d" are mistakes, not windows.
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let count: i64 = number.parse().map_err(|_| bad())?;
        let duration = match unit {
            "d" => time::Duration::days(count.min(365 * 100)),
            "h" => time::Duration::hours(count.min(24 * 365 * 100)),
            _ => return Err(bad()),
        };
        if duration.is_zero() {
            return Err(bad());
        }
        Ok(Since::Ago(duration))
    }
}

impl Since {
    pub fn start(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Since::Ago(duration) => now - duration,
            Since::Date(date) => date.midnight().assume_utc(),
        }
    }
}

/// Which deployments to replay.
#[derive(Clone, Debug)]
pub struct BacktestQuery {
    /// Deployments that started at or after this…
    pub since: OffsetDateTime,
    /// …and before this (now).
    pub until: OffsetDateTime,
    /// A glob on the environment's name.
    pub environment: Option<String>,
    /// A project's name or id.
    pub project: Option<String>,
    /// Replay at most this many deployments, the newest of the window.
    pub limit: Option<usize>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub replayed: u64,
    pub would_allow: u64,
    pub would_deny: u64,
    pub would_need_approval: u64,
    pub could_not_judge: u64,
}

impl Counts {
    fn add(&mut self, outcome: &Replay) {
        self.replayed += 1;
        match outcome.verdict {
            Some(Verdict::Allow) => self.would_allow += 1,
            Some(Verdict::Deny) => self.would_deny += 1,
            Some(Verdict::Approval) => self.would_need_approval += 1,
            None => self.could_not_judge += 1,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    #[serde(flatten)]
    pub counts: Counts,
    /// Why deployments could not be judged, with how many each.
    pub could_not_judge_because: BTreeMap<String, u64>,
    /// Deployments in the window left out by `limit`.
    pub left_out: u64,
    /// Records with neither a start nor a queue time: in no window.
    pub undated: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeamSummary {
    pub team: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// How often a rule would have stopped a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleSummary {
    pub rule: String,
    /// deny or approval: what the rule would have done (as configured per environment).
    pub effect: String,
    pub deployments: u64,
    /// Deployments per team.
    pub teams: BTreeMap<String, u64>,
    /// The first deployment's message, as an example of the reason.
    pub example: String,
}

/// A deployment the gate would have stopped (denied, or held for approval).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockedDeployment {
    pub time: String,
    pub project: String,
    pub team: String,
    pub pipeline: Option<String>,
    pub run_id: Option<u64>,
    pub run: Option<String>,
    pub environment: String,
    pub stage: Option<String>,
    pub requester: Option<String>,
    /// deny or approval.
    pub verdict: String,
    /// The rules that decided it.
    pub rules: Vec<String>,
    pub reasons: Vec<String>,
    /// The deployment record's inventory key.
    pub key: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct BacktestReport {
    pub tenant: String,
    pub since: String,
    pub until: String,
    /// What `team` means here (see the module documentation).
    pub team_basis: &'static str,
    pub totals: Totals,
    pub by_team: Vec<TeamSummary>,
    pub by_rule: Vec<RuleSummary>,
    /// Oldest first.
    pub blocked: Vec<BlockedDeployment>,
}

/// One deployment record of the window, ready to replay.
struct Candidate {
    key: String,
    started: OffsetDateTime,
    project_id: String,
    project: String,
    team: String,
    /// `None`: the record's environment is not in the inventory.
    environment: Option<String>,
    stage: Option<String>,
    run_id: Option<u64>,
    run_name: Option<String>,
    pipeline_id: Option<u64>,
    pipeline: Option<String>,
}

/// What replaying one deployment gave.
struct Replay {
    /// `None`: it could not be judged.
    verdict: Option<Verdict>,
    /// The rules that would have denied it or held it for approval, with their messages.
    stopped_by: Vec<(String, GateEffect, String)>,
    requester: Option<String>,
    unjudged: Option<String>,
}

fn text(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn id(value: &Value, pointer: &str) -> Option<u64> {
    match value.pointer(pointer)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Visit every item of a kind (of one project when given), a page at a time.
async fn for_each(
    gate: &GateService,
    kind: ResourceKind,
    project: Option<&str>,
    mut visit: impl FnMut(InventoryItem),
) -> Result<()> {
    let mut after: Option<String> = None;
    loop {
        let page = match project {
            Some(project) => {
                gate.inventory
                    .project_items(&gate.tenant, kind, project, after.as_deref(), PAGE)
                    .await?
            }
            None => {
                gate.inventory
                    .items(&gate.tenant, kind, after.as_deref(), PAGE)
                    .await?
            }
        };
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.key.clone());
        page.into_iter().for_each(&mut visit);
    }
}

/// Replay the window's deployments against the gate. `progress(done, total)` is called every
/// [`PROGRESS_EVERY`] deployments and once at the end.
pub async fn backtest(
    gate: &GateService,
    query: &BacktestQuery,
    mut progress: impl FnMut(usize, usize),
) -> Result<BacktestReport> {
    let mut project_names: HashMap<String, String> = HashMap::new();
    for_each(gate, ResourceKind::Projects, None, |item| {
        let name = item.name.clone().unwrap_or_else(|| item.ado_id.clone());
        project_names.insert(item.ado_id, name);
    })
    .await?;
    let project_id = match &query.project {
        None => None,
        Some(wanted) => Some(
            project_names
                .iter()
                .find(|(id, name)| {
                    id.eq_ignore_ascii_case(wanted) || name.eq_ignore_ascii_case(wanted)
                })
                .map(|(id, _)| id.clone())
                .with_context(|| format!("no project {wanted:?} in the inventory"))?,
        ),
    };
    let mut environment_names: HashMap<String, String> = HashMap::new();
    for_each(
        gate,
        ResourceKind::Environments,
        project_id.as_deref(),
        |item| {
            if let Some(name) = item.name {
                environment_names.insert(item.ado_id, name);
            }
        },
    )
    .await?;

    let mut candidates = Vec::new();
    let mut undated = 0u64;
    for_each(
        gate,
        ResourceKind::EnvironmentDeployments,
        project_id.as_deref(),
        |item| {
            let raw: Value = serde_json::from_str(&item.raw).unwrap_or(Value::Null);
            // When the deployment job started; a record that never started is dated by its
            // queue time.
            let started = text(&raw, "/startTime")
                .or_else(|| text(&raw, "/queueTime"))
                .and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok());
            let Some(started) = started else {
                undated += 1;
                return;
            };
            if started < query.since || started >= query.until {
                return;
            }
            let environment = environment_names.get(&item.scope).cloned();
            if let Some(pattern) = &query.environment
                && !environment
                    .as_deref()
                    .is_some_and(|name| glob_matches(pattern, name))
            {
                return;
            }
            let project = project_names
                .get(&item.project)
                .cloned()
                .unwrap_or_else(|| item.project.clone());
            candidates.push(Candidate {
                key: item.key.clone(),
                started,
                project_id: item.project.clone(),
                team: project.clone(),
                project,
                environment,
                stage: text(&raw, "/stageName"),
                run_id: id(&raw, "/owner/id"),
                run_name: text(&raw, "/owner/name"),
                pipeline_id: id(&raw, "/definition/id"),
                pipeline: text(&raw, "/definition/name"),
            });
        },
    )
    .await?;

    // The newest first, so a limit keeps the most recent deployments.
    candidates.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| a.key.cmp(&b.key)));
    let in_window = candidates.len();
    if let Some(limit) = query.limit {
        candidates.truncate(limit);
    }
    candidates.reverse();

    let mut tally = Tally::default();
    tally.totals.left_out = (in_window - candidates.len()) as u64;
    tally.totals.undated = undated;
    let total = candidates.len();
    for (done, candidate) in candidates.iter().enumerate() {
        let replay = replay(gate, candidate).await;
        tally.add(candidate, &replay);
        if (done + 1) % PROGRESS_EVERY == 0 {
            progress(done + 1, total);
        }
    }
    progress(total, total);
    Ok(tally.report(gate.tenant.to_string(), query))
}

/// The report, built up one replayed deployment at a time.
#[derive(Default)]
struct Tally {
    totals: Totals,
    by_team: BTreeMap<String, Counts>,
    by_rule: BTreeMap<String, RuleSummary>,
    blocked: Vec<BlockedDeployment>,
}

impl Tally {
    fn add(&mut self, candidate: &Candidate, replay: &Replay) {
        self.totals.counts.add(replay);
        self.by_team
            .entry(candidate.team.clone())
            .or_default()
            .add(replay);
        if let Some(reason) = &replay.unjudged {
            *self
                .totals
                .could_not_judge_because
                .entry(reason.clone())
                .or_default() += 1;
        }
        for (rule, effect, message) in &replay.stopped_by {
            let summary = self
                .by_rule
                .entry(rule.clone())
                .or_insert_with(|| RuleSummary {
                    rule: rule.clone(),
                    effect: effect.as_str().to_owned(),
                    deployments: 0,
                    teams: BTreeMap::new(),
                    example: message.clone(),
                });
            summary.deployments += 1;
            *summary.teams.entry(candidate.team.clone()).or_default() += 1;
        }
        if let Some(verdict @ (Verdict::Deny | Verdict::Approval)) = replay.verdict {
            self.blocked.push(BlockedDeployment {
                time: rfc3339(candidate.started),
                project: candidate.project.clone(),
                team: candidate.team.clone(),
                pipeline: candidate.pipeline.clone(),
                run_id: candidate.run_id,
                run: candidate.run_name.clone(),
                environment: candidate.environment.clone().unwrap_or_default(),
                stage: candidate.stage.clone(),
                requester: replay.requester.clone(),
                verdict: verdict.as_str().to_owned(),
                rules: replay
                    .stopped_by
                    .iter()
                    .map(|(rule, _, _)| rule.clone())
                    .collect(),
                reasons: replay
                    .stopped_by
                    .iter()
                    .map(|(rule, _, message)| format!("{rule}: {message}"))
                    .collect(),
                key: candidate.key.clone(),
            });
        }
    }

    fn report(self, tenant: String, query: &BacktestQuery) -> BacktestReport {
        let mut by_rule: Vec<RuleSummary> = self.by_rule.into_values().collect();
        // The rules that would have stopped the most deployments first.
        by_rule.sort_by(|a, b| {
            b.deployments
                .cmp(&a.deployments)
                .then_with(|| a.rule.cmp(&b.rule))
        });
        BacktestReport {
            tenant,
            since: rfc3339(query.since),
            until: rfc3339(query.until),
            team_basis: TEAM_BASIS,
            totals: self.totals,
            by_team: self
                .by_team
                .into_iter()
                .map(|(team, counts)| TeamSummary { team, counts })
                .collect(),
            by_rule,
            blocked: self.blocked,
        }
    }
}

async fn replay(gate: &GateService, candidate: &Candidate) -> Replay {
    let unjudged = |reason: String| Replay {
        verdict: None,
        stopped_by: Vec::new(),
        requester: None,
        unjudged: Some(reason),
    };
    let Some(environment) = candidate.environment.clone() else {
        return unjudged("the record's environment is not in the inventory".to_owned());
    };
    if candidate.run_id.is_none() {
        return unjudged("the record names no run".to_owned());
    }
    let request = DeploymentRequest {
        project: candidate.project_id.clone(),
        environment,
        stage: candidate.stage.clone(),
        run_id: candidate.run_id,
        pipeline_id: candidate.pipeline_id,
        pipeline: candidate.pipeline.clone(),
        ..DeploymentRequest::default()
    };
    match gate.judge_replay(&request, candidate.started).await {
        Err(error) => {
            tracing::warn!(key = %candidate.key, error = %format!("{error:#}"), "a deployment could not be replayed");
            // The first line names the cause without the record's details, so equal causes
            // are counted together.
            let cause = error.root_cause().to_string();
            unjudged(format!("the gate could not judge it: {cause}"))
        }
        Ok((verdict, findings, input)) => Replay {
            verdict: Some(verdict),
            stopped_by: findings
                .into_iter()
                .filter_map(|f| match f.enforced {
                    Some(effect @ (GateEffect::Deny | GateEffect::Approval)) => {
                        Some((f.rule, effect, f.message))
                    }
                    _ => None,
                })
                .collect(),
            requester: text(&input, "/run/requestedFor"),
            unjudged: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn since_takes_days_hours_or_a_date_and_nothing_else() {
        let now = datetime!(2026-11-24 10:00 UTC);
        assert_eq!(
            "30d".parse::<Since>().map(|s| s.start(now)),
            Ok(datetime!(2026-10-25 10:00 UTC))
        );
        assert_eq!(
            "12h".parse::<Since>().map(|s| s.start(now)),
            Ok(datetime!(2026-11-23 22:00 UTC))
        );
        assert_eq!(
            "2026-10-01".parse::<Since>(),
            Ok(Since::Date(date!(2026 - 10 - 01)))
        );
        assert_eq!(
            Since::Date(date!(2026 - 10 - 01)).start(now),
            datetime!(2026-10-01 0:00 UTC)
        );
        for bad in [
            "",
            "30",
            "d",
            "30m",
            "30 d",
            "-3d",
            "+3d",
            "3.5d",
            "0d",
            "2026-13-01",
            "2026/10/01",
            "1w",
            "30D",
            "99999999999999999999d",
        ] {
            let error = bad.parse::<Since>();
            assert!(error.is_err(), "{bad:?} was accepted: {error:?}");
        }
        let message = "30m".parse::<Since>().err().map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some(
                "since \"30m\": use a number of days or hours back (30d, 12h) or a date (2026-10-01)"
            )
        );
    }

    fn replay(verdict: Option<Verdict>, rules: &[(&str, GateEffect)]) -> Replay {
        Replay {
            verdict,
            stopped_by: rules
                .iter()
                .map(|(rule, effect)| ((*rule).to_owned(), *effect, format!("{rule} says no")))
                .collect(),
            requester: None,
            unjudged: verdict.is_none().then(|| "no run".to_owned()),
        }
    }

    #[test]
    fn counts_add_up_per_verdict() {
        let mut counts = Counts::default();
        for outcome in [
            replay(Some(Verdict::Allow), &[]),
            replay(Some(Verdict::Deny), &[("GATE-03", GateEffect::Deny)]),
            replay(Some(Verdict::Deny), &[("GATE-03", GateEffect::Deny)]),
            replay(
                Some(Verdict::Approval),
                &[("GATE-01", GateEffect::Approval)],
            ),
            replay(None, &[]),
        ] {
            counts.add(&outcome);
        }
        assert_eq!(
            counts,
            Counts {
                replayed: 5,
                would_allow: 1,
                would_deny: 2,
                would_need_approval: 1,
                could_not_judge: 1,
            }
        );
    }

    fn candidate(key: &str, team: &str, environment: Option<&str>) -> Candidate {
        Candidate {
            key: key.to_owned(),
            started: datetime!(2026-11-21 10:00 UTC),
            project_id: format!("{team}-id"),
            project: team.to_owned(),
            team: team.to_owned(),
            environment: environment.map(str::to_owned),
            stage: Some("production".to_owned()),
            run_id: Some(7),
            run_name: Some("20261121.7".to_owned()),
            pipeline_id: Some(3),
            pipeline: Some("api".to_owned()),
        }
    }

    #[test]
    fn deployments_are_grouped_by_team_and_by_rule_and_the_stopped_ones_listed() {
        let mut tally = Tally::default();
        let production = Some("production");
        for (candidate, outcome) in [
            (
                candidate("e/1", "Payments", production),
                replay(Some(Verdict::Allow), &[]),
            ),
            (
                candidate("e/2", "Payments", production),
                replay(
                    Some(Verdict::Deny),
                    &[("GATE-03", GateEffect::Deny), ("GATE-09", GateEffect::Deny)],
                ),
            ),
            (
                candidate("e/3", "Checkout", production),
                replay(Some(Verdict::Deny), &[("GATE-03", GateEffect::Deny)]),
            ),
            (
                candidate("e/4", "Checkout", production),
                replay(
                    Some(Verdict::Approval),
                    &[("GATE-01", GateEffect::Approval)],
                ),
            ),
            (candidate("e/5", "Checkout", None), replay(None, &[])),
        ] {
            tally.add(&candidate, &outcome);
        }
        let query = BacktestQuery {
            since: datetime!(2026-10-25 10:00 UTC),
            until: datetime!(2026-11-24 10:00 UTC),
            environment: None,
            project: None,
            limit: None,
        };
        let report = tally.report("default".to_owned(), &query);
        assert_eq!(report.totals.counts.replayed, 5);
        assert_eq!(
            report.totals.could_not_judge_because,
            BTreeMap::from([("no run".to_owned(), 1)])
        );
        let teams: Vec<(&str, u64, u64, u64, u64)> = report
            .by_team
            .iter()
            .map(|t| {
                let c = &t.counts;
                (
                    t.team.as_str(),
                    c.would_allow,
                    c.would_deny,
                    c.would_need_approval,
                    c.could_not_judge,
                )
            })
            .collect();
        assert_eq!(teams, [("Checkout", 0, 1, 1, 1), ("Payments", 1, 1, 0, 0)]);
        let rules: Vec<(&str, &str, u64)> = report
            .by_rule
            .iter()
            .map(|r| (r.rule.as_str(), r.effect.as_str(), r.deployments))
            .collect();
        assert_eq!(
            rules,
            [
                ("GATE-03", "deny", 2),
                ("GATE-01", "approval", 1),
                ("GATE-09", "deny", 1)
            ]
        );
        assert_eq!(
            report.by_rule[0].teams,
            BTreeMap::from([("Checkout".to_owned(), 1), ("Payments".to_owned(), 1)])
        );
        let stopped: Vec<(&str, &str, Vec<String>)> = report
            .blocked
            .iter()
            .map(|b| (b.key.as_str(), b.verdict.as_str(), b.rules.clone()))
            .collect();
        assert_eq!(
            stopped,
            [
                (
                    "e/2",
                    "deny",
                    vec!["GATE-03".to_owned(), "GATE-09".to_owned()]
                ),
                ("e/3", "deny", vec!["GATE-03".to_owned()]),
                ("e/4", "approval", vec!["GATE-01".to_owned()]),
            ]
        );
        assert_eq!(report.blocked[0].reasons[0], "GATE-03: GATE-03 says no");
        assert_eq!(report.team_basis, "project");
    }
}
