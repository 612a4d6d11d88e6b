# METADATA
# title: "No production deployments at weekends or on holidays"
# description: "Runs entering production are denied on the blocked days of the week and on the configured holidays, in the gate's time zone."
# custom:
#   id: GATE-03
#   severity: high
#   kind: deployment
#   rationale: "Changes made when the people who would fix them are away turn small faults into long outages."
#   remediation: "Deploy on a working day, or record an emergency change with a waiver-approved override; holidays and the time zone are set under [gate]."
#   permission: "none (clock and configuration)"
#   frameworks: ["sox-itgc:change-management", "itil:change-enablement", "strategy:4.5"]
#   parameters:
#     environments: [production, prod, prod-*, production-*]
#     blocked_days: [Saturday, Sunday]
package tollgate.gate.weekend_block

import data.tollgate.lib.gate

blocked_day if gate.local_weekday in {d | some d in gate.items(gate.param("GATE-03", "blocked_days", ["Saturday", "Sunday"]))}

evidence := {"environment": gate.environment, "localDate": gate.local_date, "weekday": gate.local_weekday, "timezone": gate.timezone}

deny contains {"message": msg, "evidence": evidence} if {
	gate.applies("GATE-03", gate.production)
	blocked_day
	msg := sprintf("no deployments to %s on %s (%s, %s)", [gate.environment, gate.local_weekday, gate.local_date, gate.timezone])
}

deny contains {"message": msg, "evidence": evidence} if {
	gate.applies("GATE-03", gate.production)
	not blocked_day
	gate.holiday
	msg := sprintf("no deployments to %s on the holiday %s (%s)", [gate.environment, gate.local_date, gate.timezone])
}
