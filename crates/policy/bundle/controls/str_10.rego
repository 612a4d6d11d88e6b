# METADATA
# title: "The Change Advisory Board approves deployments to production"
# description: "The strategy's promotion rule for production: the approval checks of an environment named as production include an enabled one with the Change Advisory Board among its approvers (by default a person or group whose name contains 'Change Advisory Board', matched against the approver's display or unique name). Production environments without any approval check are reported by EN-01 alone."
# custom:
#   id: STR-10
#   severity: high
#   kind: environments
#   rationale: "The strategy requires CAB approval for all production changes; an approval by individual engineers skips the board's review of risk, timing and rollback."
#   remediation: "Environments → production → Approvals and checks → Approvals: add the Change Advisory Board group as approver; keep 'approvers cannot approve their own runs'."
#   permission: "Environment (Read)"
#   frameworks: ["strategy:4.2", "strategy:4.4", "sox-itgc:change-management", "soc2:CC8.1", "iso27001:A.8.32"]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
#     approvers: ["*Change Advisory Board*"]
package tollgate.controls.str_10

import data.tollgate.lib.checks

params := checks.get(input.params, "STR-10", {})

required := checks.get(params, "approvers", ["*Change Advisory Board*"])

deny contains {"message": msg, "evidence": {"environment": name, "requiredApprovers": required, "enabledApprovalChecks": count(checks.active_approvals), "approvers": checks.named_approvers}} if {
	name := checks.get(input.resource, "name", "")
	checks.name_matches(name, checks.get(params, "production_names", ["production", "prod", "prod-*", "production-*"]))
	# No approval check at all is EN-01's finding.
	count([c | some c in checks.related_checks; checks.is_approval(c)]) > 0
	not checks.approved_by(required)
	msg := sprintf("production environment %s is not approved by the Change Advisory Board (%v); approvers: %v", [name, required, checks.named_approvers])
}
