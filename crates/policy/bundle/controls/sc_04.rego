# METADATA
# title: "Service connections are ready"
# description: "A service connection reports isReady: a connection left not ready was never completed or failed its setup."
# custom:
#   id: SC-04
#   severity: low
#   kind: service_endpoints
#   rationale: "A connection that is not ready fails every run that uses it, and a half-created connection can leave an identity with cloud permissions that nobody uses or watches."
#   remediation: "Open the connection, fix or verify its credentials (Verify and save), or delete it and remove the identity it created."
#   permission: "Service Connections (Read)"
#   frameworks: [internal:hygiene, iso27001:A.5.9]
package tollgate.controls.sc_04

import data.tollgate.lib.checks

deny contains {"message": msg, "evidence": {"isReady": false, "type": checks.get(input.resource, "type", "")}} if {
	checks.get(input.resource, "isReady", true) == false
	msg := sprintf("%v is not ready", [checks.get(input.resource, "name", "this connection")])
}
