# METADATA
# title: "Branch names follow the branching standard"
# description: "Every branch (refs/heads/…) is named by the branching standard: main, master, develop, or release/*, feature/*, bugfix/*, hotfix/*. Tags are not judged."
# custom:
#   id: RF-02
#   severity: low
#   kind: refs
#   rationale: "Branch policies, build triggers and release tooling select branches by name. A branch outside the standard names escapes the policies written for its kind of work and tells reviewers nothing about what it holds."
#   remediation: "Rename the branch by pushing it under a standard name and deleting the old one, or extend the allowed_branches parameter if the standard has changed."
#   permission: "Code (Read)"
#   frameworks: ["iso27001:A.8.32", "sox-itgc:change-management"]
#   parameters:
#     allowed_branches: ["refs/heads/main", "refs/heads/master", "refs/heads/develop", "refs/heads/release/*", "refs/heads/feature/*", "refs/heads/bugfix/*", "refs/heads/hotfix/*"]
package tollgate.controls.rf_02

deny contains {"message": msg, "evidence": {"ref": name, "allowed": patterns}} if {
	name := get(input.resource, "name", "")
	is_string(name)
	startswith(name, "refs/heads/")
	patterns := get(get(input.params, "RF-02", {}), "allowed_branches", [])
	not matches_any(name, patterns)
	msg := sprintf("branch %s is not named by the branching standard", [name])
}

# Glob match without delimiters: `*` also spans "/" and ".".
matches_any(name, patterns) if {
	some pattern in patterns
	glob.match(lower(pattern), null, lower(name))
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
