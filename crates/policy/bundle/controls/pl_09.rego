# METADATA
# title: "Pipeline jobs are scoped to their project"
# description: "A build definition's job authorization scope is the current project, not the whole project collection (organisation)."
# custom:
#   id: PL-09
#   severity: medium
#   kind: build_definitions
#   rationale: "With collection scope the job's access token can read and change repositories, feeds and pipelines in every project of the organisation; a compromised build reaches far beyond its own project."
#   remediation: "Pipeline → Options → Build job authorization scope: Current project; and enable 'Limit job authorization scope to current project' in the project (and organisation) settings."
#   permission: "Build (Read)"
#   frameworks: ["nist-ssdf:PO.5", "soc2:CC6.1", "iso27001:A.8.3"]
package tollgate.controls.pl_09

# The enum as string ("projectCollection") or number (1 = projectCollection, 2 = project).
collection_scoped(scope) if lower(sprintf("%v", [scope])) in {"projectcollection", "1"}

deny contains {"message": msg, "evidence": {"jobAuthorizationScope": scope}} if {
	scope := get(input.resource, "jobAuthorizationScope", "")
	collection_scoped(scope)
	msg := sprintf("pipeline %s runs with a collection-wide job token", [get(input.resource, "name", "?")])
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
