//! [`AuditStore`] on PostgreSQL. Several replicas append at once, so every append takes a
//! per-tenant advisory lock in its transaction (`pg_advisory_xact_lock`) before it reads the
//! last `seq`: two appends to one tenant's log queue up, and the sequence stays gap-free;
//! appends to different tenants do not wait for each other.

use std::borrow::Borrow;
use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::StoreError;
use crate::audit::{AuditDraft, AuditStore, LeafFilter, StoredCheckpoint, StoredLeaf};
use crate::postgres::{PostgresStore, now, tenant_column};

const LEAF_COLUMNS: &str =
    "seq, record_id, event_type, time, logged, leaf_hash, bytes FROM audit_leaves";

fn hash_from(raw: Vec<u8>, what: &str) -> Result<[u8; 32], StoreError> {
    raw.try_into().map_err(|raw: Vec<u8>| {
        StoreError::Corrupt(format!("{what} has {} bytes, not 32", raw.len()))
    })
}

fn seq_from(raw: i64) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| StoreError::Corrupt(format!("negative audit seq {raw}")))
}

fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::InvalidInput(format!("{value} is out of range")))
}

fn leaf_from(row: &PgRow) -> Result<StoredLeaf, StoreError> {
    Ok(StoredLeaf {
        seq: seq_from(row.try_get("seq")?)?,
        record_id: row.try_get("record_id")?,
        event_type: row.try_get("event_type")?,
        time: row.try_get("time")?,
        logged: row.try_get("logged")?,
        hash: hash_from(row.try_get("leaf_hash")?, "a leaf hash")?,
        bytes: row.try_get("bytes")?,
    })
}

fn checkpoint_from(row: &PgRow) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: seq_from(row.try_get("size")?)?,
        root: hash_from(row.try_get("root")?, "a checkpoint root")?,
        note: row.try_get("note")?,
        signed_at: row.try_get("signed_at")?,
    })
}

impl PostgresStore {
    /// Append `drafts` to `tenant`'s log inside the caller's transaction, which from here on
    /// is scoped to `tenant`.
    pub(crate) async fn append_audit_in<D: Borrow<AuditDraft> + Sync>(
        &self,
        connection: &mut PgConnection,
        tenant: &TenantId,
        drafts: &[D],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let encoder = self.leaf_encoder()?;
        sqlx::query(
            "SELECT set_config('app.tenant_id', $1, true), \
             pg_advisory_xact_lock(hashtextextended('tollgate.audit/' || $1, 0))",
        )
        .bind(tenant.as_str())
        .execute(&mut *connection)
        .await?;
        let last = sqlx::query(
            "SELECT seq, logged FROM audit_leaves WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *connection)
        .await?;
        let (mut next, floor) = match last {
            Some(row) => (
                seq_from(row.try_get("seq")?)? + 1,
                Some(row.try_get::<OffsetDateTime, _>("logged")?),
            ),
            None => (0, None),
        };
        // `logged` does not go backwards within a log even if the clock does.
        let logged = match (floor, now()) {
            (Some(floor), now) if floor > now => floor,
            (_, now) => now,
        };
        let mut keys_in_batch: HashSet<&str> = HashSet::new();
        let mut placed = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let draft: &AuditDraft = draft.borrow();
            if let Some(key) = draft.dedupe_key.as_deref() {
                let known: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM audit_leaves WHERE tenant_id = $1 AND dedupe_key = $2",
                )
                .bind(tenant.as_str())
                .bind(key)
                .fetch_optional(&mut *connection)
                .await?;
                if known.is_some() || !keys_in_batch.insert(key) {
                    placed.push(None);
                    continue;
                }
            }
            let leaf = encoder
                .encode(tenant, draft, next, logged)
                .map_err(|error| {
                    StoreError::InvalidInput(format!(
                        "audit record {:?}: {error}",
                        draft.event_type
                    ))
                })?;
            sqlx::query(
                "INSERT INTO audit_leaves (tenant_id, seq, record_id, event_type, time, logged, \
                 leaf_hash, bytes, dedupe_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(tenant.as_str())
            .bind(to_i64(next)?)
            .bind(&leaf.record_id)
            .bind(&draft.event_type)
            .bind(draft.time)
            .bind(logged)
            .bind(&leaf.hash[..])
            .bind(&leaf.bytes)
            .bind(&draft.dedupe_key)
            .execute(&mut *connection)
            .await?;
            placed.push(Some(next));
            next += 1;
        }
        Ok(placed)
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(
        &self,
        tenant: &TenantId,
        drafts: &[AuditDraft],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let placed = self
            .append_audit_in(&mut transaction, tenant, drafts)
            .await?;
        transaction.commit().await?;
        Ok(placed)
    }

    async fn audit_size(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM audit_leaves WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_one(&mut *transaction)
                .await?;
        transaction.commit().await?;
        last.map_or(Ok(0), |last| Ok(seq_from(last)? + 1))
    }

    async fn audit_leaves(
        &self,
        tenant: &TenantId,
        filter: &LeafFilter,
    ) -> Result<Vec<StoredLeaf>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEAF_COLUMNS} WHERE tenant_id = $1 AND seq >= $2 \
             AND ($3::text IS NULL OR event_type = $3) \
             AND ($4::timestamptz IS NULL OR time >= $4) \
             AND ($5::timestamptz IS NULL OR time < $5) ORDER BY seq LIMIT $6"
        )))
        .bind(tenant.as_str())
        .bind(to_i64(filter.from)?)
        .bind(&filter.event_type)
        .bind(filter.since)
        .bind(filter.until)
        .bind(i64::from(filter.limit))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(leaf_from).collect()
    }

    async fn audit_leaf_by_id(
        &self,
        tenant: &TenantId,
        record_id: &str,
    ) -> Result<Option<StoredLeaf>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LEAF_COLUMNS} WHERE tenant_id = $1 AND record_id = $2"
        )))
        .bind(tenant.as_str())
        .bind(record_id)
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        row.as_ref().map(leaf_from).transpose()
    }

    async fn audit_leaf_hashes(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, leaf_hash FROM audit_leaves WHERE tenant_id = $1 AND seq >= $2 \
             AND seq < $3 ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        let mut expected = from;
        let mut hashes = Vec::with_capacity(rows.len());
        for (seq, hash) in rows {
            // A hole means rows were deleted under us: say so rather than build a wrong tree.
            if seq_from(seq)? != expected {
                return Err(StoreError::Corrupt(format!(
                    "audit log of {tenant}: leaf {expected} is missing"
                )));
            }
            hashes.push(hash_from(hash, "a leaf hash")?);
            expected += 1;
        }
        if expected != to {
            return Err(StoreError::Corrupt(format!(
                "audit log of {tenant}: leaves {expected}..{to} are missing"
            )));
        }
        Ok(hashes)
    }

    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        sqlx::query(
            "INSERT INTO audit_checkpoints (tenant_id, size, root, note, signed_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant.as_str())
        .bind(to_i64(checkpoint.size)?)
        .bind(&checkpoint.root[..])
        .bind(&checkpoint.note)
        .bind(checkpoint.signed_at)
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT size, root, note, signed_at FROM audit_checkpoints WHERE tenant_id = $1 \
             AND ($2::timestamptz IS NULL OR signed_at > $2) ORDER BY signed_at, size LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(checkpoint_from).collect()
    }

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let row = sqlx::query(
            "SELECT size, root, note, signed_at FROM audit_checkpoints WHERE tenant_id = $1 \
             ORDER BY signed_at DESC, size DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        row.as_ref().map(checkpoint_from).transpose()
    }

    async fn withhold_audit_payloads(
        &self,
        tenant: &TenantId,
        below: u64,
        record: &AuditDraft,
    ) -> Result<u64, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let withheld = sqlx::query(
            "UPDATE audit_leaves SET bytes = NULL \
             WHERE tenant_id = $1 AND seq > 0 AND seq < $2 AND bytes IS NOT NULL",
        )
        .bind(tenant.as_str())
        .bind(to_i64(below)?)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        self.append_audit_in(&mut transaction, tenant, std::slice::from_ref(record))
            .await?;
        transaction.commit().await?;
        Ok(withheld)
    }

    async fn first_seq_logged_since(
        &self,
        tenant: &TenantId,
        at: OffsetDateTime,
    ) -> Result<Option<u64>, StoreError> {
        // `logged` never decreases along `seq`, so the first match in seq order is the cut.
        let mut transaction = self.begin_for(tenant).await?;
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(seq) FROM audit_leaves WHERE tenant_id = $1 AND logged >= $2",
        )
        .bind(tenant.as_str())
        .bind(at)
        .fetch_one(&mut *transaction)
        .await?;
        transaction.commit().await?;
        seq.map(seq_from).transpose()
    }

    async fn audit_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let mut transaction = self.begin_across_tenants().await?;
        let rows = sqlx::query("SELECT DISTINCT tenant_id FROM audit_leaves ORDER BY tenant_id")
            .fetch_all(&mut *transaction)
            .await?;
        transaction.commit().await?;
        rows.iter().map(tenant_column).collect()
    }

    async fn sink_cursor(&self, tenant: &TenantId, sink: &str) -> Result<u64, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_seq FROM audit_sink_cursors WHERE tenant_id = $1 AND sink = $2",
        )
        .bind(tenant.as_str())
        .bind(sink)
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        next.map_or(Ok(0), seq_from)
    }

    async fn set_sink_cursor(
        &self,
        tenant: &TenantId,
        sink: &str,
        next: u64,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        sqlx::query(
            "INSERT INTO audit_sink_cursors (tenant_id, sink, next_seq, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, sink) \
             DO UPDATE SET next_seq = excluded.next_seq, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(sink)
        .bind(to_i64(next)?)
        .bind(now())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }
}
