# METADATA
# title: "Production approvals are not skipped after an earlier stage's approval"
# description: "Production stages with manual approvals do not let an approval be skipped because the same approver approved an earlier stage of an automatically triggered release (approvalOptions.autoTriggeredAndPreviousEnvironmentApprovedCanBeSkipped)."
# custom:
#   id: RL-07
#   severity: medium
#   kind: release_definitions
#   rationale: "Approving a test or staging deployment is not approving production: with the skip on, one earlier click carries a release into production unseen."
#   remediation: "Release pipeline → production stage → Pre-deployment conditions → Approvals → turn off 'Skip approval if the same approver approved the previous stage'."
#   permission: "Release (Read)"
#   frameworks: [sox-itgc:change-management, soc2:CC8.1]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
package tollgate.controls.rl_07

import data.tollgate.lib.release

deny contains {"message": msg, "evidence": {"stage": name, "approvalOptions.autoTriggeredAndPreviousEnvironmentApprovedCanBeSkipped": true}} if {
	some stage in release.production_stages("RL-07")
	count(release.manual_approvals(stage)) > 0
	release.get(release.approval_options(stage), "autoTriggeredAndPreviousEnvironmentApprovedCanBeSkipped", false) == true
	name := release.stage_name(stage)
	msg := sprintf("the approval of production stage %s is skipped when its approver approved an earlier stage", [name])
}
