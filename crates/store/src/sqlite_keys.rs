//! API keys on SQLite.
//!
//! Expiry is compared in Rust, not in SQL: RFC 3339 text with optional fractional seconds does
//! not sort lexically in time order, and the number of keys is small.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::TenantId;

use crate::AuditDraft;

use crate::StoreError;
use crate::keys::{ApiKeyStore, StoredApiKey};
use crate::sqlite::SqliteStore;

pub(crate) fn text(time: OffsetDateTime) -> Result<String, StoreError> {
    time.format(&Rfc3339).map_err(|error| {
        StoreError::Corrupt(format!("timestamp {time} cannot be written: {error}"))
    })
}

fn optional_text(time: Option<OffsetDateTime>) -> Result<Option<String>, StoreError> {
    time.map(text).transpose()
}

pub(crate) fn parse_time(raw: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|error| StoreError::Corrupt(format!("timestamp {raw:?}: {error}")))
}

fn optional_time(row: &SqliteRow, column: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    row.try_get::<Option<String>, _>(column)?
        .as_deref()
        .map(parse_time)
        .transpose()
}

fn key_from(row: &SqliteRow) -> Result<StoredApiKey, StoreError> {
    let key_id: String = row.try_get("key_id")?;
    let tenant: String = row.try_get("tenant_id")?;
    let hash: Vec<u8> = row.try_get("secret_sha256")?;
    let secret_sha256: [u8; 32] = hash.as_slice().try_into().map_err(|_| {
        StoreError::Corrupt(format!(
            "API key {key_id}: the secret hash has {} bytes, not 32",
            hash.len()
        ))
    })?;
    Ok(StoredApiKey {
        tenant: TenantId::parse(&tenant)
            .map_err(|error| StoreError::Corrupt(format!("API key {key_id}: {error}")))?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        secret_sha256,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        created_by: row.try_get("created_by")?,
        expires_at: optional_time(row, "expires_at")?,
        revoked_at: optional_time(row, "revoked_at")?,
        last_used_at: optional_time(row, "last_used_at")?,
        key_id,
    })
}

const INSERT: &str = "INSERT INTO api_keys \
     (key_id, tenant_id, name, role, secret_sha256, created_at, created_by, expires_at, revoked_at, last_used_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

fn insert_query(
    key: &StoredApiKey,
) -> Result<sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>, StoreError> {
    Ok(sqlx::query(INSERT)
        .bind(&key.key_id)
        .bind(key.tenant.as_str())
        .bind(&key.name)
        .bind(&key.role)
        .bind(key.secret_sha256.as_slice())
        .bind(text(key.created_at)?)
        .bind(&key.created_by)
        .bind(optional_text(key.expires_at)?)
        .bind(optional_text(key.revoked_at)?)
        .bind(optional_text(key.last_used_at)?))
}

/// Active keys among the unrevoked rows' expiry times.
fn count_active(expiries: &[Option<String>], now: OffsetDateTime) -> Result<u64, StoreError> {
    let mut active = 0;
    for expiry in expiries {
        let unexpired = match expiry {
            None => true,
            Some(raw) => parse_time(raw)? > now,
        };
        if unexpired {
            active += 1;
        }
    }
    Ok(active)
}

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn insert_api_key(
        &self,
        key: &StoredApiKey,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        insert_query(key)?.execute(&mut *transaction).await?;
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
        // IMMEDIATE takes the write lock before the read, so a second instance waits for
        // this one to commit and then sees its key.
        let mut transaction = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let expiries: Vec<Option<String>> =
            sqlx::query_scalar("SELECT expires_at FROM api_keys WHERE revoked_at IS NULL")
                .fetch_all(&mut *transaction)
                .await?;
        if count_active(&expiries, now)? > 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        insert_query(key)?.execute(&mut *transaction).await?;
        self.append_audit_in(&mut transaction, &key.tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    async fn api_key(&self, key_id: &str) -> Result<Option<StoredApiKey>, StoreError> {
        sqlx::query("SELECT * FROM api_keys WHERE key_id = ?")
            .bind(key_id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(key_from)
            .transpose()
    }

    async fn api_keys(&self, tenant: &TenantId) -> Result<Vec<StoredApiKey>, StoreError> {
        sqlx::query("SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id")
            .bind(tenant.as_str())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(key_from)
            .collect()
    }

    async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        at: OffsetDateTime,
        audit: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let result = sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE tenant_id = ? AND key_id = ?",
        )
        .bind(text(at)?)
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
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?")
            .bind(text(at)?)
            .bind(key_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn count_active_api_keys(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let expiries: Vec<Option<String>> =
            sqlx::query_scalar("SELECT expires_at FROM api_keys WHERE revoked_at IS NULL")
                .fetch_all(self.pool())
                .await?;
        count_active(&expiries, now)
    }
}
