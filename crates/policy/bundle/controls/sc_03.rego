# METADATA
# title: "Service connections do not authenticate with a username and password"
# description: "A service connection's authorization scheme is not UsernamePassword (basic authentication with a stored password)."
# custom:
#   id: SC-03
#   severity: medium
#   kind: service_endpoints
#   rationale: "A stored password usually belongs to a person or a shared account, is rarely rotated, and grants everything that account can do; token, certificate or federated schemes can be scoped and expire."
#   remediation: "Re-create the connection with a token, service principal, managed identity or workload identity federation scheme, then revoke the password."
#   permission: "Service Connections (Read)"
#   frameworks: [cis-ssc:2.4.6, iso27001:A.5.17, soc2:CC6.1]
package tollgate.controls.sc_03

import data.tollgate.lib.checks

deny contains {"message": msg, "evidence": {"type": checks.get(input.resource, "type", ""), "scheme": scheme}} if {
	scheme := checks.get(checks.get(input.resource, "authorization", {}), "scheme", "")
	checks.lower_text(scheme) == "usernamepassword"
	msg := sprintf("%v authenticates with a stored username and password", [checks.get(input.resource, "name", "this connection")])
}
