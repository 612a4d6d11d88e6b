# METADATA
# title: "Pull request titles follow Conventional Commits"
# description: "An open or completed pull request's title has the form '<type>(<scope>)!: <description>' with a known type, so the squash commit it becomes is a Conventional Commit."
# custom:
#   id: PR-01
#   severity: low
#   kind: pull_requests
#   rationale: "With squash merges the pull request title becomes the commit on the protected branch; typed titles make the change history reviewable and drive changelogs and version numbers."
#   remediation: "Edit the pull request title to '<type>: <description>' (for example 'fix(api): reject empty tokens') before completing it."
#   permission: "Code (Read)"
#   frameworks: ["internal:naming", "sox-itgc:change-management"]
#   parameters:
#     types: ["feat", "fix", "docs", "style", "refactor", "perf", "test", "build", "ci", "chore", "revert"]
package tollgate.controls.pr_01

default_types := ["feat", "fix", "docs", "style", "refactor", "perf", "test", "build", "ci", "chore", "revert"]

deny contains {"message": msg, "evidence": {"title": title, "types": types}} if {
	is_string(input.resource.status)
	lower(input.resource.status) in {"active", "completed"}
	title := get(input.resource, "title", null)
	is_string(title)
	types := get(get(input.params, "PR-01", {}), "types", default_types)
	pattern := concat("", ["^(", concat("|", [lower(t) | some t in types]), `)(\([^)]+\))?!?: [^ ]`])
	not regex.match(pattern, lower(trim_space(title)))
	msg := sprintf("pull request %v title %q is not a Conventional Commit ('<type>(<scope>): <description>')", [get(input.resource, "pullRequestId", "?"), title])
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
