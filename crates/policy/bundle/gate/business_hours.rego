# METADATA
# title: "Production deployments outside business hours are flagged"
# description: "A run entering production outside the working hours (in the gate's time zone) proceeds with a warning in its verdict."
# custom:
#   id: GATE-04
#   severity: low
#   kind: deployment
#   rationale: "Late changes are riskier and harder to support; the warning makes them visible without blocking an on-call fix."
#   remediation: "Prefer deploying between the configured hours; set start_hour/end_hour for the environment if your working day differs."
#   permission: "none (clock and configuration)"
#   frameworks: ["itil:change-enablement", "strategy:4.5"]
#   parameters:
#     environments: [production, prod, prod-*, production-*]
#     start_hour: 9
#     end_hour: 17
package tollgate.gate.business_hours

import data.tollgate.lib.gate

start := gate.param("GATE-04", "start_hour", 9)

end := gate.param("GATE-04", "end_hour", 17)

warn contains {"message": msg, "evidence": {"environment": gate.environment, "localHour": gate.local_hour, "startHour": start, "endHour": end, "timezone": gate.timezone}} if {
	gate.applies("GATE-04", gate.production)
	outside
	msg := sprintf("deploying to %s at %02d:xx %s, outside business hours (%02d:00-%02d:00)", [gate.environment, gate.local_hour, gate.timezone, start, end])
}

outside if gate.local_hour < start

outside if gate.local_hour >= end
