# Helpers shared by the controls. Not a control itself (no METADATA).
package tollgate.lib

# Branch policy type ids, as ADO publishes them.
minimum_reviewers_type := "fa4e907d-c16b-4a4c-9dfa-4906e5d171dd"

build_validation_type := "0609b952-1397-4640-95ec-e00a01b2c241"

work_item_linking_type := "40e92b44-2fe1-4dd6-b3d8-74a9c21d0c6e"

comment_requirements_type := "c6a1889d-b943-4856-b76f-9e46bb6b0df2"

required_reviewers_type := "fd2167ab-b0be-447a-8ec8-39368250530e"

merge_strategy_type := "fa4e907d-c16b-4a4c-9dfa-4916e5d171ab"

status_check_type := "cbdc66da-9728-4af8-aada-9a5a32e4a226"

# Check type ids (Approvals and Checks API).
approval_check_type := "8c6f20a7-a545-4486-9777-f762fafe0d4d"

task_check_type := "fe1de3ee-a436-41b4-bb20-f6eb4cb879a7"

policy_type(policy) := id if {
	policy_kind := object.get(policy, "type", {})
	is_object(policy_kind)
	id := object.get(policy_kind, "id", "")
} else := ""

is_minimum_reviewers(policy) if policy_type(policy) == minimum_reviewers_type

# One predicate per type, so that controls need not read the type id through the import
# alias (docs/POLICY-INPUT.md, "Cost").
is_build_validation(policy) if policy_type(policy) == build_validation_type

is_work_item_linking(policy) if policy_type(policy) == work_item_linking_type

is_comment_requirements(policy) if policy_type(policy) == comment_requirements_type

is_required_reviewers(policy) if policy_type(policy) == required_reviewers_type

is_merge_strategy(policy) if policy_type(policy) == merge_strategy_type

is_status_check(policy) if policy_type(policy) == status_check_type

is_enabled_blocking(policy) if {
	# Paths where a missing field decides as its default would: cheaper for regorus.
	policy.isEnabled == true
	policy.isBlocking == true
	object.get(policy, "isDeleted", false) == false
}

# Policies of a type among those that apply to the resource (input.related.policies).
applicable_policies(type_id) := [p |
	some p in object.get(input.related, "policies", [])
	policy_type(p) == type_id
	is_enabled_blocking(p)
]

has_policy(type_id) if count(applicable_policies(type_id)) > 0

check_type(check) := id if {
	check_kind := object.get(check, "type", {})
	is_object(check_kind)
	id := object.get(check_kind, "id", "")
} else := ""

check_definition(check) := lower(object.get(object.get(object.get(check, "settings", {}), "definitionRef", {}), "name", ""))

approval_checks := [c | some c in object.get(input.related, "checks", []); check_type(c) == approval_check_type]

has_approval_check if count(approval_checks) > 0

has_task_check(name) if {
	some c in object.get(input.related, "checks", [])
	check_type(c) == task_check_type
	check_definition(c) == lower(name)
}

# Whole days from an RFC 3339 timestamp to input.now, rounded down (negative if in the future).
age_days(timestamp) := floor((time.parse_rfc3339_ns(input.now) - time.parse_rfc3339_ns(timestamp)) / 86400000000000)

# Name matching against a list of patterns with `*` wildcards (case-insensitive).
matches_any(name, patterns) if {
	some pattern in patterns
	# null delimiters: "*" must cross "." and "/" in branch and repository names.
	glob.match(lower(pattern), null, lower(name))
}

# Variable names that usually hold secrets.
# (regorus' regex has no case-insensitive flag: compare in lower case.)
secret_like(name) if regex.match(`(password|passwd|pwd|secret|token|apikey|api_key|connectionstring|privatekey|private_key|credential)`, lower(name))
