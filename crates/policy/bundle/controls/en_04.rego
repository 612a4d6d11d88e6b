# METADATA
# title: "Branch control checks admit only protected branches"
# description: "A Branch control check verifies that the run's branch is protected by branch policies, does not let branches of unknown protection status through, and does not allow every branch."
# custom:
#   id: EN-04
#   severity: medium
#   kind: check_configurations
#   rationale: "A branch control check that allows '*' or skips the protection test lets a pipeline running from any unreviewed branch reach the protected resource; the check then only looks like a control."
#   remediation: "Approvals and checks → Branch control → list the release branches explicitly (refs/heads/main, refs/heads/release/*), tick 'Verify branch protection' and do not allow branches whose protection status is unknown."
#   permission: "Environment (Read)"
#   frameworks: [sox-itgc:change-management, soc2:CC8.1, nist-ssdf:PO.3]
#   parameters:
#     any_branch_patterns: ["*", "refs/heads/*", "refs/*"]
package tollgate.controls.en_04

import data.tollgate.lib.checks

default_any := ["*", "refs/heads/*", "refs/*"]

inputs := checks.get(checks.settings(input.resource), "inputs", {})

resource_name := checks.get(checks.get(input.resource, "resource", {}), "name", "this resource")

# Inputs are strings ("true"/"false") as the UI sends them; a boolean is accepted too.
flag(value) if value == true

flag(value) if checks.lower_text(value) == "true"

allowed_branches := [trim_space(b) | some b in split(checks.get(inputs, "allowedBranches", ""), ","); trim_space(b) != ""] if {
	is_string(checks.get(inputs, "allowedBranches", ""))
} else := []

deny contains {"message": msg, "evidence": {"ensureProtectionOfBranch": value, "resource": checks.get(input.resource, "resource", {})}} if {
	checks.is_branch_control(input.resource)
	value := checks.get(inputs, "ensureProtectionOfBranch", false)
	not flag(value)
	msg := sprintf("the branch control check on %v does not verify that the branch is protected", [resource_name])
}

deny contains {"message": msg, "evidence": {"ensureProtectionOfBranch": true, "allowUnknownStatusBranch": value, "resource": checks.get(input.resource, "resource", {})}} if {
	checks.is_branch_control(input.resource)
	flag(checks.get(inputs, "ensureProtectionOfBranch", false))
	value := checks.get(inputs, "allowUnknownStatusBranch", false)
	flag(value)
	msg := sprintf("the branch control check on %v lets branches of unknown protection status through", [resource_name])
}

deny contains {"message": msg, "evidence": {"allowedBranches": checks.get(inputs, "allowedBranches", ""), "anyBranch": branch, "resource": checks.get(input.resource, "resource", {})}} if {
	checks.is_branch_control(input.resource)
	some branch in allowed_branches
	lower(branch) in {lower(p) | some p in checks.get(checks.get(input.params, "EN-04", {}), "any_branch_patterns", default_any)}
	msg := sprintf("the branch control check on %v allows every branch (%s)", [resource_name, branch])
}
