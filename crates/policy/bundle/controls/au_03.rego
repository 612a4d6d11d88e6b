# METADATA
# title: "Audit streaming is not switched off"
# description: "The audit log has no entry in the lookback window (by default 90 days) of an audit stream being deleted or disabled, by a user or by the system."
# custom:
#   id: AU-03
#   severity: medium
#   kind: audit_log
#   rationale: "ADO keeps audit events for 90 days; the stream to a SIEM is the long-term, independent copy. A stream that is deleted or disabled leaves a gap nobody notices until the evidence is needed (a re-enabled stream catches up at most 7 days)."
#   remediation: "Organization settings → Auditing → Streams: re-enable or recreate the stream, fix the target if the system disabled it, and export the missed period from the audit log."
#   permission: "Audit Log (Read)"
#   frameworks: ["soc2:CC7.2", "iso27001:A.8.15"]
#   parameters:
#     lookback_days: 90
#     action_ids: [AuditLog.StreamDeleted, AuditLog.StreamDisabledByUser, AuditLog.StreamDisabledBySystem]
package tollgate.controls.au_03

import data.tollgate.lib

params := get(input.params, "AU-03", {})

deny contains {"message": msg, "evidence": evidence} if {
	action := get(input.resource, "actionId", "")
	action in get(params, "action_ids", [])
	recent(input.resource, get(params, "lookback_days", 90))
	data_ := get(input.resource, "data", {})
	evidence := {
		"actionId": action,
		"timestamp": get(input.resource, "timestamp", null),
		"actor": get(input.resource, "actorUPN", get(input.resource, "actorDisplayName", null)),
		"consumerType": get(data_, "ConsumerType", null),
		"stream": get(data_, "displayName", null),
	}
	msg := sprintf("audit stream %v: %v", [get(data_, "displayName", get(data_, "ConsumerType", "?")), action])
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
