# METADATA
# title: "Projects hold code or pipelines"
# description: "A project has at least one repository or pipeline; an empty project is reviewed and removed, or recorded as Boards-only."
# custom:
#   id: PJ-02
#   severity: low
#   kind: projects
#   rationale: "Unused projects keep their own administrators, service connections and permissions that nobody reviews; they are where forgotten access and credentials accumulate."
#   remediation: "Delete the project if it is unused; if it is used only for Boards, waive this control for it."
#   permission: "Project and Team (Read)"
#   frameworks: ["iso27001:A.5.9", "internal:hygiene"]
package tollgate.controls.pj_02

deny contains {"message": msg, "evidence": {"repositories": 0, "pipelines": 0, "environments": environments}} if {
	# Counts that are missing mean the facts were not computed: nothing to judge.
	get(input.related, "repositories", null) == 0
	get(input.related, "pipelines", null) == 0
	environments := get(input.related, "environments", 0)
	msg := sprintf("project %s has no repositories and no pipelines", [get(input.resource, "name", "?")])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
