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

# Cost: this runs on every work item, so the children (absent on most) are tested first and
# fields are read as paths (a function call costs regorus several times a path lookup).

deny contains {"message": msg, "evidence": {"state": state, "openChildren": open, "childStates": child_states}} if {
	child_states := input.related.child_states
	is_object(child_states)
	count(child_states) > 0
	state := work_item_state
	state in done_states
	open := sum([n | some child_state, n in child_states; not child_state in done_states])
	open > 0
	msg := sprintf("%s %v is %s but %d of its children are still open", [get(get(input.resource, "fields", {}), "System.WorkItemType", "work item"), get(input.resource, "id", "?"), state, open])
}

# `System.State`, or "" when the item has none (or fields is not an object).
work_item_state := state if {
	state := input.resource.fields["System.State"]
	state != null
} else := ""

done_states := states if {
	states := input.params["WI-04"].done_states
	states != null
} else := []

get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
