# Helpers for Approvals and Checks (check configurations on environments, service connections
# and variable groups). Not a control itself (no METADATA).
package tollgate.lib.checks

# Check type ids. Clients send them in either case (ExclusiveLock is usually upper case),
# so every comparison is on the lower-cased id.
approval_type := "8c6f20a7-a545-4486-9777-f762fafe0d4d"

task_check_type := "fe1de3ee-a436-41b4-bb20-f6eb4cb879a7"

exclusive_lock_type := "2ef31ad6-baa0-403a-8b45-2cbc9b4e5563"

# Branch control is a Task Check that runs the evaluateBranchProtection task. The UI names the
# task "evaluatebranchProtection", other clients a display name: the task id is the stable part.
branch_control_task_id := "86b05a0c-73e6-4f7d-b3cf-e38f3b39a75b"

branch_control_task_name := "evaluatebranchprotection"

# Name patterns that, by default, mark a service connection or variable group as production.
default_production_names := ["prod", "production", "prod-*", "production-*", "*-prod", "*-production", "*-prod-*", "*-production-*"]

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values). An index rather than object.get: the same value, and
# cheaper for regorus on a helper called this often.
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback

# The value if it is an array, else an empty one.
items(x) := x if {
	is_array(x)
} else := []

# Lower case of a string; "" for anything else.
lower_text(x) := lower(x) if {
	is_string(x)
} else := ""

type_id(check) := lower_text(get(get(check, "type", {}), "id", ""))

type_name(check) := name if {
	name := get(get(check, "type", {}), "name", "")
	is_string(name)
	name != ""
} else := type_id(check)

settings(check) := get(check, "settings", {})

# A check stops protecting its resource while it is disabled (isDisabled, api-version 7.2).
active(check) if get(check, "isDisabled", false) != true

is_approval(check) if type_id(check) == approval_type

is_exclusive_lock(check) if type_id(check) == exclusive_lock_type

is_branch_control(check) if {
	type_id(check) == task_check_type
	lower_text(get(get(settings(check), "definitionRef", {}), "id", "")) == branch_control_task_id
}

is_branch_control(check) if {
	type_id(check) == task_check_type
	lower_text(get(get(settings(check), "definitionRef", {}), "name", "")) == branch_control_task_name
}

# The checks on the resource being judged (input.related.checks), and those that are enabled.
related_checks := [c | some c in items(get(input.related, "checks", [])); is_object(c)]

active_checks := [c | some c in related_checks; active(c)]

active_approvals := [c | some c in active_checks; is_approval(c)]

active_branch_controls := [c | some c in active_checks; is_branch_control(c)]

# Ids of the checks of a kind that exist but are disabled, for evidence.
disabled_approval_ids := [get(c, "id", null) | some c in related_checks; is_approval(c); not active(c)]

disabled_branch_control_ids := [get(c, "id", null) | some c in related_checks; is_branch_control(c); not active(c)]

approvers(check) := items(get(settings(check), "approvers", []))

# An approver is a group when the identity says so (isContainer), its descriptor is a group
# descriptor, or its display name has the "[scope]\name" form ADO gives groups.
is_group(identity) if get(identity, "isContainer", false) == true

is_group(identity) if {
	descriptor := lower_text(get(identity, "descriptor", ""))
	some prefix in ["vssgp.", "aadgp."]
	startswith(descriptor, prefix)
}

is_group(identity) if {
	name := get(identity, "displayName", "")
	is_string(name)
	regex.match(`^\[[^\]]+\]\\`, name)
}

# How an approver is shown in messages and evidence.
approver_label(identity) := label if {
	label := get(identity, "displayName", "")
	is_string(label)
	label != ""
} else := label if {
	label := get(identity, "uniqueName", "")
	is_string(label)
	label != ""
} else := get(identity, "id", "?")

# Does an approver's display name or unique name match one of the patterns (`*` wildcards,
# case-insensitive, `*` also spans "\" and "/")?
approver_matches(identity, patterns) if {
	some field in ["displayName", "uniqueName"]
	value := get(identity, field, "")
	is_string(value)
	value != ""
	some pattern in patterns
	is_string(pattern)
	glob.match(lower(pattern), null, lower(value))
}

# Is any enabled approval check on the resource answered by an approver matching the patterns?
approved_by(patterns) if {
	some check in active_approvals
	some identity in approvers(check)
	approver_matches(identity, patterns)
}

# Everyone named on the resource's enabled approval checks, for evidence.
named_approvers := [approver_label(identity) | some check in active_approvals; some identity in approvers(check)]

# Case-insensitive name match with `*` spanning any character.
name_matches(name, patterns) if {
	is_string(name)
	some pattern in patterns
	is_string(pattern)
	glob.match(lower(pattern), null, lower(name))
}

# How a check is shown in messages: its display name (task checks have one), else its type.
check_label(check) := label if {
	label := get(settings(check), "displayName", "")
	is_string(label)
	label != ""
} else := type_name(check)
