# METADATA
# title: "Fork pull requests do not run on self-hosted agents"
# description: "A build definition that builds pull requests from forks uses a Microsoft-hosted pool, not a self-hosted one."
# custom:
#   id: PL-04
#   severity: high
#   kind: build_definitions
#   rationale: "Code from a fork is written by someone outside the organisation; on a self-hosted agent it runs inside the network, can persist on the machine and can read what later jobs leave behind."
#   remediation: "Pipeline → Triggers → Pull request validation → clear 'Build pull requests from forks of this repository', or run the pipeline on Microsoft-hosted agents."
#   permission: "Build (Read)"
#   frameworks: ["nist-ssdf:PO.5", "soc2:CC6.1"]
package tollgate.controls.pl_04

fork_builds_enabled if {
	some trigger in items(get(input.resource, "triggers", []))
	lower(sprintf("%v", [get(trigger, "triggerType", "")])) in {"pullrequest", "64"}
	get(get(trigger, "forks", {}), "enabled", false) == true
}

deny contains {"message": msg, "evidence": {"forks.enabled": true, "queue": queue_name, "pool.isHosted": false}} if {
	fork_builds_enabled
	queue := get(input.resource, "queue", {})
	get(get(queue, "pool", {}), "isHosted", true) == false
	queue_name := get(queue, "name", "")
	msg := sprintf("pull requests from forks run on the self-hosted queue %s", [queue_name])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback

# The value if it is an array, else an empty one.
items(x) := x if {
	is_array(x)
} else := []
