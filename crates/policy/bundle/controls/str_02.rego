# METADATA
# title: "The default branch requires a passing CI build"
# description: "The strategy's automated-checks rule: the default branch has a blocking build-validation policy. Repositories without any blocking policy are reported by BP-01 alone."
# custom:
#   id: STR-02
#   severity: high
#   kind: repositories
#   rationale: "The strategy requires build, tests, lint and security scans to pass before merging to main; without build validation a broken or unscanned change can merge."
#   remediation: "Branch policies on main → Build validation → add the CI pipeline as Required."
#   permission: "Code (Read)"
#   frameworks: ["strategy:2.3", "strategy:2.4", "cis-ssc:1.1.9", "nist-ssdf:PW.8", "sox-itgc:change-management"]
package tollgate.controls.str_02

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"defaultBranch": branch, "requiredPolicyType": data.tollgate.lib.build_validation_type, "blockingPolicies": protecting}} if {
	get(input.resource, "isDisabled", false) == false
	branch := get(input.resource, "defaultBranch", "")
	is_string(branch)
	branch != ""
	protecting := count([p | some p in items(get(input.related, "policies", [])); lib.is_enabled_blocking(p)])
	protecting > 0
	not lib.has_policy(data.tollgate.lib.build_validation_type)
	msg := sprintf("%s has no required build validation", [branch])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback

# The value if it is an array, else an empty one.
items(x) := x if {
	is_array(x)
} else := []
