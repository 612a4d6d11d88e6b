# METADATA
# title: "Required-reviewer policies name reviewers and exclude the author"
# description: "A blocking required-reviewers (code owner) branch policy names at least one reviewer and does not let the pull request's author satisfy it with their own vote."
# custom:
#   id: BP-10
#   severity: high
#   kind: policy_configurations
#   rationale: "Required reviewers guard sensitive paths such as pipeline YAML; when the list is empty, or the author's own vote counts, the owners never have to look at the change."
#   remediation: "Branch policies → Automatically included reviewers → name the owning group, set it to Required and clear 'Allow requestors to approve their own changes'."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.6", "cis-ssc:1.1.7", "sox-itgc:segregation-of-duties", "soc2:CC8.1"]
package tollgate.controls.bp_10

import data.tollgate.lib

is_required_reviewers if {
	lib.is_required_reviewers(input.resource)
	lib.is_enabled_blocking(input.resource)
}

settings := get(input.resource, "settings", {})

deny contains {"message": msg, "evidence": {"requiredReviewerIds": reviewers}} if {
	is_required_reviewers
	reviewers := get(settings, "requiredReviewerIds", [])
	count(reviewers) == 0
	msg := "the required-reviewers policy names no reviewer"
}

deny contains {"message": msg, "evidence": {"creatorVoteCounts": true, "filenamePatterns": patterns}} if {
	is_required_reviewers
	get(settings, "creatorVoteCounts", false) == true
	patterns := get(settings, "filenamePatterns", [])
	msg := "a required reviewer who authored the pull request can approve it themselves"
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
