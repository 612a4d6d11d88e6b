# METADATA
# title: "The default branch requires resolved comments"
# description: "The strategy's approval rule: the default branch has a blocking comment-requirements policy, so no pull request completes with unresolved comments. Repositories without any blocking policy are reported by BP-01 alone."
# custom:
#   id: STR-03
#   severity: low
#   kind: repositories
#   rationale: "The strategy allows a merge only when no review comments are left unresolved; without the policy reviewers' objections can be ignored."
#   remediation: "Branch policies on main → Check for comment resolution: Required."
#   permission: "Code (Read)"
#   frameworks: ["strategy:2.3", "cis-ssc:1.1.11", "sox-itgc:change-management"]
package tollgate.controls.str_03

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"defaultBranch": branch, "requiredPolicyType": data.tollgate.lib.comment_requirements_type, "blockingPolicies": protecting}} if {
	get(input.resource, "isDisabled", false) == false
	branch := get(input.resource, "defaultBranch", "")
	is_string(branch)
	branch != ""
	protecting := count([p | some p in items(get(input.related, "policies", [])); lib.is_enabled_blocking(p)])
	protecting > 0
	not lib.has_policy(data.tollgate.lib.comment_requirements_type)
	msg := sprintf("%s has no required comment resolution", [branch])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback

# The value if it is an array, else an empty one.
items(x) := x if {
	is_array(x)
} else := []
