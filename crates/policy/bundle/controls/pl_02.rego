# METADATA
# title: "Pipelines build code from the organisation's own repositories"
# description: "A pipeline's source repository is of an approved type (by default Azure Repos Git), not GitHub, Bitbucket, Subversion or another external Git server."
# custom:
#   id: PL-02
#   severity: medium
#   kind: pipelines
#   rationale: "Code from an external repository reaches the pipeline, its service connections and agents without passing the organisation's branch policies and reviews."
#   remediation: "Import the code into Azure Repos and point the pipeline at it, or approve the external source by adding its type to the PL-02 allowed_repository_types parameter and protect it there."
#   permission: "Build (Read)"
#   frameworks: ["nist-ssdf:PS.1", "nist-ssdf:PO.3", "sox-itgc:change-management"]
#   parameters:
#     allowed_repository_types: ["TfsGit", "azureReposGit", "azureReposGitHyphenated"]
package tollgate.controls.pl_02

default_types := ["TfsGit", "azureReposGit", "azureReposGitHyphenated"]

# The build definition's repository type (TfsGit, GitHub, Bitbucket, Git, Svn, ...), else the
# pipeline configuration's (azureReposGit, gitHub, bitbucket, ...).
definition_type := get(get(get(input.related, "definition", {}), "repository", {}), "type", "")

configuration_type := get(get(get(input.resource, "configuration", {}), "repository", {}), "type", "")

repository_type := definition_type if {
	is_string(definition_type)
	definition_type != ""
} else := configuration_type

deny contains {"message": msg, "evidence": {"repository.type": repository_type, "allowed": allowed}} if {
	is_string(repository_type)
	repository_type != ""
	allowed := get(get(input.params, "PL-02", {}), "allowed_repository_types", default_types)
	not lower(repository_type) in {lower(t) | some t in allowed}
	msg := sprintf("pipeline %s builds code from a %s repository outside Azure Repos", [get(input.resource, "name", "?"), repository_type])
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
