# METADATA
# title: "Production release stages deploy only builds of protected branches"
# description: "A production stage that starts without a person (after the release is created or after another stage) filters every branch-built artifact (by default Build, Git and GitHub artifacts) to protected branches with a stage artifact condition (conditionType artifact, whose value is the ArtifactFilter JSON: sourceBranch, or useBuildDefinitionBranch). Stages deployed only by hand are judged by their approvals (RL-01)."
# custom:
#   id: RL-04
#   severity: high
#   kind: release_definitions
#   rationale: "Without an artifact filter, a release of a feature branch build rolls into production on its own once the earlier stages pass; only protected branches carry reviewed changes."
#   remediation: "Release pipeline → production stage → Pre-deployment conditions → Triggers → Artifact filters: include only main (or release/*) for each artifact."
#   permission: "Release (Read)"
#   frameworks: [sox-itgc:change-management, soc2:CC8.1, nist-ssdf:PS.1, cis-ssc:5.2.3]
#   parameters:
#     production_names: [production, prod, prod-*, production-*]
#     protected_branches: [main, master, release/*]
#     artifact_types: [Build, Git, GitHub]
package tollgate.controls.rl_04

import data.tollgate.lib.release

artifact_types := {lower(t) | some t in release.items(release.param("RL-04", "artifact_types", ["Build", "Git", "GitHub"]))}

# Artifacts whose versions come from a branch.
branch_artifacts := [a |
	some a in release.items(release.get(input.resource, "artifacts", []))
	lower(release.text(a, "type")) in artifact_types
]

# A stage's artifact filters for one artifact alias, parsed from the conditions' values.
filters(stage, alias) := [filter |
	some condition in release.conditions(stage)
	lower(release.text(condition, "conditionType")) == "artifact"
	release.text(condition, "name") == alias
	filter := parsed(release.text(condition, "value"))
]

parsed(value) := filter if {
	json.is_valid(value)
	filter := json.unmarshal(value)
	is_object(filter)
} else := {}

# Branch names without refs/heads/, on both sides, so `main` and `refs/heads/main` agree.
short(branch) := trim_prefix(lower(branch), "refs/heads/")

protected(filter) if release.get(filter, "useBuildDefinitionBranch", false) == true

protected(filter) if {
	branch := release.text(filter, "sourceBranch")
	branch != ""
	some pattern in release.items(release.param("RL-04", "protected_branches", ["main", "master", "release/*"]))
	is_string(pattern)
	glob.match(short(pattern), null, short(branch))
}

automatic_production_stages := [stage |
	some stage in release.production_stages("RL-04")
	count(release.automatic_triggers(stage)) > 0
]

# The filters of each automatic production stage (by position) for each artifact alias, parsed
# once: both findings below read them.
stage_filters[[i, alias]] := filters(stage, alias) if {
	some i, stage in automatic_production_stages
	some artifact in branch_artifacts
	alias := release.text(artifact, "alias")
}

deny contains {"message": msg, "evidence": {"stage": name, "artifact": alias, "artifactType": release.text(artifact, "type"), "triggers": release.automatic_triggers(stage), "artifactFilters": []}} if {
	some i, stage in automatic_production_stages
	some artifact in branch_artifacts
	alias := release.text(artifact, "alias")
	count(stage_filters[[i, alias]]) == 0
	name := release.stage_name(stage)
	msg := sprintf("production stage %s deploys artifact %s automatically from any branch", [name, alias])
}

deny contains {"message": msg, "evidence": {"stage": name, "artifact": alias, "triggers": release.automatic_triggers(stage), "sourceBranch": branch}} if {
	some i, stage in automatic_production_stages
	some artifact in branch_artifacts
	alias := release.text(artifact, "alias")
	some filter in stage_filters[[i, alias]]
	not protected(filter)
	branch := release.text(filter, "sourceBranch")
	name := release.stage_name(stage)
	msg := sprintf("production stage %s deploys artifact %s automatically from branch %q, which is not protected", [name, alias, branch])
}
