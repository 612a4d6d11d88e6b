# METADATA
# title: "Branch policies are not removed"
# description: "The audit log has no Policy.PolicyConfigRemoved entry in the lookback window (by default 90 days)."
# custom:
#   id: AU-02
#   severity: medium
#   kind: audit_log
#   rationale: "Removing a branch policy weakens every later change to that branch, and the current configuration no longer shows that the protection existed. The removal itself must be traced to an approved change."
#   remediation: "Confirm the removal was approved; if not, restore the policy (Repos → Branch policies) and review what was merged while it was missing."
#   permission: "Audit Log (Read)"
#   frameworks: ["sox-itgc:change-management", "soc2:CC8.1", "cis-ssc:1.1.19"]
#   parameters:
#     lookback_days: 90
package tollgate.controls.au_02

import data.tollgate.lib

deny contains {"message": msg, "evidence": evidence} if {
	get(input.resource, "actionId", "") == "Policy.PolicyConfigRemoved"
	recent(input.resource, get(get(input.params, "AU-02", {}), "lookback_days", 90))
	data_ := get(input.resource, "data", {})
	evidence := {
		"actionId": "Policy.PolicyConfigRemoved",
		"timestamp": get(input.resource, "timestamp", null),
		"actor": get(input.resource, "actorUPN", get(input.resource, "actorDisplayName", null)),
		"policyType": get(data_, "PolicyTypeDisplayName", null),
		"repository": get(data_, "RepoName", null),
		"ref": get(data_, "RefName", null),
		"projectId": get(data_, "ProjectId", get(input.resource, "projectId", null)),
	}
	msg := sprintf("%v removed a %v policy%v", [evidence.actor, get(data_, "PolicyTypeDisplayName", "branch"), where(data_)])
}

where(d) := sprintf(" from %v in %v", [d.RefName, d.RepoName]) if {
	is_string(get(d, "RefName", null))
	is_string(get(d, "RepoName", null))
} else := ""

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
