# METADATA
# title: "Production variable groups sit behind an approval and branch control"
# description: "The strategy's production gate applied to configuration and secrets: a variable group named as production has an enabled Approval check and an enabled Branch control check, so no pipeline reads it unapproved or from an unprotected branch."
# custom:
#   id: STR-12
#   severity: high
#   kind: variable_groups
#   rationale: "Production variable groups carry production endpoints and secrets; any pipeline allowed to use one can read them from any branch unless the group itself is gated like the production environment."
#   remediation: "Pipelines → Library → the group → Approvals and checks: add Approvals (the Change Advisory Board) and Branch control (refs/heads/main, refs/heads/release/*, verify branch protection)."
#   permission: "Variable Groups (Read)"
#   frameworks: ["strategy:4.4", "strategy:9.4", "sox-itgc:change-management", "soc2:CC6.1", "iso27001:A.8.32"]
#   parameters:
#     production_names: [prod, production, prod-*, production-*, "*-prod", "*-production", "*-prod-*", "*-production-*"]
package tollgate.controls.str_12

import data.tollgate.lib.checks

missing contains "approval" if count(checks.active_approvals) == 0

missing contains "branch control" if count(checks.active_branch_controls) == 0

deny contains {"message": msg, "evidence": {"variableGroup": name, "missingChecks": sort(missing), "checks": [checks.check_label(c) | some c in checks.active_checks]}} if {
	name := checks.get(input.resource, "name", "")
	checks.name_matches(name, checks.get(checks.get(input.params, "STR-12", {}), "production_names", checks.default_production_names))
	count(missing) > 0
	msg := sprintf("production variable group %s has no enabled %s check", [name, concat(" or ", sort(missing))])
}
