//! Which inventory kinds an ADO audit-log action can change.
//!
//! An incremental sync reads the audit log since its last watermark and re-lists only the
//! kinds (in the projects) these actions name. The action ids follow ADO's `Area.Action`
//! naming; the list extends ADOScanner's incremental-scan map (anchors-governance.md §a.1).

use tollgate_domain::ResourceKind;

/// The kinds an audit action may have changed. Unknown actions change nothing we hold.
pub fn kinds_changed_by(action_id: &str) -> &'static [ResourceKind] {
    use ResourceKind as K;
    let (area, action) = action_id.split_once('.').unwrap_or((action_id, ""));
    match area {
        "Project" => &[K::Projects, K::Teams],
        // Creating or deleting a repository also creates or removes its branch policies.
        "Git" if action.starts_with("Repository") => &[K::Repositories, K::PolicyConfigurations],
        "Git" if action.starts_with("Ref") => &[K::Refs],
        "Policy" => &[K::PolicyConfigurations],
        // A YAML pipeline is a build definition; deleting one deletes its builds.
        "Pipelines" if action.starts_with("Pipeline") => {
            &[K::Pipelines, K::BuildDefinitions, K::Builds]
        }
        "Pipelines" if action.starts_with("Resource") => &[K::CheckConfigurations],
        "CheckConfiguration" | "Checks" => &[K::CheckConfigurations],
        "Environment" => &[K::Environments],
        "Library" if action.starts_with("ServiceConnection") => &[K::ServiceEndpoints],
        "Library" if action.starts_with("VariableGroup") => &[K::VariableGroups],
        "Library" if action.starts_with("SecureFile") => &[K::SecureFiles],
        "Library" if action.starts_with("AgentPool") => &[K::AgentPools],
        "Library" if action.starts_with("AgentQueue") => &[K::AgentQueues],
        "Team" => &[K::Teams],
        // `Release.ReleasePipelineCreated`, `…Modified`, `…Deleted`; releases, deployments and
        // approvals (`Release.ReleaseCreated`, `Release.ApprovalCompleted`, …) change no
        // definition.
        "Release" if action.starts_with("ReleasePipeline") => &[K::ReleaseDefinitions],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_changes_map_to_the_kinds_they_touch() {
        assert_eq!(
            kinds_changed_by("Policy.PolicyConfigModified"),
            &[ResourceKind::PolicyConfigurations]
        );
        assert_eq!(
            kinds_changed_by("Git.RepositoryDeleted"),
            &[
                ResourceKind::Repositories,
                ResourceKind::PolicyConfigurations
            ]
        );
        assert_eq!(
            kinds_changed_by("Library.VariableGroupModified"),
            &[ResourceKind::VariableGroups]
        );
        assert_eq!(
            kinds_changed_by("Release.ReleasePipelineModified"),
            &[ResourceKind::ReleaseDefinitions]
        );
        assert!(kinds_changed_by("Release.ReleaseCreated").is_empty());
        assert!(kinds_changed_by("AuditLog.AccessLog").is_empty());
        assert!(kinds_changed_by("nonsense").is_empty());
    }
}
