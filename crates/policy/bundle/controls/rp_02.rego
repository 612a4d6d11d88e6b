# METADATA
# title: "Repositories have a default branch"
# description: "An enabled repository has a default branch; an empty repository has none, and no branch policy can protect it."
# custom:
#   id: RP-02
#   severity: low
#   kind: repositories
#   rationale: "Branch policies, pipelines and scanners all start from the default branch; a repository without one is either unused or about to receive code that no policy guards."
#   remediation: "Push an initial commit to main and set it as the default branch, then add branch policies, or delete (or disable) the unused repository."
#   permission: "Code (Read)"
#   frameworks: ["internal:hygiene"]
package tollgate.controls.rp_02

deny contains {"message": msg, "evidence": {"defaultBranch": branch}} if {
	get(input.resource, "isDisabled", false) == false
	branch := get(input.resource, "defaultBranch", "")
	is_empty(branch)
	msg := sprintf("repository %s has no default branch (it is empty)", [get(input.resource, "name", "?")])
}

is_empty(branch) if branch == null

is_empty(branch) if {
	is_string(branch)
	trim_space(branch) == ""
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
