# METADATA
# title: "No new classic release pipelines are created"
# description: "A classic release definition created within the last days (by default 90) is reported: new deployment pipelines should be YAML pipelines deploying to environments. Older classic definitions are left to their migration plan."
# custom:
#   id: RL-06
#   severity: low
#   kind: release_definitions
#   rationale: "Classic release pipelines change outside version control and review and cannot use environment checks; every new one adds to the migration backlog."
#   remediation: "Build the deployment as a multi-stage YAML pipeline with environments and approvals, retire this definition, and turn on 'Disable creation of classic release pipelines' in the organisation's pipeline settings."
#   permission: "Release (Read)"
#   frameworks: [cis-ssc:2.3.1, nist-ssdf:PO.3, sox-itgc:change-management]
#   parameters:
#     recent_days: 90
package tollgate.controls.rl_06

import data.tollgate.lib
import data.tollgate.lib.release

deny contains {"message": msg, "evidence": {"createdOn": created, "ageDays": age, "recentDays": recent}} if {
	created := release.text(input.resource, "createdOn")
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T`, created)
	age := lib.age_days(created)
	recent := release.param("RL-06", "recent_days", 90)
	age < recent
	msg := sprintf("classic release pipeline %s was created %d day(s) ago; migrate it to a YAML pipeline", [release.text(input.resource, "name"), age])
}
