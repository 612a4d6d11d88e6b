# METADATA
# title: "Production release stages require a manual approval"
# description: "Every stage of a classic release definition named as production has a pre-deployment approval given by a person, not only automated approval steps."
# custom:
#   id: RL-01
#   severity: high
#   kind: release_definitions
#   rationale: "Without a person approving, whoever can create a release deploys to production: the classic-release counterpart of an approval check on a production environment (EN-01)."
#   remediation: "Release pipeline → production stage → Pre-deployment conditions → enable Pre-deployment approvals and name the approvers."
#   permission: "Release (Read)"
#   frameworks: [sox-itgc:change-management, soc2:CC8.1, iso27001:A.8.32, cis-ssc:5.2.3]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
package tollgate.controls.rl_01

import data.tollgate.lib.release

deny contains {"message": msg, "evidence": {"stage": name, "preDeployApprovals.approvals": steps, "manualApprovals": 0}} if {
	some stage in release.production_stages("RL-01")
	count(release.manual_approvals(stage)) == 0
	name := release.stage_name(stage)
	steps := [{"rank": release.get(step, "rank", null), "isAutomated": release.get(step, "isAutomated", null)} |
		some step in release.pre_approvals(stage)
	]
	msg := sprintf("production stage %s deploys without a manual pre-deployment approval", [name])
}
