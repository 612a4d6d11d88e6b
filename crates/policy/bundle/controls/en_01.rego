# METADATA
# title: "Production environments require a human approval"
# description: "An environment named as production has an Approval check."
# custom:
#   id: EN-01
#   severity: high
#   kind: environments
#   rationale: "Deployments to production must be approved by a person who did not request them."
#   remediation: "Environments → production → Approvals and checks → add Approvals."
#   permission: "Environment (Read)"
#   frameworks: [sox-itgc:change-management, soc2:CC8.1, iso27001:A.8.32, cis-ssc:5.2.3]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
package tollgate.controls.en_01

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"environment": name, "approvalChecks": 0}} if {
	name := object.get(input.resource, "name", "")
	lib.matches_any(name, input.params["EN-01"].production_names)
	not data.tollgate.lib.has_approval_check
	msg := sprintf("production environment %s has no approval check", [name])
}
