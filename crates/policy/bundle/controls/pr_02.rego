# METADATA
# title: "Pull requests target protected, long-lived branches"
# description: "An open or completed pull request merges into one of the branches the organisation protects (by default main, master, develop, release/* and hotfix/*)."
# custom:
#   id: PR-02
#   severity: low
#   kind: pull_requests
#   rationale: "Changes merged into an unprotected branch skip review there and reach production later through a merge that looks already reviewed."
#   remediation: "Retarget the pull request to the protected branch, or protect the target branch and add it to the PR-02 target_branches parameter."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.15", "sox-itgc:change-management"]
#   parameters:
#     target_branches: ["refs/heads/main", "refs/heads/master", "refs/heads/develop", "refs/heads/release/*", "refs/heads/hotfix/*"]
package tollgate.controls.pr_02

default_targets := ["refs/heads/main", "refs/heads/master", "refs/heads/develop", "refs/heads/release/*", "refs/heads/hotfix/*"]

deny contains {"message": msg, "evidence": {"targetRefName": target, "allowed": allowed}} if {
	is_string(input.resource.status)
	lower(input.resource.status) in {"active", "completed"}
	target := get(input.resource, "targetRefName", "")
	is_string(target)
	target != ""
	allowed := get(get(input.params, "PR-02", {}), "target_branches", default_targets)
	not matches_any(target, allowed)
	msg := sprintf("pull request %v targets %s, which is not a protected branch", [get(input.resource, "pullRequestId", "?"), target])
}

# Glob match without delimiters: `*` also spans "/" and ".".
matches_any(name, patterns) if {
	some pattern in patterns
	glob.match(lower(pattern), null, lower(name))
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
