# METADATA
# title: "Production deployments are approved by people"
# description: "A run entering a production environment waits until enough approvers (the environment's quorum, from people holding an approving role) have approved it in tollgate."
# custom:
#   id: GATE-01
#   severity: high
#   kind: deployment
#   rationale: "A production change needs a second person who looked at it; the approval is recorded with the evidence the gate saw."
#   remediation: "Approve or reject the pending approval (`tollgate approvals`, the API, or the notification's link); configure the quorum per environment under [[gate.environments]]."
#   permission: "none (tollgate's own approvals)"
#   frameworks: ["sox-itgc:change-management", "soc2:CC8.1", "iso27001:A.8.32", "strategy:4.4"]
#   parameters:
#     environments: [production, prod, prod-*, production-*]
#     quorum: 1
package tollgate.gate.production_approval

import data.tollgate.lib.gate

quorum := gate.param("GATE-01", "quorum", 1)

approval contains {"message": msg, "evidence": {"environment": gate.environment, "quorum": quorum, "approvedBy": sort(gate.approvers)}} if {
	gate.applies("GATE-01", gate.production)
	count(gate.approvers) < quorum
	msg := sprintf("deployments to %s need %d approval(s); %d given", [gate.environment, quorum, count(gate.approvers)])
}
