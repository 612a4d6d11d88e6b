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

# Cost: regorus runs a function anew on every call and a rule once per evaluation, so what
# does not depend on the branch is read once, in rules, and per branch only builtins run.

params := checks.get(input.params, "STR-07", {})

minimum := checks.get(params, "minimum_approvers", 2)

repository_id := checks.lower_text(checks.get(input.resource, "id", ""))

default_branch := checks.get(input.resource, "defaultBranch", "")

release_patterns := checks.get(params, "release_branches", ["refs/heads/release/*"])

release_branches contains ref if {
	some ref in checks.items(checks.get(input.related, "refs", []))
	checks.name_matches(ref, release_patterns)
}

blocking_policies := [p |
	some p in checks.items(checks.get(input.related, "branch_policies", []))
	is_object(p)
	lib.is_enabled_blocking(p)
]

# Each blocking policy's scope entries (by the policy's position), read once. A policy without
# a scope list is absent here: it applies to every branch of every repository.
scope_entries[i] := [scope_entry(scope) | some scope in scopes] if {
	some i, p in blocking_policies
	scopes := checks.get(checks.get(p, "settings", {}), "scope", null)
	is_array(scopes)
}

scope_entry(scope) := {"repository": repository_matches(scope), "kind": match_kind(scope), "ref": object.get({"s": scope}, ["s", "refName"], null)}

# Each helper reads as checks.get would (null, a missing field or a scope that is not an
# object fall back), with paths and builtins rather than nested calls.
repository_matches(scope) := true if {
	object.get({"s": scope}, ["s", "repositoryId"], null) == null
} else := true if {
	id := scope.repositoryId
	is_string(id)
	lower(id) == repository_id
} else := true if {
	# An id that is not a string reads as "".
	not is_string(scope.repositoryId)
	repository_id == ""
} else := false

match_kind(scope) := lower(kind) if {
	kind := scope.matchKind
	is_string(kind)
} else := "" if {
	scope.matchKind != null
} else := "exact"

ref_matches(entry, ref) if {
	entry.kind == "defaultbranch"
	ref == default_branch
}

ref_matches(entry, _) if {
	entry.kind != "defaultbranch"
	entry.ref == null
}

ref_matches(entry, ref) if {
	entry.kind == "prefix"
	is_string(entry.ref)
	startswith(ref, entry.ref)
}

ref_matches(entry, ref) if {
	not entry.kind in {"prefix", "defaultbranch"}
	entry.ref == ref
}

# [branch, i]: blocking policy i applies to the release branch.
applies contains [ref, i] if {
	some i, _ in blocking_policies
	not scope_entries[i]
	some ref in release_branches
}

applies contains [ref, i] if {
	some i, entries in scope_entries
	some entry in entries
	entry.repository
	some ref in release_branches
	ref_matches(entry, ref)
}

protecting[ref] := [p | some i, p in blocking_policies; [ref, i] in applies] if some ref in release_branches

reviewer_settings[ref] := [checks.get(p, "settings", {}) | some p in policies; lib.is_minimum_reviewers(p)] if some ref, policies in protecting

policy_types contains [ref, lib.policy_type(p)] if {
	some ref, policies in protecting
	some p in policies
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

missing(ref) := {label | some requirement, label in requirements; not [ref, requirement] in satisfied}

# [branch, requirement]. Several policies on one branch are all enforced, so a requirement is
# met when any one meets it.
satisfied contains [ref, "approvers"] if {
	some ref, settings in reviewer_settings
	some s in settings
	approvers := checks.get(s, "minimumApproverCount", 0)
	is_number(approvers)
	approvers >= minimum
}

satisfied contains [ref, "self"] if {
	some ref, settings in reviewer_settings
	some s in settings
	checks.get(s, "creatorVoteCounts", false) != true
}

satisfied contains [ref, "reset"] if {
	some ref, settings in reviewer_settings
	some s in settings
	checks.get(s, "resetOnSourcePush", false) == true
}

satisfied contains [ref, "reset"] if {
	some ref, settings in reviewer_settings
	some s in settings
	checks.get(s, "requireVoteOnLastIteration", false) == true
}

satisfied contains [ref, "build"] if {
	some ref in release_branches
	[ref, data.tollgate.lib.build_validation_type] in policy_types
}

satisfied contains [ref, "comments"] if {
	some ref in release_branches
	[ref, data.tollgate.lib.comment_requirements_type] in policy_types
}

satisfied contains [ref, "work items"] if {
	some ref in release_branches
	[ref, data.tollgate.lib.work_item_linking_type] in policy_types
}

deny contains {"message": msg, "evidence": {"branch": ref, "missing": gaps, "blockingPolicies": [checks.get(p, "id", null) | some p in protecting[ref]]}} if {
	checks.get(input.resource, "isDisabled", false) == false
	# A repository with no blocking policy at all is BP-01's finding.
	count([p | some p in checks.items(checks.get(input.related, "policies", [])); is_object(p); lib.is_enabled_blocking(p)]) > 0
	some ref in release_branches
	gaps := sort(missing(ref))
	count(gaps) > 0
	msg := sprintf("release branch %s is not protected like main: it does not require %s", [ref, concat(", ", gaps)])
}
