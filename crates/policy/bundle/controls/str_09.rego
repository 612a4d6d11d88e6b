# METADATA
# title: "The tech lead approves deployments to staging"
# description: "The strategy's promotion rule for staging: an environment named as staging has an enabled approval check with the tech lead among its approvers (by default a person or group whose name contains 'Tech Lead', matched against the approver's display or unique name)."
# custom:
#   id: STR-09
#   severity: medium
#   kind: environments
#   rationale: "The strategy promotes a build to staging only with the tech lead's approval (within 24 hours); staging is where production-like data and the E2E and performance gates live."
#   remediation: "Environments → staging → Approvals and checks → Approvals: add the tech lead (or the Tech Leads group); keep 'approvers cannot approve their own runs'."
#   permission: "Environment (Read)"
#   frameworks: ["strategy:4.2", "strategy:4.4", "sox-itgc:change-management", "soc2:CC8.1"]
#   parameters:
#     environment_names: [staging, staging-*, stage, preprod, pre-production]
#     approvers: ["*Tech Lead*"]
package tollgate.controls.str_09

import data.tollgate.lib.checks

params := checks.get(input.params, "STR-09", {})

required := checks.get(params, "approvers", ["*Tech Lead*"])

deny contains {"message": msg, "evidence": {"environment": name, "requiredApprovers": required, "enabledApprovalChecks": count(checks.active_approvals), "approvers": checks.named_approvers}} if {
	name := checks.get(input.resource, "name", "")
	checks.name_matches(name, checks.get(params, "environment_names", ["staging", "staging-*", "stage", "preprod", "pre-production"]))
	not checks.approved_by(required)
	msg := sprintf("staging environment %s is not approved by the tech lead (%v); approvers: %v", [name, required, checks.named_approvers])
}
