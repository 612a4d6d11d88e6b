# METADATA
# title: "Production environments deploy one run at a time"
# description: "An environment named as production has an enabled Exclusive lock check, so only one run deploys to it at a time and a newer run supersedes queued older ones."
# custom:
#   id: EN-05
#   severity: medium
#   kind: environments
#   rationale: "Two runs deploying to production at once interleave their steps; an older, already-approved run can finish after a newer one and roll production back to the older change."
#   remediation: "Environments → production → Approvals and checks → add Exclusive lock (and set lockBehavior: sequential or runLatest in the deploying stages)."
#   permission: "Environment (Read)"
#   frameworks: [sox-itgc:change-management, soc2:CC8.1, iso27001:A.8.32]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
package tollgate.controls.en_05

import data.tollgate.lib.checks

default_names := ["production", "prod", "prod-*", "production-*"]

deny contains {"message": msg, "evidence": {"environment": name, "exclusiveLockChecks": 0, "disabledExclusiveLockChecks": disabled}} if {
	name := checks.get(input.resource, "name", "")
	checks.name_matches(name, checks.get(checks.get(input.params, "EN-05", {}), "production_names", default_names))
	count([c | some c in checks.active_checks; checks.is_exclusive_lock(c)]) == 0
	disabled := [checks.get(c, "id", null) | some c in checks.related_checks; checks.is_exclusive_lock(c); not checks.active(c)]
	msg := sprintf("production environment %s has no enabled exclusive lock: concurrent runs can deploy over each other", [name])
}
