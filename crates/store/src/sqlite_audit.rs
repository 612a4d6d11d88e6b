//! [`AuditStore`] on SQLite. SQLite has one writer, and every append runs inside a write
//! transaction (`BEGIN IMMEDIATE`), so reading the last `seq` and inserting the next ones
//! cannot interleave with another append: the sequence stays gap-free across processes.

use std::borrow::Borrow;
use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, SqliteConnection};
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::StoreError;
use crate::audit::{AuditDraft, AuditStore, LeafFilter, StoredCheckpoint, StoredLeaf};
use crate::sqlite::SqliteStore;
use crate::sqlite_queue::{BEGIN_WRITE, parse_stamp, stamp};

/// 9 values a row: 100 rows stay far below SQLite's bound-parameter limit.
const ROWS_PER_INSERT: usize = 100;

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

fn leaf_from(row: &SqliteRow) -> Result<StoredLeaf, StoreError> {
    Ok(StoredLeaf {
        seq: seq_from(row.try_get("seq")?)?,
        record_id: row.try_get("record_id")?,
        event_type: row.try_get("event_type")?,
        time: parse_stamp(&row.try_get::<String, _>("time")?)?,
        logged: parse_stamp(&row.try_get::<String, _>("logged")?)?,
        hash: hash_from(row.try_get("leaf_hash")?, "a leaf hash")?,
        bytes: row.try_get("bytes")?,
    })
}

fn checkpoint_from(row: &SqliteRow) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: seq_from(row.try_get("size")?)?,
        root: hash_from(row.try_get("root")?, "a checkpoint root")?,
        note: row.try_get("note")?,
        signed_at: parse_stamp(&row.try_get::<String, _>("signed_at")?)?,
    })
}

/// Now, to the microsecond the stored text keeps, and never before `floor`: `logged` does not
/// go backwards within a log even if the clock does.
fn append_time(floor: Option<OffsetDateTime>) -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now);
    match floor {
        Some(floor) if floor > now => floor,
        _ => now,
    }
}

impl SqliteStore {
    /// Append `drafts` to `tenant`'s log inside the caller's write transaction.
    pub(crate) async fn append_audit_in<D: Borrow<AuditDraft> + Sync>(
        &self,
        connection: &mut SqliteConnection,
        tenant: &TenantId,
        drafts: &[D],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let encoder = self.leaf_encoder()?;
        let last = sqlx::query(
            "SELECT seq, logged FROM audit_leaves WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(&mut *connection)
        .await?;
        let (mut next, floor) = match last {
            Some(row) => (
                seq_from(row.try_get("seq")?)? + 1,
                Some(parse_stamp(&row.try_get::<String, _>("logged")?)?),
            ),
            None => (0, None),
        };
        let logged = append_time(floor);
        let logged_text = stamp(logged)?;
        let mut keys_in_batch: HashSet<&str> = HashSet::new();
        let mut placed = Vec::with_capacity(drafts.len());
        let mut rows = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let draft: &AuditDraft = draft.borrow();
            if let Some(key) = draft.dedupe_key.as_deref() {
                let known: Option<i64> = sqlx::query_scalar(
                    "SELECT seq FROM audit_leaves WHERE tenant_id = ? AND dedupe_key = ?",
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
            rows.push((next, draft, stamp(draft.time)?, leaf));
            placed.push(Some(next));
            next += 1;
        }
        // Many rows per statement: each statement is a round trip to the connection's thread.
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO audit_leaves (tenant_id, seq, record_id, event_type, time, logged, \
                 leaf_hash, bytes, dedupe_key) VALUES {values}"
            );
            let mut insert = sqlx::query(AssertSqlSafe(sql));
            for (seq, draft, time, leaf) in chunk {
                insert = insert
                    .bind(tenant.as_str())
                    .bind(to_i64(*seq)?)
                    .bind(&leaf.record_id)
                    .bind(&draft.event_type)
                    .bind(time)
                    .bind(&logged_text)
                    .bind(&leaf.hash[..])
                    .bind(&leaf.bytes)
                    .bind(&draft.dedupe_key);
            }
            insert.execute(&mut *connection).await?;
        }
        Ok(placed)
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(
        &self,
        tenant: &TenantId,
        drafts: &[AuditDraft],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        let placed = self
            .append_audit_in(&mut transaction, tenant, drafts)
            .await?;
        transaction.commit().await?;
        Ok(placed)
    }

    async fn audit_size(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM audit_leaves WHERE tenant_id = ?")
                .bind(tenant.as_str())
                .fetch_one(self.pool())
                .await?;
        last.map_or(Ok(0), |last| Ok(seq_from(last)? + 1))
    }

    async fn audit_leaves(
        &self,
        tenant: &TenantId,
        filter: &LeafFilter,
    ) -> Result<Vec<StoredLeaf>, StoreError> {
        let mut sql = String::from("SELECT * FROM audit_leaves WHERE tenant_id = ? AND seq >= ?");
        let mut texts = Vec::new();
        if let Some(event_type) = &filter.event_type {
            sql.push_str(" AND event_type = ?");
            texts.push(event_type.clone());
        }
        if let Some(since) = filter.since {
            sql.push_str(" AND time >= ?");
            texts.push(stamp(since)?);
        }
        if let Some(until) = filter.until {
            sql.push_str(" AND time < ?");
            texts.push(stamp(until)?);
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(to_i64(filter.from)?);
        for text in &texts {
            query = query.bind(text);
        }
        query
            .bind(i64::from(filter.limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(leaf_from)
            .collect()
    }

    async fn audit_leaf_by_id(
        &self,
        tenant: &TenantId,
        record_id: &str,
    ) -> Result<Option<StoredLeaf>, StoreError> {
        sqlx::query("SELECT * FROM audit_leaves WHERE tenant_id = ? AND record_id = ?")
            .bind(tenant.as_str())
            .bind(record_id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(leaf_from)
            .transpose()
    }

    async fn audit_leaf_hashes(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT seq, leaf_hash FROM audit_leaves WHERE tenant_id = ? AND seq >= ? AND seq < ? \
             ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .fetch_all(self.pool())
        .await?;
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
        sqlx::query(
            "INSERT INTO audit_checkpoints (tenant_id, size, root, note, signed_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(tenant.as_str())
        .bind(to_i64(checkpoint.size)?)
        .bind(&checkpoint.root[..])
        .bind(&checkpoint.note)
        .bind(stamp(checkpoint.signed_at)?)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let after = match after {
            Some(after) => stamp(after)?,
            None => String::new(),
        };
        sqlx::query(
            "SELECT * FROM audit_checkpoints WHERE tenant_id = ? AND signed_at > ? \
             ORDER BY signed_at, size LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(checkpoint_from)
        .collect()
    }

    async fn latest_checkpoint(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        sqlx::query(
            "SELECT * FROM audit_checkpoints WHERE tenant_id = ? \
             ORDER BY signed_at DESC, size DESC LIMIT 1",
        )
        .bind(tenant.as_str())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(checkpoint_from)
        .transpose()
    }

    async fn withhold_audit_payloads(
        &self,
        tenant: &TenantId,
        below: u64,
        record: &AuditDraft,
    ) -> Result<u64, StoreError> {
        let mut transaction = self.pool().begin_with(BEGIN_WRITE).await?;
        let withheld = sqlx::query(
            "UPDATE audit_leaves SET bytes = NULL \
             WHERE tenant_id = ? AND seq > 0 AND seq < ? AND bytes IS NOT NULL",
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
        let seq: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(seq) FROM audit_leaves WHERE tenant_id = ? AND logged >= ?",
        )
        .bind(tenant.as_str())
        .bind(stamp(at)?)
        .fetch_one(self.pool())
        .await?;
        seq.map(seq_from).transpose()
    }

    async fn audit_tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let tenants: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT tenant_id FROM audit_leaves ORDER BY tenant_id")
                .fetch_all(self.pool())
                .await?;
        tenants
            .iter()
            .map(|raw| {
                TenantId::parse(raw)
                    .map_err(|error| StoreError::Corrupt(format!("tenant {raw:?}: {error}")))
            })
            .collect()
    }

    async fn sink_cursor(&self, tenant: &TenantId, sink: &str) -> Result<u64, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_seq FROM audit_sink_cursors WHERE tenant_id = ? AND sink = ?",
        )
        .bind(tenant.as_str())
        .bind(sink)
        .fetch_optional(self.pool())
        .await?;
        next.map_or(Ok(0), seq_from)
    }

    async fn set_sink_cursor(
        &self,
        tenant: &TenantId,
        sink: &str,
        next: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_sink_cursors (tenant_id, sink, next_seq, updated_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, sink) \
             DO UPDATE SET next_seq = excluded.next_seq, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(sink)
        .bind(to_i64(next)?)
        .bind(stamp(OffsetDateTime::now_utc())?)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
