# METADATA
# title: "Release creators cannot approve their own production deployments"
# description: "Production stages with manual approvals forbid the person who created the release or deployment from approving it (approvalOptions.releaseCreatorCanBeApprover is false). A missing option is judged as allowed, the value ADO stores when none is given."
# custom:
#   id: RL-02
#   severity: high
#   kind: release_definitions
#   rationale: "If the requester may approve, an approver can ship their own change alone and the approval is a formality."
#   remediation: "Release pipeline → production stage → Pre-deployment conditions → Approvals → Approval policies → check 'The user requesting a release or deployment should not approve it'."
#   permission: "Release (Read)"
#   frameworks: [sox-itgc:segregation-of-duties, soc2:CC8.1, iso27001:A.5.3]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
package tollgate.controls.rl_02

import data.tollgate.lib.release

deny contains {"message": msg, "evidence": {"stage": name, "approvalOptions.releaseCreatorCanBeApprover": allowed, "approvers": release.approvers(stage)}} if {
	some stage in release.production_stages("RL-02")
	count(release.manual_approvals(stage)) > 0
	allowed := release.get(release.approval_options(stage), "releaseCreatorCanBeApprover", null)
	allowed != false
	name := release.stage_name(stage)
	msg := sprintf("the release creator may approve their own deployment to production stage %s", [name])
}
