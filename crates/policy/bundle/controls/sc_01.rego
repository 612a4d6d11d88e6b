# METADATA
# title: "Azure service connections use workload identity federation"
# description: "Azure Resource Manager connections authenticate with workload identity federation, not a stored secret."
# custom:
#   id: SC-01
#   severity: high
#   kind: service_endpoints
#   rationale: "A stored client secret can leak and lives until someone rotates it; federation issues short-lived tokens."
#   remediation: "Edit the connection → convert to workload identity federation."
#   permission: "Service Connections (Read)"
#   frameworks: [cis-ssc:2.4.6, nist-ssdf:PS.1, iso27001:A.5.17]
package tollgate.controls.sc_01

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"type": "azurerm", "scheme": scheme}} if {
	lower(object.get(input.resource, "type", "")) == "azurerm"
	scheme := object.get(object.get(input.resource, "authorization", {}), "scheme", "")
	scheme == "ServicePrincipal"
	msg := sprintf("%v authenticates with a stored service principal secret", [object.get(input.resource, "name", "this connection")])
}
