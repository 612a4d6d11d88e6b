use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a kind's objects are listed from: the organisation, a project, or a parent object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScopeLevel {
    Organization,
    Project,
    /// Listed per parent object of this kind (refs per repository, runs per pipeline, …).
    Parent(ResourceKind),
}

macro_rules! resource_kinds {
    ($($variant:ident => $name:literal, $scope:expr;)+) => {
        /// A kind of Azure DevOps resource held in the inventory.
        ///
        /// The snake_case names are stable: they appear in the database, in `--format json`
        /// output and in the simulator's manifest.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ResourceKind {
            $($variant,)+
        }

        impl ResourceKind {
            /// Every kind, parents before their children (the order a full sync runs in).
            pub const ALL: &'static [ResourceKind] = &[$(ResourceKind::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ResourceKind::$variant => $name,)+
                }
            }

            pub fn scope_level(self) -> ScopeLevel {
                use ResourceKind::*;
                match self {
                    $($variant => $scope,)+
                }
            }
        }

        impl FromStr for ResourceKind {
            type Err = UnknownKind;
            fn from_str(raw: &str) -> Result<Self, Self::Err> {
                match raw {
                    $($name => Ok(ResourceKind::$variant),)+
                    _ => Err(UnknownKind { raw: raw.to_owned() }),
                }
            }
        }
    };
}

resource_kinds! {
    Projects => "projects", ScopeLevel::Organization;
    AgentPools => "agent_pools", ScopeLevel::Organization;
    AuditLog => "audit_log", ScopeLevel::Organization;
    Teams => "teams", ScopeLevel::Project;
    Repositories => "repositories", ScopeLevel::Project;
    PolicyConfigurations => "policy_configurations", ScopeLevel::Project;
    PullRequests => "pull_requests", ScopeLevel::Project;
    BuildDefinitions => "build_definitions", ScopeLevel::Project;
    Builds => "builds", ScopeLevel::Project;
    Pipelines => "pipelines", ScopeLevel::Project;
    Environments => "environments", ScopeLevel::Project;
    CheckConfigurations => "check_configurations", ScopeLevel::Project;
    ServiceEndpoints => "service_endpoints", ScopeLevel::Project;
    VariableGroups => "variable_groups", ScopeLevel::Project;
    AgentQueues => "agent_queues", ScopeLevel::Project;
    SecureFiles => "secure_files", ScopeLevel::Project;
    WorkItems => "work_items", ScopeLevel::Project;
    ReleaseDefinitions => "release_definitions", ScopeLevel::Project;
    Refs => "refs", ScopeLevel::Parent(Repositories);
    Alerts => "alerts", ScopeLevel::Parent(Repositories);
    PipelineRuns => "pipeline_runs", ScopeLevel::Parent(Pipelines);
    EnvironmentDeployments => "environment_deployments", ScopeLevel::Parent(Environments);
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown resource kind {raw:?}; known kinds: {}", ResourceKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))]
pub struct UnknownKind {
    raw: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serde_agrees_with_as_str() {
        for kind in ResourceKind::ALL {
            assert_eq!(kind.as_str().parse::<ResourceKind>().ok(), Some(*kind));
            let json = serde_json::to_string(kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert!("repos".parse::<ResourceKind>().is_err());
    }

    #[test]
    fn parents_come_before_children_in_all() {
        let position = |k: ResourceKind| ResourceKind::ALL.iter().position(|x| *x == k);
        for kind in ResourceKind::ALL {
            if let ScopeLevel::Parent(parent) = kind.scope_level() {
                assert!(
                    position(parent) < position(*kind),
                    "{kind} listed before its parent {parent}"
                );
                assert_eq!(
                    parent.scope_level(),
                    ScopeLevel::Project,
                    "parents are project-scoped"
                );
            }
        }
    }
}
