# METADATA
# title: "Requesters cannot approve their own deployments"
# description: "Approval checks forbid the person who queued the run from approving it."
# custom:
#   id: EN-02
#   severity: high
#   kind: check_configurations
#   rationale: "Otherwise the approval is a formality: anyone can deploy their own change."
#   remediation: "Approvals and checks → Approvals → advanced → clear 'Allow approvers to approve their own runs'."
#   permission: "Environment (Read)"
#   frameworks: [sox-itgc:segregation-of-duties, soc2:CC8.1]
package tollgate.controls.en_02

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"requesterCannotBeApprover": false, "resource": input.resource.resource}} if {
	lib.check_type(input.resource) == data.tollgate.lib.approval_check_type
	object.get(object.get(input.resource, "settings", {}), "requesterCannotBeApprover", false) == false
	msg := sprintf("the requester may approve their own run on %v", [object.get(object.get(input.resource, "resource", {}), "name", "this resource")])
}
