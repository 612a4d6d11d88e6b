# METADATA
# title: "At least two approvers are required"
# description: "A minimum-reviewers branch policy requires at least the configured number of approvals."
# custom:
#   id: BP-02
#   severity: high
#   kind: policy_configurations
#   rationale: "A single approver can wave through a change on their own; two people make collusion and mistakes less likely."
#   remediation: "Branch policies → Require a minimum number of reviewers → set it to 2 or more."
#   permission: "Code (Read)"
#   frameworks: [cis-ssc:1.1.3, sox-itgc:change-management, iso27001:A.8.32, nist-ssdf:PS.1, soc2:CC8.1]
#   parameters:
#     minimum_approvers: 2
package tollgate.controls.bp_02

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"minimumApproverCount": approvers, "required": required}} if {
	lib.is_minimum_reviewers(input.resource)
	lib.is_enabled_blocking(input.resource)
	required := input.params["BP-02"].minimum_approvers
	approvers := object.get(object.get(input.resource, "settings", {}), "minimumApproverCount", 0)
	approvers < required
	msg := sprintf("requires %d approver(s); the standard is %d", [approvers, required])
}
