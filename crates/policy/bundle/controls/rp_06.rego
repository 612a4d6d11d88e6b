# METADATA
# title: "Repository names follow the naming convention"
# description: "A repository's name matches the naming pattern (by default letters, digits, '.', '_' and '-', starting with a letter or digit) and is not longer than the limit."
# custom:
#   id: RP-06
#   severity: low
#   kind: repositories
#   rationale: "Names with spaces or unusual characters break clone URLs, scripts and pipeline resource references, and make ownership by naming convention impossible."
#   remediation: "Repos → Repositories → rename the repository to match the convention (clone URLs change: tell its users)."
#   permission: "Code (Read)"
#   frameworks: ["internal:naming"]
#   parameters:
#     name_pattern: "^[A-Za-z0-9][A-Za-z0-9._-]*$"
#     max_length: 64
package tollgate.controls.rp_06

params := get(input.params, "RP-06", {})

name := get(input.resource, "name", "")

deny contains {"message": msg, "evidence": {"name": name, "pattern": pattern}} if {
	is_string(name)
	name != ""
	pattern := get(params, "name_pattern", "^[A-Za-z0-9][A-Za-z0-9._-]*$")
	not regex.match(pattern, name)
	msg := sprintf("repository name %q does not match %s", [name, pattern])
}

deny contains {"message": msg, "evidence": {"name": name, "length": count(name), "max_length": limit}} if {
	is_string(name)
	limit := get(params, "max_length", 64)
	count(name) > limit
	msg := sprintf("repository name %q is %d characters long; the limit is %d", [name, count(name), limit])
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
