# METADATA
# title: "Deployment ran without a tollgate verdict"
# description: "Every deployment to an environment the gate guards (the [[gate.environments]] names, or every environment with [gate] expect_check = \"all\") was judged by tollgate's Invoke REST API check: a deployment record whose run got no decision for that environment shows the check was removed, disabled or bypassed. Only deployments that started after the tenant's first check decision count."
# custom:
#   id: GATE-10
#   severity: high
#   kind: environment_deployments
#   rationale: "The gate is only a control if every deployment passes through it. A check that was disabled, deleted or routed around for one stage lets that deployment skip every gate rule (approvals, freezes, separation of duties) without anyone noticing."
#   remediation: "Restore the Invoke REST API check on the environment (docs/GATE.md), find out who removed or bypassed it from the ADO audit log, and review what the deployment shipped. Waive the finding with the change record if the deployment was an approved emergency change."
#   permission: "Environment (Read), Build (Read)"
#   frameworks: ["sox-itgc:change-management", "soc2:CC8.1", "iso27001:A.8.32"]
package tollgate.controls.gate_10

# Filled by tollgate from its own gate decisions (docs/POLICY-INPUT.md): whether the gate is
# expected on this environment, since when the tenant's gate has been answering checks, and
# the decisions the check received for this record's run and environment.
watch := get(input.related, "gate", {})

evidence := {
	"environment": get(input.related, "environment", null),
	"run": get(input.resource, "owner", null),
	"pipeline": get(input.resource, "definition", null),
	"stage": get(input.resource, "stageName", null),
	"planId": get(input.resource, "planId", null),
	"startTime": get(input.resource, "startTime", null),
	"result": get(input.resource, "result", null),
	"watchingSince": get(watch, "watchingSince", null),
	"decision": sprintf("no tollgate decision for plan %v / run %v", [get(input.resource, "planId", "?"), get(get(input.resource, "owner", {}), "id", "?")]),
	"deployment": input.resource,
}

deny contains {"message": msg, "evidence": evidence} if {
	get(watch, "expected", false) == true
	since := get(watch, "watchingSince", "")
	is_string(since)
	since != ""
	# A record without a start time never started: the check may still be waiting.
	started := get(input.resource, "startTime", "")
	is_string(started)
	started != ""
	time.parse_rfc3339_ns(started) >= time.parse_rfc3339_ns(since)
	count(get(watch, "decisions", [])) == 0
	msg := sprintf("deployment %v of run %v to %s started %s without a tollgate verdict", [get(input.resource, "id", "?"), get(get(input.resource, "owner", {}), "name", get(get(input.resource, "owner", {}), "id", "?")), get(input.related, "environment", "?"), started])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
