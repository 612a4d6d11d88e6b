# METADATA
# title: "Pull requests are not completed by bypassing policies"
# description: "A completed pull request was not merged with 'Override branch policies and enable merge' (completionOptions.bypassPolicy)."
# custom:
#   id: PR-06
#   severity: high
#   kind: pull_requests
#   rationale: "A policy bypass merges a change that skipped the required reviews and builds; every use needs an after-the-fact review and a recorded reason."
#   remediation: "Review the bypassed change and its reason; limit 'Bypass policies when completing pull requests' to a break-glass group."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.14", "sox-itgc:change-management", "soc2:CC8.1"]
package tollgate.controls.pr_06

deny contains {"message": msg, "evidence": {"status": "completed", "completionOptions.bypassPolicy": true, "completionOptions.bypassReason": reason}} if {
	is_string(input.resource.status)
	lower(input.resource.status) == "completed"
	options := get(input.resource, "completionOptions", {})
	get(options, "bypassPolicy", false) == true
	reason := get(options, "bypassReason", "")
	msg := sprintf("pull request %v was completed by bypassing branch policies (reason: %q)", [get(input.resource, "pullRequestId", "?"), reason])
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
