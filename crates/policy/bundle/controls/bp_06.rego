# METADATA
# title: "Comment resolution blocks completion"
# description: "An enabled comment-requirements branch policy is required (blocking), so pull requests cannot complete with unresolved comments."
# custom:
#   id: BP-06
#   severity: low
#   kind: policy_configurations
#   rationale: "An optional comment policy only shows a warning: reviewers' open questions can be ignored and the change merged anyway."
#   remediation: "Branch policies → Check for comment resolution → set it to Required."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.11", "sox-itgc:change-management", "soc2:CC8.1"]
package tollgate.controls.bp_06

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"isEnabled": true, "isBlocking": false}} if {
	lib.is_comment_requirements(input.resource)
	get(input.resource, "isEnabled", false) == true
	get(input.resource, "isDeleted", false) == false
	get(input.resource, "isBlocking", false) == false
	msg := "comment resolution is optional: pull requests can complete with unresolved comments"
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
