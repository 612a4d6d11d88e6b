# METADATA
# title: "Work items have their parent in the same project"
# description: "A work item's parent belongs to the same project as the work item."
# custom:
#   id: WI-05
#   severity: low
#   kind: work_items
#   rationale: "Area paths, iterations, permissions and reports are per project. A parent in another project is invisible to this project's backlog and queries, and its owners can close or move it without this project seeing it, so traceability breaks at the project boundary."
#   remediation: "Link the work item to a parent in its own project, or move it (Boards → work item → Move to team project) to the project that owns the parent."
#   permission: "Work Items (Read)"
#   frameworks: ["iso27001:A.8.32", "sox-itgc:change-management"]
package tollgate.controls.wi_05

# Cost: this runs on every work item; fields are read as paths (a function call costs regorus
# several times a path lookup) and the project comparison, which ends most, comes first.

deny contains {"message": msg, "evidence": {"project": input.project, "parent": parent, "parentProject": parent_project}} if {
	parent_project := input.related.parent_project
	# Equal ids (the usual case) are equal in any case: no need to lower them.
	parent_project != input.project
	is_string(parent_project)
	parent_project != ""
	is_string(input.project)
	input.project != ""
	lower(parent_project) != lower(input.project)
	parent := input.related.parent
	parent != null
	msg := sprintf("work item %v has its parent %v in another project (%s)", [get(input.resource, "id", "?"), parent, parent_project])
}

get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
