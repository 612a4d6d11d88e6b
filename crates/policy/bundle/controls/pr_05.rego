# METADATA
# title: "Pull requests into protected branches are approved before completion"
# description: "A completed pull request into a protected branch (by default main, master and release/*) has at least one approving vote."
# custom:
#   id: PR-05
#   severity: high
#   kind: pull_requests
#   rationale: "A change that reached a protected branch without any approval was not reviewed at all: the branch policy was missing, optional or bypassed."
#   remediation: "Have the merged change reviewed after the fact, and require reviewers on the target branch (BP-01, BP-02)."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.3", "sox-itgc:change-management", "iso27001:A.8.32", "soc2:CC8.1"]
#   parameters:
#     protected_branches: ["refs/heads/main", "refs/heads/master", "refs/heads/release/*"]
package tollgate.controls.pr_05

default_branches := ["refs/heads/main", "refs/heads/master", "refs/heads/release/*"]

# 10 = approved, 5 = approved with suggestions.
approvals := [reviewer |
	some reviewer in items(get(input.resource, "reviewers", []))
	get(reviewer, "vote", 0) >= 5
]

deny contains {"message": msg, "evidence": {"status": "completed", "targetRefName": target, "reviewers": count(reviewers), "approvals": 0}} if {
	is_string(input.resource.status)
	lower(input.resource.status) == "completed"
	target := get(input.resource, "targetRefName", "")
	is_string(target)
	branches := get(get(input.params, "PR-05", {}), "protected_branches", default_branches)
	matches_any(target, branches)
	count(approvals) == 0
	reviewers := items(get(input.resource, "reviewers", []))
	msg := sprintf("pull request %v was completed into %s without any approval", [get(input.resource, "pullRequestId", "?"), target])
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
