# METADATA
# title: "Release definitions hold no plain-text secrets"
# description: "Variables of a release definition and of its stages whose names look like secrets (the name patterns are parameters) are marked secret or reference another variable ($(name)); a non-empty plain value fails."
# custom:
#   id: RL-05
#   severity: critical
#   kind: release_definitions
#   rationale: "Plain-text values are readable by everyone who can view the release pipeline, are kept in every revision of the definition and are printed in logs."
#   remediation: "Release pipeline → Variables: lock the variable (make it secret) or move it to a Key Vault-linked variable group, then rotate the secret."
#   permission: "Release (Read)"
#   frameworks: [cis-ssc:2.4.6, soc2:CC6.1, iso27001:A.8.12, gdpr:art32]
#   parameters:
#     secret_name_patterns: ["*password*", "*passwd*", "*pwd*", "*secret*", "*token*", "*apikey*", "*api_key*", "*connectionstring*", "*privatekey*", "*private_key*", "*credential*"]
package tollgate.controls.rl_05

import data.tollgate.lib.release

default_patterns := ["*password*", "*passwd*", "*pwd*", "*secret*", "*token*", "*apikey*", "*api_key*", "*connectionstring*", "*privatekey*", "*private_key*", "*credential*"]

# The name patterns, read and lowered once rather than once per variable (a pattern that is
# not a string matches nothing).
patterns := [lower(p) | some p in release.items(release.param("RL-05", "secret_name_patterns", default_patterns)); is_string(p)]

# Where variables live: the definition, then each stage. (`data.…` rather than the import
# alias: regorus evaluates every rule of a package the first time an alias names one of them.)
scopes := array.concat(
	[{"scope": "definition", "variables": release.get(input.resource, "variables", {})}],
	[{"scope": sprintf("stage %s", [release.stage_name(stage)]), "variables": release.get(stage, "variables", {})} | some stage in data.tollgate.lib.release.stages],
)

# `$(name)`: a reference to another variable, not a value.
reference(value) if regex.match(`^\$\([^()]+\)$`, trim_space(value))

# The evidence names the variable, never its value.
deny contains {"message": msg, "evidence": {"variable": name, "scope": scope.scope, "isSecret": false}} if {
	some scope in scopes
	is_object(scope.variables)
	some name, variable in scope.variables
	lowered := lower(name)
	count([p | some p in patterns; glob.match(p, null, lowered)]) > 0
	release.get(variable, "isSecret", false) == false
	value := release.text(variable, "value")
	value != ""
	not reference(value)
	msg := sprintf("%s (%s) holds a plain-text value", [name, scope.scope])
}
