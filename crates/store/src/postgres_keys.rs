//! API keys on PostgreSQL. A presented key is looked up by its public id before any tenant is
//! known, so that lookup (and `touch`, and the bootstrap's count of every tenant's keys) runs
//! in an across-tenants transaction; everything else runs in the key's tenant.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::keys::{ApiKeyStore, StoredApiKey};
use crate::postgres::{PgTransaction, PostgresStore, tenant_column};
use crate::{AuditDraft, StoreError};

/// Serialises bootstrap inserts across replicas (a transaction-level advisory lock).
const BOOTSTRAP_LOCK: &str = "tollgate.api_keys.bootstrap";

const BY_ID: &str = "SELECT key_id, tenant_id, name, role, secret_sha256, created_at, \
     created_by, expires_at, revoked_at, last_used_at FROM api_keys WHERE key_id = $1";

const BY_TENANT: &str = "SELECT key_id, tenant_id, name, role, secret_sha256, created_at, \
     created_by, expires_at, revoked_at, last_used_at FROM api_keys \
     WHERE tenant_id = $1 ORDER BY created_at, key_id";

fn key_from(row: &PgRow) -> Result<StoredApiKey, StoreError> {
    let key_id: String = row.try_get("key_id")?;
    let hash: Vec<u8> = row.try_get("secret_sha256")?;
    let secret_sha256: [u8; 32] = hash.as_slice().try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "API key {key_id}: the secret hash has {} bytes, not 32",
            hash.len()
        ))
    })?;
    Ok(StoredApiKey {
        tenant: tenant_column(row)
            .map_err(|error| StoreError::Corrupt(format!("API key {key_id}: {error}")))?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        secret_sha256,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
        key_id,
    })
}

async fn insert(transaction: &mut PgTransaction, key: &StoredApiKey) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (key_id, tenant_id, name, role, secret_sha256, created_at, \
         created_by, expires_at, revoked_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&key.key_id)
    .bind(key.tenant.as_str())
    .bind(&key.name)
    .bind(&key.role)
    .bind(key.secret_sha256.as_slice())
    .bind(key.created_at)
    .bind(&key.created_by)
    .bind(key.expires_at)
    .bind(key.revoked_at)
    .bind(key.last_used_at)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

async fn count_active(
    transaction: &mut PgTransaction,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(now)
    .fetch_one(&mut **transaction)
    .await?;
    Ok(count.unsigned_abs())
}

#[async_trait]
impl ApiKeyStore for PostgresStore {
    async fn insert_api_key(
        &self,
        key: &StoredApiKey,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_for(&key.tenant).await?;
        insert(&mut transaction, key).await?;
        self.append_audit_in(&mut transaction, &key.tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn insert_api_key_if_none_active(
        &self,
        key: &StoredApiKey,
        now: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        crate::postgres::scope_to(&mut transaction, &key.tenant).await?;
        // A second replica starting at the same moment waits here, then (READ COMMITTED:
        // a fresh snapshot per statement) sees the first one's key.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *transaction)
            .await?;
        if count_active(&mut transaction, now).await? > 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        insert(&mut transaction, key).await?;
        self.append_audit_in(&mut transaction, &key.tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    async fn api_key(&self, key_id: &str) -> Result<Option<StoredApiKey>, StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        let row = sqlx::query(BY_ID)
            .bind(key_id)
            .fetch_optional(&mut *transaction)
            .await?;
        transaction.commit().await?;
        row.as_ref().map(key_from).transpose()
    }

    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<StoredApiKey>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(BY_TENANT)
            .bind(tenant.as_str())
            .fetch_all(&mut *transaction)
            .await?;
        transaction.commit().await?;
        rows.iter().map(key_from).collect()
    }

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        at: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let result = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) \
             WHERE tenant_id = $2 AND key_id = $3",
        )
        .bind(at)
        .bind(tenant.as_str())
        .bind(key_id)
        .execute(&mut *transaction)
        .await?;
        let existed = result.rows_affected() > 0;
        if existed {
            self.append_audit_in(&mut transaction, tenant, audit)
                .await?;
        }
        transaction.commit().await?;
        Ok(existed)
    }

    async fn touch_api_key(&self, key_id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key_id = $2")
            .bind(at)
            .bind(key_id)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn count_active_api_keys(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        let count = count_active(&mut transaction, now).await?;
        transaction.commit().await?;
        Ok(count)
    }
}
