# METADATA
# title: "Work items sit in the hierarchy"
# description: "Features, requirements and tasks have a parent (Epic → Feature → Story/Requirement → Task)."
# custom:
#   id: WI-01
#   severity: low
#   kind: work_items
#   rationale: "Orphans break traceability from requirement to deployment."
#   remediation: "Link the work item to its parent."
#   permission: "Work Items (Read)"
#   frameworks: [sox-itgc:change-management, iso27001:A.8.32]
#   parameters:
#     types_needing_parent: [Feature, User Story, Requirement, Product Backlog Item, Task]
package tollgate.controls.wi_01

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"type": kind, "parent": null}} if {
	# Most work items have a parent: that cheap test first.
	not has_parent
	kind := object.get(object.get(input.resource, "fields", {}), "System.WorkItemType", "")
	kind in input.params["WI-01"].types_needing_parent
	object.get(input.related, "parent", null) == null
	msg := sprintf("%s %v has no parent", [kind, input.resource.id])
}

has_parent if input.related.parent != null
