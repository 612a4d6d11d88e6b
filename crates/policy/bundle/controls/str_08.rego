# METADATA
# title: "The QA lead approves deployments to test"
# description: "The strategy's promotion rule for test: an environment named as test has an enabled approval check with the QA lead among its approvers (by default a person or group whose name contains 'QA Lead', matched against the approver's display or unique name)."
# custom:
#   id: STR-08
#   severity: medium
#   kind: environments
#   rationale: "The strategy promotes a build to test only with the QA lead's approval (within 4 hours); without that check any run reaches test and QA's gate exists only on paper."
#   remediation: "Environments → test → Approvals and checks → Approvals: add the QA lead (or the QA Leads group); keep 'approvers cannot approve their own runs'."
#   permission: "Environment (Read)"
#   frameworks: ["strategy:4.2", "strategy:4.4", "sox-itgc:change-management", "soc2:CC8.1"]
#   parameters:
#     environment_names: [test, test-*, qa, qa-*]
#     approvers: ["*QA Lead*"]
package tollgate.controls.str_08

import data.tollgate.lib.checks

params := checks.get(input.params, "STR-08", {})

required := checks.get(params, "approvers", ["*QA Lead*"])

deny contains {"message": msg, "evidence": {"environment": name, "requiredApprovers": required, "enabledApprovalChecks": count(checks.active_approvals), "approvers": checks.named_approvers}} if {
	name := checks.get(input.resource, "name", "")
	checks.name_matches(name, checks.get(params, "environment_names", ["test", "test-*", "qa", "qa-*"]))
	not checks.approved_by(required)
	msg := sprintf("test environment %s is not approved by the QA lead (%v); approvers: %v", [name, required, checks.named_approvers])
}
