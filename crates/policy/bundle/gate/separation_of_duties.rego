# METADATA
# title: "Separation of duties"
# description: "The person who requested the run does not approve its deployment; every pull request in the change was approved by someone other than its author; the last person to push to a pull request did not approve it."
# custom:
#   id: GATE-06
#   severity: critical
#   kind: deployment
#   rationale: "One person able to write, approve and ship a change defeats every other control; auditors test this first (SOX ITGC change management)."
#   remediation: "Have another approver decide; require a second reviewer on the pull request and enable 'reset votes on push'."
#   permission: "Code (Read)"
#   frameworks: ["sox-itgc:segregation-of-duties", "soc2:CC8.1", "iso27001:A.5.3", "nist-ssdf:PS.1"]
#   parameters:
#     environments: ["*"]
package tollgate.gate.separation_of_duties

import data.tollgate.lib.gate

deny contains {"message": msg, "evidence": {"requestedFor": gate.requester, "approvedBy": sort(gate.approvers)}} if {
	gate.applies("GATE-06", ["*"])
	gate.requester != ""
	gate.requester in gate.approvers
	msg := sprintf("%s requested this run and approved its deployment", [gate.requester])
}

deny contains {"message": msg, "evidence": {"pullRequest": pr_id, "author": author, "approvers": sort(approvers)}} if {
	gate.applies("GATE-06", ["*"])
	some pr in gate.items(gate.get(input, "pullRequests", []))
	pr_id := gate.get(pr, "id", null)
	author := gate.person(gate.get(pr, "createdBy", ""))
	approvers := gate.pr_approvers(pr)
	count(approvers - {author}) == 0
	msg := sprintf("pull request %v was approved by no one but its author %s", [pr_id, author])
}

deny contains {"message": msg, "evidence": {"pullRequest": pr_id, "lastPusher": pusher, "approvers": sort(gate.pr_approvers(pr))}} if {
	gate.applies("GATE-06", ["*"])
	some pr in gate.items(gate.get(input, "pullRequests", []))
	pr_id := gate.get(pr, "id", null)
	pusher := gate.person(gate.get(pr, "lastPusher", ""))
	pusher != ""
	author := gate.person(gate.get(pr, "createdBy", ""))
	pusher != author
	pusher in gate.pr_approvers(pr)
	msg := sprintf("%s pushed last to pull request %v and approved it", [pusher, pr_id])
}
