# METADATA
# title: "Parents follow the process hierarchy"
# description: "A work item's parent is of a type its process places above it: an Epic above a Feature, a Feature above a User Story, Product Backlog Item or Requirement, a backlog item or Bug above a Task (Agile, Scrum and CMMI)."
# custom:
#   id: WI-03
#   severity: low
#   kind: work_items
#   rationale: "Roll-ups, delivery plans and traceability reports follow the backlog levels. A Task hung under a Feature, or a Feature under a Feature, drops out of the level that should account for it, so requirement-to-change reports miss it."
#   remediation: "Move the work item under a parent of the right type (Boards → work item → Related work → change parent)."
#   permission: "Work Items (Read)"
#   frameworks: ["sox-itgc:change-management", "iso27001:A.8.32"]
#   parameters:
#     allowed_parents: {Epic: [], Feature: [Epic], User Story: [Feature], Product Backlog Item: [Feature], Requirement: [Feature], Bug: [Feature, User Story, Product Backlog Item, Requirement], Task: [User Story, Product Backlog Item, Requirement, Bug]}
package tollgate.controls.wi_03

# Cost: this runs on every work item, so the parent (absent on few) is tested first and fields
# are read as paths (a function call costs regorus several times a path lookup).

deny contains {"message": msg, "evidence": {"type": kind, "parent": parent, "parentType": parent_type, "allowedParents": allowed}} if {
	parent := input.related.parent
	parent != null
	# A parent outside the inventory has no known type: nothing to judge.
	parent_type := input.related.parent_type
	is_string(parent_type)
	parent_type != ""
	kind := work_item_type
	# Types the map does not name (custom or test types) are not judged.
	allowed_parents := input.params["WI-03"].allowed_parents
	is_object(allowed_parents)
	allowed := allowed_parents[kind]
	is_array(allowed)
	not parent_type in allowed
	msg := sprintf("%s %v has a %s as its parent (%v)", [kind, get(input.resource, "id", "?"), parent_type, parent])
}

# `System.WorkItemType`, or "" when the item has none (or fields is not an object).
work_item_type := kind if {
	kind := input.resource.fields["System.WorkItemType"]
	kind != null
} else := ""

get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
