use serde::{Deserialize, Serialize};

use crate::ResourceKind;

/// One Azure DevOps object as the inventory stores it.
///
/// `raw` is the object's JSON exactly as ADO sent it: it is evidence for auditors and the
/// input to policies, so it is never re-serialised from a partial model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InventoryItem {
    pub kind: ResourceKind,
    /// Unique within the kind for a tenant. ADO ids that are only unique inside their scope
    /// (a ref name, a policy configuration number) are qualified as `{scope}/{ado_id}`.
    pub key: String,
    /// The project or parent object the item was listed under; empty for organisation kinds.
    pub scope: String,
    /// The project id the item belongs to; empty for organisation kinds.
    pub project: String,
    /// The id as ADO spells it.
    pub ado_id: String,
    /// A display name, where the object has one.
    pub name: Option<String>,
    /// ADO's revision, rev or etag-like counter, where the object has one.
    pub revision: Option<String>,
    pub raw: String,
}

impl InventoryItem {
    /// The stored key for an object: qualified by its scope unless the kind is organisation-wide.
    pub fn key_for(scope: &str, ado_id: &str) -> String {
        if scope.is_empty() {
            ado_id.to_owned()
        } else {
            format!("{scope}/{ado_id}")
        }
    }
}
