# METADATA
# title: "Secret alerts are closed within a day"
# description: "No secret-scanning alert stays open (state active) longer than the limit (by default 24 hours), whatever its severity."
# custom:
#   id: AS-02
#   severity: critical
#   kind: alerts
#   rationale: "A secret committed to a repository is exposed to everyone who can read it, its forks and clones, from the moment it is pushed. Severity does not change that: it must be revoked and rotated at once, not on a vulnerability SLA."
#   remediation: "Revoke and rotate the credential, remove it from the code, then close the alert (fixed once the secret is gone, or dismissed with the revocation recorded)."
#   permission: "Advanced Security (Read)"
#   frameworks: ["iso27001:A.5.17", "soc2:CC7.1", "nist-ssdf:RV.2", "cis-ssc:1.5.1"]
#   parameters:
#     max_open_hours: 24
package tollgate.controls.as_02

deny contains {"message": msg, "evidence": {"alertType": "secret", "state": "active", "firstSeenDate": first_seen, "hoursOpen": hours, "maxOpenHours": limit}} if {
	is_string(input.resource.alertType)
	lower(input.resource.alertType) == "secret"
	is_string(input.resource.state)
	lower(input.resource.state) == "active"
	first_seen := get(input.resource, "firstSeenDate", "")
	is_string(first_seen)
	first_seen != ""
	hours := floor((time.parse_rfc3339_ns(input.now) - time.parse_rfc3339_ns(first_seen)) / 3600000000000)
	limit := get(get(input.params, "AS-02", {}), "max_open_hours", 24)
	hours > limit
	msg := sprintf("secret alert %v has been open for %d hours (limit %d)", [get(input.resource, "alertId", "?"), hours, limit])
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
