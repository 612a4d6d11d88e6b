# METADATA
# title: "Disabled or paused pipelines are retired"
# description: "A build definition's queue status is enabled; a disabled or paused definition is dead configuration that still holds permissions and resource authorisations."
# custom:
#   id: PL-03
#   severity: low
#   kind: build_definitions
#   rationale: "Switched-off pipelines keep their service connections, variable groups and agent access, and can be re-enabled and run without anyone reviewing what they do today."
#   remediation: "Delete the pipeline (retention keeps its runs), or enable it again if it is still needed."
#   permission: "Build (Read)"
#   frameworks: ["internal:hygiene"]
package tollgate.controls.pl_03

deny contains {"message": msg, "evidence": {"queueStatus": status}} if {
	status := get(input.resource, "queueStatus", "enabled")
	is_string(status)
	lower(status) in {"disabled", "paused"}
	msg := sprintf("pipeline %s is %s", [get(input.resource, "name", "?"), lower(status)])
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
