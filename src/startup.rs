//! The composition root: the only module that names concrete implementations.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tollgate_ado::{ClientConfig, HttpAdoClient, RetryPolicy};
use tollgate_domain::TenantId;
use tollgate_domain::ado_api::AdoHost;
use tollgate_store::{
    ApiKeyStore, AuditStore, DeploymentStore, EventStore, FindingStore, GateStore, InventoryStore,
    JobStore, LeafEncoder, PostgresStore, SqliteStore, TenancyStore,
};

use crate::config::Config;
use crate::services::audit::{AuditService, RecordEncoder};
use crate::services::events::StoredEventHints;
use crate::services::inventory::InventoryService;
use crate::services::settings::{Action, ScopedSetting};
use crate::services::sync::SyncService;
use crate::services::tenant::{TenantContext, WebhookSecret};

/// Every store trait behind one handle, whichever backend `--db` names.
#[async_trait::async_trait]
pub trait Store:
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
    /// Whether the database answers and carries this binary's schema (`/readyz`).
    async fn ready(&self) -> Result<(), tollgate_store::StoreError>;
    /// Give the store the audit log's encoder (once).
    fn set_leaf_encoder(
        &self,
        encoder: Arc<dyn LeafEncoder>,
    ) -> Result<(), tollgate_store::StoreError>;
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn ready(&self) -> Result<(), tollgate_store::StoreError> {
        SqliteStore::ready(self).await
    }
    fn set_leaf_encoder(
        &self,
        encoder: Arc<dyn LeafEncoder>,
    ) -> Result<(), tollgate_store::StoreError> {
        SqliteStore::set_leaf_encoder(self, encoder)
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn ready(&self) -> Result<(), tollgate_store::StoreError> {
        PostgresStore::ready(self).await
    }
    fn set_leaf_encoder(
        &self,
        encoder: Arc<dyn LeafEncoder>,
    ) -> Result<(), tollgate_store::StoreError> {
        PostgresStore::set_leaf_encoder(self, encoder)
    }
}

/// Open the store a `--db` value names: a SQLite file path or `sqlite://path` (created and
/// migrated as needed), or a `postgres://` URL of the app role (migrated beforehand with
/// `tollgate migrate`).
pub async fn store(url: &str) -> Result<Arc<dyn Store>> {
    if crate::config::is_postgres_url(url) {
        let store = PostgresStore::connect(url)
            .await
            .context("opening the PostgreSQL database")?;
        return Ok(Arc::new(store));
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

/// Open the store a `--db` value names, for its inventory.
pub async fn open_store(url: &str) -> Result<Arc<dyn InventoryStore>> {
    Ok(store(url).await?)
}

/// `tollgate migrate`: bring the database's schema up to this binary's. PostgreSQL: `url` is
/// the owner's, and `app_role` is granted what the store needs; SQLite migrates on open.
pub async fn migrate(url: &str, app_role: &str) -> Result<String> {
    if crate::config::is_postgres_url(url) {
        PostgresStore::migrate(url, app_role)
            .await
            .context("migrating the PostgreSQL database")?;
        return Ok(format!(
            "PostgreSQL schema is current; role {app_role} may use it (connect tollgate with its URL)"
        ));
    }
    store(url).await?;
    Ok(format!("SQLite database {url} is current"))
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
    let store = configured_store(config).await?;
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
        configured_store(config).await?,
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

/// The approval notification channels `[[notifications]]` configures (none: an empty set).
pub fn notifications(config: &Config) -> Result<crate::services::notify::Notifications> {
    let channels =
        crate::notify::notifiers(&config.notifications).context("the notification channels")?;
    Ok(crate::services::notify::Notifications::new(channels))
}

/// The store `--db` names (SQLite or PostgreSQL), with the audit log's record encoder in place.
pub async fn configured_store(config: &Config) -> Result<Arc<dyn Store>> {
    let store = store(&config.database.url).await?;
    store.set_leaf_encoder(Arc::new(RecordEncoder::new(&config.audit.origin_prefix)))?;
    // Leaf 0 of every tenant's log names the log and its keys, before anything else lands.
    let audit = audit_service(config, store.clone()).await?;
    let mut tenants = vec![TenantId::default_tenant()];
    for tenant in config.tenants() {
        tenants.push(TenantId::parse(&tenant.id)?);
    }
    for tenant in &tenants {
        audit.ensure_genesis(tenant).await?;
    }
    Ok(store)
}

/// What seals the job tokens the gate keeps for callbacks (its key file read, or created, on
/// first use).
fn job_tokens(config: &Config) -> crate::services::job_tokens::JobTokens {
    crate::services::job_tokens::JobTokens::at(config.gate.token_key_path(
        &config.database.url,
        &config.audit.key_path(&config.database.url),
    ))
}

/// The audit log service over the store (keys loaded, or created on first use).
pub async fn audit_service(config: &Config, store: Arc<dyn Store>) -> Result<AuditService> {
    let key_path = config.audit.key_path(&config.database.url);
    // One key pair per install, named by the origin prefix; each tenant's checkpoints are
    // signed with it under that log's own origin name (see bundle::bind_to_origin).
    let keys =
        tollgate_audit::keys::LogKeys::load_or_create(&key_path, &config.audit.origin_prefix)
            .with_context(|| format!("the audit log keys ({})", key_path.display()))?;
    Ok(AuditService::new(
        store,
        keys,
        &config.audit.origin_prefix,
        Duration::from_secs(config.audit.heartbeat_secs.max(60)),
    ))
}

pub async fn finding_store(config: &Config) -> Result<Arc<dyn tollgate_store::FindingStore>> {
    Ok(configured_store(config).await?)
}

/// The configured actions and parameters per scope; `disabled` and `params` are
/// organisation-wide shorthands for scoped settings.
fn scan_options(config: &Config) -> crate::services::scan::ScanOptions {
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
    crate::services::scan::ScanOptions { scoped }
}

pub async fn scan_service(config: &Config) -> Result<crate::services::scan::ScanService> {
    let store = configured_store(config).await?;
    let (policies, problems) = policies(config)?;
    let watch = crate::services::bypass::GateWatch {
        decisions: store.clone(),
        expectation: config.gate.check_expectation(&config.gate.credential),
    };
    crate::services::scan::ScanService::new(
        store.clone(),
        store,
        policies,
        problems,
        TenantId::default_tenant(),
        scan_options(config),
    )
    .map(|scan| scan.with_gate_watch(watch))
}

/// The tenants a server serves, over one store: each with its sync (when an organisation
/// and a credential are configured), scan and webhook secret. With no tenant configured,
/// `default` serves what is stored.
pub fn tenant_contexts(
    config: &Config,
    store: Arc<dyn Store>,
    policies: Arc<tollgate_policy::PolicySet>,
    problems: &[String],
) -> Result<Vec<TenantContext>> {
    let factory = ContextFactory::new(config, store, policies, problems)?;
    configured_tenants(config)
        .iter()
        .map(|tenant| factory.build(tenant))
        .collect()
}

/// The tenants the configuration names (`default` alone when it names none).
fn configured_tenants(config: &Config) -> Vec<crate::config::TenantConfig> {
    let mut configured = config.tenants();
    if configured.is_empty() {
        configured.push(crate::config::TenantConfig {
            id: TenantId::DEFAULT.to_owned(),
            ado: config.ado.clone(),
            webhook: config.webhook.clone(),
            gate: config.gate.credential.clone(),
        });
    }
    configured
}

/// Builds tenant contexts over one store, policy set, notifier and clock: the configured ones
/// at start, registered ones when they are created or first acted in.
struct ContextFactory {
    config: Config,
    store: Arc<dyn Store>,
    policies: Arc<tollgate_policy::PolicySet>,
    problems: Vec<String>,
    gate_settings: crate::services::gate::GateSettings,
    capabilities: Arc<crate::services::capabilities::Capabilities>,
    notifications: Arc<crate::services::notify::Notifications>,
    clock: crate::services::gate::Clock,
    job_tokens: Arc<crate::services::job_tokens::JobTokens>,
}

impl ContextFactory {
    fn new(
        config: &Config,
        store: Arc<dyn Store>,
        policies: Arc<tollgate_policy::PolicySet>,
        problems: &[String],
    ) -> Result<Self> {
        Ok(Self {
            gate_settings: config.gate.settings()?,
            capabilities: Arc::new(crate::services::capabilities::Capabilities::new(
                store.clone(),
                store.clone(),
            )),
            notifications: Arc::new(notifications(config)?),
            clock: gate_clock()?,
            job_tokens: Arc::new(job_tokens(config)),
            config: config.clone(),
            store,
            policies,
            problems: problems.to_vec(),
        })
    }

    /// A registered tenant the configuration does not name: no organisation, webhook secret
    /// or gate credential (a `[[tenants]]` entry with its id adds them at the next start).
    fn build_registered(&self, id: &TenantId) -> Result<TenantContext> {
        self.build(&crate::config::TenantConfig {
            id: id.to_string(),
            ado: crate::config::AdoConfig {
                org_url: None,
                ..self.config.ado.clone()
            },
            webhook: crate::config::WebhookConfig {
                secret: None,
                secret_file: None,
                ..self.config.webhook.clone()
            },
            gate: crate::config::GateCredentialConfig::default(),
        })
    }

    fn build(&self, tenant: &crate::config::TenantConfig) -> Result<TenantContext> {
        let config = &self.config;
        let store = &self.store;
        let policies = &self.policies;
        let id = TenantId::parse(&tenant.id)?;
        let mut gate_client: Option<Arc<dyn tollgate_ado::AdoClient>> = None;
        let mut registered_org: Option<String> = None;
        let sync = match &tenant.ado.org_url {
            None => None,
            Some(_) => {
                let tenant_config = Config {
                    ado: tenant.ado.clone(),
                    ..config.clone()
                };
                let client = ado_client(&tenant_config)
                    .with_context(|| format!("tenant {id}: the ADO client"))?;
                let org_url = client.config().org_url();
                let client = Arc::new(client);
                gate_client = Some(client.clone());
                registered_org = Some(org_url.clone());
                let hints = StoredEventHints::new(store.clone(), id.clone());
                Some(Arc::new(
                    SyncService::new(
                        client,
                        store.clone(),
                        id.clone(),
                        org_url,
                        tenant.ado.max_concurrency,
                        Duration::from_secs(config.sync.overlap_secs),
                    )
                    .with_change_hints(Arc::new(hints)),
                ))
            }
        };
        let scan = crate::services::scan::ScanService::new(
            store.clone(),
            store.clone(),
            policies.clone(),
            self.problems.clone(),
            id.clone(),
            scan_options(config),
        )?
        .with_gate_watch(crate::services::bypass::GateWatch {
            decisions: store.clone(),
            expectation: config.gate.check_expectation(&tenant.gate),
        });
        let webhook = tenant
            .webhook
            .secret()
            .with_context(|| format!("tenant {id}: the webhook secret"))?
            .map(|secret| WebhookSecret {
                secret,
                header: tenant.webhook.header.clone(),
            });
        let gate = crate::services::gate::GateService {
            tenant: id.clone(),
            org_url: registered_org,
            policies: policies.clone(),
            inventory: store.clone(),
            gate_store: store.clone(),
            audit: store.clone(),
            ado: gate_client.clone(),
            settings: self.gate_settings.clone(),
            capabilities: self.capabilities.clone(),
            notifications: self.notifications.clone(),
            clock: self.clock.clone(),
            writer: crate::services::decision_writer::DecisionWriter::new(
                store.clone(),
                id.clone(),
            ),
            memory: crate::services::gate::GateMemory::default(),
            tokens: self.job_tokens.clone(),
        };
        let gate_credential = tenant
            .gate
            .credential()
            .with_context(|| format!("tenant {id}: the gate credential"))?;
        let gate = Arc::new(gate);
        let deployments = crate::services::deployments::DeploymentService {
            tenant: id.clone(),
            gate: gate.clone(),
            inventory: store.clone(),
            deployments: store.clone(),
            gate_store: store.clone(),
            ado: gate_client,
            clock: crate::services::gate::system_clock(),
        };
        Ok(TenantContext {
            gate,
            deployments: Arc::new(deployments),
            gate_credential,
            capabilities: self.capabilities.clone(),
            id,
            org_url: tenant.ado.org_url.clone(),
            inventory: store.clone(),
            findings: store.clone(),
            policies: policies.clone(),
            scan: Arc::new(scan),
            sync,
            webhook,
            refresh_lock: tokio::sync::Mutex::new(()),
        })
    }
}

/// The gate's clock: the system clock, or a fixed instant from `TOLLGATE_FAKE_NOW` (RFC 3339)
/// for demonstrations and end-to-end tests that must judge on a chosen day. Startup alone
/// reads it, and says so loudly: a fixed clock in production would be a mistake.
fn gate_clock() -> Result<crate::services::gate::Clock> {
    match std::env::var("TOLLGATE_FAKE_NOW") {
        Ok(raw) if !raw.is_empty() => {
            let fixed =
                time::OffsetDateTime::parse(&raw, &time::format_description::well_known::Rfc3339)
                    .with_context(|| format!("TOLLGATE_FAKE_NOW={raw:?} is not an RFC 3339 time"))?;
            tracing::warn!(now = %raw, "the gate judges at a fixed time (TOLLGATE_FAKE_NOW); never use this in production");
            Ok(Arc::new(move || fixed))
        }
        _ => Ok(crate::services::gate::system_clock()),
    }
}

/// Everything `serve` and `worker` share: one store, the tenants, metrics, the wake-up
/// signal between the receiver and in-process workers.
struct ServerParts {
    store: Arc<dyn Store>,
    tenants: Arc<crate::services::tenant::Tenants>,
    metrics: Arc<crate::telemetry::Metrics>,
    wake: Arc<tokio::sync::Notify>,
}

async fn server_parts(config: &Config) -> Result<ServerParts> {
    let store = configured_store(config).await?;
    let (policies, problems) = policies(config)?;
    for problem in &problems {
        tracing::warn!(
            problem,
            "a policy file did not load; the rest of the catalog runs"
        );
    }
    let factory = Arc::new(ContextFactory::new(
        config,
        store.clone(),
        policies,
        &problems,
    )?);
    // The server seals and opens job tokens: a key file it cannot use stops it here.
    factory.job_tokens.load()?;
    let contexts = configured_tenants(config)
        .iter()
        .map(|tenant| factory.build(tenant))
        .collect::<Result<Vec<_>>>()?;
    let opener = factory.clone();
    let tenants = crate::services::tenant::Tenants::with_opener(
        contexts,
        Box::new(move |id: &TenantId| opener.build_registered(id)),
    );
    // Registered tenants are served from the start, alongside the configured ones.
    for registered in store
        .registered_tenants()
        .await
        .context("reading the registered tenants")?
    {
        tenants.open(&registered.tenant)?;
    }
    Ok(ServerParts {
        store,
        tenants: Arc::new(tenants),
        metrics: Arc::new(crate::telemetry::Metrics::new()),
        wake: Arc::new(tokio::sync::Notify::new()),
    })
}

/// This process among the replicas, in leases it holds: `hostname:pid:random`, chosen once. The
/// random part keeps two processes apart where the host name is not exported or the pid is the
/// same (containers run as pid 1).
fn replica_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        use rand::RngCore as _;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
        format!(
            "{host}:{}:{:016x}",
            std::process::id(),
            rand::thread_rng().next_u64()
        )
    })
    .clone()
}

/// How soon a periodic task asks again for its turn: often, so a replica that lost a turn to
/// one that then stopped does not wait a whole period (the claim keeps it once per period).
const TURN_RETRY: Duration = Duration::from_secs(300);

fn worker_for(config: &Config, parts: &ServerParts, index: usize) -> crate::jobs::Worker {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    crate::jobs::Worker {
        jobs: parts.store.clone(),
        events: parts.store.clone(),
        tenants: parts.tenants.clone(),
        metrics: parts.metrics.clone(),
        settings: crate::jobs::WorkerSettings {
            id: format!("{host}:{}:{index}", std::process::id()),
            concurrency: config.worker.concurrency,
            poll_interval: Duration::from_millis(config.worker.poll_interval_ms.max(10)),
            max_attempts: config.worker.max_attempts,
            debounce: Duration::from_millis(config.worker.debounce_ms),
            lease: Duration::from_secs(300),
        },
        wake: parts.wake.clone(),
    }
}

/// A watch channel that turns true on Ctrl-C or SIGTERM.
fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (sender, receiver) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut terminate =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(signal) => signal,
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C still stops");
                        let _ = ctrl_c.await;
                        let _ = sender.send(true);
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: no new requests or jobs; finishing what is in flight");
        let _ = sender.send(true);
    });
    receiver
}

struct StoreReadiness(Arc<dyn Store>);

#[async_trait::async_trait]
impl crate::http::Readiness for StoreReadiness {
    async fn check(&self) -> Result<()> {
        Ok(self.0.ready().await?)
    }
}

/// Prune what retention allows, hourly (one replica's turn): events past their retention (never under 36 h,
/// so redeliveries are still recognised) and finished jobs after a week.
async fn prune_periodically(
    store: Arc<dyn Store>,
    retention: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let now = time::OffsetDateTime::now_utc();
        // Pruning spans tenants; the operator tenant's turn stands for the whole database, so
        // one replica prunes per hour.
        let turn = store
            .claim_schedule(
                &TenantId::default_tenant(),
                "prune",
                now,
                Duration::from_secs(3600),
            )
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "claiming the pruning turn failed");
                false
            });
        if turn {
            let events_before =
                now - time::Duration::try_from(retention).unwrap_or(time::Duration::days(7));
            match store.prune_events(events_before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "old service-hook events pruned"),
                Err(error) => tracing::warn!(%error, "pruning events failed"),
            }
            if let Err(error) = store.prune_jobs(now - time::Duration::days(7)).await {
                tracing::warn!(%error, "pruning finished jobs failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(TURN_RETRY) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return; },
        }
    }
}

/// The configuration and policy bundle a server starts with are records in every tenant's
/// log when they differ from the last ones recorded: configuration and policy changes made
/// in files are audited too. Only digests go in (secrets are redacted before hashing, and
/// the database URL, which may hold a password, is left out).
async fn record_what_started(
    config: &Config,
    parts: &ServerParts,
    audit: &AuditService,
) -> Result<()> {
    let mut hashed = config.clone();
    hashed.database.url = String::new();
    let serialized = serde_json::to_vec(&hashed).context("serialising the configuration")?;
    let digest = tollgate_audit::sha256_hex(&serialized);
    let tenant_count = parts.tenants.ids().len();
    for tenant in parts.tenants.all() {
        // Each log names its own tenant only: which other tenants exist is not its business.
        audit
            .record_if_changed(
                &tenant.id,
                crate::services::audit_events::AuditEvent::ConfigurationLoaded,
                &digest,
                serde_json::json!({ "tenant": tenant.id.as_str(), "tenants": tenant_count }),
            )
            .await?;
        audit
            .record_if_changed(
                &tenant.id,
                crate::services::audit_events::AuditEvent::PolicySetLoaded,
                tenant.policies.fingerprint(),
                serde_json::json!({
                    "controls": tenant.policies.controls().len(),
                    "load_problems": tenant.scan.load_problems(),
                }),
            )
            .await?;
    }
    Ok(())
}

/// Audit retention, daily per tenant (one replica's turn): payloads older than `days` are withheld (hashes stay).
async fn withhold_periodically(
    audit: Arc<AuditService>,
    turns: Arc<dyn Store>,
    tenants: Arc<crate::services::tenant::Tenants>,
    days: u64,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if days == 0 {
        return;
    }
    let every = Duration::from_secs(24 * 3600);
    loop {
        let now = time::OffsetDateTime::now_utc();
        let cutoff = now - time::Duration::days(days as i64);
        for tenant in &tenants.ids() {
            // One replica per tenant and day.
            match turns
                .claim_schedule(tenant, "audit.retention", now, every)
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%tenant, %error, "claiming the audit retention turn failed");
                    continue;
                }
            }
            match audit
                .withhold_before(tenant, cutoff, &format!("retention_days = {days}"))
                .await
            {
                Ok(0) => {}
                Ok(withheld) => {
                    tracing::info!(%tenant, withheld, "audit payloads past retention withheld")
                }
                Err(error) => {
                    tracing::warn!(%tenant, error = %format!("{error:#}"), "audit retention failed")
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(TURN_RETRY) => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return; },
        }
    }
}

/// How often the signed tree of a log that grows fast is advanced (AuditService::advance),
/// rather than about five times per checkpoint interval. At 10,000 gate decisions/s an advance
/// a second read and hashed 10,000 leaves in one go, 8–20 ms of a core during which the checks
/// waited: a spike in the gate's latency each second. Passes of ≈ 1,000 leaves take 1–2 ms.
const BUSY_ADVANCE_EVERY: Duration = Duration::from_millis(100);

/// A log that grew by at least this many leaves per [`BUSY_ADVANCE_EVERY`] since its last
/// advance counts as growing fast. A rate, not a count per pass: busy passes are shorter than
/// quiet ones, and a count would flip a steady log between the two.
const BUSY_ADVANCE_LEAVES: u64 = 256;

/// When a tenant's signed audit tree was last advanced, and when it is next due.
struct AdvanceTurn {
    last: tokio::time::Instant,
    due: tokio::time::Instant,
}

/// Sign each tenant's audit checkpoint when records arrived (at most every `interval`) and
/// as an hourly heartbeat; a last one on shutdown, so every record is covered.
/// One replica at a time signs a tenant's checkpoints (a lease renewed every round, lost a few
/// intervals after that replica stops); the last round on shutdown signs regardless, so what
/// this replica wrote is covered before it exits.
async fn checkpoint_periodically(
    audit: Arc<AuditService>,
    leases: Arc<dyn Store>,
    tenants: Arc<crate::services::tenant::Tenants>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let replica = replica_name();
    // Between checkpoints each signed tree is advanced by what was appended since
    // (AuditService::advance), so that signing has only the last few leaves to read and hash:
    // about every fifth of the interval when a log is quiet, every BUSY_ADVANCE_EVERY while it
    // grows fast. (The interval is at least a second, so a quiet pass is at least 200 ms apart.)
    let quiet_every = (interval / 5).max(Duration::from_millis(200));
    let mut advances: HashMap<TenantId, AdvanceTurn> = HashMap::new();
    loop {
        let due = tokio::time::Instant::now() + interval;
        let stopping = loop {
            let next = (tokio::time::Instant::now() + BUSY_ADVANCE_EVERY).min(due);
            let stopping = tokio::select! {
                () = tokio::time::sleep_until(next) => false,
                _ = shutdown.changed() => *shutdown.borrow(),
            };
            let now = tokio::time::Instant::now();
            if stopping || now >= due {
                break stopping;
            }
            for tenant in &tenants.ids() {
                let turn = advances.entry(tenant.clone()).or_insert(AdvanceTurn {
                    last: now,
                    due: now + quiet_every,
                });
                if turn.due > now {
                    continue;
                }
                let started = std::time::Instant::now();
                let leaves = match audit.advance(tenant).await {
                    Ok(leaves) => {
                        tracing::debug!(%tenant, leaves, took_us = started.elapsed().as_micros(), "signed audit tree advanced");
                        leaves
                    }
                    Err(error) => {
                        tracing::debug!(%tenant, error = %format!("{error:#}"), "advancing the signed audit tree");
                        0
                    }
                };
                let since = now.saturating_duration_since(turn.last);
                let growing_fast = u128::from(leaves) * BUSY_ADVANCE_EVERY.as_micros()
                    >= u128::from(BUSY_ADVANCE_LEAVES) * since.as_micros();
                turn.last = now;
                turn.due = now
                    + if growing_fast {
                        BUSY_ADVANCE_EVERY
                    } else {
                        quiet_every
                    };
            }
        };
        // Read each time: tenants created through the API are checkpointed too.
        let ids = tenants.ids();
        advances.retain(|tenant, _| ids.contains(tenant));
        for tenant in &ids {
            let mine = stopping
                || leases
                    .claim_lease(
                        tenant,
                        "checkpoint",
                        &replica,
                        time::OffsetDateTime::now_utc(),
                        (interval * 3).max(Duration::from_secs(5)),
                    )
                    .await
                    .unwrap_or_else(|error| {
                        tracing::warn!(%tenant, %error, "the checkpoint lease could not be claimed");
                        false
                    });
            if !mine {
                continue;
            }
            let started = std::time::Instant::now();
            match audit.checkpoint(tenant).await {
                Ok(_) => {
                    tracing::debug!(%tenant, took_us = started.elapsed().as_micros(), "audit checkpoint signed")
                }
                Err(error) => {
                    tracing::error!(%tenant, error = %format!("{error:#}"), "signing an audit checkpoint failed")
                }
            }
            if stopping {
                // Hand the lease on at once: a lease of no time has expired already.
                let _ = leases
                    .claim_lease(
                        tenant,
                        "checkpoint",
                        &replica,
                        time::OffsetDateTime::now_utc(),
                        Duration::ZERO,
                    )
                    .await;
            }
        }
        if stopping {
            return;
        }
    }
}

/// Tenant administration over the store; `config` says which tenants the file names.
pub fn tenancy_service(
    config: &Config,
    store: Arc<dyn Store>,
    audit: Arc<AuditService>,
) -> Result<crate::services::tenancy::TenancyService> {
    let configured = configured_tenants(config)
        .iter()
        .map(|tenant| TenantId::parse(&tenant.id))
        .collect::<Result<_, _>>()?;
    Ok(crate::services::tenancy::TenancyService::new(
        store, audit, configured,
    ))
}

/// The authenticator: API keys always, OIDC bearer tokens when `[auth.oidc]` is set. With
/// neither an identity provider nor any active key, a one-time admin key is created and
/// printed, so the first start is never open and never locked out.
async fn authenticator(
    config: &Config,
    store: Arc<dyn Store>,
) -> Result<(
    Arc<crate::auth::authenticator::Authenticator>,
    Arc<crate::auth::api_keys::ApiKeyService>,
)> {
    let api_keys = crate::auth::api_keys::ApiKeyService::new(store.clone());
    let oidc = match &config.auth.oidc {
        None => None,
        Some(settings) => {
            settings
                .validate()
                .map_err(|error| anyhow::anyhow!("[auth.oidc]: {error}"))?;
            let source = crate::auth::jwks_http::HttpKeySource::new(settings)
                .map_err(|error| anyhow::anyhow!("[auth.oidc]: {error}"))?;
            let validator =
                crate::auth::oidc::OidcValidator::new(settings.clone(), Arc::new(source))
                    .map_err(|error| anyhow::anyhow!("[auth.oidc]: {error}"))?;
            // A broken issuer is worth knowing at start, but tokens may still work later.
            if let Err(error) = validator.warm_up(time::OffsetDateTime::now_utc()).await {
                tracing::warn!(%error, "the OIDC issuer's keys could not be fetched yet");
            }
            Some(validator)
        }
    };
    if let Some(key) = api_keys
        .bootstrap_admin(oidc.is_some(), time::OffsetDateTime::now_utc())
        .await
        .context("creating the bootstrap admin key")?
    {
        println!("bootstrap admin API key: {}", key.expose());
        eprintln!(
            "A one-time admin API key was created and printed above; it is not shown again. \
Create named keys with POST /api/v1/api-keys and revoke `bootstrap`."
        );
    }
    Ok((
        Arc::new(
            crate::auth::authenticator::Authenticator::new(oidc, api_keys.clone())
                .with_memberships(store),
        ),
        Arc::new(api_keys),
    ))
}

/// What `tollgate mcp` serves over stdio.
pub struct McpParts {
    pub tenants: Arc<crate::services::tenant::Tenants>,
    pub audit: Arc<AuditService>,
    pub authenticator: Arc<crate::auth::authenticator::Authenticator>,
}

/// The tenants over the store, the audit log, and an authenticator for API keys. Unlike
/// `serve`, no bootstrap key is ever created (stdout carries the protocol, and an MCP client
/// acts as a key someone already holds) and no identity provider is consulted.
pub async fn mcp_parts(config: &Config) -> Result<McpParts> {
    let store = configured_store(config).await?;
    let (policies, problems) = policies(config)?;
    for problem in &problems {
        tracing::warn!(
            problem,
            "a policy file did not load; the rest of the catalog runs"
        );
    }
    let contexts = tenant_contexts(config, store.clone(), policies, &problems)?;
    let audit = Arc::new(audit_service(config, store.clone()).await?);
    let api_keys = crate::auth::api_keys::ApiKeyService::new(store);
    Ok(McpParts {
        tenants: Arc::new(crate::services::tenant::Tenants::new(contexts)),
        audit,
        authenticator: Arc::new(crate::auth::authenticator::Authenticator::new(
            None, api_keys,
        )),
    })
}

/// `tollgate serve`: the API, the webhook receiver and (unless `with_workers` is false)
/// in-process workers and the scheduler, until Ctrl-C or SIGTERM.
pub async fn run_server(config: &Config, with_workers: bool) -> Result<()> {
    let parts = server_parts(config).await?;
    let authenticator = authenticator(config, parts.store.clone()).await?;
    let (ingest, ingest_task) = crate::services::events::IngestService::start(
        parts.store.clone(),
        parts.metrics.clone(),
        parts.wake.clone(),
    );
    let events = Arc::new(crate::services::events::EventsService::new(
        parts.store.clone(),
        parts.store.clone(),
        config.worker.max_attempts,
    ));
    let audit = Arc::new(audit_service(config, parts.store.clone()).await?);
    record_what_started(config, &parts, &audit).await?;
    let tenancy = Arc::new(tenancy_service(config, parts.store.clone(), audit.clone())?);
    let state = crate::http::AppState::new(crate::http::AppContext {
        tenancy,
        tenants: parts.tenants.clone(),
        authenticator: authenticator.0,
        api_keys: authenticator.1,
        rate_limiter: Arc::new(crate::http::middleware::RateLimiter::new(
            config.server.rate_limit_per_minute,
        )),
        metrics: parts.metrics.clone(),
        settings: Arc::new(crate::http::HttpSettings {
            body_limit_bytes: config.server.body_limit_bytes,
            webhook_body_limit_bytes: config.server.webhook_body_limit_bytes,
            request_timeout: Duration::from_secs(config.server.request_timeout_secs.max(1)),
            header_read_timeout: Duration::from_secs(config.server.header_read_timeout_secs.max(1)),
            cors_origins: config.server.cors_origins.clone(),
        }),
        readiness: Arc::new(StoreReadiness(parts.store.clone())),
        ingest: Some(ingest),
        events: Some(events),
        wake: parts.wake.clone(),
        max_attempts: config.worker.max_attempts,
        audit: audit.clone(),
    });
    let listener = crate::http::bind(&config.server.listen).await?;
    let address = listener.local_addr()?;
    // The first line on stdout is the address (tests and scripts read it).
    println!("listening on http://{address}");
    for tenant in parts.tenants.all() {
        if tenant.webhook.is_none() {
            eprintln!(
                "warning: tenant {} has no webhook secret; its service-hook deliveries are refused (set webhook.secret_file)",
                tenant.id
            );
        }
    }
    let shutdown = shutdown_signal();
    let mut background = Vec::new();
    if with_workers {
        for index in 0..1 {
            background.push(tokio::spawn(
                worker_for(config, &parts, index).run(shutdown.clone()),
            ));
        }
        background.push(tokio::spawn(crate::jobs::schedule(
            parts.store.clone(),
            parts.tenants.clone(),
            Duration::from_secs(config.worker.incremental_sync_every_secs),
            Duration::from_secs(config.worker.full_sync_every_secs),
            config.worker.max_attempts,
            parts.wake.clone(),
            shutdown.clone(),
        )));
    }
    background.push(tokio::spawn(checkpoint_periodically(
        audit.clone(),
        parts.store.clone(),
        parts.tenants.clone(),
        Duration::from_secs(config.audit.checkpoint_interval_secs.max(1)),
        shutdown.clone(),
    )));
    let sinks = crate::siem::sinks(
        &config.audit.sinks,
        &std::env::var("HOSTNAME").unwrap_or_else(|_| "tollgate".to_owned()),
    )
    .context("the audit sinks")?;
    if !sinks.is_empty() {
        let exporter = Arc::new(crate::services::siem::SiemExporter {
            store: parts.store.clone(),
            leases: parts.store.clone(),
            replica: replica_name(),
            sinks,
            tenants: parts.tenants.clone(),
            origin_prefix: config.audit.origin_prefix.clone(),
            metrics: parts.metrics.clone(),
            poll: Duration::from_secs(1),
        });
        background.push(tokio::spawn(exporter.run(shutdown.clone())));
    }
    background.push(tokio::spawn(withhold_periodically(
        audit.clone(),
        parts.store.clone(),
        parts.tenants.clone(),
        config.audit.retention_days,
        shutdown.clone(),
    )));
    background.push(tokio::spawn(prune_periodically(
        parts.store.clone(),
        Duration::from_secs(config.server.event_retention_hours.max(36) * 3600),
        shutdown.clone(),
    )));
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let mut stop = shutdown.clone();
    let app = crate::http::router(state);
    crate::http::serve(
        listener,
        app,
        Duration::from_secs(config.server.header_read_timeout_secs.max(1)),
        async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        },
        grace,
    )
    .await?;
    // Requests are answered; let the event writer drain what they submitted, then the
    // workers finish the jobs in hand.
    let _ = tokio::time::timeout(grace, ingest_task).await;
    let _ = tokio::time::timeout(grace, futures_util::future::join_all(background)).await;
    tracing::info!("stopped");
    Ok(())
}

/// `tollgate worker`: workers and the scheduler without the HTTP server.
pub async fn run_workers(config: &Config) -> Result<()> {
    let parts = server_parts(config).await?;
    let shutdown = shutdown_signal();
    println!(
        "worker started with {} job(s) at a time; Ctrl-C stops after the jobs in hand",
        config.worker.concurrency
    );
    let worker = tokio::spawn(worker_for(config, &parts, 0).run(shutdown.clone()));
    let scheduler = tokio::spawn(crate::jobs::schedule(
        parts.store.clone(),
        parts.tenants.clone(),
        Duration::from_secs(config.worker.incremental_sync_every_secs),
        Duration::from_secs(config.worker.full_sync_every_secs),
        config.worker.max_attempts,
        parts.wake.clone(),
        shutdown,
    ));
    let _ = futures_util::future::join(worker, scheduler).await;
    Ok(())
}

/// Stored events and jobs, for `tollgate events`.
pub async fn event_pipeline(config: &Config) -> Result<crate::services::events::EventsService> {
    let store = configured_store(config).await?;
    Ok(crate::services::events::EventsService::new(
        store.clone(),
        store,
        config.worker.max_attempts,
    ))
}
