# METADATA
# title: "Production secrets come from Azure Key Vault"
# description: "A variable group named as production that holds secret variables is linked to Azure Key Vault rather than storing the secrets in the library."
# custom:
#   id: VG-02
#   severity: medium
#   kind: variable_groups
#   rationale: "Secrets typed into a library variable group are copies outside the vault: they escape its rotation, access policies and audit log, and whoever edits the group can replace them."
#   remediation: "Move the secrets to the production Key Vault and re-create the group as 'Link secrets from an Azure key vault as variables'; keep non-secret settings in a separate group."
#   permission: "Variable Groups (Read)"
#   frameworks: [cis-ssc:2.4.6, iso27001:A.8.24, soc2:CC6.1]
#   parameters:
#     production_names: [prod, production, prod-*, production-*, "*-prod", "*-production", "*-prod-*", "*-production-*"]
package tollgate.controls.vg_02

import data.tollgate.lib.checks

deny contains {"message": msg, "evidence": {"type": kind, "secretVariables": secrets}} if {
	name := checks.get(input.resource, "name", "")
	checks.name_matches(name, checks.get(checks.get(input.params, "VG-02", {}), "production_names", checks.default_production_names))
	kind := checks.get(input.resource, "type", "Vsts")
	checks.lower_text(kind) != "azurekeyvault"
	secrets := sort([variable | some variable, value in checks.get(input.resource, "variables", {}); checks.get(value, "isSecret", false) == true])
	count(secrets) > 0
	msg := sprintf("production variable group %v stores %d secret(s) in the library instead of Azure Key Vault: %v", [name, count(secrets), secrets])
}
