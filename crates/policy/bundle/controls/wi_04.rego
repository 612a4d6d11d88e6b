# METADATA
# title: "Closed work items have no open children"
# description: "A work item in a done state (by default Closed, Done or Removed) has no child that is still open."
# custom:
#   id: WI-04
#   severity: low
#   kind: work_items
#   rationale: "Closing a Feature or story while its children are open reports work as delivered that is not; the open children drop out of the backlog levels people review and can ship without the requirement they belong to."
#   remediation: "Finish, move or remove the open children, or reopen the parent."
#   permission: "Work Items (Read)"
#   frameworks: ["sox-itgc:change-management", "iso27001:A.8.32"]
#   parameters:
#     done_states: [Closed, Done, Removed]
package tollgate.controls.wi_04

deny contains {"message": msg, "evidence": {"state": state, "openChildren": open, "childStates": child_states}} if {
	fields := get(input.resource, "fields", {})
	state := get(fields, "System.State", "")
	done := get(get(input.params, "WI-04", {}), "done_states", [])
	state in done
	child_states := get(input.related, "child_states", {})
	is_object(child_states)
	open := sum([n | some child_state, n in child_states; not child_state in done])
	open > 0
	msg := sprintf("%s %v is %s but %d of its children are still open", [get(fields, "System.WorkItemType", "work item"), get(input.resource, "id", "?"), state, open])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := object.get(x, key, fallback)
	value != null
} else := fallback
