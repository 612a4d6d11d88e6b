//! Gate rules: Rego packages under `tollgate.gate.*` that judge one deployment (a pipeline
//! run about to enter an environment) rather than one inventory resource.
//!
//! A rule may define three sets, each of `{"message", "evidence"}` objects (or strings):
//! `deny` (the run must not proceed), `approval` (it may proceed once people approve it) and
//! `warn` (it may proceed; the verdict says why someone should look). The input is described
//! in docs/GATE.md; `now` is the clock, so a verdict is reproducible.
//!
//! All rules run in one evaluation: a generated module gathers every rule's three sets.

use std::collections::BTreeSet;

use regorus::Engine;
use serde::{Deserialize, Serialize};

use crate::engine::{check_functions, error_line};
use crate::metadata::{self, GateRuleMeta};
use crate::{PolicyError, PolicySet, Source};

pub const GATE_PACKAGE_PREFIX: &str = "tollgate.gate.";
pub(crate) const AGGREGATE_FILE: &str = "generated/gate.rego";
/// The rule that holds every gate rule's outcomes for one deployment.
pub const AGGREGATE_RULE: &str = "data.tollgate.gate_all.outcomes";

/// What a rule asks of the run, weakest first (so the strongest effect is the maximum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateEffect {
    Warn,
    Approval,
    Deny,
}

impl GateEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            GateEffect::Warn => "warn",
            GateEffect::Approval => "approval",
            GateEffect::Deny => "deny",
        }
    }

    /// The Rego set a rule fills for this effect.
    fn set_name(self) -> &'static str {
        self.as_str()
    }

    pub const ALL: [GateEffect; 3] = [GateEffect::Deny, GateEffect::Approval, GateEffect::Warn];
}

/// One thing a gate rule said about the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateFinding {
    pub rule: String,
    pub effect: GateEffect,
    pub message: String,
    /// The fields and values that decided it.
    #[serde(default)]
    pub evidence: serde_json::Value,
}

/// The package a Rego source declares.
pub(crate) fn package_of(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("package "))
        .map(str::trim)
}

/// Check one gate rule file alone: it parses, calls only known functions, carries
/// `kind: deployment` METADATA and an id not used before.
pub(crate) fn check_rule_source(
    source: &Source,
    defined: &BTreeSet<String>,
    ids: &mut BTreeSet<String>,
) -> Result<GateRuleMeta, PolicyError> {
    let meta = metadata::parse_gate_rule(&source.name, &source.text)?;
    let mut alone = Engine::new();
    alone
        .add_policy(source.name.clone(), source.text.clone())
        .map_err(|error| {
            let message = error.to_string();
            PolicyError::Load {
                file: source.name.clone(),
                line: error_line(&message, &source.name),
                message,
            }
        })?;
    check_functions(source, defined)?;
    if defined_effects(&source.text).is_empty() {
        return Err(PolicyError::Load {
            file: source.name.clone(),
            line: meta.line,
            message: "a gate rule defines at least one of the sets deny, approval or warn"
                .to_owned(),
        });
    }
    if !ids.insert(meta.id.clone()) {
        return Err(PolicyError::Load {
            file: source.name.clone(),
            line: meta.line,
            message: format!("control id {} is defined twice", meta.id),
        });
    }
    let mut meta = meta;
    meta.effects = defined_effects(&source.text);
    Ok(meta)
}

/// The sets (`deny`, `approval`, `warn`) a rule's source defines at the top level.
pub(crate) fn defined_effects(text: &str) -> Vec<GateEffect> {
    GateEffect::ALL
        .into_iter()
        .filter(|effect| {
            text.lines().any(|line| {
                line.strip_prefix(effect.set_name())
                    .and_then(|rest| rest.chars().next())
                    .is_some_and(|next| matches!(next, ' ' | '[' | ':' | '='))
            })
        })
        .collect()
}

/// The generated module that gathers every rule's `deny`, `approval` and `warn` sets into
/// `data.tollgate.gate_all.outcomes` (public so a benchmark can load the very same text into a
/// bare regorus engine).
pub fn aggregate_module(rules: &[GateRuleMeta]) -> String {
    let mut module = String::from("package tollgate.gate_all\n\noutcomes := []\n");
    if rules.is_empty() {
        return module;
    }
    module = String::from("package tollgate.gate_all\n\n");
    for rule in rules {
        for effect in rule.effects.iter().copied() {
            module.push_str(&format!(
                "outcomes contains {{\"rule\": {:?}, \"effect\": {:?}, \"v\": v}} if {{\n\tsome v in data.{}.{}\n}}\n\n",
                rule.id,
                effect.as_str(),
                rule.package,
                effect.set_name()
            ));
        }
    }
    module
}

/// An input every rule must be able to evaluate without error (missing data is normal for a
/// gate: a run without PRs, an environment without parameters).
fn exercise_input(rule: &GateRuleMeta) -> serde_json::Value {
    serde_json::json!({
        "kind": metadata::GATE_KIND,
        "now": "2026-01-05T10:00:00Z",
        "environment": {"name": "exercise"},
        "run": {},
        "build": {},
        "pullRequests": [],
        "workItems": [],
        "alerts": [],
        "deployments": [],
        "approvals": [],
        "request": {},
        "params": {rule.id.clone(): rule.parameters.clone()},
    })
}

/// Evaluate each rule once; the ones that fail are reported and returned so the caller can
/// leave them out.
pub(crate) fn exercise(set: &PolicySet, problems: &mut Vec<PolicyError>) -> Vec<GateRuleMeta> {
    let mut broken = Vec::new();
    for rule in &set.gate_rules {
        if let Err(error) = set.evaluate_gate_rule(&rule.id, &exercise_input(rule)) {
            problems.push(PolicyError::Load {
                file: rule.source.clone(),
                line: rule.line,
                message: format!("evaluating {} failed: {error}", rule.id),
            });
            broken.push(rule.clone());
        }
    }
    broken
}

fn finding(rule: String, effect: GateEffect, value: serde_json::Value) -> GateFinding {
    let (message, evidence) = match value {
        serde_json::Value::String(message) => (message, serde_json::Value::Null),
        serde_json::Value::Object(mut object) => (
            object
                .remove("message")
                .and_then(|m| m.as_str().map(str::to_owned))
                .unwrap_or_default(),
            object.remove("evidence").unwrap_or(serde_json::Value::Null),
        ),
        other => (other.to_string(), serde_json::Value::Null),
    };
    GateFinding {
        rule,
        effect,
        message,
        evidence,
    }
}

fn items(value: serde_json::Value) -> Vec<serde_json::Value> {
    match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Null => Vec::new(),
        other => vec![other],
    }
}

impl PolicySet {
    /// Evaluate one rule on a fresh clone of the prepared engine (the gate judges one
    /// deployment at a time; scans use an [`crate::Evaluator`] per thread instead).
    pub(crate) fn eval(
        &self,
        rule: &str,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, PolicyError> {
        let mut engine = self.template.clone();
        let input = regorus::Value::deserialize(input)
            .map_err(|error| PolicyError::Input(error.to_string()))?;
        engine.set_input(input);
        let value = engine
            .eval_rule(rule.to_owned())
            .map_err(|error| PolicyError::Evaluation(error.to_string()))?;
        if value == regorus::Value::Undefined {
            return Ok(serde_json::Value::Array(Vec::new()));
        }
        serde_json::to_value(&value).map_err(|error| PolicyError::Evaluation(error.to_string()))
    }

    /// The loaded gate rules, ordered by id.
    pub fn gate_rules(&self) -> &[GateRuleMeta] {
        &self.gate_rules
    }

    pub fn gate_rule(&self, id: &str) -> Option<&GateRuleMeta> {
        self.gate_rules
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(id))
    }

    /// Evaluate every gate rule on one deployment, in one evaluation. Findings are ordered by
    /// rule, effect and message.
    pub fn evaluate_gate(
        &self,
        input: &serde_json::Value,
    ) -> Result<Vec<GateFinding>, PolicyError> {
        if self.gate_rules.is_empty() {
            return Ok(Vec::new());
        }
        #[derive(Deserialize)]
        struct Gathered {
            rule: String,
            effect: GateEffect,
            v: serde_json::Value,
        }
        let gathered: Vec<Gathered> = items(self.eval(AGGREGATE_RULE, input)?)
            .into_iter()
            .map(serde_json::from_value)
            .collect::<Result<_, _>>()
            .map_err(|error| {
                PolicyError::Evaluation(format!("unexpected result shape: {error}"))
            })?;
        let mut findings: Vec<GateFinding> = gathered
            .into_iter()
            .map(|g| finding(g.rule, g.effect, g.v))
            .collect();
        findings
            .sort_by(|a, b| (&a.rule, a.effect, &a.message).cmp(&(&b.rule, b.effect, &b.message)));
        Ok(findings)
    }

    /// Evaluate one gate rule (case files, `tollgate policy eval`).
    pub fn evaluate_gate_rule(
        &self,
        id: &str,
        input: &serde_json::Value,
    ) -> Result<Vec<GateFinding>, PolicyError> {
        let rule = self
            .gate_rule(id)
            .ok_or_else(|| PolicyError::UnknownControl(id.to_owned()))?;
        let mut findings = Vec::new();
        for effect in rule.effects.iter().copied() {
            let value = self.eval(
                &format!("data.{}.{}", rule.package, effect.set_name()),
                input,
            )?;
            findings.extend(
                items(value)
                    .into_iter()
                    .map(|v| finding(rule.id.clone(), effect, v)),
            );
        }
        Ok(findings)
    }
}

/// Gate rule case files (`gate-cases/GATE-03.yaml`): inputs with the verdict the rule must
/// give. `input` is laid over a default deployment (a Tuesday-morning run to production with
/// nothing else known); `want` is the strongest effect the rule must report, or `allow`.
pub mod cases {
    use serde::Deserialize;

    use super::GateEffect;
    use crate::cases::{CASE_NOW, CaseOutcome, Want};
    use crate::{PolicyError, PolicySet};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct GateCaseFile {
        pub rule: String,
        pub cases: Vec<GateCase>,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum GateWant {
        Allow,
        Warn,
        Approval,
        Deny,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct GateCase {
        pub note: String,
        pub want: GateWant,
        #[serde(default)]
        pub input: serde_json::Map<String, serde_json::Value>,
        #[serde(default)]
        pub params: Option<serde_json::Map<String, serde_json::Value>>,
        #[serde(default)]
        pub now: Option<String>,
        #[serde(default)]
        pub message_contains: Option<String>,
    }

    pub fn parse(file: &str, text: &str) -> Result<GateCaseFile, PolicyError> {
        yaml_serde::from_str(text).map_err(|error| PolicyError::Case {
            file: file.to_owned(),
            message: error.to_string(),
        })
    }

    /// The deployment a case starts from.
    pub fn default_input() -> serde_json::Map<String, serde_json::Value> {
        let value = serde_json::json!({
            "kind": crate::metadata::GATE_KIND,
            "environment": {"name": "production"},
            "run": {"id": 100, "pipeline": {"id": 1, "name": "payments-api"}, "project": "Payments",
                    "repository": "payments-api", "sourceBranch": "refs/heads/main",
                    "sourceVersion": "c0ffee", "requestedFor": "dev@fabrikam.example"},
            "build": {},
            "pullRequests": [],
            "workItems": [],
            "alerts": [],
            "deployments": [],
            "approvals": [],
            "calendar": {"timezone": "UTC", "holidays": [], "freezes": []},
            "request": {"source": "ado-check"},
        });
        match value {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    pub fn run(
        set: &PolicySet,
        file: &str,
        cases: &GateCaseFile,
    ) -> Result<Vec<CaseOutcome>, PolicyError> {
        let rule = set
            .gate_rule(&cases.rule)
            .ok_or_else(|| PolicyError::Case {
                file: file.to_owned(),
                message: format!("no gate rule {}", cases.rule),
            })?;
        let mut outcomes = Vec::new();
        for case in &cases.cases {
            let mut params = serde_json::Map::new();
            for (name, value) in &rule.parameters {
                params.insert(name.clone(), value.clone());
            }
            if let Some(overrides) = &case.params {
                params.extend(overrides.clone());
            }
            let mut input = default_input();
            input.extend(case.input.clone());
            input.insert(
                "params".to_owned(),
                serde_json::json!({rule.id.clone(): params}),
            );
            input.insert(
                "now".to_owned(),
                serde_json::Value::String(case.now.clone().unwrap_or_else(|| CASE_NOW.to_owned())),
            );
            let input = serde_json::Value::Object(input);
            let failure = match set.evaluate_gate_rule(&rule.id, &input) {
                Err(error) => Some(format!("evaluation failed: {error}")),
                Ok(findings) => {
                    let strongest = findings.iter().map(|f| f.effect).max();
                    let got = match strongest {
                        None => GateWant::Allow,
                        Some(GateEffect::Warn) => GateWant::Warn,
                        Some(GateEffect::Approval) => GateWant::Approval,
                        Some(GateEffect::Deny) => GateWant::Deny,
                    };
                    let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
                    if got != case.want {
                        Some(format!("wanted {:?}, got {got:?}: {messages:?}", case.want))
                    } else if findings.iter().any(|f| f.message.is_empty()) {
                        Some("a finding has no message".to_owned())
                    } else {
                        match &case.message_contains {
                            Some(text) if !messages.iter().any(|m| m.contains(text.as_str())) => {
                                Some(format!("no message contains {text:?}: {messages:?}"))
                            }
                            _ => None,
                        }
                    }
                }
            };
            outcomes.push(CaseOutcome {
                control: rule.id.clone(),
                note: case.note.clone(),
                want: if case.want == GateWant::Allow {
                    Want::Pass
                } else {
                    Want::Fail
                },
                failure,
            });
        }
        Ok(outcomes)
    }
}
