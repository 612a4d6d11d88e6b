# METADATA
# title: "Repositories do not accumulate branches"
# description: "A repository has no more branches than the limit (by default 100)."
# custom:
#   id: RP-07
#   severity: low
#   kind: repositories
#   rationale: "Hundreds of branches mean stale work nobody reviews or deletes; old branches keep vulnerable code and secrets reachable and clutter policy scopes."
#   remediation: "Delete merged and abandoned branches (Repos → Branches → Stale), and set 'Delete source branch after merging' on pull requests."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.8"]
#   parameters:
#     max_branches: 100
package tollgate.controls.rp_07

deny contains {"message": msg, "evidence": {"branches": total, "max_branches": limit}} if {
	get(input.resource, "isDisabled", false) == false
	total := count([ref | some ref in items(get(input.related, "refs", [])); startswith(ref, "refs/heads/")])
	limit := get(get(input.params, "RP-07", {}), "max_branches", 100)
	total > limit
	msg := sprintf("repository has %d branches; the limit is %d", [total, limit])
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
