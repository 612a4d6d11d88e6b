# METADATA
# title: "Production signing keys and certificates require an approval"
# description: "A secure file whose name marks it as production key material (a production name and a key or certificate-store extension such as .pfx, .p12, .pem, .key, .jks, .snk) has an Approval check."
# custom:
#   id: SF-01
#   severity: high
#   kind: secure_files
#   rationale: "Whoever can run a pipeline that downloads a production signing key can sign anything as the organisation. An approval makes each use of the key a decision a second person took."
#   remediation: "Pipelines → Library → Secure files → file → Approvals and checks → add Approvals (and restrict Pipeline permissions to the pipelines that sign releases)."
#   permission: "Secure Files (Read)"
#   frameworks: ["sox-itgc:segregation-of-duties", "soc2:CC6.1", "iso27001:A.8.24"]
#   parameters:
#     production_patterns: ["*production*", "prod-*", "prod_*", "prod.*", "*-prod-*", "*-prod.*", "*_prod_*", "*_prod.*", "*.prod.*"]
#     key_extensions: [".pfx", ".p12", ".pem", ".key", ".jks", ".keystore", ".snk", ".p8", ".ppk"]
package tollgate.controls.sf_01

import data.tollgate.lib

params := get(input.params, "SF-01", {})

deny contains {"message": msg, "evidence": {"secureFile": name, "extension": extension, "approvalChecks": 0}} if {
	name := get(input.resource, "name", "")
	is_string(name)
	matches_any(name, get(params, "production_patterns", []))
	some extension in get(params, "key_extensions", [])
	endswith(lower(name), lower(extension))
	not data.tollgate.lib.has_approval_check
	msg := sprintf("production key material %s has no approval check", [name])
}

# Glob match without delimiters: `*` also spans "/" and ".".
matches_any(name, patterns) if {
	some pattern in patterns
	glob.match(lower(pattern), null, lower(name))
}

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
