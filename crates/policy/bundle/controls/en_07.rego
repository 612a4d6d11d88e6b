# METADATA
# title: "Checks on protected resources are enabled"
# description: "No check configuration (approval, branch control, business hours, exclusive lock, Invoke REST API, ...) on an environment, service connection, variable group, agent queue, secure file or repository is disabled."
# custom:
#   id: EN-07
#   severity: medium
#   kind: check_configurations
#   rationale: "A disabled check still appears under Approvals and checks, so reviewers of the configuration believe the resource is protected while runs pass it without evaluation."
#   remediation: "Approvals and checks → the check's menu → Enable, or delete it if it is no longer wanted and record why."
#   permission: "Environment (Read)"
#   frameworks: [sox-itgc:change-management, soc2:CC8.1, iso27001:A.8.32]
package tollgate.controls.en_07

import data.tollgate.lib.checks

target := checks.get(input.resource, "resource", {})

deny contains {"message": msg, "evidence": {"isDisabled": true, "type": checks.type_name(input.resource), "check": checks.check_label(input.resource), "resource": target}} if {
	checks.get(input.resource, "isDisabled", false) == true
	msg := sprintf("the %v check on %v %v is disabled", [checks.check_label(input.resource), checks.get(target, "type", "resource"), checks.get(target, "name", checks.get(target, "id", "?"))])
}
