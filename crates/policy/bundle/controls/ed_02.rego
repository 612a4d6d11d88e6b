# METADATA
# title: "Production deployments do not fail"
# description: "No deployment to a production environment finished as failed within the last days (by default 30)."
# custom:
#   id: ED-02
#   severity: low
#   kind: environment_deployments
#   rationale: "A failed deployment can leave production half changed, and each one is a change failure: someone has to confirm what state production is in and why the pipeline's checks did not catch the problem earlier."
#   remediation: "Confirm production's state, record the failure in the change record, and fix the cause before the next deployment."
#   permission: "Environment (Read)"
#   frameworks: ["soc2:CC8.1", "iso27001:A.8.32"]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
#     failed_results: [failed]
#     max_age_days: 30
package tollgate.controls.ed_02

import data.tollgate.lib

params := get(input.params, "ED-02", {})

deny contains {"message": msg, "evidence": {"environment": environment, "result": result, "stageName": stage, "finishTime": finished}} if {
	environment := get(input.related, "environment", "")
	is_string(environment)
	matches_any(environment, get(params, "production_names", []))
	result := get(input.resource, "result", "")
	is_string(result)
	lower(result) in {lower(r) | some r in get(params, "failed_results", [])}
	finished := get(input.resource, "finishTime", "")
	is_string(finished)
	finished != ""
	lib.age_days(finished) <= get(params, "max_age_days", 30)
	stage := get(input.resource, "stageName", null)
	msg := sprintf("deployment %v to %s %s", [get(input.resource, "id", "?"), environment, lower(result)])
}

# Glob match without delimiters: `*` also spans "/" and ".".
matches_any(name, patterns) if {
	some pattern in patterns
	glob.match(lower(pattern), null, lower(name))
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
