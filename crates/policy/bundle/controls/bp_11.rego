# METADATA
# title: "Required status checks cannot be satisfied by stale or self-posted statuses"
# description: "A blocking status-check branch policy applies even when no status was posted, resets on new changes, and accepts the status only from a named identity."
# custom:
#   id: BP-11
#   severity: medium
#   kind: policy_configurations
#   rationale: "External checks (scanners, license checks) only protect the branch when their verdict must be present, is for the latest iteration, and cannot be posted by anyone with access to the pull request."
#   remediation: "Branch policies → Status checks → edit the check: Policy applicability 'Apply by default', check 'Reset status whenever there are new changes', and set 'Authorized identity' to the scanner's identity."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.9", "cis-ssc:1.1.18", "nist-ssdf:PW.7", "soc2:CC8.1"]
package tollgate.controls.bp_11

import data.tollgate.lib

is_status_check if {
	lib.is_status_check(input.resource)
	lib.is_enabled_blocking(input.resource)
}

settings := get(input.resource, "settings", {})

status_name := get(settings, "statusName", "")

# policyApplicability 1 = "Apply only when status is posted" (null or 0 = apply by default).
deny contains {"message": msg, "evidence": {"statusName": status_name, "policyApplicability": 1}} if {
	is_status_check
	get(settings, "policyApplicability", null) == 1
	msg := sprintf("status check %q applies only when a status is posted: if the check never reports, nothing is required", [status_name])
}

deny contains {"message": msg, "evidence": {"statusName": status_name, "invalidateOnSourceUpdate": value}} if {
	is_status_check
	value := get(settings, "invalidateOnSourceUpdate", false)
	value != true
	msg := sprintf("status check %q is not reset when new changes are pushed", [status_name])
}

# No authorized identity (authorId missing, null or empty): anyone may post the status.
deny contains {"message": msg, "evidence": {"statusName": status_name, "authorId": ""}} if {
	is_status_check
	author := get(settings, "authorId", "")
	is_string(author)
	trim_space(author) == ""
	msg := sprintf("status check %q accepts a status posted by any identity", [status_name])
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
