# METADATA
# title: "Production deployments come from protected branches"
# description: "Every deployment to a production environment ran from a protected branch (by default main, master or release/*), as the run that owns the deployment record shows."
# custom:
#   id: ED-01
#   severity: high
#   kind: environment_deployments
#   rationale: "Only protected branches carry the reviews and builds branch policies demand. A deployment from a feature branch put code into production that no pull request approved."
#   remediation: "Add a Branch control check to the production environment that allows only the protected branches, and review what the deployment shipped."
#   permission: "Environment (Read), Build (Read)"
#   frameworks: ["sox-itgc:change-management", "soc2:CC8.1", "iso27001:A.8.32"]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
#     allowed_branches: ["refs/heads/main", "refs/heads/master", "refs/heads/release/*"]
package tollgate.controls.ed_01

params := get(input.params, "ED-01", {})

deny contains {"message": msg, "evidence": {"environment": environment, "run": run, "sourceBranch": branch, "allowed": allowed}} if {
	environment := get(input.related, "environment", "")
	is_string(environment)
	matches_any(environment, get(params, "production_names", []))
	# The branch comes from the run that owns the record; a run not in the inventory says nothing.
	branch := get(input.related, "source_branch", "")
	is_string(branch)
	branch != ""
	allowed := get(params, "allowed_branches", [])
	not matches_any(branch, allowed)
	run := get(get(input.resource, "owner", {}), "id", null)
	msg := sprintf("deployment %v to %s ran from %s, not a protected branch", [get(input.resource, "id", "?"), environment, branch])
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
