# METADATA
# title: "Self-hosted pools have agents"
# description: "A self-hosted agent pool for pipelines (pool type automation) has at least one registered agent."
# custom:
#   id: AP-03
#   severity: low
#   kind: agent_pools
#   rationale: "A pool without agents is either abandoned, yet still offered to every project it was added to, or a broken path where jobs wait until they time out. Either way nobody owns the machines its name promises."
#   remediation: "Register agents in the pool, or delete the pool (Organization settings → Agent pools → pool → Delete) and remove its queues from projects."
#   permission: "Agent Pools (Read)"
#   frameworks: ["iso27001:A.5.9", "nist-ssdf:PO.5"]
package tollgate.controls.ap_03

deny contains {"message": msg, "evidence": {"pool": name, "isHosted": false, "poolType": pool_type, "size": 0}} if {
	get(input.resource, "isHosted", false) == false
	# Deployment pools (deployment groups) are filled by their targets, not by build agents.
	pool_type := get(input.resource, "poolType", "automation")
	lower(pool_type) == "automation"
	# `size` is the number of agents; a payload without it is not judged.
	get(input.resource, "size", -1) == 0
	name := get(input.resource, "name", "?")
	msg := sprintf("self-hosted pool %v has no agents", [name])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
