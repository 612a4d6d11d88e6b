# METADATA
# title: "GitHub service connections are not backed by a PAT"
# description: "GitHub connections use the Azure Pipelines GitHub App or OAuth, not a personal access token."
# custom:
#   id: SC-02
#   severity: medium
#   kind: service_endpoints
#   rationale: "A PAT acts as its owner with all their access and outlives their role."
#   remediation: "Re-create the connection with 'Grant authorization' (GitHub App)."
#   permission: "Service Connections (Read)"
#   frameworks: [cis-ssc:1.3.8, iso27001:A.5.17]
package tollgate.controls.sc_02

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"type": "github", "scheme": "PersonalAccessToken"}} if {
	lower(object.get(input.resource, "type", "")) == "github"
	object.get(object.get(input.resource, "authorization", {}), "scheme", "") == "PersonalAccessToken"
	msg := sprintf("%v uses a personal access token", [object.get(input.resource, "name", "this connection")])
}
