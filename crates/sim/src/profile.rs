use std::str::FromStr;

/// How big the synthetic organisation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Small,
    Medium,
    Large,
}

/// Object counts per project (or per parent) for a profile.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub projects: usize,
    pub teams: usize,
    pub repos: usize,
    pub extra_branches: usize,
    pub pull_requests_per_repo: usize,
    pub pipelines: usize,
    pub runs_per_pipeline: usize,
    pub environments: usize,
    pub deployments_per_environment: usize,
    pub service_endpoints: usize,
    pub variable_groups: usize,
    pub queues: usize,
    pub secure_files: usize,
    pub work_items: usize,
    pub alerts_per_repo: usize,
    pub agent_pools: usize,
    /// Classic release definitions per project.
    pub release_definitions: usize,
}

impl Profile {
    pub fn sizes(self) -> Sizes {
        match self {
            Profile::Small => Sizes {
                projects: 2,
                teams: 2,
                repos: 4,
                extra_branches: 2,
                pull_requests_per_repo: 2,
                pipelines: 5,
                runs_per_pipeline: 2,
                environments: 4,
                deployments_per_environment: 3,
                service_endpoints: 4,
                variable_groups: 4,
                queues: 2,
                secure_files: 2,
                work_items: 120,
                alerts_per_repo: 3,
                agent_pools: 3,
                release_definitions: 3,
            },
            Profile::Medium => Sizes {
                projects: 5,
                teams: 3,
                repos: 20,
                extra_branches: 3,
                pull_requests_per_repo: 4,
                pipelines: 50,
                runs_per_pipeline: 2,
                environments: 4,
                deployments_per_environment: 10,
                service_endpoints: 6,
                variable_groups: 8,
                queues: 3,
                secure_files: 3,
                work_items: 2_000,
                alerts_per_repo: 5,
                agent_pools: 4,
                release_definitions: 24,
            },
            // DESIGN targets: ≥ 1,000 repos, ≥ 5,000 pipelines, ≥ 100,000 work items, ≥ 20,000 alerts.
            Profile::Large => Sizes {
                projects: 20,
                teams: 5,
                repos: 50,
                extra_branches: 2,
                pull_requests_per_repo: 3,
                pipelines: 250,
                runs_per_pipeline: 2,
                environments: 5,
                deployments_per_environment: 20,
                service_endpoints: 8,
                variable_groups: 10,
                queues: 3,
                secure_files: 4,
                work_items: 5_000,
                alerts_per_repo: 20,
                agent_pools: 6,
                // More than one 100-definition page per project.
                release_definitions: 120,
            },
        }
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "small" => Ok(Profile::Small),
            "medium" => Ok(Profile::Medium),
            "large" => Ok(Profile::Large),
            other => Err(format!(
                "unknown profile {other:?}: use small, medium or large"
            )),
        }
    }
}
