# METADATA
# title: "Pull requests are approved by someone other than the author"
# description: "A pull request whose only approvals come from its author was not independently reviewed."
# custom:
#   id: BP-17
#   severity: high
#   kind: pull_requests
#   rationale: "Separation of duties: the person who wrote a change is not the one who accepts it."
#   remediation: "Require at least one approval from another person (BP-02, BP-03) and review the listed pull requests."
#   permission: "Code (Read)"
#   frameworks: [sox-itgc:segregation-of-duties, cis-ssc:1.1.3, soc2:CC8.1]
package tollgate.controls.bp_17

import data.tollgate.lib

approvers contains reviewer.id if {
	some reviewer in object.get(input.resource, "reviewers", [])
	object.get(reviewer, "vote", 0) >= 5
}

deny contains {"message": msg, "evidence": {"author": author, "approvers": approvers}} if {
	author := object.get(object.get(input.resource, "createdBy", {}), "id", "")
	count(approvers) > 0
	approvers == {author}
	msg := sprintf("pull request %v was approved only by its author", [input.resource.pullRequestId])
}
