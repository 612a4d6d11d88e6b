# METADATA
# title: "No open critical or high alerts past their SLA in what is deployed"
# description: "Runs are denied while a repository they deploy has an open Advanced Security alert of a blocking severity that is older than its remediation SLA."
# custom:
#   id: GATE-07
#   severity: high
#   kind: deployment
#   rationale: "A known, overdue vulnerability shipped again to production is a choice; the gate makes it an explicit one (fix, or waive with an owner and an expiry)."
#   remediation: "Fix or dismiss the alert in Advanced Security, or record a waiver for it."
#   permission: "Advanced Security (Read)"
#   frameworks: ["nist-ssdf:RV.2", "soc2:CC7.1", "strategy:6.2"]
#   parameters:
#     environments: [production, prod, prod-*, production-*]
#     severities: [critical, high]
#     sla_hours: {critical: 24, high: 168, medium: 720, low: 2160}
package tollgate.gate.alerts_past_sla

import data.tollgate.lib.gate

sla := gate.param("GATE-07", "sla_hours", {"critical": 24, "high": 168})

deny contains {"message": msg, "evidence": {"alert": gate.get(alert, "id", null), "repository": gate.get(alert, "repository", null), "severity": severity, "firstSeen": alert.firstSeen, "ageHours": age, "slaHours": limit}} if {
	gate.applies("GATE-07", gate.production)
	some alert in gate.items(gate.get(input, "alerts", []))
	lower(gate.get(alert, "state", "active")) in {"active", "open"}
	severity := lower(gate.get(alert, "severity", ""))
	severity in {lower(s) | some s in gate.items(gate.param("GATE-07", "severities", ["critical", "high"]))}
	limit := sla[severity]
	age := floor((gate.now_ns - time.parse_rfc3339_ns(alert.firstSeen)) / 3600000000000)
	age > limit
	msg := sprintf("%s alert %v in %v is open for %d h (SLA %d h)", [severity, gate.get(alert, "id", "?"), gate.get(alert, "repository", "?"), age, limit])
}
