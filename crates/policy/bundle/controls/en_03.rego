# METADATA
# title: "Production environments accept deployments only through branch control"
# description: "An environment named as production has an enabled Branch control check, so only runs from the allowed branches can deploy to it. How strict the check is (protected branches only, no wildcard) is judged by EN-04."
# custom:
#   id: EN-03
#   severity: high
#   kind: environments
#   rationale: "Without branch control any branch, including an unreviewed feature branch, can be deployed to production by a pipeline that targets the environment."
#   remediation: "Environments → production → Approvals and checks → add Branch control: allowed branches refs/heads/main (and refs/heads/release/*), 'Verify branch protection' on."
#   permission: "Environment (Read)"
#   frameworks: [sox-itgc:change-management, soc2:CC8.1, iso27001:A.8.32, nist-ssdf:PO.3]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
package tollgate.controls.en_03

import data.tollgate.lib.checks

default_names := ["production", "prod", "prod-*", "production-*"]

deny contains {"message": msg, "evidence": {"environment": name, "branchControlChecks": 0, "disabledBranchControlChecks": checks.disabled_branch_control_ids}} if {
	name := checks.get(input.resource, "name", "")
	checks.name_matches(name, checks.get(checks.get(input.params, "EN-03", {}), "production_names", default_names))
	count(checks.active_branch_controls) == 0
	msg := sprintf("production environment %s has no enabled branch control check: any branch can deploy to it", [name])
}
