# METADATA
# title: "Pull requests do not stay open for months"
# description: "An active pull request was created less than the configured number of days ago (by default 120)."
# custom:
#   id: PR-03
#   severity: low
#   kind: pull_requests
#   rationale: "Long-open pull requests carry approvals and build results for code that no longer matches its target, and are often completed in a hurry without a fresh review."
#   remediation: "Complete, rebase and re-review, or abandon the pull request."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.8", "internal:hygiene"]
#   parameters:
#     max_open_days: 120
package tollgate.controls.pr_03

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"status": "active", "creationDate": created, "ageDays": age, "max_open_days": limit}} if {
	is_string(input.resource.status)
	lower(input.resource.status) == "active"
	created := get(input.resource, "creationDate", "")
	is_string(created)
	created != ""
	age := lib.age_days(created)
	limit := get(get(input.params, "PR-03", {}), "max_open_days", 120)
	age > limit
	msg := sprintf("pull request %v has been open for %d days; the limit is %d", [get(input.resource, "pullRequestId", "?"), age, limit])
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
