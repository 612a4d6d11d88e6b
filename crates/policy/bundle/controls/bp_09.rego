# METADATA
# title: "Merge strategies keep history linear"
# description: "A merge-strategy branch policy allows only the configured strategies (by default squash and rebase with fast-forward), so the protected branch has a linear history."
# custom:
#   id: BP-09
#   severity: low
#   kind: policy_configurations
#   rationale: "Merge commits interleave unreviewed intermediate commits into the protected branch and make it harder to see which reviewed change introduced what."
#   remediation: "Branch policies → Limit merge types → allow only Squash merge (and Rebase and fast-forward if wanted)."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.1.13", "sox-itgc:change-management"]
#   parameters:
#     allowed_strategies: ["squash", "rebase"]
package tollgate.controls.bp_09

import data.tollgate.lib

# The settings flag behind each strategy name.
flags := {
	"noFastForward": "allowNoFastForward",
	"squash": "allowSquash",
	"rebase": "allowRebase",
	"rebaseMerge": "allowRebaseMerge",
}

deny contains {"message": msg, "evidence": {flag: true, "allowedStrategies": allowed}} if {
	lib.is_merge_strategy(input.resource)
	get(input.resource, "isEnabled", false) == true
	get(input.resource, "isDeleted", false) == false
	settings := get(input.resource, "settings", {})
	allowed := get(get(input.params, "BP-09", {}), "allowed_strategies", ["squash", "rebase"])
	some strategy, flag in flags
	get(settings, flag, false) == true
	not strategy in allowed
	msg := sprintf("the %s merge strategy is allowed; the standard allows only %v", [strategy, allowed])
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
