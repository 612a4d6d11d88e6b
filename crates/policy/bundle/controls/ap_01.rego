# METADATA
# title: "Self-hosted pools are not auto-provisioned to every project"
# description: "Self-hosted agent pools are added to projects deliberately, not automatically."
# custom:
#   id: AP-01
#   severity: medium
#   kind: agent_pools
#   rationale: "Auto-provisioning lets every project's pipelines run on machines another team controls and trusts."
#   remediation: "Organization settings → Agent pools → pool → clear 'Auto-provision this agent pool in all projects'."
#   permission: "Agent Pools (Read)"
#   frameworks: [cis-ssc:2.2.1, nist-ssdf:PO.5]
package tollgate.controls.ap_01

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"isHosted": false, "autoProvision": true}} if {
	object.get(input.resource, "isHosted", false) == false
	object.get(input.resource, "autoProvision", false) == true
	msg := sprintf("self-hosted pool %v is auto-provisioned to every project", [object.get(input.resource, "name", "")])
}
