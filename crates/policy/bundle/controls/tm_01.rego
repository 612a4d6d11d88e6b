# METADATA
# title: "Teams describe what they own"
# description: "Every team has a description (what it owns and how to reach it)."
# custom:
#   id: TM-01
#   severity: low
#   kind: teams
#   rationale: "Teams own area paths, backlogs, dashboards and often permissions. A team nobody can place makes access reviews and escalations guesswork, and outlives the people who knew what it was for."
#   remediation: "Project settings → Teams → team → Settings → Description: what the team owns and how to reach it."
#   permission: "Project and Team (Read)"
#   frameworks: ["iso27001:A.5.2", "soc2:CC1.3"]
package tollgate.controls.tm_01

deny contains {"message": msg, "evidence": {"team": name, "description": description}} if {
	description := get(input.resource, "description", "")
	is_string(description)
	trim_space(description) == ""
	name := get(input.resource, "name", "?")
	msg := sprintf("team %v has no description", [name])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
