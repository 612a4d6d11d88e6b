# METADATA
# title: "Pull requests come from branches named by the branching standard"
# description: "The source branch of every open or completed pull request follows the branching standard: feature/*, bugfix/*, release/* or hotfix/*."
# custom:
#   id: STR-06
#   severity: low
#   kind: pull_requests
#   rationale: "The strategy's trunk-based model relies on short-lived, typed branches; a branch named by its type and ticket tells reviewers and release tooling what the change is and where it came from."
#   remediation: "Create work branches as feature/<ticket>-<description>, bugfix/<ticket>-<description>, release/<version> or hotfix/<version>; rename the branch and re-create the pull request."
#   permission: "Code (Read)"
#   frameworks: ["strategy:2.2", "sox-itgc:change-management"]
#   parameters:
#     allowed_source_branches: ["refs/heads/feature/*", "refs/heads/bugfix/*", "refs/heads/release/*", "refs/heads/hotfix/*"]
package tollgate.controls.str_06

import data.tollgate.lib

default_patterns := ["refs/heads/feature/*", "refs/heads/bugfix/*", "refs/heads/release/*", "refs/heads/hotfix/*"]

deny contains {"message": msg, "evidence": {"sourceRefName": source, "allowed": patterns}} if {
	is_string(input.resource.status)
	lower(input.resource.status) in {"active", "completed"}
	source := get(input.resource, "sourceRefName", "")
	source != ""
	patterns := get(get(input.params, "STR-06", {}), "allowed_source_branches", default_patterns)
	not matches_any(source, patterns)
	msg := sprintf("pull request %v comes from %s, which is not a standard branch name", [get(input.resource, "pullRequestId", "?"), source])
}

# Glob match without delimiters: `*` also spans "/" and "." (lib.matches_any stops at ".").
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
