//! The command line. Each subcommand parses its flags, asks `startup` for services and
//! renders what they return; no business logic lives here.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use tollgate_domain::ResourceKind;
use tollgate_sim::{Faults, Profile, SimConfig, Simulator};
use tracing_subscriber::EnvFilter;

use crate::config::{self, Overrides};
use crate::output::{self, ConsoleProgress, Format, SyncReport};
use crate::report::{self, ScanFormat};
use crate::services::scan::Evaluation;
use crate::services::sync::ModeRequest;
use crate::startup;
use tollgate_policy::Severity;

/// Exit code when a sync finished but some kinds were skipped or failed.
pub const EXIT_PARTIAL: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Governance, compliance and deployment gating for Azure DevOps",
    long_about = "tollgate keeps an inventory of an Azure DevOps organisation and checks it against policy.\n\n\
Try it without an organisation:\n  tollgate demo                      simulate an organisation, sync it, print the summary\n\n\
Against your organisation:\n  export TOLLGATE_ADO_PAT=…            a PAT with read access\n  tollgate sync --org https://dev.azure.com/ORG\n  tollgate inventory\n\n\
Configuration: defaults < tollgate.toml < TOLLGATE_* variables < flags (see `tollgate config example`)."
)]
pub struct Cli {
    /// Configuration file [default: ./tollgate.toml when present; env: TOLLGATE_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More diagnostics on stderr (-v: info, -vv: debug). TOLLGATE_LOG takes a full filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sync an organisation's inventory into the database (full or incremental).
    #[command(
        after_help = "Examples:\n  tollgate sync --org https://dev.azure.com/fabrikam\n  tollgate sync --full --format json > sync.json\n\n\
Exit codes: 0 synced, 1 error, 3 synced except some kinds (listed) that were skipped or failed."
    )]
    Sync(SyncArgs),
    /// Show how many objects of each kind the inventory holds.
    Inventory(InventoryArgs),
    /// Run the ADO simulator: a synthetic organisation behind an ADO-shaped REST API.
    #[command(
        after_help = "The first line on stdout is the base URL; the second the organisation URL to sync.\n\
Controls: GET /_sim/manifest, GET|DELETE /_sim/calls, GET|POST /_sim/faults, POST /_sim/mutate,\n\
GET|DELETE /_sim/deliveries (service-hook deliveries to subscribers of /ORG/_apis/hooks/subscriptions)."
    )]
    Sim(SimArgs),
    /// Simulate an organisation, sync it into SQLite, scan it and write an HTML report.
    Demo(DemoArgs),
    /// Evaluate the control catalog: sync (unless --offline), evaluate, report.
    #[command(
        after_help = "Examples:\n  tollgate scan --offline --format html --output report.html\n  tollgate scan --org https://dev.azure.com/fabrikam --format sarif --output tollgate.sarif --fail-on high\n\n\
Exit codes: 0 no finding at or above --fail-on, 1 error, 3 the sync skipped kinds (scan still ran), 4 findings at or above --fail-on."
    )]
    Scan(ScanArgs),
    /// List, explain, test and evaluate policies.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// Accept a risk: waive a control for a resource (or a key prefix) until a date.
    Waiver {
        #[command(subcommand)]
        action: WaiverAction,
    },
    /// Run the server: REST API, service-hook receiver, workers, metrics.
    #[command(
        after_help = "Examples:\n  tollgate serve                                   127.0.0.1:8080, ./tollgate.db, workers in-process\n  tollgate serve --listen 0.0.0.0:8080 --db /var/lib/tollgate/tollgate.db\n\n\
The first line on stdout is the listening address. With no identity provider and no API key yet,\n\
the first start prints a one-time admin API key. Ctrl-C or SIGTERM stops gracefully.\n\
API: /api/v1 (OpenAPI at /api/openapi.json, Swagger UI at /api/docs); webhooks: POST /hooks/ado/TENANT;\n\
operations: /healthz, /readyz, /metrics."
    )]
    Serve(crate::cli_server::ServeArgs),
    /// Run workers only (process events and scheduled syncs from the shared queue).
    Worker(crate::cli_server::WorkerArgs),
    /// Add, list or remove the organisations served as tenants.
    Tenant {
        #[command(subcommand)]
        action: crate::cli_server::TenantAction,
    },
    /// List stored service-hook events and replay them.
    Events {
        #[command(subcommand)]
        action: crate::cli_server::EventsAction,
    },
    /// Create or upgrade the database schema (on PostgreSQL, as the owner role).
    #[command(
        after_help = "Examples:\n  tollgate migrate --db tollgate.db\n  tollgate migrate --db postgres://tollgate_owner:PASSWORD@db.internal/tollgate --app-role tollgate_app\n\n\
PostgreSQL uses two roles: the owner runs this command (it owns the tables) and the app role,\n\
which owns nothing and has neither SUPERUSER nor BYPASSRLS, is what `serve`, `worker` and the\n\
other commands connect as (--db postgres://tollgate_app:…@…). Row-level security keeps each\n\
tenant's rows apart; tollgate refuses to run as a role it would not bind. SQLite files are\n\
migrated whenever they are opened; this command only makes that explicit."
    )]
    Migrate(MigrateArgs),
    /// Judge a deployment as the gate would, recorded as a dry run (nothing is queued).
    Validate(crate::cli_deploy::ValidateArgs),
    /// Queue a pipeline run for an environment, through the gate.
    Deploy(crate::cli_deploy::DeployArgs),
    /// Show (or follow) a deployment's run and the gate's decisions about it.
    Status(crate::cli_deploy::StatusArgs),
    /// Re-deploy the last successful deployment's commit to an environment.
    Rollback(crate::cli_deploy::RollbackArgs),
    /// Say what to do in a sentence: "deploy payments-api 1.4.2 to staging".
    Ask(crate::cli_deploy::AskArgs),
    /// Judge a deployment as the deployment gate would, or replay past deployments against it.
    Gate {
        #[command(subcommand)]
        action: crate::cli_gate::GateAction,
    },
    /// Serve the Model Context Protocol over stdio: validate, findings and approvals as tools.
    #[command(
        after_help = "Examples:\n  tollgate mcp --api-key-file ~/.config/tollgate/key --db /var/lib/tollgate/tollgate.db\n  TOLLGATE_API_KEY=tg_… tollgate mcp\n\n\
An MCP client (Claude Desktop, VS Code, an inspector) starts this command and speaks JSON-RPC on\n\
its stdin and stdout. The tools act as the key's holder, in the key's tenant, with its role's\n\
permissions; the key is checked again on every call. Without a key it refuses to start.\n\
Over HTTP, `tollgate serve` offers the same tools at /mcp (bearer token or API key). See docs/MCP.md."
    )]
    Mcp(crate::cli_mcp::McpArgs),
    /// Export, verify and prove the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        action: crate::cli_audit::AuditAction,
    },
    /// Show or check configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// PostgreSQL: the role tollgate runs as, granted SELECT, INSERT, UPDATE and DELETE
    #[arg(long, value_name = "ROLE", default_value = "tollgate_app")]
    pub app_role: String,
}

#[derive(Debug, Args)]
pub struct DbArgs {
    /// The database: a SQLite file path or sqlite://PATH, or postgres://USER:PASSWORD@HOST/DB
    /// [default: tollgate.db; env: TOLLGATE_DB]
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Organisation URL, e.g. https://dev.azure.com/fabrikam [env: TOLLGATE_ADO_ORG_URL]
    #[arg(long, value_name = "URL")]
    pub org: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Read the PAT from this file (otherwise TOLLGATE_ADO_PAT or configuration)
    #[arg(long, value_name = "FILE")]
    pub pat_file: Option<PathBuf>,
    /// Re-read everything, even when an earlier sync could be continued
    #[arg(long, conflicts_with = "incremental")]
    pub full: bool,
    /// Only continue from the last successful sync; fail if there is none
    #[arg(long)]
    pub incremental: bool,
    /// Requests in flight at once [default: 8]
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// No progress output on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Seed of the synthetic organisation: the same seed gives the same organisation
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Size of the organisation
    #[arg(long, default_value = "small", value_parser = parse_profile)]
    pub profile: Profile,
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    pub listen: String,
    /// The organisation's name in URLs
    #[arg(long, default_value = "fabrikam", value_name = "NAME")]
    pub org_name: String,
    /// Latency added to every ADO request, in milliseconds
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of ADO requests answered 503/500 (0-1)
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of successful responses cut short (0-1)
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Requests per window before 429 with Retry-After (0: unlimited)
    #[arg(long, default_value_t = 0)]
    pub tstu_budget: u32,
    /// Length of the rate-limit window in seconds
    #[arg(long, default_value_t = 10)]
    pub tstu_window_secs: u64,
    /// Accept only this PAT (default: any non-empty PAT)
    #[arg(long)]
    pub pat: Option<String>,
    /// Answer 403 for these kinds, as for an identity without permission
    #[arg(long, value_delimiter = ',', value_name = "KIND,…")]
    pub forbid: Vec<ResourceKind>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "medium", value_parser = parse_profile)]
    pub profile: Profile,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Scan the stored inventory only; do not sync first
    #[arg(long, conflicts_with = "org")]
    pub offline: bool,
    /// Organisation to sync before scanning [env: TOLLGATE_ADO_ORG_URL]
    #[arg(long, value_name = "URL")]
    pub org: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Read the PAT from this file
    #[arg(long, value_name = "FILE")]
    pub pat_file: Option<PathBuf>,
    /// A directory of your own .rego controls (repeatable), added to the built-in catalog
    #[arg(long = "policies", value_name = "DIR")]
    pub policies: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ScanFormat::Table)]
    pub format: ScanFormat,
    /// Write the report here instead of stdout
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with code 4 when a finding is at least this severe
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub fail_on: Option<Severity>,
    /// What to judge: `auto` judges only what incremental syncs changed since the last scan
    /// (and what depends on it) when that gives the same findings, else everything; `all`
    /// always judges everything
    #[arg(long, value_enum, default_value_t = EvaluateChoice::Auto)]
    pub evaluate: EvaluateChoice,
    /// No progress output on stderr
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EvaluateChoice {
    Auto,
    All,
}

impl From<EvaluateChoice> for Evaluation {
    fn from(choice: EvaluateChoice) -> Self {
        match choice {
            EvaluateChoice::Auto => Evaluation::Auto,
            EvaluateChoice::All => Evaluation::All,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// The controls of the catalog (and your --policies)
    List {
        #[arg(long = "policies", value_name = "DIR")]
        policies: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Everything about one control: rationale, remediation, parameters, framework mappings
    Explain {
        id: String,
        #[arg(long = "policies", value_name = "DIR")]
        policies: Vec<PathBuf>,
    },
    /// Run the case files (*.yaml) in DIR against the catalog plus DIR's .rego files
    Test { dir: PathBuf },
    /// Evaluate an input document (see docs/POLICY-INPUT.md) and print the violations
    Eval {
        /// The input JSON file (`-` for stdin)
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Only this control (default: every control of the input's kind)
        #[arg(long, value_name = "ID")]
        control: Option<String>,
        #[arg(long = "policies", value_name = "DIR")]
        policies: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WaiverAction {
    /// Waive a control for a resource key, a key prefix ending in '*', or '*'
    Add {
        #[arg(long)]
        control: String,
        #[arg(long)]
        scope: String,
        /// Who owns the accepted risk
        #[arg(long)]
        owner: String,
        #[arg(long)]
        reason: String,
        /// Expiry date (YYYY-MM-DD); an expired waiver reopens its findings
        #[arg(long, value_parser = parse_date)]
        expires: time::OffsetDateTime,
        #[command(flatten)]
        db: DbArgs,
    },
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    Remove {
        id: i64,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn parse_severity(raw: &str) -> Result<Severity, String> {
    raw.parse()
}

fn parse_date(raw: &str) -> Result<time::OffsetDateTime, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(raw, &format)
        .map(|date| date.midnight().assume_utc())
        .map_err(|_| format!("{raw:?} is not a date like 2026-12-31"))
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print a documented example tollgate.toml
    Example,
    /// Load the configuration as a command would and print it (secrets redacted)
    Check {
        #[command(flatten)]
        db: DbArgs,
    },
}

fn parse_profile(raw: &str) -> Result<Profile, String> {
    raw.parse()
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,tollgate=info",
        _ => "debug,hyper=info,reqwest=info",
    };
    let filter = config::log_filter()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Parse arguments, run the command, map the outcome to an exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let config_file = cli.config.as_deref();
    match cli.command {
        Command::Sync(args) => {
            let overrides = Overrides {
                db: args.db.db.clone(),
                org_url: args.org.clone(),
                pat_file: args.pat_file.clone(),
                max_concurrency: args.concurrency,
            };
            let loaded = config::load(config_file, &overrides)?;
            let service = startup::sync_service(&loaded.config).await?;
            let mode = match (args.full, args.incremental) {
                (true, _) => ModeRequest::Full,
                (_, true) => ModeRequest::Incremental,
                _ => ModeRequest::Auto,
            };
            let progress = if args.quiet {
                ConsoleProgress::quiet()
            } else {
                ConsoleProgress::new(false)
            };
            let summary = service.run(mode, &progress).await;
            progress.finish();
            let summary = summary?;
            print_sync(&summary, args.format)?;
            Ok(if summary.status == "ok" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_PARTIAL)
            })
        }
        Command::Inventory(args) => {
            let overrides = Overrides {
                db: args.db.db,
                ..Overrides::default()
            };
            let loaded = config::load(config_file, &overrides)?;
            let service = startup::inventory_service(&loaded.config).await?;
            let counts = service.counts().await?;
            match args.format {
                Format::Json => println!("{}", output::counts_json(&counts)),
                Format::Table => {
                    println!("{}", output::counts_table(&counts));
                    match service.last_sync().await? {
                        Some(sync) => println!(
                            "last successful sync: {} ({})",
                            sync.started_at,
                            sync.mode.as_str()
                        ),
                        None => println!("no successful sync yet: run `tollgate sync --org URL`"),
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim(args) => {
            run_simulator(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => demo(config_file, args).await,
        Command::Scan(args) => scan(config_file, args).await,
        Command::Policy { action } => crate::cli_policy::run(config_file, action).await,
        Command::Waiver { action } => crate::cli_policy::waiver(config_file, action).await,
        Command::Serve(args) => crate::cli_server::serve(config_file, args).await,
        Command::Worker(args) => crate::cli_server::worker(config_file, args).await,
        Command::Tenant { action } => crate::cli_server::tenant(config_file, action).await,
        Command::Events { action } => crate::cli_server::events(config_file, action).await,
        Command::Migrate(args) => {
            let loaded = config::load(
                config_file,
                &Overrides {
                    db: args.db.db,
                    ..Overrides::default()
                },
            )?;
            let done = startup::migrate(&loaded.config.database.url, &args.app_role).await?;
            println!("{done}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { action } => crate::cli_audit::run(config_file, action).await,
        Command::Gate { action } => crate::cli_gate::run(config_file, action).await,
        Command::Validate(args) => crate::cli_deploy::validate(config_file, args).await,
        Command::Deploy(args) => crate::cli_deploy::deploy(config_file, args).await,
        Command::Status(args) => crate::cli_deploy::status(config_file, args).await,
        Command::Rollback(args) => crate::cli_deploy::rollback(config_file, args).await,
        Command::Ask(args) => crate::cli_deploy::ask(config_file, args).await,
        Command::Mcp(args) => crate::cli_mcp::run(config_file, args).await,
        Command::Config { action } => {
            match action {
                ConfigAction::Example => print!("{}", crate::config::Config::example()),
                ConfigAction::Check { db } => {
                    let loaded = config::load(
                        config_file,
                        &Overrides {
                            db: db.db,
                            ..Overrides::default()
                        },
                    )?;
                    let source = loaded
                        .file
                        .as_ref()
                        .map(|f| f.display().to_string())
                        .unwrap_or_else(|| "no file (defaults and environment)".to_owned());
                    println!("# configuration from {source}; secrets are redacted");
                    print!(
                        "{}",
                        toml::to_string_pretty(&loaded.config)
                            .context("rendering the configuration")?
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_sync(summary: &crate::services::sync::SyncSummary, format: Format) -> Result<()> {
    match format {
        Format::Json => {
            let report = SyncReport {
                summary,
                peak_rss_kib: output::peak_rss_kib(),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Format::Table => print!("{}", output::sync_table(summary)),
    }
    Ok(())
}

async fn run_simulator(args: SimArgs) -> Result<()> {
    for rate in [args.error_rate, args.truncate_rate] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&rate),
            "rates are shares between 0 and 1 (got {rate})"
        );
    }
    let config = SimConfig {
        organization: args.org_name,
        seed: args.seed,
        profile: args.profile,
        faults: Faults {
            latency_ms: args.latency_ms,
            error_rate: args.error_rate,
            truncate_rate: args.truncate_rate,
            throttle_for_ms: 0,
        },
        tstu_budget: args.tstu_budget,
        tstu_window: Duration::from_secs(args.tstu_window_secs.max(1)),
        pat: args.pat,
        forbidden: args.forbid,
        ..SimConfig::default()
    };
    let organization = config.organization.clone();
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let address = listener.local_addr()?;
    let simulator = Simulator::new(config);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "http://{address}")?;
    writeln!(stdout, "organisation: http://{address}/{organization}")?;
    stdout.flush()?;
    drop(stdout);
    eprintln!(
        "simulating {organization} ({} objects); Ctrl-C stops",
        simulator.counts().values().sum::<usize>()
    );
    tokio::select! {
        served = simulator.serve(listener) => served.context("serving")?,
        _ = tokio::signal::ctrl_c() => eprintln!("stopping"),
    }
    Ok(())
}

async fn demo(config_file: Option<&std::path::Path>, args: DemoArgs) -> Result<ExitCode> {
    let sim_config = SimConfig {
        seed: args.seed,
        profile: args.profile,
        ..SimConfig::default()
    };
    let simulator = Simulator::new(sim_config);
    let expected = simulator.counts();
    let running = simulator
        .spawn("127.0.0.1:0")
        .await
        .context("starting the simulator")?;
    eprintln!(
        "simulated organisation at {} (profile {:?}, seed {})",
        running.org_url(),
        args.profile,
        args.seed
    );
    let overrides = Overrides {
        db: args.db.db,
        org_url: Some(running.org_url()),
        ..Overrides::default()
    };
    let mut loaded = config::load(config_file, &overrides)?;
    // The simulator accepts any PAT; the demo needs no credential of the user's.
    loaded.config.ado.auth = crate::config::AdoAuth::Pat;
    loaded.config.ado.pat = Some(tollgate_domain::SecretString::new("demo"));
    loaded.config.ado.pat_file = None;
    loaded.config.ado.hosts.clear();
    let service = startup::sync_service(&loaded.config).await?;
    let progress = ConsoleProgress::new(false);
    let summary = service.run(ModeRequest::Full, &progress).await;
    progress.finish();
    let summary = summary?;
    print_sync(&summary, args.format)?;
    let mismatched: Vec<String> = summary
        .kinds
        .iter()
        .filter(|k| expected.get(&k.kind).map(|n| *n as u64) != Some(k.stored))
        .map(|k| {
            format!(
                "{} (stored {}, simulated {})",
                k.kind,
                k.stored,
                expected.get(&k.kind).copied().unwrap_or(0)
            )
        })
        .collect();
    let scanner = startup::scan_service(&loaded.config).await?;
    let report = scanner
        .scan(time::OffsetDateTime::now_utc(), Evaluation::All)
        .await?;
    let report_path = std::path::Path::new(&loaded.config.database.url).with_extension("html");
    std::fs::write(&report_path, report::render(&report, ScanFormat::Html))
        .with_context(|| format!("writing {}", report_path.display()))?;
    if args.format == Format::Table {
        let db = &loaded.config.database.url;
        if mismatched.is_empty() {
            println!("\nEvery kind matches the simulated organisation. Inventory in {db}.");
        } else {
            println!(
                "\nMismatch with the simulated organisation: {}",
                mismatched.join(", ")
            );
        }
        println!("\nScan: {}", report::summary_line(&report));
        println!("HTML report: {}", report_path.display());
        println!("Next: `tollgate scan --offline --db {db}` or `tollgate inventory --db {db}`");
    }
    Ok(if mismatched.is_empty() && summary.status == "ok" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    })
}

async fn scan(config_file: Option<&std::path::Path>, args: ScanArgs) -> Result<ExitCode> {
    let overrides = Overrides {
        db: args.db.db.clone(),
        org_url: args.org.clone(),
        pat_file: args.pat_file.clone(),
        ..Overrides::default()
    };
    let mut loaded = config::load(config_file, &overrides)?;
    loaded
        .config
        .policy
        .dirs
        .extend(args.policies.iter().cloned());
    let mut exit = ExitCode::SUCCESS;
    if !args.offline {
        if loaded.config.ado.org_url.is_none() {
            anyhow::bail!(
                "nothing to sync: pass --org https://dev.azure.com/ORG (or set TOLLGATE_ADO_ORG_URL), or scan the stored inventory with --offline"
            );
        }
        let service = startup::sync_service(&loaded.config).await?;
        let progress = if args.quiet {
            ConsoleProgress::quiet()
        } else {
            ConsoleProgress::new(false)
        };
        let summary = service.run(ModeRequest::Auto, &progress).await;
        progress.finish();
        let summary = summary?;
        if summary.status != "ok" {
            exit = ExitCode::from(EXIT_PARTIAL);
        }
        if !args.quiet {
            eprintln!(
                "{} sync: {} in {} ms",
                summary.mode.as_str(),
                summary.status,
                summary.duration_ms
            );
        }
    }
    let scanner = startup::scan_service(&loaded.config).await?;
    let mut report = scanner
        .scan(time::OffsetDateTime::now_utc(), args.evaluate.into())
        .await?;
    report.peak_rss_kib = output::peak_rss_kib();
    if !args.quiet {
        eprintln!(
            "evaluated {} resources ({}: {})",
            report.resources_evaluated, report.evaluation.mode, report.evaluation.reason
        );
    }
    for problem in &report.load_problems {
        eprintln!("warning: policy not loaded: {problem}");
    }
    let rendered = report::render(&report, args.format);
    match &args.output {
        Some(path) => {
            std::fs::write(path, rendered)
                .with_context(|| format!("writing {}", path.display()))?;
            if !args.quiet {
                eprintln!(
                    "{}\nreport written to {}",
                    report::summary_line(&report),
                    path.display()
                );
            }
        }
        None => println!("{rendered}"),
    }
    if let (Some(threshold), Some(worst)) = (args.fail_on, report.worst())
        && worst >= threshold
    {
        return Ok(ExitCode::from(EXIT_FINDINGS));
    }
    Ok(exit)
}

/// Exit code when `--fail-on` found a finding at or above its severity.
pub const EXIT_FINDINGS: u8 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
