# METADATA
# title: "The same build passed staging first"
# description: "A run may enter production only when the same run, or a run of the same commit, deployed successfully to a staging environment before."
# custom:
#   id: GATE-02
#   severity: high
#   kind: deployment
#   rationale: "Production should receive exactly what staging validated; a commit that never reached staging skips the validation the promotion path exists for."
#   remediation: "Deploy the run to staging first (a stage before production), or set the staging environment names for this gate."
#   permission: "Environment (Read)"
#   frameworks: ["sox-itgc:change-management", "nist-ssdf:PW.8", "strategy:4.3"]
#   parameters:
#     environments: [production, prod, prod-*, production-*]
#     staging_environments: [staging, stage, staging-*, uat, preprod]
package tollgate.gate.staging_validation

import data.tollgate.lib.gate

run := gate.get(input, "run", {})

staged if {
	some d in gate.items(gate.get(input, "deployments", []))
	gate.matches_any(gate.get(d, "environment", ""), gate.param("GATE-02", "staging_environments", ["staging"]))
	lower(gate.get(d, "result", "")) == "succeeded"
	same_change(d)
}

same_change(d) if {
	gate.get(d, "runId", -1) == gate.get(run, "id", -2)
}

same_change(d) if {
	version := gate.get(run, "sourceVersion", "")
	version != ""
	gate.get(d, "sourceVersion", "") == version
}

deny contains {"message": msg, "evidence": {"environment": gate.environment, "runId": gate.get(run, "id", null), "sourceVersion": gate.get(run, "sourceVersion", null), "stagingEnvironments": gate.param("GATE-02", "staging_environments", [])}} if {
	gate.applies("GATE-02", gate.production)
	not staged
	msg := sprintf("commit %v was never deployed successfully to staging", [gate.get(run, "sourceVersion", "(unknown)")])
}
