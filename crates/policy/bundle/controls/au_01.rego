# METADATA
# title: "Branch policies are not bypassed"
# description: "The audit log has no Git.RefUpdatePoliciesBypassed entry in the lookback window (by default 90 days): nobody pushed or completed a pull request past the branch policies."
# custom:
#   id: AU-01
#   severity: high
#   kind: audit_log
#   rationale: "A bypass is a change that reached a protected branch without the reviews and builds the policies demand. Each one needs a recorded justification and an after-the-fact review, or the policies protect nothing."
#   remediation: "Review the change that was pushed, record why the bypass was needed, and restrict 'Bypass policies when pushing' and 'Bypass policies when completing pull requests' to a break-glass group."
#   permission: "Audit Log (Read)"
#   frameworks: ["sox-itgc:change-management", "soc2:CC8.1", "cis-ssc:1.1.14", "iso27001:A.8.32"]
#   parameters:
#     lookback_days: 90
package tollgate.controls.au_01

import data.tollgate.lib

deny contains {"message": msg, "evidence": evidence} if {
	get(input.resource, "actionId", "") == "Git.RefUpdatePoliciesBypassed"
	recent(input.resource, get(get(input.params, "AU-01", {}), "lookback_days", 90))
	data_ := get(input.resource, "data", {})
	evidence := {
		"actionId": "Git.RefUpdatePoliciesBypassed",
		"timestamp": get(input.resource, "timestamp", null),
		"actor": get(input.resource, "actorUPN", get(input.resource, "actorDisplayName", null)),
		"repository": get(data_, "RepoName", null),
		"ref": get(data_, "FriendlyName", null),
	}
	msg := sprintf("%v bypassed the branch policies on %v in %v", [evidence.actor, get(data_, "FriendlyName", "a branch"), get(data_, "RepoName", "a repository")])
}

# Only entries of the lookback window are judged: tollgate keeps audit entries after ADO drops
# them, and an event reviewed long ago should not stay a finding forever.
recent(entry, days) if {
	timestamp := get(entry, "timestamp", "")
	is_string(timestamp)
	timestamp != ""
	lib.age_days(timestamp) <= days
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
