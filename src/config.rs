//! Configuration: defaults < `tollgate.toml` < `TOLLGATE_*` environment < command-line flags.
//!
//! Unknown keys in the file and unknown `TOLLGATE_*` variables are errors that name the key.
//! Secrets may come from files (`*_file` keys, `TOLLGATE_*_FILE` variables) and are
//! [`SecretString`]s, so they never reach a log line, an error or Debug output.
//! All environment reads of the application go through this module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tollgate_domain::SecretString;

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DB: &str = "tollgate.db";
/// The config file read when `--config` and `TOLLGATE_CONFIG` are absent (if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "tollgate.toml";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub ado: AdoConfig,
    pub sync: SyncConfig,
    pub policy: PolicyConfig,
    /// The default tenant's service-hook secret (`tollgate serve`).
    pub webhook: WebhookConfig,
    /// More organisations served by one install, each a tenant of its own.
    pub tenants: Vec<TenantConfig>,
    pub server: ServerConfig,
    pub worker: WorkerConfig,
    pub auth: AuthConfig,
    pub audit: AuditConfig,
    /// The deployment gate: its calendar, environments and the default tenant's credential.
    pub gate: GateConfig,
    /// Channels approvers are notified on (`[[notifications]]`).
    pub notifications: Vec<NotificationConfig>,
}

/// One channel approval notices go to. URLs of Teams and Slack incoming webhooks carry their
/// credential, so they are secrets (`url_file`, or a redacted `url`); the webhook's signing
/// secret and the SMTP password come from files only.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotificationConfig {
    /// A Microsoft Teams incoming webhook (a Workflows "when a webhook request is received"
    /// URL): an Adaptive Card.
    Teams {
        /// Names the channel in results and logs (default: the kind).
        name: Option<String>,
        url: Option<SecretString>,
        url_file: Option<PathBuf>,
    },
    /// A Slack incoming webhook: Block Kit blocks with a plain-text fallback.
    Slack {
        name: Option<String>,
        url: Option<SecretString>,
        url_file: Option<PathBuf>,
    },
    /// Any HTTP endpoint, signed per the Standard Webhooks specification.
    Webhook {
        name: Option<String>,
        url: Option<String>,
        /// A file holding the signing secret, `whsec_` and base64 of 24 to 64 random bytes.
        secret_file: Option<PathBuf>,
    },
    /// E-mail over SMTP.
    Email {
        name: Option<String>,
        smtp_host: Option<String>,
        #[serde(default = "default_smtp_port")]
        smtp_port: u16,
        #[serde(default)]
        tls: SmtpTls,
        /// PEM certificates to trust for TLS (default: the system's roots).
        ca_file: Option<PathBuf>,
        username: Option<String>,
        password_file: Option<PathBuf>,
        from: Option<String>,
        #[serde(default)]
        to: Vec<String>,
    },
}

impl NotificationConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Teams { .. } => "teams",
            Self::Slack { .. } => "slack",
            Self::Webhook { .. } => "webhook",
            Self::Email { .. } => "email",
        }
    }

    /// The configured name, or the kind.
    pub fn name(&self) -> &str {
        let name = match self {
            Self::Teams { name, .. }
            | Self::Slack { name, .. }
            | Self::Webhook { name, .. }
            | Self::Email { name, .. } => name,
        };
        name.as_deref().unwrap_or(self.kind())
    }
}

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a relay on the same host or network); no password is sent over it.
    None,
    /// STARTTLS, required (a server that does not offer it is an error, never a downgrade).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

fn default_smtp_port() -> u16 {
    587
}

/// The tamper-evident audit log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Logs are named `{origin_prefix}/{tenant}`; the name is also the signing key's name.
    /// Use a name that is yours, e.g. `audit.contoso.example`.
    pub origin_prefix: String,
    /// The private key file (created with mode 0600 on first use; its public keys are
    /// written beside it as `….pub`). Default: the database path + `.audit-key`.
    pub key_file: Option<PathBuf>,
    /// While records arrive, sign a checkpoint at most this often.
    pub checkpoint_interval_secs: u64,
    /// Sign a checkpoint at least this often even when idle (a heartbeat).
    pub heartbeat_secs: u64,
    /// Record payloads older than this are withheld (their hashes stay, so every proof
    /// stays possible); 0 keeps them forever.
    pub retention_days: u64,
    /// SIEM sinks the records and checkpoints stream to (`[[audit.sinks]]`).
    pub sinks: Vec<SinkConfig>,
}

/// One SIEM destination. Secrets come from files, never from this file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SinkConfig {
    /// CEF over syslog (RFC 5424; TCP and TLS with octet counting, or UDP).
    Syslog {
        name: String,
        /// host:port
        address: String,
        #[serde(default)]
        transport: SyslogTransport,
        /// PEM certificates to trust for TLS (default: the system's roots).
        ca_file: Option<PathBuf>,
        /// The name to check the server's certificate against (default: the host).
        server_name: Option<String>,
        /// Syslog facility (default 10, authpriv).
        #[serde(default = "default_facility")]
        facility: u8,
    },
    /// JSON lines to a file, rotated at `max_bytes` keeping `keep` old files.
    File {
        name: String,
        path: PathBuf,
        #[serde(default = "default_max_bytes")]
        max_bytes: u64,
        #[serde(default = "default_keep")]
        keep: u32,
    },
    /// Splunk HTTP Event Collector, batched, with indexer acknowledgement when `ack`.
    SplunkHec {
        name: String,
        /// e.g. https://splunk.example:8088
        url: String,
        token_file: PathBuf,
        index: Option<String>,
        #[serde(default)]
        ack: bool,
        ca_file: Option<PathBuf>,
    },
    /// Azure Monitor Logs Ingestion API (a data collection rule; not the retired Data
    /// Collector API), authenticated as an Entra app with a client secret.
    AzureLogs {
        name: String,
        /// The data collection endpoint, e.g. https://my-dce.westeurope-1.ingest.monitor.azure.com
        endpoint: String,
        dcr_immutable_id: String,
        /// e.g. Custom-Tollgate
        stream: String,
        tenant_id: String,
        client_id: String,
        client_secret_file: PathBuf,
        /// The Entra authority (default https://login.microsoftonline.com).
        #[serde(default = "default_authority")]
        authority: String,
        ca_file: Option<PathBuf>,
    },
}

impl SinkConfig {
    pub fn name(&self) -> &str {
        match self {
            Self::Syslog { name, .. }
            | Self::File { name, .. }
            | Self::SplunkHec { name, .. }
            | Self::AzureLogs { name, .. } => name,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    #[default]
    Tcp,
    Tls,
    Udp,
}

fn default_facility() -> u8 {
    10
}

fn default_max_bytes() -> u64 {
    100 * 1024 * 1024
}

fn default_keep() -> u32 {
    5
}

fn default_authority() -> String {
    "https://login.microsoftonline.com".to_owned()
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            origin_prefix: "tollgate".to_owned(),
            key_file: None,
            checkpoint_interval_secs: 5,
            heartbeat_secs: 3600,
            retention_days: 90,
            sinks: Vec::new(),
        }
    }
}

impl AuditConfig {
    /// The key file: configured, or beside a SQLite database, or `tollgate.audit-key` in the
    /// working directory for a PostgreSQL URL (set `key_file` there: every replica needs the
    /// same key).
    pub fn key_path(&self, database_url: &str) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| beside_database(database_url, "audit-key"))
    }
}

/// How API callers prove who they are. API keys always work; `[auth.oidc]` adds Entra ID
/// (or any OIDC issuer's) bearer tokens.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub oidc: Option<crate::auth::oidc::OidcSettings>,
}

/// How ADO authenticates its service-hook deliveries to us. ADO's Web Hooks consumer sends
/// either basic auth (`basicAuthUsername`/`basicAuthPassword`) or custom headers; we accept
/// the secret as the basic-auth password (any user name) or as the value of `header`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub secret: Option<SecretString>,
    pub secret_file: Option<PathBuf>,
    /// The custom header that may carry the secret instead of basic auth.
    pub header: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            secret: None,
            secret_file: None,
            header: "X-Tollgate-Webhook-Secret".to_owned(),
        }
    }
}

impl WebhookConfig {
    /// The secret, reading a secret file now; `None` when none is configured.
    pub fn secret(&self) -> Result<Option<SecretString>> {
        match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => {
                bail!("both webhook.secret and webhook.secret_file are set; keep one")
            }
            (Some(secret), None) => Ok(Some(secret.clone())),
            (None, Some(path)) => read_secret_file(path, "webhook secret").map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// One organisation served as a tenant: `[[tenants]]` with `id`, `[tenants.ado]` and
/// `[tenants.webhook]` tables shaped like the top-level `[ado]` and `[webhook]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub id: String,
    #[serde(default)]
    pub ado: AdoConfig,
    #[serde(default)]
    pub webhook: WebhookConfig,
    /// The credential ADO's Invoke REST API check presents for this tenant.
    #[serde(default)]
    pub gate: GateCredentialConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where `tollgate serve` listens.
    pub listen: String,
    /// Largest request body accepted by the API.
    pub body_limit_bytes: usize,
    /// Largest service-hook delivery accepted (ADO's payloads with full resource details can
    /// reach a few hundred KiB).
    pub webhook_body_limit_bytes: usize,
    /// A request must be answered within this time (503 otherwise).
    pub request_timeout_secs: u64,
    /// A client must send its request headers within this time (slow clients that send
    /// nothing are disconnected).
    pub header_read_timeout_secs: u64,
    /// Requests per minute per principal before 429 with Retry-After (0: no limit).
    pub rate_limit_per_minute: u32,
    /// Origins allowed to call the API from a browser; empty: CORS off.
    pub cors_origins: Vec<String>,
    /// How long stored service-hook events are kept (at least 36 h, so redeliveries are
    /// still recognised as duplicates).
    pub event_retention_hours: u64,
    /// How long shutdown waits for in-flight requests and jobs.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            body_limit_bytes: 1024 * 1024,
            webhook_body_limit_bytes: 4 * 1024 * 1024,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            rate_limit_per_minute: 600,
            cors_origins: Vec::new(),
            event_retention_hours: 7 * 24,
            shutdown_grace_secs: 30,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Jobs processed at once per worker process.
    pub concurrency: usize,
    /// How often an idle worker looks for jobs (new events wake it at once in-process).
    pub poll_interval_ms: u64,
    /// Attempts before a job is dead-lettered.
    pub max_attempts: u32,
    /// Events arriving within this window share one re-sync.
    pub debounce_ms: u64,
    /// Scheduled incremental sync and evaluation per tenant (0: off).
    pub incremental_sync_every_secs: u64,
    /// Scheduled full sync per tenant (0: off).
    pub full_sync_every_secs: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            poll_interval_ms: 1000,
            max_attempts: 8,
            debounce_ms: 250,
            incremental_sync_every_secs: 15 * 60,
            full_sync_every_secs: 24 * 60 * 60,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// A SQLite file path (or `sqlite://path`). PostgreSQL URLs arrive with the PostgreSQL store.
    pub url: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_DB.to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdoAuth {
    /// A personal access token (`pat` or `pat_file`).
    #[default]
    Pat,
    /// An Entra ID service principal with a client secret.
    ServicePrincipal,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdoConfig {
    /// `https://dev.azure.com/{organisation}` (or a simulator's URL).
    pub org_url: Option<String>,
    pub auth: AdoAuth,
    pub pat: Option<SecretString>,
    pub pat_file: Option<PathBuf>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    /// The Entra authority; change it only for sovereign clouds or a test issuer.
    pub authority: String,
    /// Requests in flight at once against the organisation.
    pub max_concurrency: usize,
    pub request_timeout_secs: u64,
    pub max_attempts: u32,
    /// Per-host base URLs (`dev`, `vssps`, `vsrm`, `auditservice`, `advsec`, `feeds`).
    pub hosts: BTreeMap<String, String>,
}

impl Default for AdoConfig {
    fn default() -> Self {
        Self {
            org_url: None,
            auth: AdoAuth::Pat,
            pat: None,
            pat_file: None,
            tenant_id: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            authority: tollgate_ado::config::DEFAULT_AUTHORITY.to_owned(),
            max_concurrency: 8,
            request_timeout_secs: 60,
            max_attempts: 8,
            hosts: BTreeMap::new(),
        }
    }
}

impl AdoConfig {
    /// The organisation URL, or an error saying how to give one.
    pub fn org_url(&self) -> Result<&str> {
        self
            .org_url
            .as_deref()
            .ok_or_else(|| anyhow!("no organisation given: pass --org https://dev.azure.com/ORG, set TOLLGATE_ADO_ORG_URL, or ado.org_url in tollgate.toml"))
    }

    /// The ADO credential, reading secret files now.
    pub fn credential(&self) -> Result<tollgate_ado::Credential> {
        match self.auth {
            AdoAuth::Pat => {
                let pat = match (&self.pat, &self.pat_file) {
                    (Some(pat), _) => pat.clone(),
                    (None, Some(path)) => read_secret_file(path, "PAT")?,
                    (None, None) => bail!(
                        "no Azure DevOps credential: set TOLLGATE_ADO_PAT, pass --pat-file FILE, or configure ado.pat_file (or ado.auth = \"service_principal\")"
                    ),
                };
                if pat.is_empty() {
                    bail!("the PAT is empty");
                }
                Ok(tollgate_ado::Credential::Pat(pat))
            }
            AdoAuth::ServicePrincipal => {
                let missing =
                    |key: &str| anyhow!("ado.auth = \"service_principal\" needs ado.{key}");
                let secret = match (&self.client_secret, &self.client_secret_file) {
                    (Some(secret), _) => secret.clone(),
                    (None, Some(path)) => read_secret_file(path, "client secret")?,
                    (None, None) => return Err(missing("client_secret or ado.client_secret_file")),
                };
                Ok(tollgate_ado::Credential::ServicePrincipal(
                    tollgate_ado::ServicePrincipal {
                        tenant_id: self.tenant_id.clone().ok_or_else(|| missing("tenant_id"))?,
                        client_id: self.client_id.clone().ok_or_else(|| missing("client_id"))?,
                        client_secret: secret,
                        authority: self.authority.clone(),
                    },
                ))
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// An incremental sync re-reads this much before the last sync's start, so nothing that
    /// changed while it ran is missed.
    pub overlap_secs: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self { overlap_secs: 300 }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Directories of your own `.rego` controls, loaded next to the built-in catalog.
    pub dirs: Vec<PathBuf>,
    /// Control ids switched off.
    pub disabled: Vec<String>,
    /// Parameter overrides per control: `[policy.params.BP-02] minimum_approvers = 3`.
    pub params: BTreeMap<String, toml::Table>,
    /// Actions and parameters per organisation, project or repository (most specific wins).
    pub scoped: Vec<crate::services::settings::ScopedSetting>,
}

/// `TOLLGATE_*` variables and the key each sets. Anything else with the prefix is an error.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("TOLLGATE_DB", "database.url"),
    ("TOLLGATE_DATABASE_URL", "database.url"),
    ("TOLLGATE_ADO_ORG_URL", "ado.org_url"),
    ("TOLLGATE_ADO_AUTH", "ado.auth"),
    ("TOLLGATE_ADO_PAT", "ado.pat"),
    ("TOLLGATE_ADO_PAT_FILE", "ado.pat_file"),
    ("TOLLGATE_ADO_TENANT_ID", "ado.tenant_id"),
    ("TOLLGATE_ADO_CLIENT_ID", "ado.client_id"),
    ("TOLLGATE_ADO_CLIENT_SECRET", "ado.client_secret"),
    ("TOLLGATE_ADO_CLIENT_SECRET_FILE", "ado.client_secret_file"),
    ("TOLLGATE_ADO_AUTHORITY", "ado.authority"),
    ("TOLLGATE_ADO_MAX_CONCURRENCY", "ado.max_concurrency"),
    (
        "TOLLGATE_ADO_REQUEST_TIMEOUT_SECS",
        "ado.request_timeout_secs",
    ),
    ("TOLLGATE_ADO_MAX_ATTEMPTS", "ado.max_attempts"),
    ("TOLLGATE_SYNC_OVERLAP_SECS", "sync.overlap_secs"),
    ("TOLLGATE_LISTEN", "server.listen"),
    ("TOLLGATE_WEBHOOK_SECRET", "webhook.secret"),
    ("TOLLGATE_WEBHOOK_SECRET_FILE", "webhook.secret_file"),
];

/// Variables not mapped onto keys, read elsewhere: the configuration file, the log filter, the gate's fixed clock for
/// demonstrations and end-to-end tests (startup::gate_clock), and the API key `tollgate mcp` acts as (cli_mcp).
const ENVIRONMENT_OTHER: &[&str] = &[
    "TOLLGATE_CONFIG",
    "TOLLGATE_LOG",
    "TOLLGATE_FAKE_NOW",
    "TOLLGATE_API_KEY",
];

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub db: Option<String>,
    pub org_url: Option<String>,
    pub pat_file: Option<PathBuf>,
    pub max_concurrency: Option<usize>,
}

/// Where the configuration came from, for `tollgate config check`.
#[derive(Clone, Debug, Serialize)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
}

/// Load the layered configuration from the real environment.
pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Loaded> {
    let environment: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| name.starts_with("TOLLGATE_"))
        .collect();
    load_from(config_file, &environment, overrides)
}

/// Load with an explicit environment (tests pass their own).
pub fn load_from(
    config_file: Option<&Path>,
    environment: &[(String, String)],
    overrides: &Overrides,
) -> Result<Loaded> {
    let env_file = environment
        .iter()
        .find(|(name, _)| name == "TOLLGATE_CONFIG")
        .map(|(_, v)| PathBuf::from(v));
    let (file, required) = match (config_file, env_file) {
        (Some(path), _) => (Some(path.to_path_buf()), true),
        (None, Some(path)) => (Some(path), true),
        (None, None) => {
            let default = PathBuf::from(DEFAULT_CONFIG_FILE);
            (default.exists().then_some(default), false)
        }
    };
    let mut table = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path);
            match text {
                Ok(text) => toml::from_str::<toml::Table>(&text)
                    .with_context(|| format!("{} is not valid TOML", path.display()))?,
                Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => {
                    toml::Table::new()
                }
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("reading config file {}", path.display()));
                }
            }
        }
        None => toml::Table::new(),
    };
    // Validate the file alone first, so an unknown key is blamed on the file.
    Config::deserialize(toml::Value::Table(table.clone())).map_err(|error| {
        anyhow!(
            "{}: {}",
            file.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            error.message()
        )
    })?;

    for (name, value) in environment {
        // TOLLGATE_TEST_* belong to the test suite (the PostgreSQL test cluster's URLs, which
        // CI exports for every test, including those that start tollgate), never configuration.
        if ENVIRONMENT_OTHER.contains(&name.as_str()) || name.starts_with("TOLLGATE_TEST_") {
            continue;
        }
        let Some((_, key)) = ENVIRONMENT.iter().find(|(known, _)| known == name) else {
            let known: Vec<&str> = ENVIRONMENT
                .iter()
                .map(|(n, _)| *n)
                .chain(ENVIRONMENT_OTHER.iter().copied())
                .collect();
            bail!(
                "unknown environment variable {name}; tollgate reads: {}",
                known.join(", ")
            );
        };
        set_key(&mut table, key, value);
    }
    if let Some(db) = &overrides.db {
        set_key(&mut table, "database.url", db);
    }
    if let Some(org) = &overrides.org_url {
        set_key(&mut table, "ado.org_url", org);
    }
    if let Some(path) = &overrides.pat_file {
        set_key(&mut table, "ado.pat_file", &path.display().to_string());
        // A flag outranks a PAT given lower down.
        if let Some(toml::Value::Table(ado)) = table.get_mut("ado") {
            ado.remove("pat");
        }
    }
    if let Some(concurrency) = overrides.max_concurrency {
        set_key(&mut table, "ado.max_concurrency", &concurrency.to_string());
    }
    let config = Config::deserialize(toml::Value::Table(table))
        .map_err(|error| anyhow!("configuration: {}", error.message()))?;
    config.validate()?;
    Ok(Loaded { config, file })
}

/// Set `section.key` from a string, typed as TOML would read it (numbers stay numbers).
fn set_key(table: &mut toml::Table, dotted: &str, raw: &str) {
    let (section, key) = dotted.split_once('.').unwrap_or(("", dotted));
    let value = raw
        .parse::<i64>()
        .map(toml::Value::Integer)
        .or_else(|_| raw.parse::<bool>().map(toml::Value::Boolean))
        .unwrap_or_else(|_| toml::Value::String(raw.to_owned()));
    // Keys that are strings in the schema stay strings even when they look like numbers.
    let value = match (key, value) {
        (
            "url" | "org_url" | "pat" | "pat_file" | "tenant_id" | "client_id" | "client_secret"
            | "client_secret_file" | "authority" | "auth" | "listen" | "secret" | "secret_file"
            | "header",
            v,
        ) => toml::Value::String(match v {
            toml::Value::String(s) => s,
            other => other.to_string(),
        }),
        (_, v) => v,
    };
    let section_table = table
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(section_table) = section_table {
        section_table.insert(key.to_owned(), value);
    }
}

fn read_secret_file(path: &Path, what: &str) -> Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} from {}", path.display()))?;
    let trimmed = text.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    Ok(SecretString::new(trimmed))
}

impl Config {
    fn validate(&self) -> Result<()> {
        if self.ado.pat.is_some() && self.ado.pat_file.is_some() {
            bail!("both ado.pat and ado.pat_file are set; keep one");
        }
        if self.ado.client_secret.is_some() && self.ado.client_secret_file.is_some() {
            bail!("both ado.client_secret and ado.client_secret_file are set; keep one");
        }
        if self.ado.max_concurrency == 0 || self.ado.max_concurrency > 64 {
            bail!(
                "ado.max_concurrency must be between 1 and 64 (got {})",
                self.ado.max_concurrency
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for tenant in &self.tenants {
            tollgate_domain::TenantId::parse(&tenant.id)
                .map_err(|error| anyhow!("[[tenants]]: {error} (it appears in the webhook URL)"))?;
            if !seen.insert(tenant.id.as_str()) {
                bail!("tenant {:?} is configured twice", tenant.id);
            }
        }
        if self.server.event_retention_hours < 36 {
            bail!(
                "server.event_retention_hours must be at least 36: ADO redelivers events for up to 36 hours and duplicates are recognised by the stored ids"
            );
        }
        if self.worker.concurrency == 0 || self.worker.max_attempts == 0 {
            bail!("worker.concurrency and worker.max_attempts must be at least 1");
        }
        for host in self.ado.hosts.keys() {
            if !tollgate_domain::ado_api::AdoHost::ALL
                .iter()
                .any(|h| h.config_name() == host)
            {
                bail!(
                    "unknown host {host:?} in [ado.hosts]; use dev, vssps, vsrm, auditservice, advsec or feeds"
                );
            }
        }
        self.gate.validate()?;
        crate::notify::validate(&self.notifications)?;
        Ok(())
    }

    /// The organisation URL, or an error saying how to give one.
    pub fn org_url(&self) -> Result<&str> {
        self.ado.org_url()
    }

    /// The ADO credential, reading secret files now.
    pub fn credential(&self) -> Result<tollgate_ado::Credential> {
        self.ado.credential()
    }

    /// The tenants `tollgate serve` answers for: `default` (from `[ado]` and `[webhook]`)
    /// when an organisation or a webhook secret is configured there, then `[[tenants]]`.
    pub fn tenants(&self) -> Vec<TenantConfig> {
        let mut tenants = Vec::new();
        let default_configured = self.ado.org_url.is_some()
            || self.webhook.secret.is_some()
            || self.webhook.secret_file.is_some();
        if default_configured && !self.tenants.iter().any(|t| t.id == "default") {
            tenants.push(TenantConfig {
                id: "default".to_owned(),
                ado: self.ado.clone(),
                webhook: self.webhook.clone(),
                gate: self.gate.credential.clone(),
            });
        }
        tenants.extend(self.tenants.iter().cloned());
        tenants
    }

    /// A documented example configuration (`tollgate config example`).
    pub fn example() -> &'static str {
        include_str!("../tollgate.example.toml")
    }
}

/// Add `[[tenants]]` to a configuration file (created when missing), keeping its comments
/// and layout. Secrets are referenced by file path, never copied into the file.
pub fn add_tenant(
    path: &Path,
    id: &str,
    org_url: &str,
    pat_file: &Path,
    webhook_secret_file: &Path,
) -> Result<()> {
    let mut document = read_document(path)?;
    let tenants = document
        .entry("tenants")
        .or_insert(toml_edit::Item::ArrayOfTables(
            toml_edit::ArrayOfTables::new(),
        ))
        .as_array_of_tables_mut()
        .ok_or_else(|| anyhow!("{}: `tenants` is not an array of tables", path.display()))?;
    if tenants
        .iter()
        .any(|t| t.get("id").and_then(|v| v.as_str()) == Some(id))
    {
        bail!("tenant {id} is already configured in {}", path.display());
    }
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut ado = toml_edit::Table::new();
    ado.insert("org_url", toml_edit::value(org_url));
    ado.insert("pat_file", toml_edit::value(absolute(pat_file)));
    let mut webhook = toml_edit::Table::new();
    webhook.insert(
        "secret_file",
        toml_edit::value(absolute(webhook_secret_file)),
    );
    let mut tenant = toml_edit::Table::new();
    tenant.insert("id", toml_edit::value(id));
    tenant.insert("ado", toml_edit::Item::Table(ado));
    tenant.insert("webhook", toml_edit::Item::Table(webhook));
    tenants.push(tenant);
    write_document(path, &document)
}

/// Remove a `[[tenants]]` entry; returns whether it was there.
pub fn remove_tenant(path: &Path, id: &str) -> Result<bool> {
    let mut document = read_document(path)?;
    let Some(tenants) = document
        .get_mut("tenants")
        .and_then(|t| t.as_array_of_tables_mut())
    else {
        return Ok(false);
    };
    let before = tenants.len();
    tenants.retain(|t| t.get("id").and_then(|v| v.as_str()) != Some(id));
    let removed = tenants.len() != before;
    if removed {
        write_document(path, &document)?;
    }
    Ok(removed)
}

fn read_document(path: &Path) -> Result<toml_edit::DocumentMut> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(toml_edit::DocumentMut::new())
        }
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Write through a temporary file and rename, so a crash never leaves half a file.
fn write_document(path: &Path, document: &toml_edit::DocumentMut) -> Result<()> {
    let temporary = path.with_extension("toml.tmp");
    std::fs::write(&temporary, document.to_string())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))
}

/// A tracing filter from `TOLLGATE_LOG` (e.g. `debug` or `tollgate=debug,reqwest=info`).
pub fn log_filter() -> Option<String> {
    std::env::var("TOLLGATE_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_job_token_key_lies_beside_the_database_or_the_audit_key_unless_configured() {
        let mut gate = GateConfig::default();
        let audit = AuditConfig::default();
        let sqlite = "/data/tollgate.db";
        assert_eq!(
            gate.token_key_path(sqlite, &audit.key_path(sqlite)),
            PathBuf::from("/data/tollgate.db.token-key")
        );
        assert_eq!(
            gate.token_key_path("sqlite:///data/t.db", Path::new("x")),
            PathBuf::from("/data/t.db.token-key")
        );
        let postgres = "postgres://app@db/tollgate";
        assert_eq!(
            gate.token_key_path(postgres, Path::new("/run/secrets/audit.key")),
            PathBuf::from("/run/secrets/tollgate.token-key")
        );
        assert_eq!(
            gate.token_key_path(postgres, &audit.key_path(postgres)),
            PathBuf::from("tollgate.token-key")
        );
        gate.token_key_file = Some(PathBuf::from("/keys/token"));
        assert_eq!(
            gate.token_key_path(postgres, Path::new("/run/secrets/audit.key")),
            PathBuf::from("/keys/token")
        );
    }

    #[test]
    fn the_gate_is_expected_where_configured_or_everywhere_and_only_with_a_credential() {
        use crate::services::bypass::CheckExpectation;
        let dir = tempfile::tempdir().unwrap();
        let gated = "[gate]\nusername = \"ado\"\npassword = \"pw\"\n";
        let environments = "[[gate.environments]]\nname = \"prod-*\"\n";
        let file = write(&dir, &format!("{gated}{environments}"));
        let config = load_from(Some(&file), &[], &Overrides::default())
            .unwrap()
            .config;
        assert_eq!(
            config.gate.check_expectation(&config.gate.credential),
            CheckExpectation::Configured(vec!["prod-*".to_owned()])
        );
        let file = write(
            &dir,
            &format!("{gated}expect_check = \"all\"\n{environments}"),
        );
        let config = load_from(Some(&file), &[], &Overrides::default())
            .unwrap()
            .config;
        assert_eq!(
            config.gate.check_expectation(&config.gate.credential),
            CheckExpectation::All
        );
        // Without a credential ADO cannot call the gate, so no deployment can bypass it.
        let file = write(&dir, "[gate]\nexpect_check = \"all\"\n");
        let config = load_from(Some(&file), &[], &Overrides::default())
            .unwrap()
            .config;
        assert_eq!(
            config.gate.check_expectation(&config.gate.credential),
            CheckExpectation::Nothing
        );
        let file = write(&dir, "[gate]\nexpect_check = \"production\"\n");
        let error = load_from(Some(&file), &[], &Overrides::default())
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(
            error.contains("gate.expect_check") && error.contains("\"all\""),
            "{error}"
        );
    }

    #[test]
    fn layers_apply_in_order_defaults_file_environment_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            &dir,
            "[database]\nurl = \"from-file.db\"\n[ado]\nmax_concurrency = 3\norg_url = \"https://dev.azure.com/file\"\n",
        );
        let loaded = load_from(Some(&file), &[], &Overrides::default()).unwrap();
        assert_eq!(loaded.config.database.url, "from-file.db");
        assert_eq!(loaded.config.ado.max_concurrency, 3);
        assert_eq!(
            loaded.config.sync.overlap_secs, 300,
            "defaults fill what the file leaves out"
        );

        let environment = env(&[
            ("TOLLGATE_DB", "from-env.db"),
            ("TOLLGATE_ADO_MAX_CONCURRENCY", "5"),
        ]);
        let loaded = load_from(Some(&file), &environment, &Overrides::default()).unwrap();
        assert_eq!(loaded.config.database.url, "from-env.db");
        assert_eq!(loaded.config.ado.max_concurrency, 5);

        let flags = Overrides {
            db: Some("from-flag.db".into()),
            org_url: Some("https://dev.azure.com/flag".into()),
            ..Overrides::default()
        };
        let loaded = load_from(Some(&file), &environment, &flags).unwrap();
        assert_eq!(loaded.config.database.url, "from-flag.db");
        assert_eq!(
            loaded.config.org_url().unwrap(),
            "https://dev.azure.com/flag"
        );
    }

    #[test]
    fn unknown_keys_and_variables_are_rejected_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, "[ado]\norg_ulr = \"typo\"\n");
        let error = load_from(Some(&file), &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("org_ulr"), "{error}");

        let file = write(&dir, "[nonsense]\n");
        let error = load_from(Some(&file), &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("nonsense"), "{error}");

        let error = load_from(
            None,
            &env(&[("TOLLGATE_ADO_PATT", "x")]),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("TOLLGATE_ADO_PATT"), "{error}");

        // The test suite's own variables are not configuration and not an error.
        let loaded = load_from(
            None,
            &env(&[("TOLLGATE_TEST_POSTGRES_URL", "postgres://app@localhost/t")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(loaded.config.database.url, DEFAULT_DB);
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let error = load_from(
            Some(Path::new("/nonexistent/tollgate.toml")),
            &[],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("/nonexistent/tollgate.toml"));
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let pat_path = dir.path().join("pat");
        std::fs::write(&pat_path, "very-secret-pat\n").unwrap();
        let flags = Overrides {
            pat_file: Some(pat_path),
            ..Overrides::default()
        };
        let loaded = load_from(
            None,
            &env(&[("TOLLGATE_ADO_PAT", "lower-layer-pat")]),
            &flags,
        )
        .unwrap();
        let credential = loaded.config.credential().unwrap();
        match &credential {
            tollgate_ado::Credential::Pat(pat) => assert_eq!(pat.expose(), "very-secret-pat"),
            other => panic!("expected a PAT, got {other:?}"),
        }
        let shown = format!("{:?} {:?}", loaded.config, credential);
        assert!(
            !shown.contains("very-secret-pat") && !shown.contains("lower-layer-pat"),
            "{shown}"
        );
        let serialized = toml::to_string(&loaded.config).unwrap();
        assert!(!serialized.contains("lower-layer-pat"));
    }

    #[test]
    fn a_missing_credential_says_how_to_provide_one() {
        let loaded = load_from(None, &[], &Overrides::default()).unwrap();
        let error = loaded.config.credential().unwrap_err().to_string();
        assert!(error.contains("TOLLGATE_ADO_PAT"), "{error}");
        let error = loaded.config.org_url().unwrap_err().to_string();
        assert!(error.contains("--org"), "{error}");
    }

    #[test]
    fn the_example_configuration_parses() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(&dir, Config::example());
        load_from(Some(&file), &[], &Overrides::default()).unwrap();
    }
}

/// The basic-auth credential of the Generic service connection behind a tenant's Invoke REST
/// API check. Each tenant has its own; the gate answers 401 to any other.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateCredentialConfig {
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub password_file: Option<PathBuf>,
}

impl GateCredentialConfig {
    /// A password is set (the file is read later, by [`GateCredentialConfig::credential`]).
    pub fn is_configured(&self) -> bool {
        self.password.is_some() || self.password_file.is_some()
    }

    /// The user name and password, reading the password file now; `None` when unset.
    pub fn credential(&self) -> Result<Option<(String, SecretString)>> {
        let password = match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                bail!("both gate.password and gate.password_file are set; keep one")
            }
            (Some(password), None) => password.clone(),
            (None, Some(path)) => read_secret_file(path, "gate password")?,
            (None, None) => return Ok(None),
        };
        Ok(Some((
            self.username
                .clone()
                .unwrap_or_else(|| "tollgate".to_owned()),
            password,
        )))
    }
}

/// `[gate]`: how the deployment gate judges (docs/GATE.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// IANA time zone of the calendar rules (weekends, business hours, holidays).
    pub timezone: String,
    /// Local dates (`YYYY-MM-DD`) without production deployments.
    pub holidays: Vec<String>,
    /// How long an approval stays open.
    pub approval_expiry_hours: u64,
    /// The URL people reach tollgate at, for links in notifications.
    pub public_url: Option<String>,
    #[serde(flatten)]
    pub credential: GateCredentialConfig,
    pub freezes: Vec<crate::services::gate::Freeze>,
    pub environments: Vec<GateEnvironmentConfig>,
    /// Which deployments must have a gate verdict (GATE-10): `configured` (environments named
    /// in `[[gate.environments]]`) or `all` (every environment).
    pub expect_check: String,
    /// The key that seals ADO's job tokens (`AuthToken`) until their callback (created with
    /// mode 0600 on first use). Default: the database path + `.token-key` on SQLite;
    /// `tollgate.token-key` beside the audit key on PostgreSQL.
    pub token_key_file: Option<PathBuf>,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".to_owned(),
            holidays: Vec::new(),
            approval_expiry_hours: 24,
            public_url: None,
            credential: GateCredentialConfig::default(),
            freezes: Vec::new(),
            environments: Vec::new(),
            expect_check: "configured".to_owned(),
            token_key_file: None,
        }
    }
}

impl GateConfig {
    /// The job token key file: configured, or beside a SQLite database, or for a PostgreSQL
    /// URL `tollgate.token-key` in the directory of the audit key (`audit_key`), which every
    /// replica already shares: each needs the same key to call back for the others.
    pub fn token_key_path(&self, database_url: &str, audit_key: &Path) -> PathBuf {
        self.token_key_file.clone().unwrap_or_else(|| {
            if is_postgres_url(database_url) {
                audit_key.with_file_name("tollgate.token-key")
            } else {
                beside_database(database_url, "token-key")
            }
        })
    }
}

/// Whether a `database.url` names PostgreSQL (anything else is a SQLite path).
pub(crate) fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// `{database}.{suffix}` beside a SQLite database, `tollgate.{suffix}` in the working
/// directory for a PostgreSQL URL.
fn beside_database(database_url: &str, suffix: &str) -> PathBuf {
    if is_postgres_url(database_url) {
        return PathBuf::from(format!("tollgate.{suffix}"));
    }
    let path = database_url
        .strip_prefix("sqlite://")
        .unwrap_or(database_url);
    PathBuf::from(format!("{path}.{suffix}"))
}

/// `[[gate.environments]]`: the gate for environments whose name matches `name` (a glob).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateEnvironmentConfig {
    pub name: String,
    #[serde(default = "one")]
    pub quorum: u32,
    #[serde(default = "release_manager")]
    pub approver_role: String,
    /// Per gate rule: deny (as the rule says), warn, dry-run or off.
    #[serde(default)]
    pub actions: BTreeMap<String, String>,
    /// Per gate rule: parameters over its defaults.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Table>,
}

fn one() -> u32 {
    1
}

fn release_manager() -> String {
    "release_manager".to_owned()
}

impl GateConfig {
    fn validate(&self) -> Result<()> {
        for date in &self.holidays {
            time::Date::parse(
                date,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| anyhow!("gate.holidays: {date:?} is not a date (YYYY-MM-DD)"))?;
        }
        if self.approval_expiry_hours == 0 {
            bail!("gate.approval_expiry_hours must be at least 1");
        }
        if !matches!(self.expect_check.as_str(), "configured" | "all") {
            bail!(
                "gate.expect_check = {:?}: use \"configured\" (the [[gate.environments]] names) or \"all\"",
                self.expect_check
            );
        }
        for freeze in &self.freezes {
            if freeze.end <= freeze.start {
                bail!(
                    "[[gate.freezes]] {:?}: end must be after start",
                    freeze.reason
                );
            }
        }
        self.settings().map(|_| ())
    }

    /// The deployments that must have a gate verdict, for a tenant whose gate has (or lacks)
    /// a credential: without one ADO cannot call the gate, so nothing is expected.
    pub fn check_expectation(
        &self,
        credential: &GateCredentialConfig,
    ) -> crate::services::bypass::CheckExpectation {
        use crate::services::bypass::CheckExpectation;
        if !credential.is_configured() {
            return CheckExpectation::Nothing;
        }
        match self.expect_check.as_str() {
            "all" => CheckExpectation::All,
            _ => CheckExpectation::Configured(
                self.environments.iter().map(|e| e.name.clone()).collect(),
            ),
        }
    }

    /// The gate's settings, checked: roles, actions and parameters are valid.
    pub fn settings(&self) -> Result<crate::services::gate::GateSettings> {
        use crate::services::gate::{EnvironmentGate, GateSettings};
        let mut environments = Vec::new();
        for environment in &self.environments {
            let approver_role = environment.approver_role.parse().map_err(|error: String| {
                anyhow!(
                    "[[gate.environments]] {}: approver_role: {error}",
                    environment.name
                )
            })?;
            if environment.quorum == 0 {
                bail!(
                    "[[gate.environments]] {}: quorum must be at least 1",
                    environment.name
                );
            }
            let mut actions = BTreeMap::new();
            for (rule, action) in &environment.actions {
                let parsed = crate::services::settings::Action::parse(action).ok_or_else(|| {
                    anyhow!(
                        "[[gate.environments]] {}: action {action:?} for {rule}: use deny, warn, dry-run or off",
                        environment.name
                    )
                })?;
                actions.insert(rule.to_uppercase(), parsed);
            }
            let mut params = BTreeMap::new();
            for (rule, table) in &environment.params {
                let value = serde_json::to_value(table).with_context(|| {
                    format!(
                        "[[gate.environments]] {}: params for {rule}",
                        environment.name
                    )
                })?;
                if let serde_json::Value::Object(map) = value {
                    params.insert(rule.to_uppercase(), map);
                }
            }
            environments.push(EnvironmentGate {
                pattern: environment.name.clone(),
                quorum: environment.quorum,
                approver_role,
                actions,
                params,
            });
        }
        Ok(GateSettings {
            timezone: self.timezone.clone(),
            holidays: self.holidays.clone(),
            freezes: self.freezes.clone(),
            environments,
            approval_expiry: time::Duration::hours(
                i64::try_from(self.approval_expiry_hours).unwrap_or(24),
            ),
            public_url: self.public_url.clone(),
        })
    }
}
