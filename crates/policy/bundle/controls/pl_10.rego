# METADATA
# title: "Fork pull request builds get no secrets and no full-access token"
# description: "A build definition that builds pull requests from forks does not make secrets available to them and does not give them the same job token as regular builds."
# custom:
#   id: PL-10
#   severity: high
#   kind: build_definitions
#   rationale: "A fork's author controls the code the build runs; with secrets or a full-access token that code can exfiltrate credentials or change the organisation's resources."
#   remediation: "Pipeline → Triggers → Pull request validation → Forks: clear 'Make secrets available to builds of forks' and 'Make fork builds have the same permissions as regular builds'."
#   permission: "Build (Read)"
#   frameworks: ["nist-ssdf:PO.5", "nist-ssdf:PS.1", "soc2:CC6.1"]
package tollgate.controls.pl_10

fork_triggers contains forks if {
	some trigger in items(get(input.resource, "triggers", []))
	lower(sprintf("%v", [get(trigger, "triggerType", "")])) in {"pullrequest", "64"}
	forks := get(trigger, "forks", {})
	get(forks, "enabled", false) == true
}

deny contains {"message": msg, "evidence": {"forks.enabled": true, "forks.allowSecrets": true}} if {
	some forks in fork_triggers
	get(forks, "allowSecrets", false) == true
	msg := sprintf("pipeline %s makes secrets available to builds of forks", [get(input.resource, "name", "?")])
}

deny contains {"message": msg, "evidence": {"forks.enabled": true, "forks.allowFullAccessToken": true}} if {
	some forks in fork_triggers
	get(forks, "allowFullAccessToken", false) == true
	msg := sprintf("pipeline %s gives builds of forks the same job token as regular builds", [get(input.resource, "name", "?")])
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
