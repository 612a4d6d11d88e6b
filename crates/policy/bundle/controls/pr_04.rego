# METADATA
# title: "Completed pull requests carry no rejection"
# description: "No reviewer of a completed pull request still voted 'Rejected' (-10) when it was merged."
# custom:
#   id: PR-04
#   severity: high
#   kind: pull_requests
#   rationale: "A change merged over a reviewer's rejection means the review result was ignored: through a policy that allows completion despite rejections, or through a bypass."
#   remediation: "Review the merged change with the rejecting reviewer; in branch policies clear 'Allow completion even if some reviewers vote to wait or reject' and restrict 'Bypass policies when completing pull requests'."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.5", "sox-itgc:change-management", "soc2:CC8.1"]
package tollgate.controls.pr_04

deny contains {"message": msg, "evidence": {"status": "completed", "reviewer": reviewer_name, "vote": -10}} if {
	is_string(input.resource.status)
	lower(input.resource.status) == "completed"
	some reviewer in items(get(input.resource, "reviewers", []))
	get(reviewer, "vote", 0) == -10
	reviewer_name := get(reviewer, "uniqueName", get(reviewer, "displayName", get(reviewer, "id", "")))
	msg := sprintf("pull request %v was completed although %s rejected it", [get(input.resource, "pullRequestId", "?"), reviewer_name])
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
