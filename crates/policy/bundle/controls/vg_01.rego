# METADATA
# title: "Variable groups hold no plain-text secrets"
# description: "Variables whose names suggest a secret are marked secret (or come from Key Vault)."
# custom:
#   id: VG-01
#   severity: critical
#   kind: variable_groups
#   rationale: "Plain-text values are readable by everyone who can view the library and are printed in logs."
#   remediation: "Library → variable group → lock the variable (make it secret) or link the group to Azure Key Vault, then rotate the secret."
#   permission: "Variable Groups (Read)"
#   frameworks: [cis-ssc:2.4.6, soc2:CC6.1, iso27001:A.8.12, gdpr:art32]
package tollgate.controls.vg_01

import data.tollgate.lib

deny contains {"message": msg, "evidence": {"variable": name, "isSecret": false}} if {
	some name, variable in object.get(input.resource, "variables", {})
	lib.secret_like(name)
	object.get(variable, "isSecret", false) == false
	value := object.get(variable, "value", "")
	value != null
	value != ""
	msg := sprintf("%s holds a plain-text value", [name])
}
