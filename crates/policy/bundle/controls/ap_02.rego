# METADATA
# title: "Self-hosted agents update themselves"
# description: "Self-hosted agent pools keep 'Allow agents in this pool to automatically update' on, so their agents run a current agent version."
# custom:
#   id: AP-02
#   severity: medium
#   kind: agent_pools
#   rationale: "Microsoft updates the agents of hosted pools; self-hosted agents only update when the pool lets them. Agents pinned to an old version keep its known vulnerabilities and eventually lose support from the service."
#   remediation: "Organization settings → Agent pools → pool → Settings → turn on 'Allow agents in this pool to automatically update'."
#   permission: "Agent Pools (Read)"
#   frameworks: ["iso27001:A.8.8", "nist-ssdf:PO.5"]
package tollgate.controls.ap_02

deny contains {"message": msg, "evidence": {"pool": name, "isHosted": false, "autoUpdate": false}} if {
	get(input.resource, "isHosted", false) == false
	# Only an explicit false: a payload without the field says nothing about the setting.
	get(input.resource, "autoUpdate", true) == false
	name := get(input.resource, "name", "?")
	msg := sprintf("self-hosted pool %v does not let its agents update automatically", [name])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
