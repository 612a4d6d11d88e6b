# METADATA
# title: "Build validation is required and its result expires"
# description: "An enabled build-validation branch policy is required (blocking), and a successful build stops counting once the target branch moves on: immediately, or after at most the configured number of minutes."
# custom:
#   id: BP-08
#   severity: high
#   kind: policy_configurations
#   rationale: "An optional build can fail and the change still merges; a build result that never expires approves a merge the build never saw, after the target branch changed underneath it."
#   remediation: "Branch policies → Build validation → Policy requirement: Required; Build expiration: 'Immediately when the target branch is updated' or 'After N hours' with N no more than the standard."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.9", "cis-ssc:1.1.10", "nist-ssdf:PW.8", "sox-itgc:change-management", "soc2:CC8.1"]
#   parameters:
#     max_valid_minutes: 720
package tollgate.controls.bp_08

import data.tollgate.lib

is_build_policy if {
	lib.is_build_validation(input.resource)
	get(input.resource, "isEnabled", false) == true
	get(input.resource, "isDeleted", false) == false
}

settings := get(input.resource, "settings", {})

deny contains {"message": msg, "evidence": {"isBlocking": false, "buildDefinitionId": definition}} if {
	is_build_policy
	get(input.resource, "isBlocking", false) == false
	definition := get(settings, "buildDefinitionId", null)
	msg := "build validation is optional: a failing build does not stop the merge"
}

# "Never expire": validDuration 0 with queueOnSourceUpdateOnly true.
deny contains {"message": msg, "evidence": {"validDuration": 0, "queueOnSourceUpdateOnly": true}} if {
	is_build_policy
	lib.is_enabled_blocking(input.resource)
	get(settings, "queueOnSourceUpdateOnly", false) == true
	duration := get(settings, "validDuration", null)
	is_number(duration)
	duration == 0
	msg := "a successful build never expires, even after the target branch changes"
}

deny contains {"message": msg, "evidence": {"validDuration": duration, "queueOnSourceUpdateOnly": true, "maximum": maximum}} if {
	is_build_policy
	lib.is_enabled_blocking(input.resource)
	get(settings, "queueOnSourceUpdateOnly", false) == true
	duration := get(settings, "validDuration", null)
	is_number(duration)
	maximum := get(get(input.params, "BP-08", {}), "max_valid_minutes", 720)
	duration > maximum
	msg := sprintf("a successful build stays valid for %v minutes after the target branch changes; the standard is at most %v", [duration, maximum])
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
