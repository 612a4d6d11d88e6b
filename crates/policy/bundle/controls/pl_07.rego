# METADATA
# title: "Builds of protected branches do not override variables at queue time"
# description: "A build of a protected branch (by default main, master and release/*) was queued without queue-time variable values (the build's parameters)."
# custom:
#   id: PL-07
#   severity: medium
#   kind: builds
#   rationale: "Variables set at queue time change what the reviewed pipeline does (endpoints, feature flags, debug output) for the build that ships, without any review."
#   remediation: "Remove 'Settable at queue time' from the pipeline's variables, enable 'Limit variables that can be set at queue time' in the project settings, and use runtime parameters with fixed allowed values instead."
#   permission: "Build (Read)"
#   frameworks: ["nist-ssdf:PS.1", "sox-itgc:change-management", "soc2:CC8.1"]
#   parameters:
#     protected_branches: ["refs/heads/main", "refs/heads/master", "refs/heads/release/*"]
package tollgate.controls.pl_07

params := get(input.params, "PL-07", {})

deny contains {"message": msg, "evidence": {"parameters": overrides, "sourceBranch": branch}} if {
	overrides := input.resource.parameters
	is_string(overrides)
	not trim_space(overrides) in {"", "{}", "null"}
	branch := get(input.resource, "sourceBranch", "")
	is_string(branch)
	matches_any(branch, get(params, "protected_branches", ["refs/heads/main", "refs/heads/master", "refs/heads/release/*"]))
	msg := sprintf("build %v of %s was queued with variable overrides %s", [get(input.resource, "buildNumber", get(input.resource, "id", "?")), branch, overrides])
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
