//! API keys as stored: the public key id, the tenant the key acts in, its role (as text: the
//! store knows no roles, the application parses them) and a SHA-256 of the secret. The secret
//! itself is never stored.

use async_trait::async_trait;
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::{AuditDraft, StoreError};

/// One API key row. Its times are kept to the microsecond (what PostgreSQL keeps).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredApiKey {
    /// Public and unique across all tenants: a presented key is found by its id alone.
    pub key_id: String,
    pub tenant: TenantId,
    pub name: String,
    /// A role name (`admin`, `viewer`, …) as the application wrote it.
    pub role: String,
    pub secret_sha256: [u8; 32],
    pub created_at: OffsetDateTime,
    /// Who created the key: a principal's subject, or `bootstrap`.
    pub created_by: String,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

impl StoredApiKey {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| expiry > now)
    }
}

/// The hash is not secret, but it has no business in a log line either.
impl std::fmt::Debug for StoredApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredApiKey")
            .field("key_id", &self.key_id)
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("secret_sha256", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("created_by", &self.created_by)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("last_used_at", &self.last_used_at)
            .finish()
    }
}

/// API keys of all tenants.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Add a key. A key id that already exists is an error.
    async fn insert_api_key(
        &self,
        key: &StoredApiKey,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError>;

    /// Add `key` only if no key of any tenant is active at `now`, atomically (two instances
    /// starting at once on one database create one bootstrap key, not two). Returns whether
    /// the key was added.
    async fn insert_api_key_if_none_active(
        &self,
        key: &StoredApiKey,
        now: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError>;

    /// The key with this id, in whichever tenant it lives.
    async fn api_key(&self, key_id: &str) -> Result<Option<StoredApiKey>, StoreError>;

    /// A tenant's keys (revoked and expired ones included), oldest first.
    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<StoredApiKey>, StoreError>;

    /// Mark a tenant's key revoked at `at` (an earlier revocation time is kept). Returns whether
    /// the tenant has a key with this id.
    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        at: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError>;

    /// Record that a key was used at `at`.
    async fn touch_api_key(&self, key_id: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Keys of all tenants that are active at `now`.
    async fn count_active_api_keys(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
