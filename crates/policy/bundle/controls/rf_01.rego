# METADATA
# title: "Branches are not left locked"
# description: "No branch is locked (isLocked)."
# custom:
#   id: RF-01
#   severity: low
#   kind: refs
#   rationale: "A lock makes a branch read-only for everyone, pull requests included; it is meant for a short freeze. A lock left in place either blocks delivery or stands in for branch policies and permissions, which are the auditable way to protect a branch."
#   remediation: "Unlock the branch (Repos → Branches → … → Unlock) and protect it with branch policies and branch permissions instead."
#   permission: "Code (Read)"
#   frameworks: ["iso27001:A.8.32", "sox-itgc:change-management"]
package tollgate.controls.rf_01

deny contains {"message": msg, "evidence": {"ref": name, "isLocked": true, "isLockedBy": locked_by}} if {
	get(input.resource, "isLocked", false) == true
	name := get(input.resource, "name", "?")
	locked_by := get(get(input.resource, "isLockedBy", {}), "uniqueName", get(get(input.resource, "isLockedBy", {}), "displayName", null))
	msg := sprintf("branch %v is locked%v", [name, by(locked_by)])
}

by(who) := sprintf(" by %v", [who]) if {
	who != null
} else := ""

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
