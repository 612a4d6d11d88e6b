//! PostgreSQL, for several replicas sharing one database (docs/adr/0010-postgresql-store.md).
//!
//! Two roles: an owner that runs [`PostgresStore::migrate`] (it owns the tables) and an app
//! role that [`PostgresStore::connect`] uses (it owns nothing, is no superuser and has no
//! BYPASSRLS, so row-level security binds it). Every table holds tenant rows under a policy
//! keyed on the transaction-local setting `app.tenant_id`; every transaction this store runs
//! for a tenant names it first (`set_config('app.tenant_id', $1, true)`), and still filters by
//! `tenant_id` itself, so a query that forgot the filter is caught by the database.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Postgres, Row, Transaction};
use time::OffsetDateTime;
use tollgate_domain::{InventoryItem, ResourceKind, SyncRunId, TenantId};

use crate::migrate::{Migration, POSTGRES as MIGRATIONS, POSTGRES_TENANT_TABLES};
use crate::sqlite::EncoderSlot;
use crate::{
    AuditDraft, INVENTORY_VERSION, InventoryChange, InventoryStore, LeafEncoder, Replace,
    StoreError, StoredKey, SyncMode, SyncRecord, inventory_version_token,
};

pub(crate) type PgTransaction = Transaction<'static, Postgres>;

/// Connections per replica. Each request or job holds one only for a transaction.
const POOL_SIZE: u32 = 10;

/// Session-level advisory lock key under which migrations run (two replicas may start
/// `tollgate migrate` at once).
const MIGRATION_LOCK: &str = "tollgate.migrate";

/// The PostgreSQL store. Cheap to clone: clones share the pool and the audit encoder.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    audit_encoder: Arc<EncoderSlot>,
}

/// Where a URL points, without its password, for error messages.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    )
}

fn parse_url(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(|source| StoreError::Open {
        // The URL may hold a password: name only its scheme.
        location: "the PostgreSQL URL".to_owned(),
        source,
    })
}

fn parse_kind(raw: &str) -> Result<ResourceKind, StoreError> {
    raw.parse()
        .map_err(|error| StoreError::Corrupt(format!("{error}")))
}

pub(crate) fn tenant_column(row: &PgRow) -> Result<TenantId, StoreError> {
    let raw: String = row.try_get("tenant_id")?;
    TenantId::parse(&raw).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn item_from_row(row: &PgRow) -> Result<InventoryItem, StoreError> {
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

fn sync_record_from_row(row: &PgRow) -> Result<SyncRecord, StoreError> {
    let mode: String = row.try_get("mode")?;
    let summary: Option<String> = row.try_get("summary")?;
    Ok(SyncRecord {
        id: SyncRunId(row.try_get("id")?),
        mode: if mode == "full" {
            SyncMode::Full
        } else {
            SyncMode::Incremental
        },
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        status: row.try_get("status")?,
        summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

const SYNC_COLUMNS: &str =
    "id, mode, started_at, finished_at, status, summary::text AS summary FROM sync_runs";

/// Now, to the microsecond PostgreSQL keeps.
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// Point the transaction at `tenant`: from here on row-level security shows and accepts
/// only that tenant's rows.
/// `BEGIN` and the tenant's scope (and, for `durable`, a commit that waits for the WAL flush)
/// in one simple query: one round trip instead of two for every transaction. The tenant id is
/// 1–64 of a-z, 0-9, '-' and '_' (`TenantId` refuses anything else), and is quoted as a
/// literal all the same. READ COMMITTED whatever the server's default: the audit log's lock
/// (`tollgate_audit_head`) and the gate's batches rely on each statement seeing what was
/// committed before it began.
fn scoped_begin(tenant: &TenantId, durable: bool) -> String {
    let literal = tenant.as_str().replace('\'', "''");
    let durable = if durable {
        ", set_config('synchronous_commit', 'on', true)"
    } else {
        ""
    };
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED; \
         SELECT set_config('app.tenant_id', '{literal}', true){durable}"
    )
}

pub(crate) async fn scope_to(
    connection: &mut PgConnection,
    tenant: &TenantId,
) -> Result<(), StoreError> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.as_str())
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// The SQL text of a role or schema name, quoted by the server (never by string pasting).
async fn quote_ident(connection: &mut PgConnection, name: &str) -> Result<String, StoreError> {
    Ok(sqlx::query_scalar("SELECT quote_ident($1)")
        .bind(name)
        .fetch_one(&mut *connection)
        .await?)
}

fn known_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

impl PostgresStore {
    /// Connect as the app role and check that row-level security binds it: refused (with
    /// [`StoreError::UnsafeRole`]) if the role is a superuser, has BYPASSRLS (itself or through
    /// a role it belongs to), or owns a table (an owner can turn row-level security off); and
    /// refused ([`StoreError::NotMigrated`] / [`StoreError::SchemaTooNew`]) unless the schema
    /// is exactly what this binary knows. Migrations are not run here: the app role may not
    /// create tables. Run [`PostgresStore::migrate`] with the owner first.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = parse_url(url)?;
        let location = describe(&options);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                location: location.clone(),
                source,
            })?;
        let store = Self {
            pool,
            audit_encoder: Arc::default(),
        };
        store.check_role().await?;
        store.ready().await?;
        store.check_tables().await?;
        Ok(store)
    }

    async fn check_role(&self) -> Result<(), StoreError> {
        let role: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&self.pool)
            .await?;
        let powerful: Vec<(String, bool)> = sqlx::query_as(
            "SELECT rolname::text, rolsuper FROM pg_roles \
             WHERE (rolsuper OR rolbypassrls) AND pg_has_role(current_user, oid, 'MEMBER') \
             ORDER BY rolname",
        )
        .fetch_all(&self.pool)
        .await?;
        if let Some((name, superuser)) = powerful.first() {
            let what = if *superuser {
                "a superuser"
            } else {
                "a role with BYPASSRLS"
            };
            let reason = if name == &role {
                format!("it is {what}, which row-level security does not bind")
            } else {
                format!("it can act as {name:?}, {what}, which row-level security does not bind")
            };
            return Err(StoreError::UnsafeRole {
                role,
                reason: format!(
                    "{reason}; connect as the app role (NOSUPERUSER NOBYPASSRLS, owning no table) — see docs/adr/0010-postgresql-store.md"
                ),
            });
        }
        Ok(())
    }

    async fn check_tables(&self) -> Result<(), StoreError> {
        let role: String = sqlx::query_scalar("SELECT current_user::text")
            .fetch_one(&self.pool)
            .await?;
        let mut tables: Vec<String> = POSTGRES_TENANT_TABLES
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        tables.push("schema_migrations".to_owned());
        let rows = sqlx::query(
            "SELECT t.name, c.oid IS NOT NULL AS present, \
             COALESCE(c.relrowsecurity AND c.relforcerowsecurity, false) AS secured, \
             COALESCE(pg_has_role(current_user, c.relowner, 'MEMBER'), false) AS owned \
             FROM unnest($1::text[]) AS t(name) LEFT JOIN pg_class c ON c.oid = to_regclass(t.name)",
        )
        .bind(&tables)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let name: String = row.try_get("name")?;
            if !row.try_get::<bool, _>("present")? {
                return Err(StoreError::NotMigrated(format!(
                    "table {name} is missing; run `tollgate migrate --db <owner URL>`"
                )));
            }
            if row.try_get::<bool, _>("owned")? {
                return Err(StoreError::UnsafeRole {
                    role,
                    reason: format!(
                        "it owns table {name} (or belongs to its owner), and an owner can turn row-level security off; connect as the app role, migrate as the owner"
                    ),
                });
            }
            if name != "schema_migrations" && !row.try_get::<bool, _>("secured")? {
                return Err(StoreError::NotMigrated(format!(
                    "table {name} does not have row-level security enabled and forced"
                )));
            }
        }
        Ok(())
    }

    /// Whether the database answers and carries exactly the migrations this binary knows
    /// (for `/readyz`).
    pub async fn ready(&self) -> Result<(), StoreError> {
        let present: bool =
            sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        if !present {
            return Err(StoreError::NotMigrated(
                "it has no tollgate schema; run `tollgate migrate --db <owner URL>`".to_owned(),
            ));
        }
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&self.pool)
                .await?;
        let known = known_version();
        match applied.cmp(&known) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(StoreError::SchemaTooNew {
                found: applied,
                known,
            }),
            std::cmp::Ordering::Less => Err(StoreError::NotMigrated(format!(
                "the schema is at version {applied}, this tollgate needs {known}; run `tollgate migrate --db <owner URL>`"
            ))),
        }
    }

    /// As the owner (`owner_url`): apply pending migrations, then grant `app_role` what the
    /// store needs — SELECT, INSERT, UPDATE, DELETE on the tenant tables, SELECT on
    /// `schema_migrations`, the identity sequences — and nothing else. Idempotent; concurrent
    /// runs wait for each other. `app_role` must exist and must not be able to act as the
    /// owner.
    pub async fn migrate(owner_url: &str, app_role: &str) -> Result<(), StoreError> {
        let options = parse_url(owner_url)?;
        let location = describe(&options);
        let mut connection = PgConnection::connect_with(&options)
            .await
            .map_err(|source| StoreError::Open { location, source })?;
        let app: Option<bool> = sqlx::query_scalar(
            "SELECT pg_has_role(oid, (SELECT oid FROM pg_roles WHERE rolname = current_user), 'MEMBER') \
             FROM pg_roles WHERE rolname = $1",
        )
        .bind(app_role)
        .fetch_optional(&mut connection)
        .await?;
        match app {
            None => {
                return Err(StoreError::InvalidInput(format!(
                    "the app role {app_role:?} does not exist; create it first (LOGIN NOSUPERUSER NOBYPASSRLS)"
                )));
            }
            Some(true) => {
                return Err(StoreError::InvalidInput(format!(
                    "the app role {app_role:?} is the owner, or can act as it: row-level security would not bind it; use a separate role"
                )));
            }
            Some(false) => {}
        }
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(MIGRATION_LOCK)
            .execute(&mut connection)
            .await?;
        let outcome = Self::apply_migrations(&mut connection, app_role).await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
            .bind(MIGRATION_LOCK)
            .execute(&mut connection)
            .await;
        outcome?;
        unlocked?;
        connection.close().await?;
        Ok(())
    }

    async fn apply_migrations(
        connection: &mut PgConnection,
        app_role: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint PRIMARY KEY, \
             name text NOT NULL, applied_at timestamptz NOT NULL)",
        )
        .execute(&mut *connection)
        .await?;
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
                .fetch_one(&mut *connection)
                .await?;
        let known = known_version();
        if applied > known {
            return Err(StoreError::SchemaTooNew {
                found: applied,
                known,
            });
        }
        for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
            Self::apply_one(connection, migration).await?;
        }
        // Grants are not a numbered migration: the app role's name is the operator's choice,
        // and running them again is harmless.
        let role = quote_ident(connection, app_role).await?;
        let schema: String = sqlx::query_scalar("SELECT quote_ident(current_schema())")
            .fetch_one(&mut *connection)
            .await?;
        let tables = POSTGRES_TENANT_TABLES.join(", ");
        let grants = format!(
            "GRANT USAGE ON SCHEMA {schema} TO {role};\n\
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {tables} TO {role};\n\
             GRANT SELECT ON TABLE schema_migrations TO {role};\n\
             GRANT EXECUTE ON FUNCTION tollgate_audit_head(text), \
             tollgate_watermarks(text, text[]) TO {role};\n\
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};"
        );
        let mut transaction = connection.begin().await?;
        sqlx::raw_sql(AssertSqlSafe(grants))
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn apply_one(
        connection: &mut PgConnection,
        migration: &Migration,
    ) -> Result<(), StoreError> {
        let failed = |source| StoreError::Migration {
            version: migration.version,
            source,
        };
        let mut transaction = connection.begin().await.map_err(failed)?;
        sqlx::raw_sql(AssertSqlSafe(migration.sql))
            .execute(&mut *transaction)
            .await
            .map_err(failed)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(now())
        .execute(&mut *transaction)
        .await
        .map_err(failed)?;
        transaction.commit().await.map_err(failed)?;
        Ok(())
    }

    /// Give the store the audit log's encoder (once; later calls are refused).
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

    /// A transaction that sees and writes `tenant`'s rows only.
    pub(crate) async fn begin_for(&self, tenant: &TenantId) -> Result<PgTransaction, StoreError> {
        Ok(self
            .pool
            .begin_with(AssertSqlSafe(scoped_begin(tenant, false)))
            .await?)
    }

    /// Like [`Self::begin_for`], for writes acknowledged to someone who will not send them
    /// again (webhook events, enqueued jobs): the commit waits for the WAL flush whatever the
    /// server's default `synchronous_commit`.
    pub(crate) async fn begin_durable_for(
        &self,
        tenant: &TenantId,
    ) -> Result<PgTransaction, StoreError> {
        Ok(self
            .pool
            .begin_with(AssertSqlSafe(scoped_begin(tenant, true)))
            .await?)
    }

    /// A transaction for the few operations that span tenants by design (the job queue's
    /// workers, retention, finding an API key by its public id): it opens the
    /// `across_tenants` policies (migration 6), which allow reading, updating and deleting —
    /// never inserting — on the tables that have one.
    pub(crate) async fn begin_across_tenants(&self) -> Result<PgTransaction, StoreError> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT set_config('app.across_tenants', 'on', true)")
            .execute(&mut *transaction)
            .await?;
        Ok(transaction)
    }

    /// Items of a kind whose `column` is one of `values`, ordered by key.
    async fn items_where(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        by_ado_id: bool,
        values: &[String],
    ) -> Result<Vec<InventoryItem>, StoreError> {
        let sql = if by_ado_id {
            "SELECT kind, key, scope, project, ado_id, name, revision, raw FROM inventory \
             WHERE tenant_id = $1 AND kind = $2 AND ado_id = ANY($3) ORDER BY key"
        } else {
            "SELECT kind, key, scope, project, ado_id, name, revision, raw FROM inventory \
             WHERE tenant_id = $1 AND kind = $2 AND key = ANY($3) ORDER BY key"
        };
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(sql)
            .bind(tenant.as_str())
            .bind(kind.as_str())
            .bind(values)
            .fetch_all(&mut *transaction)
            .await?;
        transaction.commit().await?;
        rows.iter().map(item_from_row).collect()
    }
}

/// The rows a replacement names, as one condition over `$3` (all), `$4` (scopes), `$5`
/// (projects) and `$6` (keys).
const REPLACED: &str = "($3 OR scope = ANY($4) OR project = ANY($5) OR key = ANY($6))";

#[async_trait]
impl InventoryStore for PostgresStore {
    async fn begin_sync(
        &self,
        tenant: &TenantId,
        mode: SyncMode,
    ) -> Result<SyncRecord, StoreError> {
        let started = now();
        let mut transaction = self.begin_for(tenant).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sync_runs (tenant_id, mode, started_at, status) \
             VALUES ($1, $2, $3, 'running') RETURNING id",
        )
        .bind(tenant.as_str())
        .bind(mode.as_str())
        .bind(started)
        .fetch_one(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
        let mut transaction = self.begin_for(tenant).await?;
        for item in items {
            sqlx::query(
                "INSERT INTO inventory_staging (run_id, tenant_id, kind, key, scope, project, ado_id, name, revision, raw) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        let mut transaction = self.begin_for(tenant).await?;
        let mode: Option<String> =
            sqlx::query_scalar("SELECT mode FROM sync_runs WHERE id = $1 AND tenant_id = $2")
                .bind(run.0)
                .bind(tenant.as_str())
                .fetch_optional(&mut *transaction)
                .await?;
        if mode.as_deref() == Some(SyncMode::Incremental.as_str()) {
            // Against the state before this commit: staged rows that are new or differ,
            // then rows the replacement deletes and does not bring back.
            sqlx::query(
                "INSERT INTO inventory_changes (tenant_id, run_id, kind, key, scope, project, deleted) \
                 SELECT s.tenant_id, s.run_id, s.kind, s.key, s.scope, s.project, false \
                 FROM (SELECT DISTINCT ON (key) * FROM inventory_staging \
                       WHERE run_id = $1 AND tenant_id = $2 AND kind = $3 ORDER BY key, seq DESC) s \
                 LEFT JOIN inventory i ON i.tenant_id = s.tenant_id AND i.kind = s.kind AND i.key = s.key \
                 WHERE i.key IS NULL OR i.raw IS DISTINCT FROM s.raw ORDER BY s.key",
            )
            .bind(run.0)
            .bind(tenant.as_str())
            .bind(kind.as_str())
            .execute(&mut *transaction)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO inventory_changes (tenant_id, run_id, kind, key, scope, project, deleted) \
                 SELECT tenant_id, $1, kind, key, scope, project, true FROM inventory \
                 WHERE tenant_id = $2 AND kind = $7 AND {REPLACED} \
                 AND key NOT IN (SELECT key FROM inventory_staging WHERE run_id = $1 AND tenant_id = $2 AND kind = $7) \
                 ORDER BY key"
            )))
            .bind(run.0)
            .bind(tenant.as_str())
            .bind(replace.all)
            .bind(&replace.scopes)
            .bind(&replace.projects)
            .bind(&replace.keys)
            .bind(kind.as_str())
            .execute(&mut *transaction)
            .await?;
        }
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM inventory WHERE tenant_id = $1 AND kind = $2 AND {REPLACED}"
        )))
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .bind(replace.all)
        .bind(&replace.scopes)
        .bind(&replace.projects)
        .bind(&replace.keys)
        .execute(&mut *transaction)
        .await?;
        sqlx::query(
            "INSERT INTO inventory (tenant_id, kind, key, scope, project, ado_id, name, revision, raw, synced_at, sync_run) \
             SELECT DISTINCT ON (key) tenant_id, kind, key, scope, project, ado_id, name, revision, raw, $1, run_id \
             FROM inventory_staging WHERE run_id = $2 AND tenant_id = $3 AND kind = $4 ORDER BY key, seq DESC \
             ON CONFLICT (tenant_id, kind, key) DO UPDATE SET scope = excluded.scope, project = excluded.project, \
             ado_id = excluded.ado_id, name = excluded.name, revision = excluded.revision, raw = excluded.raw, \
             synced_at = excluded.synced_at, sync_run = excluded.sync_run",
        )
        .bind(now())
        .bind(run.0)
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .execute(&mut *transaction)
        .await?;
        sqlx::query(
            "DELETE FROM inventory_staging WHERE run_id = $1 AND tenant_id = $2 AND kind = $3",
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
                "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(tenant.as_str())
            .bind(name)
            .bind(value)
            .bind(now())
            .execute(&mut *transaction)
            .await?;
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM inventory WHERE tenant_id = $1 AND kind = $2")
                .bind(tenant.as_str())
                .bind(kind.as_str())
                .fetch_one(&mut *transaction)
                .await?;
        transaction.commit().await?;
        Ok(count.unsigned_abs())
    }

    async fn discard_staged(
        &self,
        tenant: &TenantId,
        run: SyncRunId,
        kind: ResourceKind,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        sqlx::query(
            "DELETE FROM inventory_staging WHERE run_id = $1 AND tenant_id = $2 AND kind = $3",
        )
        .bind(run.0)
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
        let mut transaction = self.begin_for(tenant).await?;
        let updated = sqlx::query(
            "UPDATE sync_runs SET finished_at = $1, status = $2, summary = $3::jsonb \
             WHERE id = $4 AND tenant_id = $5",
        )
        .bind(now())
        .bind(status)
        .bind(summary.to_string())
        .bind(run.0)
        .bind(tenant.as_str())
        .execute(&mut *transaction)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::UnknownRun(run));
        }
        sqlx::query("DELETE FROM inventory_staging WHERE run_id = $1 AND tenant_id = $2")
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
        let mut transaction = self.begin_for(tenant).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SYNC_COLUMNS} WHERE tenant_id = $1 AND status IN ('ok', 'partial') \
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(tenant.as_str())
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        row.as_ref().map(sync_record_from_row).transpose()
    }

    async fn watermark(&self, tenant: &TenantId, name: &str) -> Result<Option<String>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let value =
            sqlx::query_scalar("SELECT value FROM watermarks WHERE tenant_id = $1 AND name = $2")
                .bind(tenant.as_str())
                .bind(name)
                .fetch_optional(&mut *transaction)
                .await?;
        transaction.commit().await?;
        Ok(value)
    }

    async fn watermarks(
        &self,
        tenant: &TenantId,
        names: &[&str],
    ) -> Result<Vec<Option<String>>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        // One statement, scoped to the tenant by the function (migration 11): the gate reads
        // these on every check, and a transaction of its own would be three round trips.
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, value FROM tollgate_watermarks($1, $2)")
                .bind(tenant.as_str())
                .bind(names)
                .fetch_all(&self.pool)
                .await?;
        let found: std::collections::HashMap<String, String> = rows.into_iter().collect();
        Ok(names.iter().map(|name| found.get(*name).cloned()).collect())
    }

    async fn keys(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        scope: Option<&str>,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT key, scope, project, ado_id FROM inventory \
             WHERE tenant_id = $1 AND kind = $2 AND ($3::text IS NULL OR scope = $3) ORDER BY key",
        )
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .bind(scope)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT kind, key, scope, project, ado_id, name, revision, raw FROM inventory \
             WHERE tenant_id = $1 AND kind = $2 AND key > $3 ORDER BY key LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(kind.as_str())
        .bind(after_key.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
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
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT kind, key, scope, project, ado_id, name, revision, raw FROM inventory \
             WHERE tenant_id = $1 AND project = $2 AND kind = $3 AND key > $4 ORDER BY key LIMIT $5",
        )
        .bind(tenant.as_str())
        .bind(project)
        .bind(kind.as_str())
        .bind(after_key.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(item_from_row).collect()
    }

    async fn items_by_keys(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        keys: &[String],
    ) -> Result<Vec<InventoryItem>, StoreError> {
        self.items_where(tenant, kind, false, keys).await
    }

    async fn items_by_ado_ids(
        &self,
        tenant: &TenantId,
        kind: ResourceKind,
        ado_ids: &[String],
    ) -> Result<Vec<InventoryItem>, StoreError> {
        self.items_where(tenant, kind, true, ado_ids).await
    }

    async fn syncs_since(
        &self,
        tenant: &TenantId,
        after: Option<SyncRunId>,
    ) -> Result<Vec<SyncRecord>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SYNC_COLUMNS} WHERE tenant_id = $1 AND id > $2 ORDER BY id"
        )))
        .bind(tenant.as_str())
        .bind(after.map_or(0, |run| run.0))
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter().map(sync_record_from_row).collect()
    }

    async fn changes_since(
        &self,
        tenant: &TenantId,
        after: SyncRunId,
    ) -> Result<Vec<InventoryChange>, StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT run_id, kind, key, scope, project, deleted FROM inventory_changes \
             WHERE tenant_id = $1 AND run_id > $2 ORDER BY run_id, seq",
        )
        .bind(tenant.as_str())
        .bind(after.0)
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        rows.iter()
            .map(|row| {
                Ok(InventoryChange {
                    run: SyncRunId(row.try_get("run_id")?),
                    kind: parse_kind(&row.try_get::<String, _>("kind")?)?,
                    key: row.try_get("key")?,
                    scope: row.try_get("scope")?,
                    project: row.try_get("project")?,
                    deleted: row.try_get("deleted")?,
                })
            })
            .collect()
    }

    async fn prune_changes(&self, tenant: &TenantId, through: SyncRunId) -> Result<(), StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        sqlx::query("DELETE FROM inventory_changes WHERE tenant_id = $1 AND run_id <= $2")
            .bind(tenant.as_str())
            .bind(through.0)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn set_watermark(
        &self,
        tenant: &TenantId,
        name: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        let mut transaction = self.begin_for(tenant).await?;
        sqlx::query(
            "INSERT INTO watermarks (tenant_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(name)
        .bind(value)
        .bind(now())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn counts(&self, tenant: &TenantId) -> Result<BTreeMap<ResourceKind, u64>, StoreError> {
        let mut counts: BTreeMap<ResourceKind, u64> =
            ResourceKind::ALL.iter().map(|k| (*k, 0)).collect();
        let mut transaction = self.begin_for(tenant).await?;
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM inventory WHERE tenant_id = $1 GROUP BY kind",
        )
        .bind(tenant.as_str())
        .fetch_all(&mut *transaction)
        .await?;
        transaction.commit().await?;
        for row in rows {
            let kind = parse_kind(&row.try_get::<String, _>("kind")?)?;
            counts.insert(kind, row.try_get::<i64, _>("n")?.unsigned_abs());
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_begin_sets_the_tenant_and_durable_commits_in_the_same_round_trip() {
        let tenant = TenantId::parse("contoso-eu_1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            scoped_begin(&tenant, false),
            "BEGIN ISOLATION LEVEL READ COMMITTED; \
             SELECT set_config('app.tenant_id', 'contoso-eu_1', true)"
        );
        assert_eq!(
            scoped_begin(&tenant, true),
            "BEGIN ISOLATION LEVEL READ COMMITTED; \
             SELECT set_config('app.tenant_id', 'contoso-eu_1', true), \
             set_config('synchronous_commit', 'on', true)"
        );
    }
}
