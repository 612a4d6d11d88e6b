# METADATA
# title: "Dismissed alerts say why"
# description: "A dismissed Advanced Security alert has a dismissal reason, and a comment when the reason is a judgement call (by default accepted risk and false positive)."
# custom:
#   id: AS-03
#   severity: medium
#   kind: alerts
#   rationale: "A dismissal closes the alert for good. Without a reason and a comment nobody can tell a reviewed risk acceptance from a click to clear the list, and auditors treat an unexplained dismissal as an open finding."
#   remediation: "Reopen the alert and dismiss it again with the reason and a comment that records who accepted the risk and why (or why it is a false positive)."
#   permission: "Advanced Security (Read)"
#   frameworks: ["nist-ssdf:RV.2", "soc2:CC7.1", "iso27001:A.8.8"]
#   parameters:
#     comment_required_for: [acceptedRisk, falsePositive]
package tollgate.controls.as_03

deny contains {"message": msg, "evidence": {"state": "dismissed", "dismissalType": reason}} if {
	is_string(input.resource.state)
	lower(input.resource.state) == "dismissed"
	reason := get(get(input.resource, "dismissal", {}), "dismissalType", "unknown")
	lower(reason) == "unknown"
	msg := sprintf("alert %v was dismissed without a reason", [get(input.resource, "alertId", "?")])
}

deny contains {"message": msg, "evidence": {"state": "dismissed", "dismissalType": reason, "message": comment}} if {
	is_string(input.resource.state)
	lower(input.resource.state) == "dismissed"
	dismissal := get(input.resource, "dismissal", {})
	reason := get(dismissal, "dismissalType", "unknown")
	some required in get(get(input.params, "AS-03", {}), "comment_required_for", [])
	lower(reason) == lower(required)
	comment := get(dismissal, "message", "")
	trim_space(comment) == ""
	msg := sprintf("alert %v was dismissed as %s without a comment", [get(input.resource, "alertId", "?"), reason])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
