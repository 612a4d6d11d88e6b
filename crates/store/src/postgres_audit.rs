//! [`AuditStore`] on PostgreSQL. Several replicas append at once, so every append locks its
//! log's head row (`audit_heads`, through `tollgate_audit_head`, migration 11) in its
//! transaction before it takes the next `seq`, and moves the head in the statement that
//! inserts the leaves: two appends to one tenant's log queue up, and the sequence stays
//! gap-free; appends to different tenants do not wait for each other.

use std::borrow::Borrow;
use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgRow};
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use crate::StoreError;
use crate::audit::{
    AuditDraft, AuditStore, EncodedLeaf, HASHES_PER_READ, LeafFilter, StoredCheckpoint, StoredLeaf,
    check_packed_hashes, missing_leaf, unpack_hashes,
};
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

/// A batch of leaves as one array per column, for one `INSERT … SELECT … FROM UNNEST`.
struct LeafColumns {
    seq: Vec<i64>,
    record_id: Vec<String>,
    event_type: Vec<String>,
    time: Vec<OffsetDateTime>,
    leaf_hash: Vec<Vec<u8>>,
    bytes: Vec<Vec<u8>>,
    dedupe_key: Vec<Option<String>>,
}

impl LeafColumns {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            seq: Vec::with_capacity(capacity),
            record_id: Vec::with_capacity(capacity),
            event_type: Vec::with_capacity(capacity),
            time: Vec::with_capacity(capacity),
            leaf_hash: Vec::with_capacity(capacity),
            bytes: Vec::with_capacity(capacity),
            dedupe_key: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, seq: i64, draft: &AuditDraft, leaf: EncodedLeaf) {
        self.seq.push(seq);
        self.record_id.push(leaf.record_id);
        self.event_type.push(draft.event_type.clone());
        self.time.push(draft.time);
        self.leaf_hash.push(leaf.hash.to_vec());
        self.bytes.push(leaf.bytes);
        self.dedupe_key.push(draft.dedupe_key.clone());
    }
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
        // The log's head, locked until the caller's transaction ends, in one round trip
        // (migration 11): two appends to one log queue up here, and the sequence stays
        // gap-free.
        let head = sqlx::query("SELECT next_seq, logged FROM tollgate_audit_head($1)")
            .bind(tenant.as_str())
            .fetch_one(&mut *connection)
            .await?;
        let mut next = seq_from(head.try_get("next_seq")?)?;
        let floor: Option<OffsetDateTime> = head.try_get("logged")?;
        // `logged` does not go backwards within a log even if the clock does.
        let logged = match (floor, now()) {
            (Some(floor), now) if floor > now => floor,
            (_, now) => now,
        };
        // Records already in the log under their source's key (a redelivered event), found in
        // one query for the whole batch.
        let keys: Vec<&str> = drafts
            .iter()
            .filter_map(|draft| draft.borrow().dedupe_key.as_deref())
            .collect();
        let known: HashSet<String> = if keys.is_empty() {
            HashSet::new()
        } else {
            sqlx::query_scalar(
                "SELECT dedupe_key FROM audit_leaves WHERE tenant_id = $1 AND dedupe_key = ANY($2)",
            )
            .bind(tenant.as_str())
            .bind(&keys)
            .fetch_all(&mut *connection)
            .await?
            .into_iter()
            .collect()
        };
        let mut keys_in_batch: HashSet<&str> = HashSet::new();
        let mut placed = Vec::with_capacity(drafts.len());
        let mut rows = LeafColumns::with_capacity(drafts.len());
        for draft in drafts {
            let draft: &AuditDraft = draft.borrow();
            if let Some(key) = draft.dedupe_key.as_deref()
                && (known.contains(key) || !keys_in_batch.insert(key))
            {
                placed.push(None);
                continue;
            }
            let leaf = encoder
                .encode(tenant, draft, next, logged)
                .map_err(|error| {
                    StoreError::InvalidInput(format!(
                        "audit record {:?}: {error}",
                        draft.event_type
                    ))
                })?;
            rows.push(to_i64(next)?, draft, leaf);
            placed.push(Some(next));
            next += 1;
        }
        // One statement for the whole batch, whatever its size (each statement is a round trip
        // to the server), moving the head along with the leaves.
        if !rows.seq.is_empty() {
            sqlx::query(
                "WITH head AS (UPDATE audit_heads SET next_seq = $10, logged = $2 \
                 WHERE tenant_id = $1) \
                 INSERT INTO audit_leaves (tenant_id, seq, record_id, event_type, time, logged, \
                 leaf_hash, bytes, dedupe_key) \
                 SELECT $1, seq, record_id, event_type, time, $2, leaf_hash, bytes, dedupe_key \
                 FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::timestamptz[], \
                 $7::bytea[], $8::bytea[], $9::text[]) \
                 AS leaf (seq, record_id, event_type, time, leaf_hash, bytes, dedupe_key)",
            )
            .bind(tenant.as_str())
            .bind(logged)
            .bind(&rows.seq)
            .bind(&rows.record_id)
            .bind(&rows.event_type)
            .bind(&rows.time)
            .bind(&rows.leaf_hash)
            .bind(&rows.bytes)
            .bind(&rows.dedupe_key)
            .bind(to_i64(next)?)
            .execute(&mut *connection)
            .await?;
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
        to_i64(to)?;
        let mut hashes = Vec::new();
        let mut start = from;
        while start < to {
            let end = to.min(start.saturating_add(HASHES_PER_READ));
            let mut transaction = self.begin_for(tenant).await?;
            // One row for the whole range: the hashes concatenated in seq order.
            let (count, shortest, longest, packed): (
                i64,
                Option<i32>,
                Option<i32>,
                Option<Vec<u8>>,
            ) = sqlx::query_as(
                "SELECT COUNT(*), MIN(length(leaf_hash)), MAX(length(leaf_hash)), \
                     string_agg(leaf_hash, ''::bytea ORDER BY seq) FROM audit_leaves \
                     WHERE tenant_id = $1 AND seq >= $2 AND seq < $3",
            )
            .bind(tenant.as_str())
            .bind(to_i64(start)?)
            .bind(to_i64(end)?)
            .fetch_one(&mut *transaction)
            .await?;
            let lengths = (shortest.map(i64::from), longest.map(i64::from));
            if let Err(error) = check_packed_hashes(tenant, start, end, count, lengths) {
                let seqs: Vec<i64> = sqlx::query_scalar(
                    "SELECT seq FROM audit_leaves WHERE tenant_id = $1 AND seq >= $2 \
                     AND seq < $3 ORDER BY seq",
                )
                .bind(tenant.as_str())
                .bind(to_i64(start)?)
                .bind(to_i64(end)?)
                .fetch_all(&mut *transaction)
                .await?;
                let seqs = seqs
                    .into_iter()
                    .map(seq_from)
                    .collect::<Result<Vec<_>, _>>()?;
                if u64::try_from(seqs.len()).ok() != Some(end - start) {
                    return Err(missing_leaf(tenant, start, end, seqs));
                }
                return Err(error);
            }
            transaction.commit().await?;
            unpack_hashes(
                tenant,
                start,
                end,
                packed.as_deref().unwrap_or_default(),
                &mut hashes,
            )?;
            start = end;
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
