# METADATA
# title: "No deployments during a change freeze"
# description: "Runs entering an environment named by an active freeze window (start ≤ now < end) are denied with the window's reason."
# custom:
#   id: GATE-05
#   severity: high
#   kind: deployment
#   rationale: "Freeze windows (year-end, audits, major events) exist because the business cannot absorb change then; a pipeline must not ignore them."
#   remediation: "Wait for the window to end, or have the change board shorten it in [[gate.freezes]]."
#   permission: "none (configuration)"
#   frameworks: ["sox-itgc:change-management", "itil:change-enablement"]
#   parameters:
#     environments: ["*"]
package tollgate.gate.freeze_window

import data.tollgate.lib.gate

deny contains {"message": msg, "evidence": {"environment": gate.environment, "window": window}} if {
	gate.applies("GATE-05", ["*"])
	some window in gate.items(gate.get(gate.calendar, "freezes", []))
	gate.matches_any(gate.environment, gate.get(window, "environments", ["*"]))
	time.parse_rfc3339_ns(window.start) <= gate.now_ns
	gate.now_ns < time.parse_rfc3339_ns(window.end)
	msg := sprintf("%s is frozen until %s: %s", [gate.environment, window.end, gate.get(window, "reason", "change freeze")])
}
