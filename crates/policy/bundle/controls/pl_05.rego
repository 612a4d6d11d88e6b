# METADATA
# title: "Builds of protected branches do not fail"
# description: "No build of a protected branch (by default main, master and release/*) finished as failed within the last days (by default 7)."
# custom:
#   id: PL-05
#   severity: low
#   kind: builds
#   rationale: "A failing build on the branch that ships means the last change was merged broken, or its checks were skipped; the next release would be built from it."
#   remediation: "Fix or revert the breaking change, and require a passing build validation before merging (BP-08)."
#   permission: "Build (Read)"
#   frameworks: ["cis-ssc:1.1.9", "nist-ssdf:PW.8"]
#   parameters:
#     protected_branches: ["refs/heads/main", "refs/heads/master", "refs/heads/release/*"]
#     max_age_days: 7
package tollgate.controls.pl_05

import data.tollgate.lib

params := get(input.params, "PL-05", {})

deny contains {"message": msg, "evidence": {"result": "failed", "sourceBranch": branch, "finishTime": finished}} if {
	is_string(input.resource.status)
	lower(input.resource.status) == "completed"
	is_string(input.resource.result)
	lower(input.resource.result) == "failed"
	branch := get(input.resource, "sourceBranch", "")
	is_string(branch)
	matches_any(branch, get(params, "protected_branches", ["refs/heads/main", "refs/heads/master", "refs/heads/release/*"]))
	finished := get(input.resource, "finishTime", "")
	is_string(finished)
	finished != ""
	lib.age_days(finished) <= get(params, "max_age_days", 7)
	msg := sprintf("build %v of %s failed", [get(input.resource, "buildNumber", get(input.resource, "id", "?")), branch])
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
