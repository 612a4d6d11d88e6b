# METADATA
# title: "The default branch requires linked work items"
# description: "The strategy's pull-request rule: the default branch has a blocking work-item-linking policy, so every change traces to a work item. Repositories without any blocking policy are reported by BP-01 alone."
# custom:
#   id: STR-04
#   severity: medium
#   kind: repositories
#   rationale: "The strategy requires every pull request to be linked to a work item; that link is the change-management trail from request to deployed code."
#   remediation: "Branch policies on main → Check for linked work items: Required."
#   permission: "Code (Read)"
#   frameworks: ["strategy:2.3", "cis-ssc:1.1.2", "sox-itgc:change-management", "iso27001:A.8.32", "soc2:CC8.1"]
package tollgate.controls.str_04

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"defaultBranch": branch, "requiredPolicyType": data.tollgate.lib.work_item_linking_type, "blockingPolicies": protecting}} if {
	get(input.resource, "isDisabled", false) == false
	branch := get(input.resource, "defaultBranch", "")
	is_string(branch)
	branch != ""
	protecting := count([p | some p in items(get(input.related, "policies", [])); lib.is_enabled_blocking(p)])
	protecting > 0
	not lib.has_policy(data.tollgate.lib.work_item_linking_type)
	msg := sprintf("%s has no required work item linking", [branch])
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
