# METADATA
# title: "Approvals are reset when new changes are pushed"
# description: "Votes are reset on push, or a vote on the last iteration is required."
# custom:
#   id: BP-04
#   severity: medium
#   kind: policy_configurations
#   rationale: "An approval given to one version of a change must not carry over to code nobody reviewed."
#   remediation: "Branch policies → Require a minimum number of reviewers → 'When new changes are pushed: reset all approval votes'."
#   permission: "Code (Read)"
#   frameworks: [cis-ssc:1.1.4, sox-itgc:change-management]
package tollgate.controls.bp_04

import data.tollgate.lib

deny contains {"message": "approvals survive new pushes", "evidence": {"resetOnSourcePush": false, "requireVoteOnLastIteration": false}} if {
	lib.is_minimum_reviewers(input.resource)
	lib.is_enabled_blocking(input.resource)
	settings := object.get(input.resource, "settings", {})
	object.get(settings, "resetOnSourcePush", false) == false
	object.get(settings, "requireVoteOnLastIteration", false) == false
}
