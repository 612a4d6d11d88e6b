# METADATA
# title: "Quality gates: the build passed its tests and coverage"
# description: "Runs are denied when the build being deployed failed, when any published test failed, or when published line coverage is under the threshold. Runs that publish no test results or coverage are not judged on them."
# custom:
#   id: GATE-08
#   severity: high
#   kind: deployment
#   rationale: "Deploying a build whose tests failed ships known defects; coverage below the agreed floor means changes went untested."
#   remediation: "Fix the failing tests or raise coverage; the threshold is the min_coverage parameter of the environment."
#   permission: "Build (Read), Test (Read)"
#   frameworks: ["nist-ssdf:PW.8", "iso27001:A.8.29", "strategy:3.2"]
#   parameters:
#     environments: ["*"]
#     min_coverage: 80
package tollgate.gate.quality

import data.tollgate.lib.gate

build := gate.get(input, "build", {})

deny contains {"message": msg, "evidence": {"buildId": gate.get(build, "id", null), "result": result}} if {
	gate.applies("GATE-08", ["*"])
	result := lower(gate.get(build, "result", ""))
	result in {"failed", "canceled"}
	msg := sprintf("build %v %s", [gate.get(build, "id", "?"), result])
}

deny contains {"message": msg, "evidence": {"buildId": gate.get(build, "id", null), "tests": tests}} if {
	gate.applies("GATE-08", ["*"])
	tests := gate.get(build, "tests", {})
	gate.get(tests, "failed", 0) > 0
	msg := sprintf("%d of %d tests failed", [tests.failed, gate.get(tests, "total", tests.failed)])
}

deny contains {"message": msg, "evidence": {"buildId": gate.get(build, "id", null), "coverage": coverage, "minimum": minimum}} if {
	gate.applies("GATE-08", ["*"])
	coverage := gate.get(build, "coverage", null)
	is_number(coverage)
	minimum := gate.param("GATE-08", "min_coverage", 80)
	coverage < minimum
	msg := sprintf("line coverage %v%% is under %v%%", [coverage, minimum])
}
