//! The composition root: the only module that names concrete implementations.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tollgate_ado::{ClientConfig, HttpAdoClient, RetryPolicy};
use tollgate_domain::TenantId;
use tollgate_domain::ado_api::AdoHost;
use tollgate_store::{InventoryStore, SqliteStore};

use crate::config::Config;
use crate::services::inventory::InventoryService;
use crate::services::settings::{Action, ScopedSetting};
use crate::services::sync::SyncService;

/// Open the store a `--db` value names: a file path or `sqlite://path`.
pub async fn open_store(url: &str) -> Result<Arc<dyn InventoryStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!(
            "PostgreSQL storage is not available in this build yet; use a SQLite file path for --db"
        );
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if path.is_empty() {
        bail!("--db is empty; give a file path such as tollgate.db");
    }
    let store = SqliteStore::open(path)
        .await
        .with_context(|| format!("opening the database {path}"))?;
    Ok(Arc::new(store))
}

pub fn ado_client(config: &Config) -> Result<HttpAdoClient> {
    let org_url = config.org_url()?;
    let mut client_config = ClientConfig::from_org_url(org_url, config.credential()?)?;
    for (name, url) in &config.ado.hosts {
        if let Some(host) = AdoHost::ALL.iter().find(|h| h.config_name() == name) {
            client_config
                .base_urls
                .insert(*host, url.trim_end_matches('/').to_owned());
        }
    }
    client_config.max_concurrency = config.ado.max_concurrency;
    client_config.request_timeout = Duration::from_secs(config.ado.request_timeout_secs.max(1));
    client_config.retry = RetryPolicy {
        max_attempts: config.ado.max_attempts.max(1),
        ..RetryPolicy::default()
    };
    Ok(HttpAdoClient::new(client_config)?)
}

pub async fn sync_service(config: &Config) -> Result<SyncService> {
    let client = ado_client(config)?;
    let org_url = client.config().org_url();
    let store = open_store(&config.database.url).await?;
    Ok(SyncService::new(
        Arc::new(client),
        store,
        TenantId::default_tenant(),
        org_url,
        config.ado.max_concurrency,
        Duration::from_secs(config.sync.overlap_secs),
    ))
}

pub async fn inventory_service(config: &Config) -> Result<InventoryService> {
    Ok(InventoryService::new(
        open_store(&config.database.url).await?,
        TenantId::default_tenant(),
    ))
}

/// Read every `.rego` file under the given directories (sorted, recursively).
fn read_policy_dirs(dirs: &[std::path::PathBuf]) -> Result<Vec<tollgate_policy::Source>> {
    fn walk(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, found)?;
            } else if path.extension().is_some_and(|e| e == "rego") {
                found.push(path);
            }
        }
        Ok(())
    }
    let mut sources = Vec::new();
    for dir in dirs {
        let mut files = Vec::new();
        walk(dir, &mut files)
            .with_context(|| format!("reading the policy directory {}", dir.display()))?;
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            sources.push(tollgate_policy::Source {
                name: file.display().to_string(),
                text,
            });
        }
    }
    Ok(sources)
}

/// The built-in catalog plus the configured policy directories. Files that fail to load are
/// returned as problems (`file:line: reason`); the rest of the catalog still runs.
pub fn policies(config: &Config) -> Result<(Arc<tollgate_policy::PolicySet>, Vec<String>)> {
    let user = read_policy_dirs(&config.policy.dirs)?;
    let loaded = tollgate_policy::load(&user);
    let problems = loaded.problems.iter().map(ToString::to_string).collect();
    Ok((Arc::new(loaded.set), problems))
}

async fn sqlite(url: &str) -> Result<Arc<SqliteStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!(
            "PostgreSQL storage is not available in this build yet; use a SQLite file path for --db"
        );
    }
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    if path.is_empty() {
        bail!("--db is empty; give a file path such as tollgate.db");
    }
    Ok(Arc::new(
        SqliteStore::open(path)
            .await
            .with_context(|| format!("opening the database {path}"))?,
    ))
}

pub async fn finding_store(config: &Config) -> Result<Arc<dyn tollgate_store::FindingStore>> {
    Ok(sqlite(&config.database.url).await?)
}

pub async fn scan_service(config: &Config) -> Result<crate::services::scan::ScanService> {
    let store = sqlite(&config.database.url).await?;
    let (policies, problems) = policies(config)?;
    // `disabled` and `params` are organisation-wide shorthands for scoped settings.
    let mut scoped: Vec<ScopedSetting> = config
        .policy
        .disabled
        .iter()
        .map(|control| ScopedSetting {
            scope: "organization".into(),
            control: control.clone(),
            action: Some(Action::Off),
            params: None,
        })
        .collect();
    scoped.extend(
        config
            .policy
            .params
            .iter()
            .map(|(control, table)| ScopedSetting {
                scope: "organization".into(),
                control: control.clone(),
                action: None,
                params: Some(table.clone()),
            }),
    );
    scoped.extend(config.policy.scoped.iter().cloned());
    let options = crate::services::scan::ScanOptions { scoped };
    crate::services::scan::ScanService::new(
        store.clone(),
        store,
        policies,
        problems,
        TenantId::default_tenant(),
        options,
    )
}
