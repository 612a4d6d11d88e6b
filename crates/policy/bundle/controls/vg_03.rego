# METADATA
# title: "Key Vault secrets linked to variable groups have not expired"
# description: "No enabled secret of a variable group linked to Azure Key Vault is past its expiry date, as last read from the vault."
# custom:
#   id: VG-03
#   severity: medium
#   kind: variable_groups
#   rationale: "An expiry date is the vault's rotation deadline; a secret used past it has missed its rotation (or pipelines are about to fail on it)."
#   remediation: "Rotate the secret in Key Vault with a new expiry date, then refresh the variable group (Library → group → Refresh)."
#   permission: "Variable Groups (Read)"
#   frameworks: [iso27001:A.5.17, soc2:CC6.1, nist-ssdf:PO.5]
package tollgate.controls.vg_03

import data.tollgate.lib.checks

vault := checks.get(checks.get(input.resource, "providerData", {}), "vault", "")

deny contains {"message": msg, "evidence": {"variable": variable, "expires": expires, "vault": vault}} if {
	checks.lower_text(checks.get(input.resource, "type", "")) == "azurekeyvault"
	some variable, value in checks.get(input.resource, "variables", {})
	checks.get(value, "enabled", true) != false
	expires := checks.get(value, "expires", "")
	is_string(expires)
	# Only well-formed timestamps are compared (the parser would fail on anything else).
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`, expires)
	time.parse_rfc3339_ns(expires) < time.parse_rfc3339_ns(input.now)
	msg := sprintf("Key Vault secret %s (vault %v) expired on %s", [variable, vault, expires])
}
