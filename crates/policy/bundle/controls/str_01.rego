# METADATA
# title: "The default branch requires reviewed pull requests"
# description: "The strategy's code-review rule: the default branch has a blocking minimum-reviewers policy (its settings, two approvers, no self-approval and votes reset, are judged by BP-02, BP-03 and BP-04). Repositories without any blocking policy are reported by BP-01 alone."
# custom:
#   id: STR-01
#   severity: high
#   kind: repositories
#   rationale: "The strategy requires every change to main to be reviewed by two approvers; other branch policies without a reviewer policy still let a single person merge their own change."
#   remediation: "Branch policies on main → Require a minimum number of reviewers: 2, without self-approval, resetting votes on new pushes."
#   permission: "Code (Read)"
#   frameworks: ["strategy:2.3", "strategy:2.4", "cis-ssc:1.1.3", "sox-itgc:change-management", "soc2:CC8.1"]
package tollgate.controls.str_01

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"defaultBranch": branch, "requiredPolicyType": data.tollgate.lib.minimum_reviewers_type, "blockingPolicies": protecting}} if {
	get(input.resource, "isDisabled", false) == false
	branch := get(input.resource, "defaultBranch", "")
	is_string(branch)
	branch != ""
	protecting := count([p | some p in items(get(input.related, "policies", [])); lib.is_enabled_blocking(p)])
	protecting > 0
	not lib.has_policy(data.tollgate.lib.minimum_reviewers_type)
	msg := sprintf("%s has no required reviewer policy", [branch])
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
