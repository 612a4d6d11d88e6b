//! Policy settings per scope: enforcement actions and parameters, configured at the
//! organisation, project or repository level, the most specific winning.
//!
//! ```toml
//! [[policy.scoped]]
//! scope = "organization"            # or "project:Payments", or "repository:Payments/payments-api"
//! control = "*"                     # or one control id
//! action = "warn"                   # deny | warn | dry-run | off
//!
//! [[policy.scoped]]
//! scope = "project:Payments"
//! control = "BP-02"
//! action = "deny"
//! params = { minimum_approvers = 3 }
//! ```
//!
//! For a resource and a control, entries are applied from least to most specific scope
//! (organisation, project, repository); at one scope an entry naming the control beats `*`.
//! Parameters merge key by key over the control's METADATA defaults.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::services::facts::StoredJson;

/// What a control's findings do.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A finding that blocks (gates deny, `--fail-on` counts it).
    #[default]
    Deny,
    /// A finding that is reported and counted, but does not block a gate.
    Warn,
    /// Evaluated and reported separately; never counted or blocking (trying a control out).
    DryRun,
    /// Not evaluated.
    Off,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::DryRun => "dry-run",
            Action::Off => "off",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Action::Deny, Action::Warn, Action::DryRun, Action::Off]
            .into_iter()
            .find(|action| action.as_str() == raw)
    }
}

/// One `[[policy.scoped]]` entry as configured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopedSetting {
    pub scope: String,
    #[serde(default = "every_control")]
    pub control: String,
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub params: Option<toml::Table>,
}

fn every_control() -> String {
    "*".to_owned()
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Organization,
    Project(String),
    Repository(String, String),
}

impl Level {
    fn parse(raw: &str) -> Result<Self> {
        let lower = raw.trim();
        if lower.eq_ignore_ascii_case("organization")
            || lower.eq_ignore_ascii_case("organisation")
            || lower == "*"
        {
            return Ok(Level::Organization);
        }
        if let Some(project) = lower.strip_prefix("project:") {
            if project.is_empty() {
                bail!("scope {raw:?} names no project");
            }
            return Ok(Level::Project(project.to_lowercase()));
        }
        if let Some(repository) = lower.strip_prefix("repository:") {
            let Some((project, name)) = repository.split_once('/') else {
                bail!("scope {raw:?}: write repository:PROJECT/REPOSITORY");
            };
            return Ok(Level::Repository(
                project.to_lowercase(),
                name.to_lowercase(),
            ));
        }
        bail!("scope {raw:?}: use organization, project:NAME or repository:PROJECT/NAME")
    }

    fn rank(&self) -> u8 {
        match self {
            Level::Organization => 0,
            Level::Project(_) => 1,
            Level::Repository(..) => 2,
        }
    }
}

struct Entry {
    level: Level,
    control: Option<String>,
    action: Option<Action>,
    params: Map<String, Value>,
}

/// Where a resource sits: its project's and repository's names (lower-cased), when known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Placement {
    pub project: Option<String>,
    pub repository: Option<String>,
}

/// What applies to one control on one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub action: Action,
    pub params: Map<String, Value>,
}

/// All scoped settings, validated.
#[derive(Default)]
pub struct PolicySettings {
    entries: Vec<Entry>,
}

impl PolicySettings {
    pub fn new(settings: &[ScopedSetting], known_controls: &[String]) -> Result<Self> {
        let mut entries = Vec::new();
        for setting in settings {
            let level = Level::parse(&setting.scope)?;
            let control = (setting.control != "*").then(|| setting.control.to_uppercase());
            if let Some(control) = &control
                && !known_controls
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(control))
            {
                bail!(
                    "[[policy.scoped]] names an unknown control {control:?}; `tollgate policy list` shows them"
                );
            }
            let params = match &setting.params {
                Some(table) => match serde_json::to_value(table)? {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
                None => Map::new(),
            };
            if setting.action.is_none() && params.is_empty() {
                bail!(
                    "[[policy.scoped]] for {} sets neither an action nor params",
                    setting.scope
                );
            }
            entries.push(Entry {
                level,
                control,
                action: setting.action,
                params,
            });
        }
        // Least specific first, and within a level `*` before a named control, so that
        // applying them in order lets the most specific win.
        entries.sort_by_key(|e| (e.level.rank(), e.control.is_some()));
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The action and parameters for a control on a resource, over the given defaults.
    pub fn resolve(
        &self,
        control: &str,
        defaults: &Map<String, Value>,
        placement: &Placement,
    ) -> Resolved {
        let mut resolved = Resolved {
            action: Action::Deny,
            params: defaults.clone(),
        };
        for entry in &self.entries {
            let control_matches = entry
                .control
                .as_deref()
                .is_none_or(|c| c.eq_ignore_ascii_case(control));
            let scope_matches = match &entry.level {
                Level::Organization => true,
                Level::Project(project) => placement.project.as_deref() == Some(project.as_str()),
                Level::Repository(project, repository) => {
                    placement.project.as_deref() == Some(project.as_str())
                        && placement.repository.as_deref() == Some(repository.as_str())
                }
            };
            if control_matches && scope_matches {
                if let Some(action) = entry.action {
                    resolved.action = action;
                }
                resolved.params.extend(entry.params.clone());
            }
        }
        resolved
    }
}

/// Names of projects and repositories by id, to place resources for [`PolicySettings`].
#[derive(Default)]
pub struct Names {
    pub projects: HashMap<String, String>,
    /// Repository id → (project id, repository name).
    pub repositories: HashMap<String, (String, String)>,
}

impl Names {
    /// Place a resource: its project, and its repository where it belongs to one.
    pub fn place(
        &self,
        kind: tollgate_domain::ResourceKind,
        project: &str,
        scope: &str,
        ado_id: &str,
        raw: &StoredJson<'_>,
    ) -> Placement {
        use tollgate_domain::ResourceKind as K;
        let repository_id: Option<String> = match kind {
            K::Repositories => Some(ado_id.to_owned()),
            K::Refs | K::Alerts => Some(scope.to_owned()),
            K::PullRequests => raw.value()["repository"]["id"].as_str().map(str::to_owned),
            K::PolicyConfigurations => raw
                .value()
                .pointer("/settings/scope/0/repositoryId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        Placement {
            project: self.projects.get(project).map(|name| name.to_lowercase()),
            repository: repository_id
                .and_then(|id| self.repositories.get(&id))
                .map(|(_, name)| name.to_lowercase()),
        }
    }
}

/// Summaries of the settings for reports.
pub type ActionCounts = BTreeMap<Action, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(
        scope: &str,
        control: &str,
        action: Option<Action>,
        params: Option<&str>,
    ) -> ScopedSetting {
        ScopedSetting {
            scope: scope.into(),
            control: control.into(),
            action,
            params: params.map(|p| toml::from_str(p).unwrap()),
        }
    }

    fn placement(project: &str, repository: Option<&str>) -> Placement {
        Placement {
            project: Some(project.into()),
            repository: repository.map(Into::into),
        }
    }

    #[test]
    fn the_most_specific_scope_wins_and_params_merge() {
        let settings = PolicySettings::new(
            &[
                setting(
                    "repository:Payments/api",
                    "BP-02",
                    None,
                    Some("minimum_approvers = 4"),
                ),
                setting("organization", "*", Some(Action::Warn), None),
                setting(
                    "project:payments",
                    "BP-02",
                    Some(Action::Deny),
                    Some("minimum_approvers = 3\nextra = true"),
                ),
                setting("project:payments", "*", Some(Action::DryRun), None),
            ],
            &["BP-02".into(), "BP-03".into()],
        )
        .unwrap();
        let defaults: Map<String, Value> =
            serde_json::from_str(r#"{"minimum_approvers": 2}"#).unwrap();
        let other_project = settings.resolve("BP-02", &defaults, &placement("checkout", None));
        assert_eq!(other_project.action, Action::Warn);
        assert_eq!(other_project.params["minimum_approvers"], 2);
        let project = settings.resolve("BP-02", &defaults, &placement("payments", Some("web")));
        assert_eq!(
            (project.action, project.params["minimum_approvers"].clone()),
            (Action::Deny, Value::from(3))
        );
        let repository = settings.resolve("BP-02", &defaults, &placement("payments", Some("api")));
        assert_eq!(
            (
                repository.action,
                repository.params["minimum_approvers"].clone()
            ),
            (Action::Deny, Value::from(4))
        );
        assert_eq!(repository.params["extra"], true);
        assert_eq!(
            settings
                .resolve("BP-03", &Map::new(), &placement("payments", None))
                .action,
            Action::DryRun
        );
    }

    #[test]
    fn mistakes_in_settings_are_named() {
        let error = PolicySettings::new(&[setting("team:x", "*", Some(Action::Off), None)], &[])
            .err()
            .unwrap();
        assert!(error.to_string().contains("team:x"));
        let error = PolicySettings::new(
            &[setting("organization", "XX-9", Some(Action::Off), None)],
            &["BP-02".into()],
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("XX-9"));
        let error = PolicySettings::new(&[setting("organization", "*", None, None)], &[])
            .err()
            .unwrap();
        assert!(error.to_string().contains("neither"));
        assert!(
            PolicySettings::new(
                &[setting("repository:nope", "*", Some(Action::Off), None)],
                &[]
            )
            .is_err()
        );
    }
}
