# METADATA
# title: "Projects are not made public"
# description: "The audit log has no Project.UpdateVisibilityCompleted entry in the lookback window (by default 90 days) that changed a project's visibility to public."
# custom:
#   id: AU-04
#   severity: high
#   kind: audit_log
#   rationale: "While a project is public, anyone on the internet can read and clone its code, pipeline logs and work items. Making it private again does not undo what was copied, so every such window needs a review (PJ-01 only sees the visibility now)."
#   remediation: "Confirm the change was approved; if not, set the project back to private, review what it exposed (secrets in code and logs) and turn off 'Allow public projects' in the organisation's policies."
#   permission: "Audit Log (Read)"
#   frameworks: ["iso27001:A.8.3", "soc2:CC6.1", "nist-ssdf:PS.1"]
#   parameters:
#     lookback_days: 90
package tollgate.controls.au_04

import data.tollgate.lib

deny contains {"message": msg, "evidence": evidence} if {
	get(input.resource, "actionId", "") == "Project.UpdateVisibilityCompleted"
	data_ := get(input.resource, "data", {})
	visibility := get(data_, "ProjectVisibility", "")
	is_string(visibility)
	lower(visibility) == "public"
	recent(input.resource, get(get(input.params, "AU-04", {}), "lookback_days", 90))
	evidence := {
		"actionId": "Project.UpdateVisibilityCompleted",
		"timestamp": get(input.resource, "timestamp", null),
		"actor": get(input.resource, "actorUPN", get(input.resource, "actorDisplayName", null)),
		"projectId": get(data_, "ProjectId", get(input.resource, "projectId", null)),
		"previousVisibility": get(data_, "PreviousProjectVisibility", null),
		"visibility": visibility,
	}
	msg := sprintf("%v made project %v public", [evidence.actor, get(input.resource, "projectName", get(data_, "ProjectName", evidence.projectId))])
}

# Only entries of the lookback window are judged: tollgate keeps audit entries after ADO drops
# them, and an event reviewed long ago should not stay a finding forever.
recent(entry, days) if {
	timestamp := get(entry, "timestamp", "")
	is_string(timestamp)
	timestamp != ""
	lib.age_days(timestamp) <= days
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
