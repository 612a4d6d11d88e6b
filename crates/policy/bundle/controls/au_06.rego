# METADATA
# title: "Organisation security policies are not relaxed"
# description: "The audit log has no OrganizationPolicy.PolicyValueUpdated entry in the lookback window (by default 90 days) that set a security policy to its unsafe value (public projects allowed, guest or third-party OAuth access allowed, SSH allowed, conditional access or audit logging off)."
# custom:
#   id: AU-06
#   severity: high
#   kind: audit_log
#   rationale: "Organisation policies guard every project at once; relaxing one opens the whole organisation, and the current setting alone does not show that it was open for a while."
#   remediation: "Confirm the change was approved; if not, restore the policy (Organization settings → Policies) and review what the relaxed setting allowed in the meantime."
#   permission: "Audit Log (Read)"
#   frameworks: ["soc2:CC6.1", "iso27001:A.8.9"]
#   parameters:
#     lookback_days: 90
#     unsafe_values: {Policy.AllowAnonymousAccess: true, Policy.DisallowAadGuestUserAccess: false, Policy.DisallowOAuthAuthentication: false, Policy.DisallowSecureShell: false, Policy.EnforceAADConditionalAccess: false, Policy.LogAuditEvents: false}
package tollgate.controls.au_06

import data.tollgate.lib

params := get(input.params, "AU-06", {})

deny contains {"message": msg, "evidence": evidence} if {
	get(input.resource, "actionId", "") == "OrganizationPolicy.PolicyValueUpdated"
	recent(input.resource, get(params, "lookback_days", 90))
	data_ := get(input.resource, "data", {})
	policy := get(data_, "PolicyName", "")
	is_string(policy)
	some name, unsafe in get(params, "unsafe_values", {})
	same_policy(name, policy)
	value := get(data_, "PolicyValue", null)
	as_bool(value) == unsafe
	evidence := {
		"actionId": "OrganizationPolicy.PolicyValueUpdated",
		"timestamp": get(input.resource, "timestamp", null),
		"actor": get(input.resource, "actorUPN", get(input.resource, "actorDisplayName", null)),
		"policy": policy,
		"value": value,
		"unsafeValue": unsafe,
	}
	msg := sprintf("%v set organisation policy %v to %v", [evidence.actor, policy, value])
}

# Policy names with or without the "Policy." prefix, in any case.
same_policy(a, b) if bare(a) == bare(b)

bare(name) := trim_prefix(lower(name), "policy.")

# The documentation does not pin how PolicyValue is written: accept booleans and the usual words.
as_bool(value) := value if is_boolean(value)

as_bool(value) := true if {
	is_string(value)
	lower(trim_space(value)) in {"true", "on", "enabled", "1"}
}

as_bool(value) := false if {
	is_string(value)
	lower(trim_space(value)) in {"false", "off", "disabled", "0"}
}

# Only entries of the lookback window are judged: tollgate keeps audit entries after ADO drops
# them, and an event reviewed long ago should not stay a finding forever.
recent(entry, days) if {
	timestamp := get(entry, "timestamp", "")
	is_string(timestamp)
	timestamp != ""
	lib.age_days(timestamp) <= days
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
