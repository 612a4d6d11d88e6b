# METADATA
# title: "Secure files are rotated or retired"
# description: "No secure file has gone unmodified for longer than the limit (by default 365 days)."
# custom:
#   id: SF-02
#   severity: low
#   kind: secure_files
#   rationale: "Secure files hold certificates, keys and provisioning profiles. One nobody has replaced in a year is either unused, and should be deleted, or a long-lived credential overdue for rotation, often close to or past its expiry."
#   remediation: "Replace the file with a rotated certificate or key, or delete it if no pipeline uses it (Pipelines → Library → Secure files)."
#   permission: "Secure Files (Read)"
#   frameworks: ["iso27001:A.8.24", "soc2:CC6.1"]
#   parameters:
#     max_age_days: 365
package tollgate.controls.sf_02

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"secureFile": name, "modifiedOn": modified, "ageDays": age, "maxAgeDays": limit}} if {
	# ADO sets modifiedOn on every upload; createdOn stands in where it is absent.
	modified := get(input.resource, "modifiedOn", get(input.resource, "createdOn", ""))
	is_string(modified)
	modified != ""
	limit := get(get(input.params, "SF-02", {}), "max_age_days", 365)
	age := lib.age_days(modified)
	age > limit
	name := get(input.resource, "name", "?")
	msg := sprintf("secure file %v was last changed %d days ago (limit %d)", [name, age, limit])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
