//! Registered tenants and memberships on PostgreSQL. Every write and every tenant-scoped read
//! runs in a transaction scoped to the row's tenant (row-level security checks it); the
//! lookup by subject and the list of registered tenants run across tenants, read-only
//! (migration 8).

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::postgres::{PostgresStore, tenant_column};
use crate::tenancy::{RemovedTenant, StoredMembership, StoredTenant, TenancyStore};
use crate::{AuditDraft, StoreError};

fn registration_from(row: &PgRow) -> Result<StoredTenant, StoreError> {
    Ok(StoredTenant {
        tenant: tenant_column(row)?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

fn membership_from(row: &PgRow) -> Result<StoredMembership, StoreError> {
    Ok(StoredMembership {
        tenant: tenant_column(row)?,
        subject: row.try_get("subject")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

#[async_trait]
impl TenancyStore for PostgresStore {
    async fn register_tenant(
        &self,
        tenant: &StoredTenant,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_for(&tenant.tenant).await?;
        let inserted = sqlx::query(
            "INSERT INTO tenants (tenant_id, created_at, created_by) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.tenant.as_str())
        .bind(tenant.created_at)
        .bind(&tenant.created_by)
        .execute(&mut *transaction)
        .await?
        .rows_affected()
            > 0;
        if inserted {
            self.append_audit_in(&mut transaction, &tenant.tenant, audit)
                .await?;
        }
        transaction.commit().await?;
        Ok(inserted)
    }

    async fn registered_tenant(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredTenant>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let row = sqlx::query(
            "SELECT tenant_id, created_at, created_by FROM tenants WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        row.as_ref().map(registration_from).transpose()
    }

    async fn registered_tenants(&self) -> Result<Vec<StoredTenant>, StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        let rows =
            sqlx::query("SELECT tenant_id, created_at, created_by FROM tenants ORDER BY tenant_id")
                .fetch_all(&mut *transaction)
                .await?;
        transaction.commit().await?;
        rows.iter().map(registration_from).collect()
    }

    async fn remove_tenant(
        &self,
        tenant: &TenantId,
        at: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<RemovedTenant, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let was_registered = sqlx::query("DELETE FROM tenants WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .execute(&mut *transaction)
            .await?
            .rows_affected()
            > 0;
        let memberships_removed = sqlx::query("DELETE FROM memberships WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        let api_keys_revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(tenant.as_str())
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        self.append_audit_in(&mut transaction, tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(RemovedTenant {
            was_registered,
            memberships_removed,
            api_keys_revoked,
        })
    }

    async fn put_membership(
        &self,
        membership: &StoredMembership,
        audit: &[AuditDraft],
    ) -> Result<Option<String>, StoreError> {
        let mut transaction = self.begin_for(&membership.tenant).await?;
        // FOR UPDATE: two admins changing one membership at once report the right previous role.
        let previous: Option<String> = sqlx::query_scalar(
            "SELECT role FROM memberships WHERE tenant_id = $1 AND subject = $2 FOR UPDATE",
        )
        .bind(membership.tenant.as_str())
        .bind(&membership.subject)
        .fetch_optional(&mut *transaction)
        .await?;
        sqlx::query(
            "INSERT INTO memberships (tenant_id, subject, role, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, subject) DO UPDATE SET role = EXCLUDED.role",
        )
        .bind(membership.tenant.as_str())
        .bind(&membership.subject)
        .bind(&membership.role)
        .bind(membership.created_at)
        .bind(&membership.created_by)
        .execute(&mut *transaction)
        .await?;
        self.append_audit_in(&mut transaction, &membership.tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(previous)
    }

    async fn remove_membership(
        &self,
        tenant: &TenantId,
        subject: &str,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let existed = sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND subject = $2")
            .bind(tenant.as_str())
            .bind(subject)
            .execute(&mut *transaction)
            .await?
            .rows_affected()
            > 0;
        if existed {
            self.append_audit_in(&mut transaction, tenant, audit)
                .await?;
        }
        transaction.commit().await?;
        Ok(existed)
    }

    async fn memberships(&self, tenant: &TenantId) -> Result<Vec<StoredMembership>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT tenant_id, subject, role, created_at, created_by FROM memberships \
             WHERE tenant_id = $1 ORDER BY subject",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(membership_from).collect()
    }

    async fn memberships_of(&self, subject: &str) -> Result<Vec<StoredMembership>, StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        let rows = sqlx::query(
            "SELECT tenant_id, subject, role, created_at, created_by FROM memberships \
             WHERE subject = $1 ORDER BY tenant_id",
        )
        .bind(subject)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(membership_from).collect()
    }
}
