//! Tenants registered in the store, and memberships: which principals (by subject) may act in
//! which tenant, with which role (as text: the store knows no roles, the application parses
//! them). See docs/adr/0013-memberships.md.
//!
//! Membership rows belong to their tenant like every other row (row-level security binds
//! writes and tenant-scoped reads on PostgreSQL); only the lookup by subject, which runs
//! before a request's tenant is chosen, and the operators' list of tenants read across
//! tenants.

use async_trait::async_trait;
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::{AuditDraft, StoreError};

/// A tenant created through the API or `tollgate tenant add` (tenants named only in the
/// configuration file need no row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTenant {
    pub tenant: TenantId,
    /// Kept to the microsecond (what PostgreSQL keeps).
    pub created_at: OffsetDateTime,
    /// A principal's subject, or `local:{user}` for the command line.
    pub created_by: String,
}

/// A principal's role in one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMembership {
    pub tenant: TenantId,
    /// `oidc:{tid}:{oid}` or `apikey:{key_id}`.
    pub subject: String,
    /// A role name (`admin`, `viewer`, …) as the application wrote it.
    pub role: String,
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

/// What removing a tenant ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemovedTenant {
    /// Whether the tenant had a registration row.
    pub was_registered: bool,
    pub memberships_removed: u64,
    pub api_keys_revoked: u64,
}

#[async_trait]
pub trait TenancyStore: Send + Sync {
    /// Register a tenant. Returns false (and changes nothing, appends nothing) when it is
    /// registered already.
    async fn register_tenant(
        &self,
        tenant: &StoredTenant,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError>;

    /// The tenant's registration, if it has one.
    async fn registered_tenant(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredTenant>, StoreError>;

    /// Every registered tenant, by id. Spans tenants by design (operators list them).
    async fn registered_tenants(&self) -> Result<Vec<StoredTenant>, StoreError>;

    /// End every way to act in `tenant`, in one transaction: its registration and memberships
    /// are deleted and its API keys revoked at `at`. Its data stays. `audit` goes to the
    /// tenant's own log.
    async fn remove_tenant(
        &self,
        tenant: &TenantId,
        at: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<RemovedTenant, StoreError>;

    /// Add a membership or change its role. Returns the previous role, if there was one
    /// (`created_at`/`created_by` then stay the first ones).
    async fn put_membership(
        &self,
        membership: &StoredMembership,
        audit: &[AuditDraft],
    ) -> Result<Option<String>, StoreError>;

    /// Remove a membership; returns whether it existed (`audit` is appended only if it did).
    async fn remove_membership(
        &self,
        tenant: &TenantId,
        subject: &str,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError>;

    /// A tenant's memberships, by subject.
    async fn memberships(&self, tenant: &TenantId) -> Result<Vec<StoredMembership>, StoreError>;

    /// A subject's memberships in every tenant, by tenant. Spans tenants by design: it runs
    /// before a request's tenant is chosen.
    async fn memberships_of(&self, subject: &str) -> Result<Vec<StoredMembership>, StoreError>;
}
