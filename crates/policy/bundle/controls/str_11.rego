# METADATA
# title: "Production service connections sit behind an approval and branch control"
# description: "The strategy's production gate applied to credentials: a service connection named as production has an enabled Approval check and an enabled Branch control check, so no pipeline uses it unapproved or from an unprotected branch."
# custom:
#   id: STR-11
#   severity: high
#   kind: service_endpoints
#   rationale: "A production service connection can deploy to production from any stage of any pipeline that references it, bypassing the production environment's approvals; the same approval and branch gate must sit on the connection itself."
#   remediation: "Project settings → Service connections → the connection → Approvals and checks: add Approvals (the Change Advisory Board) and Branch control (refs/heads/main, refs/heads/release/*, verify branch protection)."
#   permission: "Service Connections (Read)"
#   frameworks: ["strategy:4.4", "strategy:9.4", "sox-itgc:change-management", "soc2:CC8.1", "iso27001:A.8.32"]
#   parameters:
#     production_names: [prod, production, prod-*, production-*, "*-prod", "*-production", "*-prod-*", "*-production-*"]
package tollgate.controls.str_11

import data.tollgate.lib.checks

missing contains "approval" if count(checks.active_approvals) == 0

missing contains "branch control" if count(checks.active_branch_controls) == 0

deny contains {"message": msg, "evidence": {"serviceConnection": name, "missingChecks": sort(missing), "checks": [checks.check_label(c) | some c in checks.active_checks]}} if {
	name := checks.get(input.resource, "name", "")
	checks.name_matches(name, checks.get(checks.get(input.params, "STR-11", {}), "production_names", checks.default_production_names))
	count(missing) > 0
	msg := sprintf("production service connection %s has no enabled %s check", [name, concat(" or ", sort(missing))])
}
