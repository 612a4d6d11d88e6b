# METADATA
# title: "The default branch has a standard name"
# description: "A repository's default branch is one of the standard names (by default main or master)."
# custom:
#   id: RP-03
#   severity: low
#   kind: repositories
#   rationale: "Organisation-wide branch policies, pipeline triggers and release tooling are written for the standard name; a repository whose default branch is called something else silently escapes them."
#   remediation: "Create main from the current default branch, make it the default, move the branch policies and retire the old branch."
#   permission: "Code (Read)"
#   frameworks: ["internal:naming"]
#   parameters:
#     default_branches: ["refs/heads/main", "refs/heads/master"]
package tollgate.controls.rp_03

deny contains {"message": msg, "evidence": {"defaultBranch": branch, "allowed": allowed}} if {
	get(input.resource, "isDisabled", false) == false
	branch := get(input.resource, "defaultBranch", "")
	is_string(branch)
	branch != ""
	allowed := get(get(input.params, "RP-03", {}), "default_branches", ["refs/heads/main", "refs/heads/master"])
	not lower(branch) in {lower(name) | some name in allowed}
	msg := sprintf("the default branch is %s, not one of %v", [branch, allowed])
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
