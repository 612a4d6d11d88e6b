# METADATA
# title: "Pipeline runs do not hang"
# description: "A pipeline run is not still in progress (or cancelling) more than the configured number of days (by default 7) after it was created."
# custom:
#   id: PL-08
#   severity: low
#   kind: pipeline_runs
#   rationale: "A run that never finishes holds an agent, an exclusive lock or a pending approval; an approval nobody answers for a week usually means the deployment path is unowned."
#   remediation: "Open the run: answer or reject the pending approval, or cancel the run and find out why it hung."
#   permission: "Build (Read)"
#   frameworks: ["internal:hygiene"]
#   parameters:
#     max_age_days: 7
package tollgate.controls.pl_08

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"state": state, "createdDate": created, "ageDays": age}} if {
	state := input.resource.state
	is_string(state)
	lower(state) in {"inprogress", "canceling"}
	created := get(input.resource, "createdDate", "")
	is_string(created)
	created != ""
	age := lib.age_days(created)
	limit := get(get(input.params, "PL-08", {}), "max_age_days", 7)
	age > limit
	pipeline := get(get(input.resource, "pipeline", {}), "name", "?")
	msg := sprintf("run %v of pipeline %s has been %s for %d days", [get(input.resource, "name", get(input.resource, "id", "?")), pipeline, state, age])
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
