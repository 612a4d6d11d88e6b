# METADATA
# title: "Authors cannot approve their own pull requests"
# description: "The minimum-reviewers policy does not count the author's own vote."
# custom:
#   id: BP-03
#   severity: high
#   kind: policy_configurations
#   rationale: "Self-approval turns a four-eyes control into a two-eyes one."
#   remediation: "Branch policies → Require a minimum number of reviewers → clear 'Allow requestors to approve their own changes'."
#   permission: "Code (Read)"
#   frameworks: [cis-ssc:1.1.3, sox-itgc:segregation-of-duties, soc2:CC8.1]
package tollgate.controls.bp_03

import data.tollgate.lib

deny contains {"message": "the author's own vote counts towards the required approvals", "evidence": {"creatorVoteCounts": true}} if {
	lib.is_minimum_reviewers(input.resource)
	lib.is_enabled_blocking(input.resource)
	object.get(object.get(input.resource, "settings", {}), "creatorVoteCounts", false) == true
}
