# METADATA
# title: "The work item hierarchy has no cycles"
# description: "Following parent links from a work item never returns to it."
# custom:
#   id: WI-02
#   severity: medium
#   kind: work_items
#   rationale: "A cycle makes roll-ups and traceability reports loop or lie."
#   remediation: "Remove one of the parent links in the cycle."
#   permission: "Work Items (Read)"
#   frameworks: [iso27001:A.8.32]
package tollgate.controls.wi_02

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"ancestors": object.get(input.related, "ancestors", [])}} if {
	object.get(input.related, "cycle", false) == true
	msg := sprintf("work item %v is its own ancestor", [input.resource.id])
}
