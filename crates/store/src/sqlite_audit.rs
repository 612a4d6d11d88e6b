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
use crate::audit::{
    AuditDraft, AuditStore, HASHES_PER_READ, LeafFilter, StoredCheckpoint, StoredLeaf,
    check_packed_hashes, missing_leaf, unpack_hashes,
};
use crate::sqlite::SqliteStore;
use crate::sqlite_pack::{pack, unpack_or_stored};
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

/// Leaves `?2..?3` of tenant `?1` in one row: how many, the shortest and longest hash, and the
/// hashes in seq order as hex text (SQLite has no binary concatenation). The ordered subquery
/// walks the narrow `audit_leaf_hashes` index (migration 12) and the aggregate takes its rows
/// in that order (an aggregate over an ordered subquery is not flattened); `string_agg(…
/// ORDER BY seq)` would sort them again in a temporary b-tree, twice the time. The plan and
/// the order across 70,000 leaves are tested.
const PACKED_HASHES: &str = "SELECT COUNT(*), MIN(length(hash)), MAX(length(hash)), \
     string_agg(hex(hash), '') FROM (SELECT leaf_hash AS hash FROM audit_leaves \
     INDEXED BY audit_leaf_hashes WHERE tenant_id = ? AND seq >= ? AND seq < ? ORDER BY seq)";

/// Hex text (as SQLite's `hex()` writes it: upper case, two digits a byte) to bytes.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn digit(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'A'..=b'F' => Some(byte - b'A' + 10),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

fn leaf_from(row: &SqliteRow) -> Result<StoredLeaf, StoreError> {
    let seq = seq_from(row.try_get("seq")?)?;
    Ok(StoredLeaf {
        seq,
        record_id: row.try_get("record_id")?,
        event_type: row.try_get("event_type")?,
        time: parse_stamp(&row.try_get::<String, _>("time")?)?,
        logged: parse_stamp(&row.try_get::<String, _>("logged")?)?,
        hash: hash_from(row.try_get("leaf_hash")?, "a leaf hash")?,
        bytes: row
            .try_get::<Option<Vec<u8>>, _>("bytes")?
            .map(|stored| unpack_or_stored(stored, seq)),
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

/// The last leaf of tenant `?`'s log, read inside the write transaction that appends after
/// it (the gate's group commit sends it in one statement with its `BEGIN`).
pub(crate) const LOG_TIP: &str =
    "SELECT seq, logged FROM audit_leaves WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1";

/// Where a log's next leaf goes: its seq, and the `logged` time the last leaf carries (the
/// next is never logged before it). The default is an empty log.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LogTip {
    next: u64,
    floor: Option<OffsetDateTime>,
}

impl LogTip {
    /// From a row of [`LOG_TIP`].
    pub(crate) fn from_row(row: &SqliteRow) -> Result<Self, StoreError> {
        Ok(Self {
            next: seq_from(row.try_get("seq")?)? + 1,
            floor: Some(parse_stamp(&row.try_get::<String, _>("logged")?)?),
        })
    }
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
    /// Which leaf of `from..to` is missing, read seq by seq (only after a packed read came up
    /// short). `None` when none is: the range changed between the two reads.
    async fn locate_missing_leaf(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Option<StoreError>, StoreError> {
        let seqs: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM audit_leaves WHERE tenant_id = ? AND seq >= ? AND seq < ? ORDER BY seq",
        )
        .bind(tenant.as_str())
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .fetch_all(self.pool())
        .await?;
        let seqs = seqs
            .into_iter()
            .map(seq_from)
            .collect::<Result<Vec<_>, _>>()?;
        let present = seqs.len();
        Ok((u64::try_from(present).ok() != Some(to - from))
            .then(|| missing_leaf(tenant, from, to, seqs)))
    }

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
        let tip = sqlx::query(LOG_TIP)
            .bind(tenant.as_str())
            .fetch_optional(&mut *connection)
            .await?;
        let tip = tip.as_ref().map(LogTip::from_row).transpose()?;
        self.append_after(connection, tenant, tip.unwrap_or_default(), drafts, false)
            .await
    }

    /// Append `drafts` after `tip` (read in the same write transaction); with `commit`, the
    /// last statement also commits the transaction (each statement is a round trip to the
    /// connection's thread), and the commit runs alone when there is nothing to insert.
    pub(crate) async fn append_after<D: Borrow<AuditDraft> + Sync>(
        &self,
        connection: &mut SqliteConnection,
        tenant: &TenantId,
        tip: LogTip,
        drafts: &[D],
        commit: bool,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let mut next = tip.next;
        let logged = append_time(tip.floor);
        let logged_text = stamp(logged)?;
        let mut keys_in_batch: HashSet<&str> = HashSet::new();
        let mut placed = Vec::with_capacity(drafts.len());
        let mut rows = Vec::with_capacity(drafts.len());
        if !drafts.is_empty() {
            let encoder = self.leaf_encoder()?;
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
                let mut leaf = encoder
                    .encode(tenant, draft, next, logged)
                    .map_err(|error| {
                        StoreError::InvalidInput(format!(
                            "audit record {:?}: {error}",
                            draft.event_type
                        ))
                    })?;
                // Packed here, on the writer's path, because only SQLite's pages need it.
                let stored = pack(std::mem::take(&mut leaf.bytes));
                rows.push((next, draft, stamp(draft.time)?, leaf, stored));
                placed.push(Some(next));
                next += 1;
            }
        }
        if rows.is_empty() {
            if commit {
                sqlx::raw_sql("COMMIT").execute(&mut *connection).await?;
            }
            return Ok(placed);
        }
        // Many rows per statement: each statement is a round trip to the connection's thread.
        let chunks = rows.len().div_ceil(ROWS_PER_INSERT);
        for (index, chunk) in rows.chunks(ROWS_PER_INSERT).enumerate() {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut sql = format!(
                "INSERT INTO audit_leaves (tenant_id, seq, record_id, event_type, time, logged, \
                 leaf_hash, bytes, dedupe_key) VALUES {values}"
            );
            if commit && index + 1 == chunks {
                sql.push_str("; COMMIT");
            }
            let mut insert = sqlx::query(AssertSqlSafe(sql));
            for (seq, draft, time, leaf, stored) in chunk {
                insert = insert
                    .bind(tenant.as_str())
                    .bind(to_i64(*seq)?)
                    .bind(&leaf.record_id)
                    .bind(&draft.event_type)
                    .bind(time)
                    .bind(&logged_text)
                    .bind(&leaf.hash[..])
                    .bind(stored)
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
        to_i64(to)?;
        let mut hashes = Vec::new();
        let mut start = from;
        while start < to {
            let end = to.min(start.saturating_add(HASHES_PER_READ));
            let (count, shortest, longest, packed): (
                i64,
                Option<i64>,
                Option<i64>,
                Option<String>,
            ) = sqlx::query_as(PACKED_HASHES)
                .bind(tenant.as_str())
                .bind(to_i64(start)?)
                .bind(to_i64(end)?)
                .fetch_one(self.pool())
                .await?;
            if let Err(error) = check_packed_hashes(tenant, start, end, count, (shortest, longest))
            {
                return Err(self
                    .locate_missing_leaf(tenant, start, end)
                    .await?
                    .unwrap_or(error));
            }
            let packed = decode_hex(packed.as_deref().unwrap_or_default()).ok_or_else(|| {
                StoreError::Corrupt(format!("audit log of {tenant}: unreadable leaf hashes"))
            })?;
            unpack_hashes(tenant, start, end, &packed, &mut hashes)?;
            start = end;
        }
        Ok(hashes)
    }

    async fn add_checkpoint(
        &self,
        tenant: &TenantId,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        // On the durable connection: a signed checkpoint is handed to others (exports, SIEM
        // copies) and must survive power loss; and SQLite's writers then queue for that one
        // connection instead of meeting a locked file and sleeping in its busy handler
        // (1, 2, 5, 10 … ms), which stalled the gate's group commit behind each checkpoint.
        sqlx::query(
            "INSERT INTO audit_checkpoints (tenant_id, size, root, note, signed_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(tenant.as_str())
        .bind(to_i64(checkpoint.size)?)
        .bind(&checkpoint.root[..])
        .bind(&checkpoint.note)
        .bind(stamp(checkpoint.signed_at)?)
        .execute(self.durable_pool())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    #[tokio::test]
    async fn packed_hashes_are_read_through_the_narrow_index() {
        let (_dir, store) = crate::sqlite::tests::store_in_new_dir("plan.db").await;
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {PACKED_HASHES}")))
                .bind("acme")
                .bind(0_i64)
                .bind(10_i64)
                .fetch_all(store.pool())
                .await
                .unwrap();
        let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
        assert!(
            steps
                .iter()
                .any(|step| step.contains("COVERING INDEX audit_leaf_hashes")),
            "{steps:?}"
        );
        assert!(
            !steps.iter().any(|step| step.contains("TEMP B-TREE")),
            "the index gives the order, nothing is sorted: {steps:?}"
        );
    }

    #[test]
    fn hex_is_decoded_or_refused() {
        assert_eq!(decode_hex("00ff7Fa0"), Some(vec![0, 255, 127, 160]));
        assert_eq!(decode_hex(""), Some(vec![]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
