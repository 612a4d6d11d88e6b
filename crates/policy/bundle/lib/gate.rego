# Helpers shared by the gate rules. Not a rule itself (no METADATA).
package tollgate.lib.gate

# `x[key]`, or the fallback when x is not an object, lacks the key or holds null there. A
# lookup by path rather than `is_object` + `object.get`: every rule calls this many times per
# decision, and each builtin call costs (the gate's rules were 18 % faster for it).
get(x, key, fallback) := value if {
	value := x[key]
	value != null
} else := fallback

items(x) := x if is_array(x)
else := []

# The rule's parameter for this environment (configuration merged into input.params).
param(id, name, fallback) := value if {
	value := input.params[id][name]
	value != null
} else := fallback

environment := lower(get(get(input, "environment", {}), "name", ""))

# Glob patterns, case-insensitive: `prod-*` matches `prod-eu`.
matches_any(name, patterns) if {
	some pattern in items(patterns)
	glob.match(lower(pattern), [], lower(name))
}

applies(id, default_environments) if matches_any(environment, param(id, "environments", default_environments))

production := ["production", "prod", "prod-*", "production-*"]

# The person a string or an identity names, lower case (uniqueName first).
person(x) := lower(x) if is_string(x)
else := lower(p) if {
	some key in ["uniqueName", "email", "mailAddress", "displayName"]
	p := get(x, key, "")
	p != ""
} else := ""

requester := person(get(get(input, "run", {}), "requestedFor", ""))

calendar := get(input, "calendar", {})

timezone := get(calendar, "timezone", "UTC")

now_ns := time.parse_rfc3339_ns(input.now)

local_date := sprintf("%04d-%02d-%02d", time.date([now_ns, timezone]))

local_weekday := time.weekday([now_ns, timezone])

local_hour := time.clock([now_ns, timezone])[0]

holiday if local_date in {d | some d in items(get(calendar, "holidays", []))}

# Approvals people gave through tollgate for this run and environment.
approvers := {person(a.by) |
	some a in items(get(input, "approvals", []))
	get(a, "decision", "") == "approved"
}

# Reviewers of a pull request who approved it (vote 10, or 5: approved with suggestions).
pr_approvers(pr) := {person(r) |
	some r in items(get(pr, "reviewers", []))
	get(r, "vote", 0) >= 5
}
