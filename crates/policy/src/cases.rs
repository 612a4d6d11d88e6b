//! Policy case files: for each control, inputs that must pass and inputs that must fail.
//! `cargo test` runs the built-in cases; `tollgate policy test DIR` runs a user's.
//!
//! ```yaml
//! control: BP-02
//! cases:
//!   - note: two approvers pass
//!     want: pass
//!     resource: {settings: {minimumApproverCount: 2}, type: {id: fa4e907d-…}}
//!   - note: one approver fails
//!     want: fail
//!     resource: {settings: {minimumApproverCount: 1}, type: {id: fa4e907d-…}}
//!     related: {}              # optional
//!     params: {minimum_approvers: 2}   # optional, defaults from METADATA
//!     now: 2026-06-01T00:00:00Z        # optional
//! ```

use serde::Deserialize;

use crate::{PolicyError, PolicySet};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    pub control: String,
    pub cases: Vec<Case>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Want {
    Pass,
    Fail,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub note: String,
    pub want: Want,
    pub resource: serde_json::Value,
    #[serde(default)]
    pub related: Option<serde_json::Value>,
    #[serde(default)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub now: Option<String>,
    /// For `fail` cases: a substring the message must contain.
    #[serde(default)]
    pub message_contains: Option<String>,
}

/// The fixed clock of case files unless a case sets `now`.
pub const CASE_NOW: &str = "2026-06-01T12:00:00Z";

#[derive(Debug)]
pub struct CaseOutcome {
    pub control: String,
    pub note: String,
    pub want: Want,
    /// `None` when the case behaved as wanted.
    pub failure: Option<String>,
}

pub fn parse(file: &str, text: &str) -> Result<CaseFile, PolicyError> {
    yaml_serde::from_str(text).map_err(|error| PolicyError::Case {
        file: file.to_owned(),
        message: error.to_string(),
    })
}

/// Run one case file's cases against the policy set.
pub fn run(set: &PolicySet, file: &str, cases: &CaseFile) -> Result<Vec<CaseOutcome>, PolicyError> {
    let control = set
        .control(&cases.control)
        .ok_or_else(|| PolicyError::Case {
            file: file.to_owned(),
            message: format!("no control {}", cases.control),
        })?;
    let mut outcomes = Vec::new();
    for case in &cases.cases {
        let mut params = serde_json::Map::new();
        for (name, value) in &control.parameters {
            params.insert(name.clone(), value.clone());
        }
        if let Some(overrides) = &case.params {
            params.extend(overrides.clone());
        }
        let input = serde_json::json!({
            "kind": control.kind.as_str(),
            "key": "case",
            "project": "case-project",
            "scope": "case-scope",
            "resource": case.resource,
            "related": case.related.clone().unwrap_or_else(|| serde_json::json!({})),
            "params": {control.id.clone(): params},
            "now": case.now.clone().unwrap_or_else(|| CASE_NOW.to_owned()),
        });
        let failure = match set.evaluate_control(&control.id, &input) {
            Err(error) => Some(format!("evaluation failed: {error}")),
            Ok(violations) => match (case.want, violations.is_empty()) {
                (Want::Pass, true) => None,
                (Want::Pass, false) => Some(format!(
                    "wanted no violation, got {:?}",
                    violations.iter().map(|v| &v.message).collect::<Vec<_>>()
                )),
                (Want::Fail, true) => Some("wanted a violation, got none".to_owned()),
                (Want::Fail, false) => match &case.message_contains {
                    Some(text) if !violations.iter().any(|v| v.message.contains(text.as_str())) => {
                        Some(format!(
                            "no message contains {text:?}: {:?}",
                            violations.iter().map(|v| &v.message).collect::<Vec<_>>()
                        ))
                    }
                    _ if violations.iter().any(|v| v.message.is_empty()) => {
                        Some("a violation has no message".to_owned())
                    }
                    _ => None,
                },
            },
        };
        outcomes.push(CaseOutcome {
            control: control.id.clone(),
            note: case.note.clone(),
            want: case.want,
            failure,
        });
    }
    Ok(outcomes)
}
