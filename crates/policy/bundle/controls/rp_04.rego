# METADATA
# title: "The default branch exists"
# description: "The branch a repository names as its default is one of its branches."
# custom:
#   id: RP-04
#   severity: medium
#   kind: repositories
#   rationale: "When the default branch was deleted or renamed, clones, pipelines and pull requests fall back to whatever branch is left, and the policies written for the default branch protect nothing."
#   remediation: "Repos → Branches: set an existing, protected branch as the default, or recreate the missing branch."
#   permission: "Code (Read)"
#   frameworks: ["internal:hygiene"]
package tollgate.controls.rp_04

deny contains {"message": msg, "evidence": {"defaultBranch": branch, "branches": count(branches)}} if {
	get(input.resource, "isDisabled", false) == false
	branch := get(input.resource, "defaultBranch", "")
	is_string(branch)
	branch != ""
	branches := [ref | some ref in items(get(input.related, "refs", [])); startswith(ref, "refs/heads/")]
	# No branches listed at all means the refs were not read: nothing to judge.
	count(branches) > 0
	not branch in branches
	msg := sprintf("the default branch %s does not exist", [branch])
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
