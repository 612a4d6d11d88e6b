# Helpers shared by the classic release definition controls (RL-*). Not a control (no METADATA).
#
# A release definition (Definitions_Get) holds its stages in `environments`; each stage has
# `preDeployApprovals` ({approvals, approvalOptions}), `conditions` (what starts it) and
# `variables`, and the definition has `artifacts` and `variables` of its own.
package tollgate.lib.release

default_production_names := ["production", "prod", "prod-*", "production-*"]

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values). An index rather than object.get: the same value, and
# cheaper for regorus on a helper called this often.
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback

# A string field, or "" when it is missing or not a string. (A path lookup: as `get` but
# several times cheaper for regorus, which matters on every stage of every definition.)
text(x, key) := value if {
	value := x[key]
	is_string(value)
} else := ""

# The value if it is an array, else an empty one.
items(x) := x if {
	is_array(x)
} else := []

# A control's parameter, or its default when the input carries none (or null).
# (These helpers run per stage of every definition, so they read paths rather than call
# `get`/`items`: the same values, a fraction of the cost for regorus.)
param(id, name, fallback) := value if {
	# Two steps: regorus formats an error message internally for `a[x][y]` when neither
	# index is a literal, which costs more than the lookup.
	params := input.params[id]
	value := params[name]
	value != null
} else := fallback if {
	# Like `get`, nothing at all when the input has no params.
	_ = input.params
}

# Case-insensitive glob match; null delimiters so that `*` also spans "/" and ".".
matches_any(name, patterns) if {
	is_string(name)
	some pattern in items(patterns)
	glob.match(lower(pattern), null, lower(name))
}

# The definition's stages (ADO's "environments").
stages := items(get(input.resource, "environments", []))

stage_name(stage) := name if {
	name := stage.name
	is_string(name)
} else := ""

# Stages named as production by the control's `production_names` (as `matches_any`, with the
# patterns read and lowered once rather than once per stage).
production_stages(id) := [stage |
	patterns := [lower(p) | some p in items(param(id, "production_names", default_production_names)); is_string(p)]
	some stage in stages
	name := lower(stage_name(stage))
	count([p | some p in patterns; glob.match(p, null, name)]) > 0
]

pre_approvals(stage) := approvals if {
	approvals := stage.preDeployApprovals.approvals
	is_array(approvals)
} else := []

approval_options(stage) := options if {
	options := stage.preDeployApprovals.approvalOptions
	options != null
} else := {}

# Approval steps a person gives. A step that does not say it is manual is not counted.
manual_approvals(stage) := [step |
	some step in pre_approvals(stage)
	step.isAutomated == false
]

# Who may approve: unique names where ADO sends them, else display names.
approvers(stage) := [name |
	some step in manual_approvals(stage)
	approver := get(step, "approver", {})
	name := get(approver, "uniqueName", get(approver, "displayName", "?"))
]

# Approvals a deployment needs: `requiredApproverCount`, where 0 ("all") or a number larger
# than the approvers listed means every listed approver.
approvals_needed(stage) := required if {
	required := approval_options(stage).requiredApproverCount
	is_number(required)
	required > 0
	required < count(manual_approvals(stage))
} else := count(manual_approvals(stage))

# The conditions that start a stage without a person: after the release is created
# (`event` ReleaseStarted) or after another stage (`environmentState`).
automatic_triggers(stage) := [{"conditionType": text(c, "conditionType"), "name": text(c, "name")} |
	some c in conditions(stage)
	lower(text(c, "conditionType")) in {"event", "environmentstate"}
]

conditions(stage) := found if {
	found := stage.conditions
	is_array(found)
} else := []
