# METADATA
# title: "No personal access token has leaked to a public repository"
# description: "The audit log has no Token.PatPublicDiscoveryEvent entry in the lookback window (by default 90 days): ADO found no PAT of this organisation in a public repository."
# custom:
#   id: AU-05
#   severity: critical
#   kind: audit_log
#   rationale: "A PAT found in public code was usable by anyone who saw it until it was revoked. ADO revokes discovered tokens, but what the token could reach, and what was done with it in between, still needs an investigation."
#   remediation: "Confirm the token is revoked, review the audit log for its use between the commit and the revocation, remove it from the repository's history, and move the owner to short-lived tokens or workload identities."
#   permission: "Audit Log (Read)"
#   frameworks: ["iso27001:A.5.17", "soc2:CC7.3", "nist-ssdf:PS.1"]
#   parameters:
#     lookback_days: 90
package tollgate.controls.au_05

import data.tollgate.lib

deny contains {"message": msg, "evidence": evidence} if {
	get(input.resource, "actionId", "") == "Token.PatPublicDiscoveryEvent"
	recent(input.resource, get(get(input.params, "AU-05", {}), "lookback_days", 90))
	data_ := get(input.resource, "data", {})
	evidence := {
		"actionId": "Token.PatPublicDiscoveryEvent",
		"timestamp": get(input.resource, "timestamp", null),
		"token": get(data_, "DisplayName", null),
		"owner": get(data_, "OwnerName", null),
	}
	msg := sprintf("personal access token %v of %v was found in a public repository", [get(data_, "DisplayName", "?"), get(data_, "OwnerName", "?")])
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
