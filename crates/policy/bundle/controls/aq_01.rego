# METADATA
# title: "Projects do not queue jobs to legacy hosted pools"
# description: "No agent queue of a project points at a legacy hosted pool (Hosted, Hosted VS2017, Hosted Ubuntu 1604, …), which ADO reports with pool.isLegacy."
# custom:
#   id: AQ-01
#   severity: low
#   kind: agent_queues
#   rationale: "The legacy hosted pools ran images Microsoft has retired: jobs queued to them are redirected to other images or fail, so the machine that builds and signs the software is not the one the pipeline names."
#   remediation: "Use the 'Azure Pipelines' pool with an explicit vmImage in the pipelines that still name the legacy pool, then delete the legacy queue (Project settings → Agent pools)."
#   permission: "Agent Pools (Read)"
#   frameworks: ["nist-ssdf:PO.5", "iso27001:A.8.32"]
package tollgate.controls.aq_01

deny contains {"message": msg, "evidence": {"queue": queue, "pool": pool_name, "isLegacy": true}} if {
	pool := get(input.resource, "pool", {})
	get(pool, "isLegacy", false) == true
	queue := get(input.resource, "name", "?")
	pool_name := get(pool, "name", "?")
	msg := sprintf("queue %v points at the legacy hosted pool %v", [queue, pool_name])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
