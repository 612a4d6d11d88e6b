# METADATA
# title: "Protected branches are built by triggers, not by hand"
# description: "A build of a protected branch (by default main, master and release/*) was not queued manually."
# custom:
#   id: PL-06
#   severity: low
#   kind: builds
#   rationale: "A manual run lets a person choose the commit, stages and queue-time values for a build of the branch that ships; CI-triggered builds are reproducible and tied to the merged change."
#   remediation: "Build protected branches with CI triggers; limit 'Queue builds' on the pipeline to the release team and record why manual runs were needed."
#   permission: "Build (Read)"
#   frameworks: ["cis-ssc:2.3.5", "sox-itgc:change-management"]
#   parameters:
#     protected_branches: ["refs/heads/main", "refs/heads/master", "refs/heads/release/*"]
#     reasons: ["manual"]
package tollgate.controls.pl_06

params := get(input.params, "PL-06", {})

deny contains {"message": msg, "evidence": {"reason": reason, "sourceBranch": branch, "requestedFor": requester}} if {
	reason := get(input.resource, "reason", "")
	is_string(reason)
	lower(reason) in {lower(r) | some r in get(params, "reasons", ["manual"])}
	branch := get(input.resource, "sourceBranch", "")
	is_string(branch)
	matches_any(branch, get(params, "protected_branches", ["refs/heads/main", "refs/heads/master", "refs/heads/release/*"]))
	requested := get(input.resource, "requestedFor", {})
	requester := get(requested, "uniqueName", get(requested, "displayName", "an unknown user"))
	msg := sprintf("build %v of %s was queued by hand (%s) by %s", [get(input.resource, "buildNumber", get(input.resource, "id", "?")), branch, reason, requester])
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
