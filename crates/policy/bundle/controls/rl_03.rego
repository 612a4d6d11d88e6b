# METADATA
# title: "Production release stages need at least two approvals"
# description: "A production stage's manual pre-deployment approval needs at least the configured number of approvals: requiredApproverCount, where 0 means every listed approver. Stages without a manual approval are RL-01's finding."
# custom:
#   id: RL-03
#   severity: medium
#   kind: release_definitions
#   rationale: "One approver can wave a deployment through alone; two make mistakes and collusion less likely, as branch policies require for code (BP-02)."
#   remediation: "Release pipeline → production stage → Pre-deployment conditions → Approvals: list at least two approvers and require all of them (or a minimum of two)."
#   permission: "Release (Read)"
#   frameworks: [sox-itgc:change-management, soc2:CC8.1, iso27001:A.8.32]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
#     minimum_approvals: 2
package tollgate.controls.rl_03

import data.tollgate.lib.release

deny contains {"message": msg, "evidence": evidence} if {
	some stage in release.production_stages("RL-03")
	count(release.manual_approvals(stage)) > 0
	needed := release.approvals_needed(stage)
	minimum := release.param("RL-03", "minimum_approvals", 2)
	needed < minimum
	name := release.stage_name(stage)
	evidence := {
		"stage": name,
		"approvalOptions.requiredApproverCount": release.get(release.approval_options(stage), "requiredApproverCount", null),
		"approvers": release.approvers(stage),
		"approvalsNeeded": needed,
		"minimum": minimum,
	}
	msg := sprintf("production stage %s needs %d approval(s); the standard is %d", [name, needed, minimum])
}
