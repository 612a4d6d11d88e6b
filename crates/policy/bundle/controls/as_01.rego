# METADATA
# title: "Security alerts are remediated within their SLA"
# description: "Open Advanced Security alerts are younger than their severity's remediation SLA."
# custom:
#   id: AS-01
#   severity: high
#   kind: alerts
#   rationale: "An open critical vulnerability past its deadline is the risk auditors ask about first."
#   remediation: "Fix or dismiss with a reason; tune the SLA parameters if your standard differs."
#   permission: "Advanced Security (Read)"
#   frameworks: [nist-ssdf:RV.2, soc2:CC7.1, iso27001:A.8.8, cis-ssc:1.5.5]
#   parameters:
#     sla_days: {critical: 1, high: 7, medium: 30, low: 90}
package tollgate.controls.as_01

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"severity": severity, "firstSeenDate": first_seen, "ageDays": age, "slaDays": sla}} if {
	lower(object.get(input.resource, "state", "")) == "active"
	severity := lower(object.get(input.resource, "severity", ""))
	sla := input.params["AS-01"].sla_days[severity]
	first_seen := object.get(input.resource, "firstSeenDate", input.now)
	age := lib.age_days(first_seen)
	age > sla
	msg := sprintf("%s alert open for %d days (SLA %d days)", [severity, age, sla])
}
