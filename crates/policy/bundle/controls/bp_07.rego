# METADATA
# title: "Linked work items are required"
# description: "An enabled work-item-linking branch policy is required (blocking), so every pull request traces to a work item."
# custom:
#   id: BP-07
#   severity: medium
#   kind: policy_configurations
#   rationale: "Change management needs every change traced to an approved request; an optional linking policy lets untracked changes through."
#   remediation: "Branch policies → Check for linked work items → set it to Required."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.2", "sox-itgc:change-management", "iso27001:A.8.32", "soc2:CC8.1"]
package tollgate.controls.bp_07

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"isEnabled": true, "isBlocking": false}} if {
	lib.is_work_item_linking(input.resource)
	get(input.resource, "isEnabled", false) == true
	get(input.resource, "isDeleted", false) == false
	get(input.resource, "isBlocking", false) == false
	msg := "work item linking is optional: pull requests can complete without a linked work item"
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
