//! One fixture for every store test: each scenario runs on SQLite always, and on PostgreSQL
//! when `TOLLGATE_TEST_POSTGRES_URL` (the app role) and `TOLLGATE_TEST_POSTGRES_OWNER_URL`
//! (the owner, with CREATEDB) are set — `scripts/pg-test-cluster.sh start` prints them, and
//! `.ci/run` sets them. Each PostgreSQL scenario gets a database of its own, so tests run in
//! parallel.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "each test binary uses part of the fixture; a test reports failure by panicking"
)]

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;
use tollgate_store::{
    ApiKeyStore, AuditDraft, AuditStore, DeploymentStore, EncodedLeaf, EventStore, FindingStore,
    GateStore, InventoryStore, JobStore, LeafEncoder, PostgresStore, SqliteStore, StoreError,
    TenancyStore,
};

pub const APP_URL: &str = "TOLLGATE_TEST_POSTGRES_URL";
pub const OWNER_URL: &str = "TOLLGATE_TEST_POSTGRES_OWNER_URL";
pub const SUPERUSER_URL: &str = "TOLLGATE_TEST_POSTGRES_SUPERUSER_URL";

/// Every store trait, so a scenario is written once for both backends.
pub trait AnyStore:
    InventoryStore
    + FindingStore
    + EventStore
    + JobStore
    + ApiKeyStore
    + AuditStore
    + GateStore
    + DeploymentStore
    + TenancyStore
{
    fn set_leaf_encoder(&self, encoder: Arc<dyn LeafEncoder>) -> Result<(), StoreError>;
}

impl AnyStore for SqliteStore {
    fn set_leaf_encoder(&self, encoder: Arc<dyn LeafEncoder>) -> Result<(), StoreError> {
        SqliteStore::set_leaf_encoder(self, encoder)
    }
}

impl AnyStore for PostgresStore {
    fn set_leaf_encoder(&self, encoder: Arc<dyn LeafEncoder>) -> Result<(), StoreError> {
        PostgresStore::set_leaf_encoder(self, encoder)
    }
}

pub enum Backend {
    Sqlite {
        _dir: tempfile::TempDir,
        path: String,
    },
    Postgres {
        app_url: String,
        owner_url: String,
    },
}

pub struct Fixture {
    pub store: Arc<dyn AnyStore>,
    pub backend: Backend,
}

/// The PostgreSQL URLs of the environment, or `None` (and a notice) when they are not set.
pub fn postgres_urls(test: &str) -> Option<(String, String)> {
    match (std::env::var(APP_URL), std::env::var(OWNER_URL)) {
        (Ok(app), Ok(owner)) if !app.is_empty() && !owner.is_empty() => Some((app, owner)),
        _ => {
            // Once per test binary, and past libtest's capture (which hides a passing test's
            // eprintln!), so a run without PostgreSQL says so.
            static SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SHOWN.swap(true, Ordering::Relaxed) {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "notice: PostgreSQL scenarios are skipped (first: {test}): set {APP_URL} and \
                     {OWNER_URL}, e.g. eval \"$(scripts/pg-test-cluster.sh start)\""
                );
            }
            None
        }
    }
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    format!("{root}/{database}{query}")
}

pub fn role_of(url: &str) -> String {
    sqlx::postgres::PgConnectOptions::from_str(url)
        .unwrap()
        .get_username()
        .to_owned()
}

/// A new, empty database owned by the owner role; returns its name.
pub async fn fresh_database(owner_url: &str, test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let label: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    let name = format!(
        "tg_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        label.to_ascii_lowercase()
    );
    let mut connection = sqlx::PgConnection::connect(owner_url)
        .await
        .expect("connect as the owner");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .expect("create a test database");
    connection.close().await.unwrap();
    name
}

impl Fixture {
    /// The event types in `tenant`'s audit log, in order (its first hundred).
    pub async fn audit_types(&self, tenant: &tollgate_domain::TenantId) -> Vec<String> {
        self.store
            .audit_leaves(
                tenant,
                &tollgate_store::LeafFilter {
                    limit: 100,
                    ..tollgate_store::LeafFilter::default()
                },
            )
            .await
            .expect("the audit log")
            .into_iter()
            .map(|leaf| leaf.event_type)
            .collect()
    }

    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir
            .path()
            .join("store.db")
            .to_str()
            .expect("utf-8 path")
            .to_owned();
        let store = SqliteStore::open(&path).await.expect("open store");
        Fixture {
            store: Arc::new(store),
            backend: Backend::Sqlite { _dir: dir, path },
        }
    }

    /// A migrated database of its own, the store connected as the app role.
    pub async fn postgres(test: &str) -> Option<Fixture> {
        let (app, owner) = postgres_urls(test)?;
        let database = fresh_database(&owner, test).await;
        let owner_url = with_database(&owner, &database);
        let app_url = with_database(&app, &database);
        PostgresStore::migrate(&owner_url, &role_of(&app))
            .await
            .expect("migrate as the owner");
        let store = PostgresStore::connect(&app_url)
            .await
            .expect("connect as the app role");
        Some(Fixture {
            store: Arc::new(store),
            backend: Backend::Postgres { app_url, owner_url },
        })
    }

    /// A connection of its own to a SQLite fixture's file, to look at how rows are stored.
    pub async fn sqlite_connection(&self) -> sqlx::SqliteConnection {
        let Backend::Sqlite { path, .. } = &self.backend else {
            panic!("a SQLite fixture")
        };
        sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
            .await
            .unwrap()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// A second store on the same database (another process, or another replica).
    pub async fn open_again(&self) -> Arc<dyn AnyStore> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Arc::new(SqliteStore::open(path).await.unwrap()),
            Backend::Postgres { app_url, .. } => {
                Arc::new(PostgresStore::connect(app_url).await.unwrap())
            }
        }
    }

    /// A second store after the migrations run again, as at the first start of a new release
    /// (SQLite migrates on open; PostgreSQL is migrated by its owner beforehand).
    pub async fn open_upgraded(&self) -> Arc<dyn AnyStore> {
        if let Backend::Postgres { app_url, owner_url } = &self.backend {
            PostgresStore::migrate(owner_url, &role_of(app_url))
                .await
                .unwrap();
        }
        self.open_again().await
    }

    /// Run SQL behind the store's back with the rights of whoever owns the data: the SQLite
    /// file directly, or the PostgreSQL owner in a transaction scoped to `tenant` (row-level
    /// security binds the owner too).
    pub async fn behind_the_store(&self, tenant: &str, sqlite: &str, postgres: &str) {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let mut connection = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sqlite.to_owned()))
                    .execute(&mut connection)
                    .await
                    .unwrap();
                connection.close().await.unwrap();
            }
            Backend::Postgres { owner_url, .. } => {
                let mut connection = sqlx::PgConnection::connect(owner_url).await.unwrap();
                let mut transaction = connection.begin().await.unwrap();
                sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                    .bind(tenant)
                    .execute(&mut *transaction)
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(postgres.to_owned()))
                    .execute(&mut *transaction)
                    .await
                    .unwrap();
                transaction.commit().await.unwrap();
                connection.close().await.unwrap();
            }
        }
    }
}

/// Generate, for each scenario `async fn name(fixture: Fixture)`, a test on SQLite and one on
/// PostgreSQL (which prints a notice and passes when PostgreSQL is not configured).
#[allow(
    unused_macros,
    reason = "not every test binary runs scenarios on both backends"
)]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Fixture::sqlite().await).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fixture) =
                        crate::common::Fixture::postgres(stringify!($name)).await
                    {
                        super::$name(fixture).await;
                    }
                }
            )*
        }
    };
}

/// Encodes a record as its sequence number, type and fields, and refuses the type
/// `refuse.me`, as the real encoder refuses a record it cannot encode.
pub struct PlainEncoder;

impl LeafEncoder for PlainEncoder {
    fn encode(
        &self,
        tenant: &tollgate_domain::TenantId,
        draft: &AuditDraft,
        seq: u64,
        _logged: time::OffsetDateTime,
    ) -> Result<EncodedLeaf, String> {
        if draft.event_type == "refuse.me" {
            return Err("not a valid record".to_owned());
        }
        let bytes =
            serde_json::json!({"seq": seq, "type": draft.event_type, "fields": draft.fields})
                .to_string()
                .into_bytes();
        let mut hash = [0u8; 32];
        for (i, byte) in bytes.iter().enumerate() {
            hash[i % 32] ^= byte;
        }
        Ok(EncodedLeaf {
            record_id: format!("{tenant}-{seq}"),
            bytes,
            hash,
        })
    }
}
