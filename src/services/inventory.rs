use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use tollgate_domain::{ResourceKind, TenantId};
use tollgate_store::{InventoryStore, SyncRecord};

/// Read-only questions about the stored inventory.
pub struct InventoryService {
    store: Arc<dyn InventoryStore>,
    tenant: TenantId,
}

impl InventoryService {
    pub fn new(store: Arc<dyn InventoryStore>, tenant: TenantId) -> Self {
        Self { store, tenant }
    }

    /// Objects per kind (every kind present, zero where empty).
    pub async fn counts(&self) -> Result<BTreeMap<ResourceKind, u64>> {
        Ok(self.store.counts(&self.tenant).await?)
    }

    pub async fn last_sync(&self) -> Result<Option<SyncRecord>> {
        Ok(self.store.last_successful_sync(&self.tenant).await?)
    }
}
