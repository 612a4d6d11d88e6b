# METADATA
# title: "Pull request titles follow the strategy's commit convention"
# description: "An open or completed pull request's title is a Conventional Commit with one of the strategy's types (feat, fix, docs, style, refactor, test, chore, security), so the squash-merged commit on main is one too."
# custom:
#   id: STR-05
#   severity: low
#   kind: pull_requests
#   rationale: "The strategy squash-merges pull requests into main and generates changelogs and versions from Conventional Commits; a title outside the convention produces a commit the release tooling cannot classify."
#   remediation: "Rename the pull request to '<type>(<scope>): <description>', for example 'feat(document-service): add PDF classification support'."
#   permission: "Code (Read)"
#   frameworks: ["strategy:2.5", "sox-itgc:change-management"]
#   parameters:
#     types: ["feat", "fix", "docs", "style", "refactor", "test", "chore", "security"]
package tollgate.controls.str_05

default_types := ["feat", "fix", "docs", "style", "refactor", "test", "chore", "security"]

deny contains {"message": msg, "evidence": {"title": title, "types": types}} if {
	is_string(input.resource.status)
	lower(input.resource.status) in {"active", "completed"}
	title := get(input.resource, "title", null)
	is_string(title)
	types := get(get(input.params, "STR-05", {}), "types", default_types)
	pattern := concat("", ["^(", concat("|", [lower(t) | some t in types]), `)(\([^)]+\))?!?: [^ ]`])
	not regex.match(pattern, lower(trim_space(title)))
	msg := sprintf("pull request %v title %q does not follow the commit convention ('<type>(<scope>): <description>' with a type of %v)", [get(input.resource, "pullRequestId", "?"), title, types])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
