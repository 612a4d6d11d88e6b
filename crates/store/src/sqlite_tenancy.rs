//! Registered tenants and memberships on SQLite.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::sqlite::SqliteStore;
use crate::sqlite_keys::{parse_time, text};
use crate::tenancy::{RemovedTenant, StoredMembership, StoredTenant, TenancyStore};
use crate::{AuditDraft, StoreError};

fn tenant_from(row: &SqliteRow) -> Result<TenantId, StoreError> {
    let raw: String = row.try_get("tenant_id")?;
    TenantId::parse(&raw).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn registration_from(row: &SqliteRow) -> Result<StoredTenant, StoreError> {
    Ok(StoredTenant {
        tenant: tenant_from(row)?,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        created_by: row.try_get("created_by")?,
    })
}

fn membership_from(row: &SqliteRow) -> Result<StoredMembership, StoreError> {
    Ok(StoredMembership {
        tenant: tenant_from(row)?,
        subject: row.try_get("subject")?,
        role: row.try_get("role")?,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        created_by: row.try_get("created_by")?,
    })
}

const MEMBERSHIP_COLUMNS: &str =
    "SELECT tenant_id, subject, role, created_at, created_by FROM memberships";

#[async_trait]
impl TenancyStore for SqliteStore {
    async fn register_tenant(
        &self,
        tenant: &StoredTenant,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "INSERT INTO tenants (tenant_id, created_at, created_by) VALUES (?, ?, ?) \
             ON CONFLICT (tenant_id) DO NOTHING",
        )
        .bind(tenant.tenant.as_str())
        .bind(text(tenant.created_at)?)
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
        sqlx::query("SELECT tenant_id, created_at, created_by FROM tenants WHERE tenant_id = ?")
            .bind(tenant.as_str())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(registration_from)
            .transpose()
    }

    async fn registered_tenants(&self) -> Result<Vec<StoredTenant>, StoreError> {
        sqlx::query("SELECT tenant_id, created_at, created_by FROM tenants ORDER BY tenant_id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(registration_from)
            .collect()
    }

    async fn remove_tenant(
        &self,
        tenant: &TenantId,
        at: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<RemovedTenant, StoreError> {
        let mut transaction = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let was_registered = sqlx::query("DELETE FROM tenants WHERE tenant_id = ?")
            .bind(tenant.as_str())
            .execute(&mut *transaction)
            .await?
            .rows_affected()
            > 0;
        let memberships_removed = sqlx::query("DELETE FROM memberships WHERE tenant_id = ?")
            .bind(tenant.as_str())
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        let api_keys_revoked = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL",
        )
        .bind(text(at)?)
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
        let mut transaction = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let previous: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE tenant_id = ? AND subject = ?")
                .bind(membership.tenant.as_str())
                .bind(&membership.subject)
                .fetch_optional(&mut *transaction)
                .await?;
        sqlx::query(
            "INSERT INTO memberships (tenant_id, subject, role, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, subject) DO UPDATE SET role = excluded.role",
        )
        .bind(membership.tenant.as_str())
        .bind(&membership.subject)
        .bind(&membership.role)
        .bind(text(membership.created_at)?)
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
        let mut transaction = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let existed = sqlx::query("DELETE FROM memberships WHERE tenant_id = ? AND subject = ?")
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
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{MEMBERSHIP_COLUMNS} WHERE tenant_id = ? ORDER BY subject"
        )))
        .bind(tenant.as_str())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(membership_from)
        .collect()
    }

    async fn memberships_of(&self, subject: &str) -> Result<Vec<StoredMembership>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{MEMBERSHIP_COLUMNS} WHERE subject = ? ORDER BY tenant_id"
        )))
        .bind(subject)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(membership_from)
        .collect()
    }
}
