# METADATA
# title: "The default branch is protected by a blocking branch policy"
# description: "At least one enabled, blocking branch policy applies to the repository's default branch."
# custom:
#   id: BP-01
#   severity: high
#   kind: repositories
#   rationale: "Without a blocking policy anyone with Contribute can push straight to the branch that ships."
#   remediation: "Repos → Branches → default branch → Branch policies: require reviewers and a build."
#   permission: "Code (Read)"
#   frameworks: [cis-ssc:1.1.15, sox-itgc:change-management, iso27001:A.8.32, nist-ssdf:PS.1, soc2:CC8.1]
package tollgate.controls.bp_01

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"defaultBranch": branch, "blockingPolicies": 0}} if {
	object.get(input.resource, "isDisabled", false) == false
	branch := object.get(input.resource, "defaultBranch", "")
	branch != ""
	count([p | some p in object.get(input.related, "policies", []); lib.is_enabled_blocking(p)]) == 0
	msg := sprintf("no blocking branch policy protects %s", [branch])
}
