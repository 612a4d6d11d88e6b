# METADATA
# title: "Traceability: the change is linked to an approved work item"
# description: "Runs entering production carry at least one linked work item (through the pull requests or the run) in an approved state."
# custom:
#   id: GATE-09
#   severity: medium
#   kind: deployment
#   rationale: "Auditors trace every production change back to a requested, approved piece of work; a change without one cannot be explained afterwards."
#   remediation: "Link the pull request to a work item and move it to an approved state (branch policy 'Check for linked work items' helps)."
#   permission: "Work Items (Read)"
#   frameworks: ["sox-itgc:change-management", "iso27001:A.8.32", "cmmi:REQM", "strategy:2.3"]
#   parameters:
#     environments: [production, prod, prod-*, production-*]
#     approved_states: [Approved, Committed, Active, Resolved, Done, Closed]
package tollgate.gate.traceability

import data.tollgate.lib.gate

approved_states := {lower(s) | some s in gate.items(gate.param("GATE-09", "approved_states", ["Approved"]))}

linked := gate.items(gate.get(input, "workItems", []))

approved := [w | some w in linked; lower(gate.get(w, "state", "")) in approved_states]

deny contains {"message": msg, "evidence": {"workItems": linked, "approvedStates": sort(approved_states)}} if {
	gate.applies("GATE-09", gate.production)
	count(approved) == 0
	msg := trace_message
}

trace_message := "no work item is linked to this change" if count(linked) == 0
else := sprintf("none of the linked work items %v is in an approved state", [[gate.get(w, "id", null) | some w in linked]])
