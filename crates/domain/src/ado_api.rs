//! The part of the Azure DevOps REST API that tollgate reads, as data.
//!
//! Both the HTTP client (tollgate-ado) and the simulator (tollgate-sim) are driven by this one
//! table, so a path or a paging scheme is written down once. What keeps the table honest is
//! outside it: the client's tests parse Microsoft's published payloads for every endpoint
//! here, and the page sizes come from the published specs (see docs/adr/0001).

use crate::ResourceKind;

/// The ADO service hosts. Each can be pointed elsewhere (the simulator serves all of them on
/// one port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdoHost {
    /// `dev.azure.com`: core, git, build, pipelines, policy, distributed task, work items.
    Dev,
    /// `vssps.dev.azure.com`: identities and graph; also the Entra token audience's home.
    Vssps,
    /// `vsrm.dev.azure.com`: classic release management.
    Vsrm,
    /// `auditservice.dev.azure.com`: the organisation's audit log.
    AuditService,
    /// `advsec.dev.azure.com`: Advanced Security alerts and enablement.
    AdvSec,
    /// `feeds.dev.azure.com`: Azure Artifacts.
    Feeds,
}

impl AdoHost {
    pub const ALL: &'static [AdoHost] = &[
        AdoHost::Dev,
        AdoHost::Vssps,
        AdoHost::Vsrm,
        AdoHost::AuditService,
        AdoHost::AdvSec,
        AdoHost::Feeds,
    ];

    /// The public host's base URL (no organisation segment).
    pub fn default_base_url(self) -> &'static str {
        match self {
            AdoHost::Dev => "https://dev.azure.com",
            AdoHost::Vssps => "https://vssps.dev.azure.com",
            AdoHost::Vsrm => "https://vsrm.dev.azure.com",
            AdoHost::AuditService => "https://auditservice.dev.azure.com",
            AdoHost::AdvSec => "https://advsec.dev.azure.com",
            AdoHost::Feeds => "https://feeds.dev.azure.com",
        }
    }

    /// The name used in configuration (`[ado.hosts] advsec = "…"`).
    pub fn config_name(self) -> &'static str {
        match self {
            AdoHost::Dev => "dev",
            AdoHost::Vssps => "vssps",
            AdoHost::Vsrm => "vsrm",
            AdoHost::AuditService => "auditservice",
            AdoHost::AdvSec => "advsec",
            AdoHost::Feeds => "feeds",
        }
    }
}

/// How an endpoint pages its results. ADO uses several schemes; each endpoint uses one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// The whole list comes in one response.
    Single,
    /// An `x-ms-continuationtoken` response header, sent back as the `continuationToken`
    /// query parameter; no header means the last page.
    HeaderToken,
    /// `$top`/`$skip` offsets; a page shorter than `$top` is the last.
    TopSkip,
    /// `continuationToken` is the first id of the next page (ids ascending); a full page may
    /// have a successor (variable groups, `queryOrder=IdAscending`).
    IdSeek,
    /// `continuationToken` and `hasMore` in the response body (audit log).
    BodyToken,
    /// WIQL returns ids (at most [`WIQL_MAX_RESULTS`] per query, windowed by id), then
    /// `workitemsbatch` fetches at most [`WORK_ITEMS_BATCH_MAX`] items per call.
    WiqlBatch,
}

/// How an endpoint can be asked for only what changed since a point in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta {
    /// No server-side filter: an incremental sync re-lists the scope when told it changed.
    Relist,
    /// A query parameter taking an RFC 3339 time (builds `minTime`, alerts
    /// `criteria.modifiedSince`, audit log `startTime`).
    SinceParam(&'static str),
    /// WIQL with `[System.ChangedDate] >= '…'` (work items).
    WiqlChangedDate,
}

/// One list endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    pub kind: ResourceKind,
    pub host: AdoHost,
    /// Path template: `{organization}`, `{project}` and `{parent}` (the parent object's id).
    /// The syntax is also axum's route syntax, which the simulator relies on.
    pub path: &'static str,
    pub api_version: &'static str,
    pub paging: Paging,
    /// The name of the page-size parameter (`$top`, `top` or `batchSize`).
    pub top_param: &'static str,
    /// The page size tollgate asks for: the documented maximum where one is documented,
    /// otherwise the documented default.
    pub page_size: u32,
    /// Query parameters sent on every call (filters that make the list complete).
    pub fixed_query: &'static [(&'static str, &'static str)],
    pub delta: Delta,
    /// Where each listed object is read in full, for lists that return summaries only:
    /// a path template with `{organization}`, `{project}` and `{id}` (the object's id).
    pub detail_path: Option<&'static str>,
}

/// WIQL: "VS402337: The number of work items returned exceeds the size limit of 20000".
pub const WIQL_MAX_RESULTS: u32 = 20_000;
/// `workitemsbatch`: "Gets work items for a list of work item ids (Maximum 200)".
pub const WORK_ITEMS_BATCH_MAX: u32 = 200;
pub const WIQL_PATH: &str = "/{organization}/{project}/_apis/wit/wiql";
pub const WORK_ITEMS_BATCH_PATH: &str = "/{organization}/{project}/_apis/wit/workitemsbatch";
pub const WIT_API_VERSION: &str = "7.1";

const fn endpoint(
    kind: ResourceKind,
    host: AdoHost,
    path: &'static str,
    api_version: &'static str,
    paging: Paging,
    page_size: u32,
) -> Endpoint {
    Endpoint {
        kind,
        host,
        path,
        api_version,
        paging,
        top_param: "$top",
        page_size,
        fixed_query: &[],
        delta: Delta::Relist,
        detail_path: None,
    }
}

/// The endpoint a kind is listed from.
pub fn endpoint_for(kind: ResourceKind) -> Endpoint {
    use AdoHost::*;
    use Paging::*;
    use ResourceKind as K;
    match kind {
        K::Projects => endpoint(
            kind,
            Dev,
            "/{organization}/_apis/projects",
            "7.1",
            HeaderToken,
            100,
        ),
        K::AgentPools => endpoint(
            kind,
            Dev,
            "/{organization}/_apis/distributedtask/pools",
            "7.1",
            Single,
            0,
        ),
        K::AuditLog => Endpoint {
            top_param: "batchSize",
            delta: Delta::SinceParam("startTime"),
            ..endpoint(
                kind,
                AuditService,
                "/{organization}/_apis/audit/auditlog",
                "7.1-preview.1",
                BodyToken,
                1000,
            )
        },
        K::Teams => endpoint(
            kind,
            Dev,
            "/{organization}/_apis/projects/{project}/teams",
            "7.1",
            TopSkip,
            100,
        ),
        K::Repositories => endpoint(
            kind,
            Dev,
            "/{organization}/{project}/_apis/git/repositories",
            "7.1",
            Single,
            0,
        ),
        // "$top … cannot be bigger than 1000" (git spec, Refs_List).
        K::Refs => endpoint(
            kind,
            Dev,
            "/{organization}/{project}/_apis/git/repositories/{parent}/refs",
            "7.1",
            HeaderToken,
            1000,
        ),
        K::PolicyConfigurations => endpoint(
            kind,
            Dev,
            "/{organization}/{project}/_apis/policy/configurations",
            "7.1",
            HeaderToken,
            100,
        ),
        K::PullRequests => Endpoint {
            fixed_query: &[("searchCriteria.status", "all")],
            ..endpoint(
                kind,
                Dev,
                "/{organization}/{project}/_apis/git/pullrequests",
                "7.1",
                TopSkip,
                100,
            )
        },
        K::BuildDefinitions => Endpoint {
            fixed_query: &[("includeAllProperties", "true")],
            ..endpoint(
                kind,
                Dev,
                "/{organization}/{project}/_apis/build/definitions",
                "7.1",
                HeaderToken,
                100,
            )
        },
        // "Each batch has 1000 builds (by default)" (Microsoft's Rust client example).
        K::Builds => Endpoint {
            delta: Delta::SinceParam("minTime"),
            ..endpoint(
                kind,
                Dev,
                "/{organization}/{project}/_apis/build/builds",
                "7.1",
                HeaderToken,
                1000,
            )
        },
        K::Pipelines => endpoint(
            kind,
            Dev,
            "/{organization}/{project}/_apis/pipelines",
            "7.1",
            HeaderToken,
            100,
        ),
        // Runs – List: "Gets top 10000 runs for a particular pipeline" with no paging.
        K::PipelineRuns => endpoint(
            kind,
            Dev,
            "/{organization}/{project}/_apis/pipelines/{parent}/runs",
            "7.1",
            Single,
            0,
        ),
        K::Environments => endpoint(
            kind,
            Dev,
            "/{organization}/{project}/_apis/pipelines/environments",
            "7.1",
            HeaderToken,
            100,
        ),
        K::EnvironmentDeployments => Endpoint {
            top_param: "top",
            ..endpoint(
                kind,
                Dev,
                "/{organization}/{project}/_apis/pipelines/environments/{parent}/environmentdeploymentrecords",
                "7.1",
                HeaderToken,
                100,
            )
        },
        K::CheckConfigurations => Endpoint {
            fixed_query: &[("$expand", "settings")],
            ..endpoint(
                kind,
                Dev,
                "/{organization}/{project}/_apis/pipelines/checks/configurations",
                "7.1-preview.1",
                Single,
                0,
            )
        },
        K::ServiceEndpoints => Endpoint {
            fixed_query: &[("includeDetails", "true")],
            ..endpoint(
                kind,
                Dev,
                "/{organization}/{project}/_apis/serviceendpoint/endpoints",
                "7.1",
                Single,
                0,
            )
        },
        K::VariableGroups => Endpoint {
            fixed_query: &[("queryOrder", "IdAscending")],
            ..endpoint(
                kind,
                Dev,
                "/{organization}/{project}/_apis/distributedtask/variablegroups",
                "7.1",
                IdSeek,
                100,
            )
        },
        K::AgentQueues => endpoint(
            kind,
            Dev,
            "/{organization}/{project}/_apis/distributedtask/queues",
            "7.1",
            Single,
            0,
        ),
        K::SecureFiles => endpoint(
            kind,
            Dev,
            "/{organization}/{project}/_apis/distributedtask/securefiles",
            "7.1-preview.1",
            Single,
            0,
        ),
        K::WorkItems => Endpoint {
            delta: Delta::WiqlChangedDate,
            ..endpoint(
                kind,
                Dev,
                WIQL_PATH,
                WIT_API_VERSION,
                WiqlBatch,
                WORK_ITEMS_BATCH_MAX,
            )
        },
        // Classic release definitions. The list returns summaries: Microsoft's published
        // `$expand=Environments` example gives each stage only id, name, rank, schedules and
        // retention, with no approvals, gates, conditions or variables, so every definition is
        // then read by id (`Definitions_Get`). The list needs no `$expand` for that.
        // Definitions_List documents no default or maximum for `$top`; it pages by
        // `x-ms-continuationtoken` whatever the server caps a page at, so 100 (ADR 0004's
        // fallback) is safe.
        K::ReleaseDefinitions => Endpoint {
            detail_path: Some("/{organization}/{project}/_apis/release/definitions/{id}"),
            ..endpoint(
                kind,
                Vsrm,
                "/{organization}/{project}/_apis/release/definitions",
                "7.1",
                HeaderToken,
                100,
            )
        },
        K::Alerts => Endpoint {
            top_param: "top",
            delta: Delta::SinceParam("criteria.modifiedSince"),
            ..endpoint(
                kind,
                AdvSec,
                "/{organization}/{project}/_apis/alert/repositories/{parent}/alerts",
                "7.2-preview.1",
                HeaderToken,
                100,
            )
        },
    }
}

/// Fill a path template. Values are percent-encoded as path segments.
pub fn fill_path(
    template: &str,
    organization: &str,
    project: Option<&str>,
    parent: Option<&str>,
) -> String {
    template
        .replace("{organization}", &encode_segment(organization))
        .replace("{project}", &encode_segment(project.unwrap_or_default()))
        .replace("{parent}", &encode_segment(parent.unwrap_or_default()))
}

/// Fill a detail path template (`{organization}`, `{project}`, `{id}`).
pub fn fill_detail_path(template: &str, organization: &str, project: &str, id: &str) -> String {
    fill_path(template, organization, Some(project), None).replace("{id}", &encode_segment(id))
}

/// Percent-encode one path segment (RFC 3986 unreserved characters pass through).
pub fn encode_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ScopeLevel;

    #[test]
    fn every_kind_has_an_endpoint_whose_path_matches_its_scope() {
        for kind in ResourceKind::ALL {
            let endpoint = endpoint_for(*kind);
            assert_eq!(endpoint.kind, *kind);
            let has_project = endpoint.path.contains("{project}");
            let has_parent = endpoint.path.contains("{parent}");
            match kind.scope_level() {
                ScopeLevel::Organization => assert!(!has_project && !has_parent, "{kind}"),
                ScopeLevel::Project => assert!(has_project && !has_parent, "{kind}"),
                ScopeLevel::Parent(_) => assert!(has_project && has_parent, "{kind}"),
            }
            if let Some(detail) = endpoint.detail_path {
                assert!(
                    detail.starts_with(endpoint.path) && detail.ends_with("/{id}"),
                    "{kind}: a detail path is the list path plus the object's id"
                );
            }
            let paged = !matches!(endpoint.paging, Paging::Single);
            assert_eq!(
                paged,
                endpoint.page_size > 0,
                "{kind}: paged endpoints need a page size"
            );
        }
    }

    #[test]
    fn paths_encode_their_segments() {
        let path = fill_path(
            endpoint_for(ResourceKind::Refs).path,
            "fabrikam",
            Some("Fabrikam Fiber"),
            Some("r/1"),
        );
        assert_eq!(
            path,
            "/fabrikam/Fabrikam%20Fiber/_apis/git/repositories/r%2F1/refs"
        );
        let detail = endpoint_for(ResourceKind::ReleaseDefinitions)
            .detail_path
            .unwrap_or_default();
        assert_eq!(
            fill_detail_path(detail, "fabrikam", "Fabrikam Fiber", "42"),
            "/fabrikam/Fabrikam%20Fiber/_apis/release/definitions/42"
        );
    }
}
