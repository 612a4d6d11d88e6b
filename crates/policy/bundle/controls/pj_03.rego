# METADATA
# title: "Projects describe their purpose"
# description: "A project has a non-empty description, so its purpose (and owner) is recorded where administrators and auditors look."
# custom:
#   id: PJ-03
#   severity: low
#   kind: projects
#   rationale: "An asset inventory needs each project's purpose and owner; without them access reviews and clean-ups cannot decide what is still needed."
#   remediation: "Project settings → Overview → Description: state what the project is for and who owns it."
#   permission: "Project and Team (Read)"
#   frameworks: ["iso27001:A.5.9", "internal:hygiene"]
package tollgate.controls.pj_03

deny contains {"message": msg, "evidence": {"description": description}} if {
	description := get(input.resource, "description", "")
	empty(description)
	msg := sprintf("project %s has no description", [get(input.resource, "name", "?")])
}

empty(value) if value == null

empty(value) if {
	is_string(value)
	trim_space(value) == ""
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
