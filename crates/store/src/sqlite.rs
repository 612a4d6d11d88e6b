//! The embedded default: SQLite in WAL mode.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Row, SqlitePool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::{InventoryItem, ResourceKind, SyncRunId, TenantId};

use crate::migrate::SQLITE as MIGRATIONS;
use crate::sqlite_queue::BEGIN_WRITE;
use crate::sqlite_wal::WalCopier;
use crate::{
    AuditDraft, INVENTORY_VERSION, InventoryChange, InventoryStore, LeafEncoder, Replace,
    StoreError, StoredKey, SyncMode, SyncRecord, inventory_version_token,
};

/// IN-lists are chunked well below SQLite's bound-parameter limit.
pub(crate) const CHUNK: usize = 500;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Set once at startup; shared by clones.
    audit_encoder: Arc<EncoderSlot>,
    /// One connection to the same file with `synchronous = FULL`, for writes that are
    /// acknowledged to someone who will not send them again (webhook events, enqueued jobs):
    /// a commit on it is on disk before it returns, surviving power loss, not only a crash.
    /// One connection because SQLite has one writer anyway; callers batch (group commit).
    durable: SqlitePool,
    /// Copies the write-ahead log into the database in the background; stops when the last
    /// clone is dropped.
    _wal_copier: Arc<WalCopier>,
}

/// Where the audit log's [`LeafEncoder`] is kept.
#[derive(Default)]
pub(crate) struct EncoderSlot(pub(crate) OnceLock<Arc<dyn LeafEncoder>>);

impl std::fmt::Debug for EncoderSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "EncoderSlot(set)"
        } else {
            "EncoderSlot(unset)"
        })
    }
}

/// Pages of write-ahead log after which a commit copies the log into the database itself
/// (SQLite's default). The copy runs inside the commit that crosses the mark, so every caller
/// of that group commit waits for it; [`WalCopier`] copies the log in the background as it
/// grows, so such a commit finds little left to copy, and the log starts over after it.
/// docs/PERFORMANCE.md.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 1_000;

/// Each connection's page cache at most, in KiB (SQLite's default is 2,000; the cache grows
/// only as pages are used, and the log copier's connection reads none). A transaction whose
/// changed pages outgrow the cache writes them to the log early and, changed again, again:
/// the gate's group commit of 256 decisions changes about 600 pages.
const CACHE_KIB: u32 = 32_768;

/// The `PRAGMA synchronous` level of each of the store's pools: 0 off, 1 normal, 2 full,
/// 3 extra.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynchronousLevels {
    /// Inventory, findings, job bookkeeping: everything that can be recomputed or redone.
    pub general: i64,
    /// Event ingestion, enqueueing and replay.
    pub durable: i64,
}

fn now_text() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn parse_time(raw: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map_err(|error| StoreError::Corrupt(format!("timestamp {raw:?}: {error}")))
}

fn parse_kind(raw: &str) -> Result<ResourceKind, StoreError> {
    raw.parse()
        .map_err(|error| StoreError::Corrupt(format!("{error}")))
}

/// The row filters a replacement names, as SQL with its bound values: `true` for every row,
/// else one IN-list per chunk of scopes, projects or keys.
fn replacement_filters(replace: &Replace) -> Vec<(String, &[String])> {
    let mut filters: Vec<(String, &[String])> = Vec::new();
    if replace.all {
        filters.push(("true".to_owned(), &[]));
    }
    for (column, values) in [
        ("scope", &replace.scopes),
        ("project", &replace.projects),
        ("key", &replace.keys),
    ] {
        for chunk in values.chunks(CHUNK) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            filters.push((format!("{column} IN ({placeholders})"), chunk));
        }
    }
    filters
}

fn item_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<InventoryItem, StoreError> {
    Ok(InventoryItem {
        kind: parse_kind(&row.try_get::<String, _>("kind")?)?,
        key: row.try_get("key")?,
        scope: row.try_get("scope")?,
        project: row.try_get("project")?,
        ado_id: row.try_get("ado_id")?,
        name: row.try_get("name")?,
        revision: row.try_get("revision")?,
        raw: row.try_get("raw")?,
    })
}

fn sync_record_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<SyncRecord, StoreError> {
    let mode: String = row.try_get("mode")?;
    let summary: Option<String> = row.try_get("summary")?;
    let finished: Option<String> = row.try_get("finished_at")?;
    Ok(SyncRecord {
        id: SyncRunId(row.try_get("id")?),
        mode: if mode == "full" {
            SyncMode::Full
        } else {
            SyncMode::Incremental
        },
        started_at: parse_time(&row.try_get::<String, _>("started_at")?)?,
        finished_at: finished.as_deref().map(parse_time).transpose()?,
        status: row.try_get("status")?,
        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

impl SqliteStore {
    /// Items of a kind whose `column` is one of `values`, ordered by key.
    async fn items_where(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        column: &str,
        values: &[String],
    ) -> Result<Vec<InventoryItem>, StoreError> {
        let mut items = Vec::with_capacity(values.len());
        for chunk in values.chunks(CHUNK) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT kind, key, scope, project, ado_id, name, revision, raw FROM inventory \
                 WHERE tenant_id = ? AND kind = ? AND {column} IN ({placeholders})"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant.as_str())
                .bind(kind.as_str());
            for value in chunk {
                query = query.bind(value);
            }
            for row in query.fetch_all(&self.pool).await? {
                items.push(item_from_row(&row)?);
            }
        }
        items.sort_by(|a, b| a.key.cmp(&b.key));
        items.dedup_by(|a, b| a.key == b.key);
        Ok(items)
    }

    /// Open (creating if missing) the database at `path` and apply pending migrations.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let location = path.to_owned();
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(|source| StoreError::Open {
                location: location.clone(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Inventory rows can always be synced again, so NORMAL (durable at checkpoints)
            // is enough here; acknowledged webhook events will use FULL on their own writes.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
            .pragma("cache_size", format!("-{CACHE_KIB}"));
        // No ping before a connection is handed out: it is a round trip to the connection's
        // thread on every acquire, and an in-process connection has no peer that could have
        // gone away (a crashed worker fails its next statement and is dropped on release).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|source| StoreError::Open {
                location: location.clone(),
                source,
            })?;
        let durable = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone().synchronous(SqliteSynchronous::Full))
            .await
            .map_err(|source| StoreError::Open {
                location: location.clone(),
                source,
            })?;
        let wal_copier = WalCopier::start(&options)
            .await
            .map_err(|source| StoreError::Open { location, source })?;
        let store = Self {
            pool,
            audit_encoder: Arc::default(),
            durable,
            _wal_copier: Arc::new(wal_copier),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Whether the database answers and carries every migration this binary knows (for
    /// `/readyz`): a file replaced or rolled back under a running server is not ready.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?;
        let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
        if applied == known {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "the schema is at version {applied}, this binary needs {known}"
            )))
        }
    }

    /// Give the store the audit log's encoder (once; later calls are refused, so one process
    /// never writes leaves in two encodings).
    pub fn set_leaf_encoder(&self, encoder: Arc<dyn LeafEncoder>) -> Result<(), StoreError> {
        self.audit_encoder.0.set(encoder).map_err(|_| {
            StoreError::InvalidInput("the audit leaf encoder is already set".to_owned())
        })
    }

    pub(crate) fn leaf_encoder(&self) -> Result<&Arc<dyn LeafEncoder>, StoreError> {
        self.audit_encoder
            .0
            .get()
            .ok_or(StoreError::AuditNotConfigured)
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) fn durable_pool(&self) -> &SqlitePool {
        &self.durable
    }

    /// What each pool's connections run with, as SQLite reports it (diagnostics, tests).
    pub async fn synchronous_levels(&self) -> Result<SynchronousLevels, StoreError> {
        Ok(SynchronousLevels {
            general: sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&self.pool)
                .await?,
            durable: sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&self.durable)
                .await?,
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            .execute(&self.pool)
            .await?;
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?;
        let known = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
        if applied > known {
            return Err(StoreError::SchemaTooNew {
                found: applied,
                known,
            });
        }
        for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
            let failed = |source| StoreError::Migration {
                version: migration.version,
                source,
            };
            let mut transaction = self.pool.begin().await.map_err(failed)?;
            sqlx::raw_sql(AssertSqlSafe(migration.sql))
                .execute(&mut *transaction)
                .await
                .map_err(failed)?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            )
            .bind(migration.version)
            .bind(migration.name)
            .bind(now_text())
            .execute(&mut *transaction)
            .await
            .map_err(failed)?;
            transaction.commit().await.map_err(failed)?;
        }
        Ok(())
    }
}

#[async_trait]
impl InventoryStore for SqliteStore {
    async fn begin_sync(
        &self,
        tenant: &TenantId,
        mode: SyncMode,
    ) -> Result<SyncRecord, StoreError> {
        let started = OffsetDateTime::now_utc();
        let id: i64 = sqlx::query_scalar("INSERT INTO sync_runs (tenant_id, mode, started_at, status) VALUES (?, ?, ?, 'running') RETURNING id")
            .bind(tenant.as_str())
            .bind(mode.as_str())
            .bind(started.format(&Rfc3339).unwrap_or_default())
            .fetch_one(&self.pool)
            .await?;
        Ok(SyncRecord {
            id: SyncRunId(id),
            mode,
            started_at: started,
            finished_at: None,
            status: "running".to_owned(),
            summary: None,
        })
    }

    async fn stage(
        &self,
        tenant: &TenantId,
        run: SyncRunId,
        items: &[InventoryItem],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool.begin_with(BEGIN_WRITE).await?;
        for item in items {
            sqlx::query(
                "INSERT INTO inventory_staging (run_id, tenant_id, kind, key, scope, project, ado_id, name, revision, raw) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(run.0)
            .bind(tenant.as_str())
            .bind(item.kind.as_str())
            .bind(&item.key)
            .bind(&item.scope)
            .bind(&item.project)
            .bind(&item.ado_id)
            .bind(&item.name)
            .bind(&item.revision)
            .bind(&item.raw)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    async fn commit_kind(
        &self,
        tenant: &TenantId,
        run: SyncRunId,
        kind: ResourceKind,
        replace: &Replace,
        watermarks: &[(String, String)],
    ) -> Result<u64, StoreError> {
        let filters = replacement_filters(replace);
        // Write-locked from the start: this transaction reads before it writes, and a read
        // snapshot another commit made stale cannot become a write (SQLite answers "database
        // is locked" at once, without waiting).
        let mut transaction = self.pool.begin_with(BEGIN_WRITE).await?;
        let mode: Option<String> =
            sqlx::query_scalar("SELECT mode FROM sync_runs WHERE id = ? AND tenant_id = ?")
                .bind(run.0)
                .bind(tenant.as_str())
                .fetch_optional(&mut *transaction)
                .await?;
        if mode.as_deref() == Some(SyncMode::Incremental.as_str()) {
            // Against the state before this commit: staged rows that are new or differ,
            // then rows the replacement deletes and does not bring back.
            sqlx::query(
                "INSERT INTO inventory_changes (tenant_id, run_id, kind, key, scope, project, deleted) \
                 SELECT s.tenant_id, s.run_id, s.kind, s.key, s.scope, s.project, 0 \
                 FROM inventory_staging s LEFT JOIN inventory i \
                 ON i.tenant_id = s.tenant_id AND i.kind = s.kind AND i.key = s.key \
                 WHERE s.run_id = ? AND s.tenant_id = ? AND s.kind = ? AND (i.key IS NULL OR i.raw IS NOT s.raw)",
            )
            .bind(run.0)
            .bind(tenant.as_str())
            .bind(kind.as_str())
            .execute(&mut *transaction)
            .await?;
            let not_restaged = "key NOT IN (SELECT key FROM inventory_staging WHERE run_id = ? AND tenant_id = ? AND kind = ?)";
            for (filter, values) in &filters {
                let sql = format!(
                    "INSERT INTO inventory_changes (tenant_id, run_id, kind, key, scope, project, deleted) \
                     SELECT tenant_id, ?, kind, key, scope, project, 1 FROM inventory \
                     WHERE tenant_id = ? AND kind = ? AND {filter} AND {not_restaged}"
                );
                let mut query = sqlx::query(AssertSqlSafe(sql))
                    .bind(run.0)
                    .bind(tenant.as_str())
                    .bind(kind.as_str());
                for value in *values {
                    query = query.bind(value);
                }
                query
                    .bind(run.0)
                    .bind(tenant.as_str())
                    .bind(kind.as_str())
                    .execute(&mut *transaction)
                    .await?;
            }
        }
        for (filter, values) in &filters {
            let sql =
                format!("DELETE FROM inventory WHERE tenant_id = ? AND kind = ? AND {filter}");
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant.as_str())
                .bind(kind.as_str());
            for value in *values {
                query = query.bind(value);
            }
            query.execute(&mut *transaction).await?;
        }
        // `WHERE true` disambiguates INSERT … SELECT … ON CONFLICT for SQLite's parser.
        sqlx::query(
            "INSERT INTO inventory (tenant_id, kind, key, scope, project, ado_id, name, revision, raw, synced_at, sync_run) \
             SELECT tenant_id, kind, key, scope, project, ado_id, name, revision, raw, ?, run_id \
             FROM inventory_staging WHERE run_id = ? AND tenant_id = ? AND kind = ? AND true \
             ON CONFLICT (tenant_id, kind, key) DO UPDATE SET scope = excluded.scope, project = excluded.project, \
             ado_id = excluded.ado_id, name = excluded.name, revision = excluded.revision, raw = excluded.raw, \
             synced_at = excluded.synced_at, sync_run = excluded.sync_run",
        )
        .bind(now_text())
        .bind(run.0)
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .execute(&mut *transaction)
        .await?;
        sqlx::query(
            "DELETE FROM inventory_staging WHERE run_id = ? AND tenant_id = ? AND kind = ?",
        )
        .bind(run.0)
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .execute(&mut *transaction)
        .await?;
        // Every commit gives the inventory a new version, never used before, so what was
        // computed from the inventory can be kept until it changes (the gate's facts).
        let version = (
            INVENTORY_VERSION.to_owned(),
            inventory_version_token(run, kind),
        );
        for (name, value) in watermarks.iter().chain(std::iter::once(&version)) {
            sqlx::query(
                "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(tenant.as_str())
            .bind(name)
            .bind(value)
            .bind(now_text())
            .execute(&mut *transaction)
            .await?;
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM inventory WHERE tenant_id = ? AND kind = ?")
                .bind(tenant.as_str())
                .bind(kind.as_str())
                .fetch_one(&mut *transaction)
                .await?;
        transaction.commit().await?;
        Ok(count as u64)
    }

    async fn discard_staged(
        &self,
        tenant: &TenantId,
        run: SyncRunId,
        kind: ResourceKind,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM inventory_staging WHERE run_id = ? AND tenant_id = ? AND kind = ?",
        )
        .bind(run.0)
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn finish_sync(
        &self,
        tenant: &TenantId,
        run: SyncRunId,
        status: &str,
        summary: &Value,
        audit: &[AuditDraft],
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin_with(BEGIN_WRITE).await?;
        let updated = sqlx::query("UPDATE sync_runs SET finished_at = ?, status = ?, summary = ? WHERE id = ? AND tenant_id = ?")
            .bind(now_text())
            .bind(status)
            .bind(summary.to_string())
            .bind(run.0)
            .bind(tenant.as_str())
            .execute(&mut *transaction)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::UnknownRun(run));
        }
        // Whatever a run staged and did not commit is dead weight now.
        sqlx::query("DELETE FROM inventory_staging WHERE run_id = ? AND tenant_id = ?")
            .bind(run.0)
            .bind(tenant.as_str())
            .execute(&mut *transaction)
            .await?;
        self.append_audit_in(&mut transaction, tenant, audit)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn last_successful_sync(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<SyncRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM sync_runs WHERE tenant_id = ? AND status IN ('ok', 'partial') ORDER BY id DESC LIMIT 1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(sync_record_from_row).transpose()
    }

    async fn watermark(&self, tenant: &TenantId, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM watermarks WHERE tenant_id = ? AND name = ?")
                .bind(tenant.as_str())
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn watermarks(
        &self,
        tenant: &TenantId,
        names: &[&str],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; names.len()].join(", ");
        let sql =
            format!("SELECT name, value FROM watermarks WHERE tenant_id = ? AND name IN ({marks})");
        let mut query =
            sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql)).bind(tenant.as_str());
        for name in names {
            query = query.bind(*name);
        }
        let found: std::collections::HashMap<String, String> =
            query.fetch_all(&self.pool).await?.into_iter().collect();
        Ok(names.iter().map(|name| found.get(*name).cloned()).collect())
    }

    async fn keys(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        scope: Option<&str>,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let rows = match scope {
            Some(scope) => {
                sqlx::query("SELECT key, scope, project, ado_id FROM inventory WHERE tenant_id = ? AND kind = ? AND scope = ? ORDER BY key")
                    .bind(tenant.as_str())
                    .bind(kind.as_str())
                    .bind(scope)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT key, scope, project, ado_id FROM inventory WHERE tenant_id = ? AND kind = ? ORDER BY key")
                    .bind(tenant.as_str())
                    .bind(kind.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(StoredKey {
                    key: row.try_get("key")?,
                    scope: row.try_get("scope")?,
                    project: row.try_get("project")?,
                    ado_id: row.try_get("ado_id")?,
                })
            })
            .collect()
    }

    async fn items(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        after_key: Option<&str>,
        limit: u32,
    ) -> Result<Vec<InventoryItem>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, key, scope, project, ado_id, name, revision, raw FROM inventory \
             WHERE tenant_id = ? AND kind = ? AND key > ? ORDER BY key LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .bind(after_key.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    async fn project_items(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        project: &str,
        after_key: Option<&str>,
        limit: u32,
    ) -> Result<Vec<InventoryItem>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, key, scope, project, ado_id, name, revision, raw FROM inventory \
             WHERE tenant_id = ? AND project = ? AND kind = ? AND key > ? ORDER BY key LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(project)
        .bind(kind.as_str())
        .bind(after_key.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    async fn items_by_keys(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        keys: &[String],
    ) -> Result<Vec<InventoryItem>, StoreError> {
        self.items_where(tenant, kind, "key", keys).await
    }

    async fn items_by_ado_ids(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        ado_ids: &[String],
    ) -> Result<Vec<InventoryItem>, StoreError> {
        self.items_where(tenant, kind, "ado_id", ado_ids).await
    }

    async fn syncs_since(
        &self,
        tenant: &TenantId,
        after: Option<SyncRunId>,
    ) -> Result<Vec<SyncRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, mode, started_at, finished_at, status, summary FROM sync_runs \
             WHERE tenant_id = ? AND id > ? ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(after.map_or(0, |run| run.0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sync_record_from_row).collect()
    }

    async fn changes_since(
        &self,
        tenant: &TenantId,
        after: SyncRunId,
    ) -> Result<Vec<InventoryChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, kind, key, scope, project, deleted FROM inventory_changes \
             WHERE tenant_id = ? AND run_id > ? ORDER BY run_id, rowid",
        )
        .bind(tenant.as_str())
        .bind(after.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(InventoryChange {
                    run: SyncRunId(row.try_get("run_id")?),
                    kind: parse_kind(&row.try_get::<String, _>("kind")?)?,
                    key: row.try_get("key")?,
                    scope: row.try_get("scope")?,
                    project: row.try_get("project")?,
                    deleted: row.try_get::<i64, _>("deleted")? != 0,
                })
            })
            .collect()
    }

    async fn prune_changes(&self, tenant: &TenantId, through: SyncRunId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM inventory_changes WHERE tenant_id = ? AND run_id <= ?")
            .bind(tenant.as_str())
            .bind(through.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_watermark(
        &self,
        tenant: &TenantId,
        name: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(name)
        .bind(value)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn counts(&self, tenant: &TenantId) -> Result<BTreeMap<ResourceKind, u64>, StoreError> {
        let mut counts: BTreeMap<ResourceKind, u64> =
            ResourceKind::ALL.iter().map(|k| (*k, 0)).collect();
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM inventory WHERE tenant_id = ? GROUP BY kind",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let kind = parse_kind(&row.try_get::<String, _>("kind")?)?;
            counts.insert(kind, row.try_get::<i64, _>("n")? as u64);
        }
        Ok(counts)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;

    /// A new store in a new directory (dropped with the directory).
    pub(crate) async fn store_in_new_dir(file: &str) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        let store = SqliteStore::open(&path.display().to_string())
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn both_pools_copy_the_log_at_the_mark_and_keep_a_large_cache() {
        let (_dir, store) = store_in_new_dir("pages.db").await;
        for pool in [store.pool(), store.durable_pool()] {
            let pages: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(pages, i64::from(WAL_AUTOCHECKPOINT_PAGES));
            let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(cache, -i64::from(CACHE_KIB));
        }
    }

    fn file_len(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// A commit well below the automatic mark leaves its pages in the log; the background
    /// copy moves them into the database file without another commit or a checkpoint call.
    #[tokio::test]
    async fn the_log_is_copied_into_the_database_in_the_background() {
        let (dir, store) = store_in_new_dir("copied.db").await;
        let path = dir.path().join("copied.db");
        // Let the copy of the migrations settle, then measure from there.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = file_len(&path);
        // About 200 pages: a fifth of the mark, so no commit copies them itself.
        let blob = "x".repeat(800_000);
        sqlx::query("CREATE TABLE filler (body TEXT)")
            .execute(store.durable_pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO filler (body) VALUES (?)")
            .bind(&blob)
            .execute(store.durable_pool())
            .await
            .unwrap();
        // Most of the row's pages must reach the database file (a few may reuse free pages
        // left by the migrations).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while file_len(&path) < before + 600_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file is still {} bytes ({before} before the commit)",
                file_len(&path)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Dropping the store stops the background copy and closes its connection: with every
    /// connection closed SQLite removes the log file.
    #[tokio::test]
    async fn dropping_the_store_stops_the_copy() {
        let (dir, store) = store_in_new_dir("dropped.db").await;
        let wal = dir.path().join("dropped.db-wal");
        assert!(wal.exists());
        store.pool().close().await;
        store.durable_pool().close().await;
        drop(store);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while wal.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "a connection is still open on the database"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
