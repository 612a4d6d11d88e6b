//! `PolicySet`: loaded, checked policies, evaluated per resource.
//!
//! Each control is a Rego package `tollgate.controls.<name>` with a `deny` set of
//! `{"message": …, "evidence": {…}}` objects and a METADATA annotation. At load time every
//! file is parsed alone, checked for calls to functions regorus does not have (regorus itself
//! only notices those when evaluation reaches them), and each control is exercised once; a
//! file that fails is reported with file and line and left out, the rest load. A resource is
//! judged by evaluating the `deny` set of each control of its kind, one `eval_rule` each, on
//! an [`Evaluator`]: a clone of the prepared engine that judges resource after resource.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::Duration;

use regorus::Engine;
use regorus::utils::limits::ExecutionTimerConfig;
use serde::{Deserialize, Serialize};
use tollgate_domain::ResourceKind;

use crate::PolicyError;
use crate::gate::{self, GATE_PACKAGE_PREFIX};
use crate::metadata::{self, ControlMeta, GateRuleMeta};

/// A policy file's name and text.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// One violation a control reported for the evaluated resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub control: String,
    pub message: String,
    /// The fields and values that decided it.
    #[serde(default)]
    pub evidence: serde_json::Value,
}

/// The loaded policy set plus what could not be loaded.
pub struct Loaded {
    pub set: PolicySet,
    pub problems: Vec<PolicyError>,
}

/// Policies ready to evaluate. The prepared engine is cloned into each [`Evaluator`] (cheap:
/// shared, immutable modules), so a `PolicySet` is shared across threads and never rebuilt.
#[derive(Clone)]
pub struct PolicySet {
    pub(crate) template: Engine,
    controls: Vec<ControlMeta>,
    pub(crate) gate_rules: Vec<GateRuleMeta>,
    /// `data.<package>.deny` of each control, in the order of `controls`.
    deny_rules: Vec<String>,
    by_kind: BTreeMap<ResourceKind, Vec<usize>>,
    time_limit: Duration,
    fingerprint: String,
}

fn engine_with_limit(time_limit: Duration) -> Engine {
    let mut engine = Engine::new();
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: time_limit,
        check_interval: NonZeroU32::new(256).unwrap_or(NonZeroU32::MIN),
    });
    engine
}

/// 64-bit FNV-1a: tiny, and stable across Rust releases (unlike `DefaultHasher`), which
/// matters because fingerprints are stored.
pub(crate) struct Fnv1a(pub(crate) u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Pull `file:line` out of a regorus error message when it carries one.
pub(crate) fn error_line(message: &str, source: &str) -> usize {
    message
        .split(&format!("{source}:"))
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or(1)
}

/// Remove comments and string literals so that scanning for calls sees only code.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for next in chars.by_ref() {
                    if next == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                out.push(' ');
                while let Some(next) = chars.next() {
                    match next {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        '\n' => out.push('\n'),
                        _ => {}
                    }
                }
            }
            '`' => {
                out.push(' ');
                for next in chars.by_ref() {
                    if next == '`' {
                        break;
                    }
                    if next == '\n' {
                        out.push('\n');
                    }
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Functions a source calls, with the line of each call: `name(` where name may be dotted.
fn calls(code: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let bytes: Vec<char> = line.chars().collect();
        let mut start = None;
        for (position, c) in bytes.iter().enumerate() {
            let part_of_name = c.is_ascii_alphanumeric() || *c == '_' || *c == '.';
            match (part_of_name, start) {
                (true, None) => start = Some(position),
                (false, Some(from)) => {
                    if *c == '(' {
                        let name: String = bytes[from..position].iter().collect();
                        if !name.is_empty()
                            && !name.starts_with('.')
                            && !name.chars().next().is_some_and(|c| c.is_ascii_digit())
                        {
                            found.push((name, index + 1));
                        }
                    }
                    start = None;
                }
                _ => {}
            }
        }
    }
    found
}

/// Names a source defines as functions (`name(args) := …`, `name(args) if …`).
fn defined_functions(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| line.split_once('(').map(|(name, _)| name.trim()))
        .filter(|name| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// Imported package aliases: `import data.tollgate.lib` → `lib`, `… as x` → `x`.
fn import_aliases(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter_map(|line| line.trim().strip_prefix("import "))
        .filter_map(|import| match import.split_once(" as ") {
            Some((_, alias)) => Some(alias.trim().to_owned()),
            None => import.trim().rsplit('.').next().map(str::to_owned),
        })
        .collect()
}

const KEYWORDS: &[&str] = &[
    "if", "contains", "in", "not", "some", "every", "with", "else", "default", "print",
];

/// Report calls to functions that neither regorus nor the policies define.
pub(crate) fn check_functions(
    source: &Source,
    defined: &BTreeSet<String>,
) -> Result<(), PolicyError> {
    let code = code_only(&source.text);
    let aliases = import_aliases(&code);
    for (name, line) in calls(&code) {
        let root = name.split('.').next().unwrap_or_default();
        let known = regorus::unstable::BUILTINS.contains_key(name.as_str())
            || KEYWORDS.contains(&name.as_str())
            || defined.contains(&name)
            || name.starts_with("data.")
            || aliases.contains(root);
        if !known {
            return Err(PolicyError::Load {
                file: source.name.clone(),
                line,
                message: format!(
                    "`{name}` is not a function regorus provides (crypto.*, io.jwt.* and http.send are not available) nor one the policies define"
                ),
            });
        }
    }
    Ok(())
}

impl PolicySet {
    /// Load policies. Files that do not parse, call missing functions, repeat a control id or
    /// fail when exercised are returned as problems and left out; the others load.
    pub fn load(sources: &[Source], time_limit: Duration) -> Loaded {
        let mut problems = Vec::new();
        let defined: BTreeSet<String> = sources
            .iter()
            .flat_map(|s| defined_functions(&code_only(&s.text)))
            .collect();
        let mut accepted: Vec<(Source, Option<ControlMeta>)> = Vec::new();
        let mut gate_rules: Vec<GateRuleMeta> = Vec::new();
        let mut ids = BTreeSet::new();
        for source in sources {
            if gate::package_of(&source.text).is_some_and(|p| p.starts_with(GATE_PACKAGE_PREFIX)) {
                match gate::check_rule_source(source, &defined, &mut ids) {
                    Ok(meta) => {
                        gate_rules.push(meta);
                        accepted.push((source.clone(), None));
                    }
                    Err(problem) => problems.push(problem),
                }
                continue;
            }
            let checked = (|| {
                let meta = metadata::parse(&source.name, &source.text)?;
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
                check_functions(source, &defined)?;
                if let Some(meta) = &meta {
                    if !meta.package.starts_with("tollgate.controls.") {
                        return Err(PolicyError::Load {
                            file: source.name.clone(),
                            line: meta.line,
                            message: format!(
                                "control packages live under tollgate.controls (found {})",
                                meta.package
                            ),
                        });
                    }
                    if !ids.insert(meta.id.clone()) {
                        return Err(PolicyError::Load {
                            file: source.name.clone(),
                            line: meta.line,
                            message: format!("control id {} is defined twice", meta.id),
                        });
                    }
                }
                Ok(meta)
            })();
            match checked {
                Ok(meta) => accepted.push((source.clone(), meta)),
                Err(problem) => problems.push(problem),
            }
        }

        // Exercise each control once on an empty resource of its kind: a rule that cannot be
        // evaluated at all (a type error, a missing helper) is found now, not mid-scan.
        let mut set = Self::assemble(&accepted, &gate_rules, time_limit, &mut problems);
        let broken_rules = gate::exercise(&set, &mut problems);
        let broken: Vec<String> = set
            .controls
            .iter()
            .filter_map(|control| {
                let input = serde_json::json!({"kind": control.kind.as_str(), "key": "exercise", "project": "", "scope": "",
                    "resource": {}, "related": {}, "params": {control.id.clone(): control.parameters.clone()}, "now": "2026-01-01T00:00:00Z"});
                set.evaluate_package(&control.package, &input).err().map(|error| {
                    problems.push(PolicyError::Load { file: control.source.clone(), line: control.line, message: format!("evaluating {} failed: {error}", control.id) });
                    control.id.clone()
                })
            })
            .collect();
        if !broken.is_empty() || !broken_rules.is_empty() {
            accepted.retain(|(source, meta)| {
                meta.as_ref().is_none_or(|m| !broken.contains(&m.id))
                    && !broken_rules.iter().any(|rule| rule.source == source.name)
            });
            gate_rules.retain(|rule| !broken_rules.iter().any(|b| b.id == rule.id));
            set = Self::assemble(&accepted, &gate_rules, time_limit, &mut problems);
        }
        Loaded { set, problems }
    }

    fn assemble(
        accepted: &[(Source, Option<ControlMeta>)],
        gate_rules: &[GateRuleMeta],
        time_limit: Duration,
        problems: &mut Vec<PolicyError>,
    ) -> Self {
        let mut template = engine_with_limit(time_limit);
        let mut controls = Vec::new();
        for (source, meta) in accepted {
            match template.add_policy(source.name.clone(), source.text.clone()) {
                Ok(_) => controls.extend(meta.clone()),
                Err(error) => problems.push(PolicyError::Load {
                    file: source.name.clone(),
                    line: 1,
                    message: error.to_string(),
                }),
            }
        }
        controls.sort_by(|a, b| a.id.cmp(&b.id));
        let mut by_kind: BTreeMap<ResourceKind, Vec<usize>> = BTreeMap::new();
        for (index, control) in controls.iter().enumerate() {
            by_kind.entry(control.kind).or_default().push(index);
        }
        let deny_rules: Vec<String> = controls
            .iter()
            .map(|control| format!("data.{}.deny", control.package))
            .collect();
        let mut gate_rules = gate_rules.to_vec();
        gate_rules.sort_by(|a, b| a.id.cmp(&b.id));
        if let Err(error) = template.add_policy(
            gate::AGGREGATE_FILE.to_owned(),
            gate::aggregate_module(&gate_rules),
        ) {
            problems.push(PolicyError::Load {
                file: gate::AGGREGATE_FILE.to_owned(),
                line: 1,
                message: error.to_string(),
            });
        }
        // regorus analyses and schedules every module on an engine's first evaluation and
        // clones inherit that work only once it is done; evaluating once here keeps every
        // clone from repeating it (≈2 ms with the full catalog).
        // Its result is irrelevant; an error here reappears, with its resource, at evaluation.
        template.set_input(regorus::Value::new_object());
        if let Some(rule) = deny_rules.first() {
            let _preparation = template.eval_rule(rule.clone());
        }
        let mut hash = Fnv1a::default();
        for (source, _) in accepted {
            hash.write(source.name.as_bytes());
            hash.write(&[0]);
            hash.write(source.text.as_bytes());
            hash.write(&[0]);
        }
        Self {
            template,
            controls,
            gate_rules,
            deny_rules,
            by_kind,
            time_limit,
            fingerprint: format!("{:016x}", hash.0),
        }
    }

    pub fn controls(&self) -> &[ControlMeta] {
        &self.controls
    }

    pub fn control(&self, id: &str) -> Option<&ControlMeta> {
        self.controls.iter().find(|c| c.id.eq_ignore_ascii_case(id))
    }

    /// The controls that judge a kind.
    pub fn controls_for(&self, kind: ResourceKind) -> impl Iterator<Item = &ControlMeta> {
        self.by_kind
            .get(&kind)
            .into_iter()
            .flatten()
            .filter_map(|index| self.controls.get(*index))
    }

    pub fn time_limit(&self) -> Duration {
        self.time_limit
    }

    /// A stable digest of every loaded source: equal fingerprints mean the same rules, so
    /// findings judged under one still stand under the other.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// An evaluator for judging many resources in a row (one per thread).
    pub fn evaluator(&self) -> Evaluator<'_> {
        Evaluator {
            set: self,
            engine: self.template.clone(),
            params: None,
        }
    }

    /// Evaluate every control of the input's kind on one resource.
    ///
    /// The input is `{"kind", "key", "project", "scope", "resource", "related", "params",
    /// "now"}`; `now` (RFC 3339) is the clock, so evaluation is deterministic.
    pub fn evaluate(&self, input: &serde_json::Value) -> Result<Vec<Violation>, PolicyError> {
        self.evaluator().evaluate(input)
    }

    /// Like [`PolicySet::evaluate`], but a control that fails on this input does not take the
    /// others down: its error is returned next to the other controls' violations.
    pub fn evaluate_each(
        &self,
        input: &serde_json::Value,
    ) -> (Vec<Violation>, Vec<(String, PolicyError)>) {
        self.evaluator().evaluate_each(input)
    }

    /// Evaluate one control's `deny` set (for `tollgate policy eval` and case tests).
    pub fn evaluate_control(
        &self,
        id: &str,
        input: &serde_json::Value,
    ) -> Result<Vec<Violation>, PolicyError> {
        let index = self
            .controls
            .iter()
            .position(|c| c.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| PolicyError::UnknownControl(id.to_owned()))?;
        let mut evaluator = self.evaluator();
        evaluator.set_input(input, None)?;
        evaluator.deny(index)
    }

    fn evaluate_package(
        &self,
        package: &str,
        input: &serde_json::Value,
    ) -> Result<serde_json::Value, PolicyError> {
        let mut evaluator = self.evaluator();
        evaluator.set_input(input, None)?;
        evaluator.eval(format!("data.{package}.deny"))
    }
}

/// A policy input in parts, for a caller judging many resources
/// ([`Evaluator::evaluate_each_parts`]): the same document as the whole input, but
/// - `resource` is the JSON text the object is stored as, parsed straight into the engine's
///   values (text that is not JSON is judged as `null`), and
/// - `params` are shared by many resources: converted once while they stay the same.
pub struct InputParts<'a> {
    /// The input's other fields: `kind`, `key`, `project`, `scope`, `related`, `now` (a
    /// `resource` or `params` here is ignored).
    pub fields: &'a serde_json::Value,
    pub resource: &'a str,
    pub params: &'a serde_json::Value,
}

/// Judges resources one after another on its own clone of the prepared engine.
///
/// Each control is its own `eval_rule`: regorus resets its evaluation state for every call, so
/// nothing carries over from one control or resource to the next. Reusing the clone (instead
/// of cloning per resource) and evaluating each `deny` directly (instead of one generated rule
/// gathering them, whose `data.…` references each make regorus walk every module) halves the
/// cost of a resource with cheap controls (docs/PERFORMANCE.md).
pub struct Evaluator<'a> {
    set: &'a PolicySet,
    engine: Engine,
    /// The last input's `params` and their regorus value: the resources of one kind nearly
    /// always share their parameters, and converting them is a quarter of a work item's input.
    params: Option<(serde_json::Value, regorus::Value)>,
}

impl Evaluator<'_> {
    /// Every control of the input's kind, as [`PolicySet::evaluate`]: the first control that
    /// fails fails the resource.
    pub fn evaluate(&mut self, input: &serde_json::Value) -> Result<Vec<Violation>, PolicyError> {
        let Some(controls) = self.controls_of(input)? else {
            return Ok(Vec::new());
        };
        self.set_input(input, None)?;
        let mut violations = Vec::new();
        for index in controls {
            violations.extend(self.deny(index)?);
        }
        sort(&mut violations);
        Ok(violations)
    }

    /// Every control of the input's kind, as [`PolicySet::evaluate_each`]: a control that
    /// fails is reported with its error and the others still judge.
    pub fn evaluate_each(
        &mut self,
        input: &serde_json::Value,
    ) -> (Vec<Violation>, Vec<(String, PolicyError)>) {
        self.judge_each(input, None)
    }

    /// [`Evaluator::evaluate_each`] for an input given in parts (see [`InputParts`]).
    pub fn evaluate_each_parts(
        &mut self,
        parts: &InputParts<'_>,
    ) -> (Vec<Violation>, Vec<(String, PolicyError)>) {
        self.judge_each(parts.fields, Some(parts))
    }

    fn judge_each(
        &mut self,
        input: &serde_json::Value,
        parts: Option<&InputParts<'_>>,
    ) -> (Vec<Violation>, Vec<(String, PolicyError)>) {
        let controls = match self
            .controls_of(input)
            .and_then(|controls| self.set_input(input, parts).map(|()| controls))
        {
            Ok(Some(controls)) => controls,
            Ok(None) => return (Vec::new(), Vec::new()),
            Err(error) => return (Vec::new(), vec![(String::new(), error)]),
        };
        let mut violations = Vec::new();
        let mut errors = Vec::new();
        for index in controls {
            match self.deny(index) {
                Ok(found) => violations.extend(found),
                Err(error) => errors.push((self.set.controls[index].id.clone(), error)),
            }
        }
        sort(&mut violations);
        (violations, errors)
    }

    /// The indices of the controls judging the input's kind; `None` when no control does.
    fn controls_of(&self, input: &serde_json::Value) -> Result<Option<Vec<usize>>, PolicyError> {
        let kind: ResourceKind = input["kind"]
            .as_str()
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| PolicyError::Input("input.kind must name a resource kind".to_owned()))?;
        Ok(self.set.by_kind.get(&kind).cloned())
    }

    /// Set the input: a whole document, or one given in parts.
    fn set_input(
        &mut self,
        input: &serde_json::Value,
        parts: Option<&InputParts<'_>>,
    ) -> Result<(), PolicyError> {
        let convert = |value: &serde_json::Value| {
            // Straight from the borrowed document: no copy and no JSON text in between.
            regorus::Value::deserialize(value)
                .map_err(|error| PolicyError::Input(error.to_string()))
        };
        let Some(fields) = input.as_object() else {
            self.engine.set_input(convert(input)?);
            return Ok(());
        };
        let mut document = regorus::Value::new_object();
        let object = document
            .as_object_mut()
            .map_err(|error| PolicyError::Input(error.to_string()))?;
        let given = |name: &str| parts.is_some() && (name == "params" || name == "resource");
        for (name, value) in fields {
            if name != "params" && !given(name) {
                object.insert(regorus::Value::from(name.as_str()), convert(value)?);
            }
        }
        if let Some(parts) = parts {
            // Parsed from the stored text into the engine's values in one step; text that is
            // not JSON is judged as null, as a document that failed to parse always was.
            let resource =
                regorus::Value::from_json_str(parts.resource).unwrap_or(regorus::Value::Null);
            object.insert(regorus::Value::from("resource"), resource);
        }
        if let Some(params) = parts
            .map(|parts| parts.params)
            .or_else(|| fields.get("params"))
        {
            let converted = match &self.params {
                Some((json, converted)) if json == params => converted.clone(),
                _ => {
                    let converted = convert(params)?;
                    self.params = Some((params.clone(), converted.clone()));
                    converted
                }
            };
            object.insert(regorus::Value::from("params"), converted);
        }
        self.engine.set_input(document);
        Ok(())
    }

    /// One control's violations on the current input.
    fn deny(&mut self, index: usize) -> Result<Vec<Violation>, PolicyError> {
        let control = &self.set.controls[index];
        let value = self.eval(self.set.deny_rules[index].clone())?;
        let items = match value {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Null => Vec::new(),
            other => vec![other],
        };
        Ok(items
            .into_iter()
            .map(|v| normalise(control.id.clone(), v))
            .collect())
    }

    fn eval(&mut self, rule: String) -> Result<serde_json::Value, PolicyError> {
        let value = self
            .engine
            .eval_rule(rule)
            .map_err(|error| PolicyError::Evaluation(error.to_string()))?;
        match &value {
            regorus::Value::Undefined => return Ok(serde_json::Value::Array(Vec::new())),
            // Most resources pass most controls: skip the conversion of an empty set.
            regorus::Value::Set(set) if set.is_empty() => {
                return Ok(serde_json::Value::Array(Vec::new()));
            }
            _ => {}
        }
        serde_json::to_value(&value).map_err(|error| PolicyError::Evaluation(error.to_string()))
    }
}

/// Violations in a stable order: by control, then message (then as each `deny` set orders them).
fn sort(violations: &mut [Violation]) {
    violations.sort_by(|a, b| (&a.control, &a.message).cmp(&(&b.control, &b.message)));
}

/// A `deny` element is `{"message", "evidence"}`; a bare string is accepted as the message.
fn normalise(control: String, violation: serde_json::Value) -> Violation {
    match violation {
        serde_json::Value::String(message) => Violation {
            control,
            message,
            evidence: serde_json::Value::Null,
        },
        serde_json::Value::Object(mut object) => Violation {
            control,
            message: object
                .remove("message")
                .and_then(|m| m.as_str().map(str::to_owned))
                .unwrap_or_default(),
            evidence: object.remove("evidence").unwrap_or(serde_json::Value::Null),
        },
        other => Violation {
            control,
            message: other.to_string(),
            evidence: serde_json::Value::Null,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(id: &str, kind: &str, body: &str) -> Source {
        let package = id.to_lowercase().replace('-', "_");
        Source {
            name: format!("{package}.rego"),
            text: format!(
                "# METADATA\n# title: {id}\n# custom:\n#   id: {id}\n#   severity: high\n#   kind: {kind}\n#   rationale: r\n#   remediation: m\n#   permission: p\npackage tollgate.controls.{package}\n\n{body}\n"
            ),
        }
    }

    fn load(sources: &[Source]) -> Loaded {
        PolicySet::load(sources, Duration::from_secs(1))
    }

    #[test]
    fn controls_run_for_their_kind_only_and_report_evidence() {
        let sources = [
            control(
                "T-1",
                "repositories",
                "deny contains {\"message\": \"disabled\", \"evidence\": {\"isDisabled\": true}} if input.resource.isDisabled",
            ),
            control("T-2", "projects", "deny contains \"always\" if true"),
        ];
        let loaded = load(&sources);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let input = serde_json::json!({"kind": "repositories", "resource": {"isDisabled": true}, "related": {}, "params": {}, "now": "2026-01-01T00:00:00Z"});
        let violations = loaded.set.evaluate(&input).unwrap();
        assert_eq!(
            violations,
            vec![Violation {
                control: "T-1".into(),
                message: "disabled".into(),
                evidence: serde_json::json!({"isDisabled": true})
            }]
        );
        let clean = serde_json::json!({"kind": "repositories", "resource": {"isDisabled": false}});
        assert!(loaded.set.evaluate(&clean).unwrap().is_empty());
        let other = serde_json::json!({"kind": "teams", "resource": {}});
        assert!(loaded.set.evaluate(&other).unwrap().is_empty());
    }

    #[test]
    fn a_broken_file_is_reported_with_file_and_line_and_the_rest_loads() {
        let sources = [
            control(
                "T-1",
                "repositories",
                "deny contains \"x\" if {\n  input.resource.a ==\n}",
            ),
            control(
                "T-2",
                "repositories",
                "deny contains \"sha\" if crypto.sha256(\"x\") == \"y\"",
            ),
            control(
                "T-3",
                "repositories",
                "deny contains \"ok\" if input.resource.bad",
            ),
            control("T-3", "projects", "deny contains \"dup\" if false"),
        ];
        let loaded = load(&sources);
        let problems: Vec<String> = loaded.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("t_1.rego:"), "{problems:?}");
        assert!(
            problems[1].starts_with("t_2.rego:12:") && problems[1].contains("crypto.sha256"),
            "{problems:?}"
        );
        assert!(problems[2].contains("defined twice"), "{problems:?}");
        assert_eq!(
            loaded
                .set
                .controls()
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>(),
            vec!["T-3"]
        );
    }

    #[test]
    fn a_control_that_fails_when_exercised_is_left_out() {
        let sources = [
            control("T-1", "repositories", "deny contains \"x\" if { 1 / 0 }"),
            control("T-2", "repositories", "deny contains \"never\" if false"),
        ];
        let loaded = load(&sources);
        // Whether regorus treats 1/0 as an error or undefined, a loaded control must evaluate.
        for control in loaded.set.controls() {
            assert!(
                loaded
                    .set
                    .evaluate_control(
                        &control.id,
                        &serde_json::json!({"kind": "repositories", "resource": {}})
                    )
                    .is_ok()
            );
        }
    }

    #[test]
    fn an_evaluator_judges_each_resource_on_its_own() {
        let sources = [
            control(
                "T-1",
                "repositories",
                "names contains n if { some n in input.resource.names }\n\ndeny contains n if { some n in names; startswith(n, \"bad\") }",
            ),
            control(
                "T-2",
                "repositories",
                "deny contains \"disabled\" if input.resource.isDisabled",
            ),
        ];
        let loaded = load(&sources);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let mut evaluator = loaded.set.evaluator();
        let first = serde_json::json!({"kind": "repositories", "resource": {"names": ["bad-1", "ok"], "isDisabled": true}});
        let second = serde_json::json!({"kind": "repositories", "resource": {"names": ["bad-2"]}});
        let third = serde_json::json!({"kind": "repositories", "resource": {}});
        let messages = |violations: Vec<Violation>| -> Vec<(String, String)> {
            violations
                .into_iter()
                .map(|v| (v.control, v.message))
                .collect()
        };
        assert_eq!(
            messages(evaluator.evaluate(&first).unwrap()),
            vec![
                ("T-1".to_owned(), "bad-1".to_owned()),
                ("T-2".to_owned(), "disabled".to_owned())
            ]
        );
        // Nothing of the first resource (its names, its violations) carries over.
        assert_eq!(
            messages(evaluator.evaluate(&second).unwrap()),
            vec![("T-1".to_owned(), "bad-2".to_owned())]
        );
        assert!(evaluator.evaluate(&third).unwrap().is_empty());
        assert_eq!(
            evaluator.evaluate(&first).unwrap(),
            loaded.set.evaluate(&first).unwrap()
        );
    }

    #[test]
    fn each_resource_is_judged_with_its_own_parameters() {
        let sources = [control(
            "T-1",
            "repositories",
            "deny contains input.resource.name if input.resource.size > input.params[\"T-1\"].max_size",
        )];
        let loaded = load(&sources);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let mut evaluator = loaded.set.evaluator();
        let input = |name: &str, max_size: u64| {
            serde_json::json!({"kind": "repositories", "resource": {"name": name, "size": 10},
                "params": {"T-1": {"max_size": max_size}}})
        };
        let judged = |evaluator: &mut Evaluator<'_>, name: &str, max_size: u64| -> Vec<String> {
            evaluator
                .evaluate(&input(name, max_size))
                .unwrap()
                .into_iter()
                .map(|v| v.message)
                .collect()
        };
        assert_eq!(judged(&mut evaluator, "a", 5), vec!["a"]);
        assert_eq!(judged(&mut evaluator, "b", 5), vec!["b"]);
        assert!(judged(&mut evaluator, "c", 50).is_empty());
        assert_eq!(judged(&mut evaluator, "d", 5), vec!["d"]);
        // In parts: the resource as text and the parameters apart take the place of the
        // input's own; text that is not JSON is a null resource.
        let parts = |resource: &'static str| -> (Vec<String>, usize) {
            let fields = input("ignored", 50);
            let params = serde_json::json!({"T-1": {"max_size": 5}});
            let (violations, errors) = loaded.set.evaluator().evaluate_each_parts(&InputParts {
                fields: &fields,
                resource,
                params: &params,
            });
            (
                violations.into_iter().map(|v| v.message).collect(),
                errors.len(),
            )
        };
        assert_eq!(
            parts(r#"{"name": "e", "size": 10}"#),
            (vec!["e".to_owned()], 0)
        );
        assert_eq!(parts(r#"{"name": "e", "size": 1}"#), (Vec::new(), 0));
        assert_eq!(parts("not json"), (Vec::new(), 0));
        assert!(judged(&mut evaluator, "f", 50).is_empty());
        // Not a JSON object at all: still an input error, not a panic.
        assert!(matches!(
            evaluator.evaluate(&serde_json::json!(["repositories"])),
            Err(PolicyError::Input(_))
        ));
    }

    #[test]
    fn a_control_failing_on_one_resource_leaves_the_others_judging() {
        let sources = [
            control(
                "T-1",
                "repositories",
                "deny contains \"sum\" if { x := input.resource.n + 1; x > 1 }",
            ),
            control(
                "T-2",
                "repositories",
                "deny contains \"disabled\" if input.resource.isDisabled",
            ),
        ];
        let loaded = load(&sources);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let input = serde_json::json!({"kind": "repositories", "resource": {"n": "text", "isDisabled": true}});
        let (violations, errors) = loaded.set.evaluator().evaluate_each(&input);
        assert_eq!(
            violations
                .iter()
                .map(|v| v.control.as_str())
                .collect::<Vec<_>>(),
            vec!["T-2"]
        );
        assert_eq!(
            errors.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
            vec!["T-1"]
        );
        assert!(loaded.set.evaluate(&input).is_err());
        let (_, errors) = loaded
            .set
            .evaluate_each(&serde_json::json!({"kind": "nonsense"}));
        assert!(matches!(errors.as_slice(), [(id, PolicyError::Input(_))] if id.is_empty()));
    }

    #[test]
    fn function_scanning_ignores_strings_and_comments() {
        let code = code_only("x := \"crypto.sha256(1)\" # io.jwt.decode(x)\ny := count([1])\n");
        let names: Vec<String> = calls(&code).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["count"]);
        assert!(defined_functions("is_protected(name) if {\n}\n").contains("is_protected"));
    }
}
