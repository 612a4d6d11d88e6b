# METADATA
# title: "The most recent pusher cannot approve"
# description: "A minimum-reviewers branch policy does not count the vote of the person who pushed the last change."
# custom:
#   id: BP-05
#   severity: medium
#   kind: policy_configurations
#   rationale: "Someone who pushes a commit to another person's pull request and then approves it has reviewed their own code; the four-eyes rule is lost on the last iteration."
#   remediation: "Branch policies → Require a minimum number of reviewers → check 'Prohibit the most recent pusher from approving their own changes'."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.4", "sox-itgc:segregation-of-duties", "soc2:CC8.1"]
package tollgate.controls.bp_05

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"blockLastPusherVote": value}} if {
	lib.is_minimum_reviewers(input.resource)
	lib.is_enabled_blocking(input.resource)
	value := get(get(input.resource, "settings", {}), "blockLastPusherVote", false)
	value != true
	msg := "the most recent pusher may approve their own changes"
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
