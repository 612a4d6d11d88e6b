# METADATA
# title: "Production approvals do not rest on one person"
# description: "An approval check on a production environment names a group, or more than one person, as approvers."
# custom:
#   id: EN-06
#   severity: medium
#   kind: check_configurations
#   rationale: "When a single named person is the only approver, every production change waits for them, and their absence pushes teams to remove the check or share the account: the approval becomes a bottleneck and a key-person risk."
#   remediation: "Approvals and checks → Approvals → name an approver group (for example the Change Advisory Board) or several people, and set the minimum number of approvals."
#   permission: "Environment (Read)"
#   frameworks: [sox-itgc:segregation-of-duties, soc2:CC8.1, iso27001:A.5.3]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
package tollgate.controls.en_06

import data.tollgate.lib.checks

default_names := ["production", "prod", "prod-*", "production-*"]

target := checks.get(input.resource, "resource", {})

deny contains {"message": msg, "evidence": {"environment": name, "approvers": [checks.approver_label(only)], "isGroup": false}} if {
	checks.is_approval(input.resource)
	checks.lower_text(checks.get(target, "type", "")) == "environment"
	name := checks.get(target, "name", "")
	checks.name_matches(name, checks.get(checks.get(input.params, "EN-06", {}), "production_names", default_names))
	approvers := checks.approvers(input.resource)
	count(approvers) == 1
	only := approvers[0]
	not checks.is_group(only)
	msg := sprintf("only %s can approve deployments to production environment %s", [checks.approver_label(only), name])
}
