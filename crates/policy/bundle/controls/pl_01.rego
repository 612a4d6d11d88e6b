# METADATA
# title: "Pipelines are defined as YAML, not classic"
# description: "Build definitions use YAML (process type 2) rather than the classic designer (type 1)."
# custom:
#   id: PL-01
#   severity: medium
#   kind: build_definitions
#   rationale: "YAML pipelines are versioned and reviewed with the code; classic definitions change without review."
#   remediation: "Re-create the pipeline from an azure-pipelines.yml and disable classic pipeline creation."
#   permission: "Build (Read)"
#   frameworks: [cis-ssc:2.3.1, nist-ssdf:PO.3, sox-itgc:change-management]
package tollgate.controls.pl_01

import data.tollgate.lib

deny contains {"message": "classic (designer) pipeline", "evidence": {"process.type": 1}} if {
	object.get(object.get(input.resource, "process", {}), "type", 0) == 1
}
