# METADATA
# title: "Secure file names contain no secrets"
# description: "A secure file's name does not contain a credential: an AWS access key id, a GitHub or Slack token, a SAS signature or a password=value pair."
# custom:
#   id: SF-03
#   severity: high
#   kind: secure_files
#   rationale: "The content of a secure file is encrypted, its name is not: names are listed to everyone who can read the Library and appear in pipeline logs. A credential in the name is a leaked credential."
#   remediation: "Revoke and rotate the credential, then upload the file again under a descriptive name and delete the old one."
#   permission: "Secure Files (Read)"
#   frameworks: ["iso27001:A.5.17", "soc2:CC6.1", "nist-ssdf:PS.1"]
#   parameters:
#     secret_patterns: ["AKIA[0-9A-Z]{16}", "gh[pousr]_[0-9A-Za-z]{36}", "github_pat_[0-9A-Za-z_]{22,}", "xox[abposr]-[0-9A-Za-z-]{10,}", "sig=[0-9A-Za-z%+/=]{20,}", "(password|passwd|pwd|secret|token)=[^.]+"]
package tollgate.controls.sf_03

deny contains {"message": msg, "evidence": {"secureFile": name, "pattern": pattern}} if {
	name := get(input.resource, "name", "")
	is_string(name)
	# The first matching pattern decides, so one file gives one finding.
	patterns := [p | some p in get(get(input.params, "SF-03", {}), "secret_patterns", []); leaks(p, name)]
	count(patterns) > 0
	pattern := patterns[0]
	msg := sprintf("the name of secure file %s contains what looks like a credential", [name])
}

# regorus' regex has no case-insensitive flag: try the name as written (key ids are upper
# case) and in lower case (password=… in any case).
leaks(pattern, name) if regex.match(pattern, name)

leaks(pattern, name) if regex.match(pattern, lower(name))

# object.get that treats null like a missing field and accepts a null or non-object parent
# (ADO sends null for absent values).
get(x, key, fallback) := value if {
	is_object(x)
	value := x[key]
	value != null
} else := fallback
