# METADATA
# title: "Forks are accounted for"
# description: "A repository that is a fork of another repository is on the list of approved forks."
# custom:
#   id: RP-05
#   severity: low
#   kind: repositories
#   rationale: "Every fork is another copy of the code with its own permissions and no branch policies by default; forks must be known, owned and justified."
#   remediation: "Delete the fork, or record it as approved by adding its name to the RP-05 approved_forks parameter."
#   permission: "Code (Read)"
#   frameworks: ["cis-ssc:1.2.5", "iso27001:A.5.9"]
#   parameters:
#     approved_forks: []
package tollgate.controls.rp_05

deny contains {"message": msg, "evidence": {"isFork": true, "parentRepository": parent_name, "parentProject": parent_project}} if {
	get(input.resource, "isFork", false) == true
	name := get(input.resource, "name", "")
	approved := get(get(input.params, "RP-05", {}), "approved_forks", [])
	not lower(name) in {lower(n) | some n in approved}
	parent := get(input.resource, "parentRepository", {})
	parent_name := get(parent, "name", "")
	parent_project := get(get(parent, "project", {}), "name", "")
	msg := sprintf("repository %s is an unapproved fork of %s", [name, shown(parent_name)])
}

shown(parent) := parent if parent != ""

shown(parent) := "an unnamed repository" if parent == ""

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
