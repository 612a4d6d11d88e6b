//! Detecting deployments that ran without a tollgate verdict (control GATE-10).
//!
//! A deployment record in the inventory says a stage ran in an environment. When the gate is
//! expected on that environment, the Invoke REST API check should have asked tollgate first,
//! so a decision with the record's run and environment exists (source `ado-check`). A record
//! without one means the check was removed, disabled or bypassed for that stage.
//!
//! The scan judges this like any other control: [`GateWatch::load`] reads the check's
//! decisions once per evaluation and [`GateFacts::related`] gives each deployment record its
//! `related.gate` facts; the Rego control (`controls/gate_10.rego`) decides. So the finding
//! follows the finding lifecycle (one per record, kept while the record is in the inventory,
//! waivable), and it runs wherever evaluations run: after each sync, including the
//! incremental ones that service-hook events (stage and run completions) trigger.
//!
//! Only records that started after the tenant's **first** check decision count: before it the
//! gate was not set up, and flagging every historic deployment would bury the real bypasses.
//! Decisions are never made after the fact, so a record judged once keeps its answer; a
//! changed-only evaluation and a full one agree.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Result;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tollgate_domain::TenantId;
use tollgate_store::GateStore;
use tollgate_store::gate::CheckDecision;

use crate::services::audit_events::rfc3339;
use crate::services::gate::glob_matches;

/// Which environments the gate is expected to judge (`[gate] expect_check`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "environments")]
pub enum CheckExpectation {
    /// Environments matching these globs (the `[[gate.environments]]` names): the default.
    Configured(Vec<String>),
    /// Every environment.
    All,
    /// None: the tenant's gate has no credential, so ADO cannot call it.
    Nothing,
}

impl CheckExpectation {
    pub fn expects(&self, environment: &str) -> bool {
        match self {
            CheckExpectation::Configured(patterns) => patterns
                .iter()
                .any(|pattern| glob_matches(pattern, environment)),
            CheckExpectation::All => true,
            CheckExpectation::Nothing => false,
        }
    }
}

/// Where the scan finds the gate's decisions, and what it expects of them.
#[derive(Clone)]
pub struct GateWatch {
    pub decisions: Arc<dyn GateStore>,
    pub expectation: CheckExpectation,
}

impl GateWatch {
    /// What changes findings without any inventory change: part of the scan's fingerprint.
    pub fn fingerprint(&self) -> String {
        serde_json::to_string(&self.expectation).unwrap_or_default()
    }

    pub async fn load(&self, tenant: &TenantId) -> Result<GateFacts> {
        let decisions = self.decisions.check_decisions(tenant).await?;
        Ok(GateFacts::new(self.expectation.clone(), decisions))
    }
}

/// The check's decisions of one tenant, by run.
#[derive(Debug)]
pub struct GateFacts {
    expectation: CheckExpectation,
    /// The first decision ADO's check received: the gate is watched from then on.
    watching_since: Option<OffsetDateTime>,
    by_run: HashMap<u64, Vec<CheckDecision>>,
}

impl GateFacts {
    /// `decisions` oldest first, as [`GateStore::check_decisions`] returns them.
    pub fn new(expectation: CheckExpectation, decisions: Vec<CheckDecision>) -> Self {
        let watching_since = decisions.iter().map(|d| d.decided_at).min();
        let mut by_run: HashMap<u64, Vec<CheckDecision>> = HashMap::new();
        for decision in decisions {
            // A check that named no run cannot vouch for any deployment.
            if let Some(run) = decision.run_id {
                by_run.entry(run).or_default().push(decision);
            }
        }
        Self {
            expectation,
            watching_since,
            by_run,
        }
    }

    /// The `related.gate` facts of a deployment record of `run` in `environment`
    /// (docs/POLICY-INPUT.md).
    pub fn related(&self, environment: Option<&str>, run: Option<u64>) -> Value {
        let expected = environment.is_some_and(|name| self.expectation.expects(name));
        let decisions: Vec<Value> = match (environment, run) {
            (Some(environment), Some(run)) => self
                .by_run
                .get(&run)
                .into_iter()
                .flatten()
                .filter(|d| d.environment.eq_ignore_ascii_case(environment))
                .map(|d| {
                    json!({"id": d.decision_id, "verdict": d.verdict.as_str(),
                           "decidedAt": rfc3339(d.decided_at)})
                })
                .collect(),
            _ => Vec::new(),
        };
        json!({
            "expected": expected,
            "watchingSince": self.watching_since.map(rfc3339),
            "decisions": decisions,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;
    use time::macros::datetime;
    use tollgate_store::gate::Verdict;

    fn decision(
        id: &str,
        run: Option<u64>,
        environment: &str,
        at: OffsetDateTime,
    ) -> CheckDecision {
        CheckDecision {
            decision_id: id.to_owned(),
            run_id: run,
            environment: environment.to_owned(),
            verdict: Verdict::Allow,
            decided_at: at,
        }
    }

    #[test]
    fn configured_environments_are_globs_and_nothing_expects_nothing() {
        let configured = CheckExpectation::Configured(vec!["prod-*".into(), "production".into()]);
        assert!(configured.expects("PROD-eu"));
        assert!(configured.expects("Production"));
        assert!(!configured.expects("staging"));
        assert!(CheckExpectation::All.expects("anything"));
        assert!(!CheckExpectation::Nothing.expects("production"));
    }

    #[test]
    fn a_record_sees_the_decisions_of_its_run_in_its_environment_only() {
        let first = datetime!(2026-11-01 09:00 UTC);
        let facts = GateFacts::new(
            CheckExpectation::Configured(vec!["production".into()]),
            vec![
                decision("gd_1", Some(7), "staging", first),
                decision(
                    "gd_2",
                    Some(7),
                    "Production",
                    first + time::Duration::hours(1),
                ),
                decision("gd_3", None, "production", first + time::Duration::hours(2)),
                decision(
                    "gd_4",
                    Some(8),
                    "production",
                    first + time::Duration::hours(3),
                ),
            ],
        );
        let related = facts.related(Some("production"), Some(7));
        assert_eq!(related["expected"], true);
        assert_eq!(related["watchingSince"], "2026-11-01T09:00:00Z");
        let ids: Vec<&str> = related["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["gd_2"]);
        assert_eq!(facts.related(Some("staging"), Some(7))["expected"], false);
        assert_eq!(
            facts.related(Some("production"), Some(9))["decisions"],
            json!([])
        );
        // An environment the inventory does not name is not expected to be gated.
        assert_eq!(facts.related(None, Some(7))["expected"], false);
    }

    #[test]
    fn a_tenant_without_decisions_is_not_watched_yet() {
        let facts = GateFacts::new(CheckExpectation::All, Vec::new());
        assert_eq!(
            facts.related(Some("production"), Some(1))["watchingSince"],
            Value::Null
        );
    }
}
