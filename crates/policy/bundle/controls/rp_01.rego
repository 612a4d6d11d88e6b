# METADATA
# title: "Repositories are not left in maintenance mode"
# description: "A repository is not stuck in maintenance (isInMaintenance), where nobody can clone, push or review it."
# custom:
#   id: RP-01
#   severity: low
#   kind: repositories
#   rationale: "Maintenance mode is meant to last minutes; a repository that stays in it is unusable, and work moves to ungoverned copies."
#   remediation: "Repos → Repositories → check the repository's state; finish or cancel the maintenance operation, or disable the repository if it is retired."
#   permission: "Code (Read)"
#   frameworks: ["internal:hygiene"]
package tollgate.controls.rp_01

deny contains {"message": msg, "evidence": {"isInMaintenance": true}} if {
	get(input.resource, "isInMaintenance", false) == true
	msg := sprintf("repository %s is in maintenance mode", [get(input.resource, "name", "?")])
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
