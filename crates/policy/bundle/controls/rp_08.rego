# METADATA
# title: "Repositories stay below the size limit"
# description: "A repository's size is below the limit (by default 5 GiB)."
# custom:
#   id: RP-08
#   severity: low
#   kind: repositories
#   rationale: "Very large repositories usually hold build outputs, binaries or data dumps that belong in Artifacts or Git LFS, and anything committed once stays in history."
#   remediation: "Find the large blobs, move binaries to Azure Artifacts or Git LFS, and add a maximum file size policy to the repository."
#   permission: "Code (Read)"
#   frameworks: ["internal:hygiene"]
#   parameters:
#     max_size_mb: 5120
package tollgate.controls.rp_08

deny contains {"message": msg, "evidence": {"size": size, "max_size_mb": limit}} if {
	size := get(input.resource, "size", 0)
	is_number(size)
	limit := get(get(input.params, "RP-08", {}), "max_size_mb", 5120)
	size > (limit * 1024) * 1024
	msg := sprintf("repository is %d MiB; the limit is %d MiB", [floor(size / 1048576), limit])
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
