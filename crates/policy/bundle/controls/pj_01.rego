# METADATA
# title: "Projects are not public"
# description: "A project's visibility is private (or organization), not public: anonymous users on the internet cannot read its code, work items and pipelines."
# custom:
#   id: PJ-01
#   severity: high
#   kind: projects
#   rationale: "A public project exposes its repositories, pipeline logs and work items to anyone; build logs and history routinely contain internal names, URLs and sometimes secrets."
#   remediation: "Project settings → Overview → Visibility: Private; and turn off 'Allow public projects' in the organisation's policies."
#   permission: "Project and Team (Read)"
#   frameworks: ["iso27001:A.8.3", "soc2:CC6.1", "nist-ssdf:PS.1"]
package tollgate.controls.pj_01

deny contains {"message": msg, "evidence": {"visibility": visibility}} if {
	visibility := get(input.resource, "visibility", "")
	is_string(visibility)
	lower(visibility) == "public"
	msg := sprintf("project %s is public", [get(input.resource, "name", "?")])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
