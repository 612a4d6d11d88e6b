# METADATA
# title: "Release branches are protected like main"
# description: "The strategy's protected-branch rule for release/*: every release branch of a repository is covered by blocking branch policies requiring two approvers without self-approval and with votes reset on new pushes, a build validation, comment resolution and linked work items. Policies count whether they name the repository or the whole project, by exact name or prefix. Repositories without any blocking policy on the default branch are reported by BP-01 alone."
# custom:
#   id: STR-07
#   severity: high
#   kind: repositories
#   rationale: "Release branches are what ships: the strategy protects release/* like main (pull request, two approvers, release manager approval), otherwise a change can reach production through the release branch without the review main would have required."
#   remediation: "Repos → Branches → release/* (Add branch protection with the pattern release/*) or Project settings → Repositories → Policies → Branch policies → add 'release/*': minimum reviewers 2 (no self-approval, reset votes on push), build validation, comment resolution, linked work items."
#   permission: "Code (Read)"
#   frameworks: ["strategy:2.4", "strategy:2.3", "cis-ssc:1.1.3", "sox-itgc:change-management", "soc2:CC8.1"]
#   parameters:
#     release_branches: ["refs/heads/release/*"]
#     minimum_approvers: 2
package tollgate.controls.str_07

import data.tollgate.lib
import data.tollgate.lib.checks

params := checks.get(input.params, "STR-07", {})

minimum := checks.get(params, "minimum_approvers", 2)

repository_id := checks.lower_text(checks.get(input.resource, "id", ""))

default_branch := checks.get(input.resource, "defaultBranch", "")

release_branches contains ref if {
	some ref in checks.items(checks.get(input.related, "refs", []))
	checks.name_matches(ref, checks.get(params, "release_branches", ["refs/heads/release/*"]))
}

scopes(policy) := checks.get(checks.get(policy, "settings", {}), "scope", null)

# A policy without a scope applies to every branch of every repository.
applies(policy, _) if not is_array(scopes(policy))

applies(policy, ref) if {
	some scope in checks.items(scopes(policy))
	repository_matches(scope)
	ref_matches(scope, ref)
}

repository_matches(scope) if checks.get(scope, "repositoryId", null) == null

repository_matches(scope) if checks.lower_text(checks.get(scope, "repositoryId", "")) == repository_id

match_kind(scope) := checks.lower_text(checks.get(scope, "matchKind", "exact"))

ref_matches(scope, ref) if {
	match_kind(scope) == "defaultbranch"
	ref == default_branch
}

ref_matches(scope, _) if {
	match_kind(scope) != "defaultbranch"
	checks.get(scope, "refName", null) == null
}

ref_matches(scope, ref) if {
	match_kind(scope) == "prefix"
	name := checks.get(scope, "refName", null)
	is_string(name)
	startswith(ref, name)
}

ref_matches(scope, ref) if {
	not match_kind(scope) in {"prefix", "defaultbranch"}
	checks.get(scope, "refName", null) == ref
}

protecting(ref) := [p |
	some p in checks.items(checks.get(input.related, "branch_policies", []))
	is_object(p)
	lib.is_enabled_blocking(p)
	applies(p, ref)
]

reviewer_settings(ref) := [checks.get(p, "settings", {}) | some p in protecting(ref); lib.is_minimum_reviewers(p)]

of_type(ref, type_id) if {
	some p in protecting(ref)
	lib.policy_type(p) == type_id
}

# What the strategy requires of a release branch, and how a gap is named.
requirements := {
	"approvers": sprintf("%v approvers", [minimum]),
	"self": "approval by someone other than the author",
	"reset": "fresh approvals after a push",
	"build": "a passing build",
	"comments": "resolved comments",
	"work items": "a linked work item",
}

missing(ref) := {label | some requirement, label in requirements; not satisfied(ref, requirement)}

# Several policies on one branch are all enforced, so a requirement is met when any one meets it.
satisfied(ref, "approvers") if {
	some s in reviewer_settings(ref)
	approvers := checks.get(s, "minimumApproverCount", 0)
	is_number(approvers)
	approvers >= minimum
}

satisfied(ref, "self") if {
	some s in reviewer_settings(ref)
	checks.get(s, "creatorVoteCounts", false) != true
}

satisfied(ref, "reset") if {
	some s in reviewer_settings(ref)
	checks.get(s, "resetOnSourcePush", false) == true
}

satisfied(ref, "reset") if {
	some s in reviewer_settings(ref)
	checks.get(s, "requireVoteOnLastIteration", false) == true
}

satisfied(ref, "build") if of_type(ref, lib.build_validation_type)

satisfied(ref, "comments") if of_type(ref, lib.comment_requirements_type)

satisfied(ref, "work items") if of_type(ref, lib.work_item_linking_type)

deny contains {"message": msg, "evidence": {"branch": ref, "missing": gaps, "blockingPolicies": [checks.get(p, "id", null) | some p in protecting(ref)]}} if {
	checks.get(input.resource, "isDisabled", false) == false
	# A repository with no blocking policy at all is BP-01's finding.
	count([p | some p in checks.items(checks.get(input.related, "policies", [])); is_object(p); lib.is_enabled_blocking(p)]) > 0
	some ref in release_branches
	gaps := sort(missing(ref))
	count(gaps) > 0
	msg := sprintf("release branch %s is not protected like main: it does not require %s", [ref, concat(", ", gaps)])
}
