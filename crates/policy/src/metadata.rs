//! Control metadata, read from OPA `# METADATA` annotations on a policy's package.
//!
//! ```rego
//! # METADATA
//! # title: At least two approvers on protected branches
//! # description: A minimum-reviewers policy on the default branch requires two approvals.
//! # custom:
//! #   id: BP-02
//! #   severity: high
//! #   kind: policy_configurations
//! #   rationale: One reviewer can approve their own mistakes …
//! #   remediation: Project settings → Repositories → Policies → Require a minimum number of reviewers → 2.
//! #   permission: Code (Read)
//! #   frameworks: [cis-ssc:1.1.3, sox-itgc:change-management]
//! #   parameters:
//! #     minimum_approvers: 2
//! package tollgate.controls.bp_02
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tollgate_domain::ResourceKind;

use crate::PolicyError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}: use critical, high, medium or low"
            )),
        }
    }
}

/// Everything a person needs to know about a control, besides its Rego.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ControlMeta {
    /// Stable id (`BP-02`): findings, waivers and configuration refer to it.
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    /// The kind of resource the control judges.
    pub kind: ResourceKind,
    pub rationale: String,
    pub remediation: String,
    /// The ADO permission or PAT scope needed to read its data.
    pub permission: String,
    /// Framework mappings such as `cis-ssc:1.1.3`, `soc2:CC8.1`.
    pub frameworks: Vec<String>,
    /// Parameters and their defaults; configuration may override them per scope.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The Rego package (`tollgate.controls.bp_02`).
    pub package: String,
    /// Where the control came from (`builtin:…` or a file path) and the package's line.
    pub source: String,
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Annotation {
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scope: Option<String>,
    custom: Custom,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Custom {
    id: String,
    severity: String,
    kind: String,
    rationale: String,
    remediation: String,
    permission: String,
    #[serde(default)]
    frameworks: Vec<String>,
    #[serde(default)]
    parameters: BTreeMap<String, serde_json::Value>,
}

/// A gate rule's metadata: like a control's, but it judges a deployment, not a resource.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateRuleMeta {
    /// Stable id (`GATE-03`): configuration and verdicts refer to it.
    pub id: String,
    pub title: String,
    pub description: String,
    /// How serious a deny from this rule is (reports order by it).
    pub severity: Severity,
    pub rationale: String,
    pub remediation: String,
    /// The ADO permission or PAT scope needed for the data the rule reads.
    pub permission: String,
    pub frameworks: Vec<String>,
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The sets the rule defines (`deny`, `approval`, `warn`).
    pub effects: Vec<crate::gate::GateEffect>,
    /// The Rego package (`tollgate.gate.weekend_block`).
    pub package: String,
    pub source: String,
    pub line: usize,
}

/// What annotates a package: the parsed YAML, the package name and where things are.
struct Annotated {
    annotation: Annotation,
    package: String,
    /// The line just below `# METADATA` (1-based), where YAML errors count from.
    first_line: usize,
    package_line: usize,
}

fn annotated(source: &str, text: &str) -> Result<Option<Annotated>, PolicyError> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|line| line.trim() == "# METADATA") else {
        return Ok(None);
    };
    let mut yaml = String::new();
    let mut end = start + 1;
    while let Some(line) = lines.get(end) {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            break;
        };
        yaml.push_str(comment.strip_prefix(' ').unwrap_or(comment));
        yaml.push('\n');
        end += 1;
    }
    let at = |line: usize, message: String| PolicyError::Load {
        file: source.to_owned(),
        line,
        message,
    };
    let package_line = lines
        .iter()
        .enumerate()
        .skip(end)
        .find(|(_, line)| !line.trim().is_empty())
        .filter(|(_, line)| line.trim_start().starts_with("package "));
    let Some((package_index, package_text)) = package_line else {
        return Err(at(
            start + 1,
            "a METADATA block must annotate the package: put it directly above `package …`"
                .to_owned(),
        ));
    };
    // A YAML error's line counts from the first annotation line, just below `# METADATA`.
    let annotation: Annotation = yaml_serde::from_str(&yaml).map_err(|error| {
        let line = error
            .location()
            .map(|l| start + 1 + l.line())
            .unwrap_or(start + 1);
        at(
            line,
            format!("METADATA is not valid YAML: {error} (quote values that contain \": \")"),
        )
    })?;
    if annotation
        .scope
        .as_deref()
        .is_some_and(|scope| scope != "package")
    {
        return Err(at(
            start + 1,
            "control METADATA must have scope: package".to_owned(),
        ));
    }
    let custom = &annotation.custom;
    if custom.id.trim().is_empty() || custom.id.contains(char::is_whitespace) {
        return Err(at(
            start + 1,
            format!(
                "control id {:?} must be non-empty and contain no spaces",
                custom.id
            ),
        ));
    }
    let package = package_text
        .trim()
        .trim_start_matches("package ")
        .trim()
        .to_owned();
    Ok(Some(Annotated {
        annotation,
        package,
        first_line: start + 1,
        package_line: package_index + 1,
    }))
}

/// The kind a gate rule declares: it judges deployments.
pub const GATE_KIND: &str = "deployment";

/// Read the metadata of one policy file. Files without a `# METADATA` block are helpers
/// (shared functions), not controls: `Ok(None)`.
pub fn parse(source: &str, text: &str) -> Result<Option<ControlMeta>, PolicyError> {
    let Some(found) = annotated(source, text)? else {
        return Ok(None);
    };
    let at = |line: usize, message: String| PolicyError::Load {
        file: source.to_owned(),
        line,
        message,
    };
    let Annotated {
        annotation,
        package,
        first_line,
        package_line,
    } = found;
    let custom = annotation.custom;
    let severity = custom
        .severity
        .parse()
        .map_err(|error: String| at(first_line, error))?;
    let kind = custom.kind.parse::<ResourceKind>().map_err(|error| {
        let hint = if custom.kind == GATE_KIND {
            " (gate rules live under package tollgate.gate.*)".to_owned()
        } else {
            String::new()
        };
        at(first_line, format!("{error}{hint}"))
    })?;
    Ok(Some(ControlMeta {
        id: custom.id,
        title: annotation.title,
        description: annotation.description,
        severity,
        kind,
        rationale: custom.rationale,
        remediation: custom.remediation,
        permission: custom.permission,
        frameworks: custom.frameworks,
        parameters: custom.parameters,
        package,
        source: source.to_owned(),
        line: package_line,
    }))
}

/// Read a gate rule's metadata (`kind: deployment`). A gate rule without METADATA is an error:
/// verdicts name the rule that decided them.
pub fn parse_gate_rule(source: &str, text: &str) -> Result<GateRuleMeta, PolicyError> {
    let at = |line: usize, message: String| PolicyError::Load {
        file: source.to_owned(),
        line,
        message,
    };
    let Some(found) = annotated(source, text)? else {
        return Err(at(
            1,
            "a gate rule needs a METADATA block (id, severity, kind: deployment, …)".to_owned(),
        ));
    };
    let Annotated {
        annotation,
        package,
        first_line,
        package_line,
    } = found;
    let custom = annotation.custom;
    if custom.kind != GATE_KIND {
        return Err(at(
            first_line,
            format!(
                "gate rules judge deployments: set `kind: {GATE_KIND}` (found {:?})",
                custom.kind
            ),
        ));
    }
    let severity = custom
        .severity
        .parse()
        .map_err(|error: String| at(first_line, error))?;
    Ok(GateRuleMeta {
        id: custom.id,
        title: annotation.title,
        description: annotation.description,
        severity,
        rationale: custom.rationale,
        remediation: custom.remediation,
        permission: custom.permission,
        frameworks: custom.frameworks,
        parameters: custom.parameters,
        effects: Vec::new(),
        package,
        source: source.to_owned(),
        line: package_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# METADATA\n# title: T\n# custom:\n#   id: X-1\n#   severity: high\n#   kind: repositories\n#   rationale: r\n#   remediation: m\n#   permission: p\n#   frameworks: [cis-ssc:1.1.3]\n#   parameters:\n#     limit: 2\npackage tollgate.controls.x_1\n";

    #[test]
    fn a_complete_annotation_parses() {
        let meta = parse("x.rego", GOOD).unwrap().unwrap();
        assert_eq!(meta.id, "X-1");
        assert_eq!(meta.kind, ResourceKind::Repositories);
        assert_eq!(meta.severity, Severity::High);
        assert_eq!(meta.package, "tollgate.controls.x_1");
        assert_eq!(meta.line, 13);
        assert_eq!(meta.parameters["limit"], serde_json::json!(2));
    }

    #[test]
    fn mistakes_are_reported_with_file_and_line() {
        let bad_kind = GOOD.replace("repositories", "repos");
        let error = parse("x.rego", &bad_kind).unwrap_err().to_string();
        assert!(
            error.starts_with("x.rego:1:") && error.contains("repos"),
            "{error}"
        );
        let unknown_key = GOOD.replace("#   rationale: r", "#   rationale: r\n#   owner: me");
        assert!(
            parse("x.rego", &unknown_key)
                .unwrap_err()
                .to_string()
                .contains("owner")
        );
        let detached = GOOD.replace("package tollgate", "\nallow := true\npackage tollgate");
        assert!(
            parse("x.rego", &detached)
                .unwrap_err()
                .to_string()
                .contains("directly above")
        );
        assert!(
            parse("helpers.rego", "package tollgate.lib\n")
                .unwrap()
                .is_none()
        );
    }
}
