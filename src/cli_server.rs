//! `tollgate serve`, `worker`, `tenant` and `events`: the server and its operations.

use crate::services::audit_events::{Actor, AuditEvent, Record, Target};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::TenantId;
use tollgate_store::{EventFilter, EventId, ReplaySelection};

use crate::cli::DbArgs;
use crate::config::{self, Overrides};
use crate::startup;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080; env: TOLLGATE_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Receive and store events, serve the API, but run no workers (run `tollgate worker`
    /// processes instead)
    #[arg(long)]
    pub no_workers: bool,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum TenantAction {
    /// Add an organisation as a tenant to the configuration file.
    #[command(
        after_help = "Example:\n  tollgate tenant add contoso --org https://dev.azure.com/contoso --pat-file /run/secrets/contoso-pat --webhook-secret-file /run/secrets/contoso-hook\n\n\
Secrets are referenced by file, never written into tollgate.toml. ADO's service hook then posts to\n  https://HOST/hooks/ado/contoso  with the secret as the basic-auth password."
    )]
    Add {
        /// Tenant id: lowercase letters, digits, '-' and '_'
        id: String,
        /// Organisation URL
        #[arg(long, value_name = "URL")]
        org: String,
        /// File holding the organisation's PAT
        #[arg(long, value_name = "FILE")]
        pat_file: PathBuf,
        /// File holding the service-hook secret
        #[arg(long, value_name = "FILE")]
        webhook_secret_file: PathBuf,
    },
    /// List configured tenants (no secrets).
    List,
    /// Remove a tenant from the configuration file: its memberships are deleted and its API
    /// keys revoked (its stored data stays).
    Remove { id: String },
    /// Who may act in a tenant, with which role.
    #[command(
        subcommand,
        after_help = "Examples:\n  tollgate tenant members add --tenant contoso --subject oidc:72f988bf-86f1-41af-91ab-2d7cd011db47:5e0c… --role admin\n  tollgate tenant members list --tenant contoso\n  tollgate tenant members remove --tenant contoso --subject apikey:AbCdEf123456\n\n\
A subject is what GET /api/v1/me shows: oidc:{tid}:{oid} for a token, apikey:{key id} for an API key."
    )]
    Members(MembersAction),
}

#[derive(Debug, Subcommand)]
pub enum MembersAction {
    /// List a tenant's members and their roles.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        tenant: String,
    },
    /// Give a principal a role in a tenant, or change its role there.
    Add {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        tenant: String,
        /// oidc:{tid}:{oid} or apikey:{key id}
        #[arg(long)]
        subject: String,
        /// admin, release_manager, operator, developer or viewer
        #[arg(long)]
        role: String,
    },
    /// Take a principal's role in a tenant away.
    Remove {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        subject: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// List stored service-hook events, newest last.
    List {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// received, processed, failed, malformed or unknown
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Process stored events again, by id or by time range.
    #[command(
        after_help = "Examples:\n  tollgate events replay --id 42 --id 43\n  tollgate events replay --since 2026-11-20T00:00:00Z --until 2026-11-21T00:00:00Z\n\n\
Replayed events are queued for the workers of a running `tollgate serve` or `tollgate worker`."
    )]
    Replay {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// A stored event's number (repeatable)
        #[arg(long = "id", value_name = "N")]
        ids: Vec<i64>,
        /// Received at or after (RFC 3339)
        #[arg(long, value_name = "TIME", conflicts_with = "ids")]
        since: Option<String>,
        /// Received before (RFC 3339) [default: now]
        #[arg(long, value_name = "TIME", requires = "since")]
        until: Option<String>,
    },
}

fn parse_time(raw: &str, what: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .with_context(|| format!("--{what} must be an RFC 3339 time such as 2026-11-20T00:00:00Z"))
}

pub async fn serve(config_file: Option<&Path>, args: ServeArgs) -> Result<ExitCode> {
    let mut loaded = config::load(
        config_file,
        &Overrides {
            db: args.db.db,
            ..Overrides::default()
        },
    )?;
    if let Some(listen) = args.listen {
        loaded.config.server.listen = listen;
    }
    startup::run_server(&loaded.config, !args.no_workers).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn worker(config_file: Option<&Path>, args: WorkerArgs) -> Result<ExitCode> {
    let loaded = config::load(
        config_file,
        &Overrides {
            db: args.db.db,
            ..Overrides::default()
        },
    )?;
    startup::run_workers(&loaded.config).await?;
    Ok(ExitCode::SUCCESS)
}

/// The configuration file `tenant add|remove` edits: --config, TOLLGATE_CONFIG or ./tollgate.toml.
fn config_path(config_file: Option<&Path>) -> PathBuf {
    config_file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TOLLGATE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG_FILE))
}

pub async fn tenant(config_file: Option<&Path>, action: TenantAction) -> Result<ExitCode> {
    match action {
        TenantAction::List => {
            let loaded = config::load(config_file, &Overrides::default())?;
            let tenants = loaded.config.tenants();
            if tenants.is_empty() {
                println!("no tenant configured; `tollgate tenant add` adds one");
            }
            for tenant in tenants {
                let secret =
                    if tenant.webhook.secret.is_some() || tenant.webhook.secret_file.is_some() {
                        "webhook secret set"
                    } else {
                        "NO webhook secret: events are refused"
                    };
                println!(
                    "{}\t{}\t{secret}\t/hooks/ado/{}",
                    tenant.id,
                    tenant.ado.org_url.as_deref().unwrap_or("(no organisation)"),
                    tenant.id
                );
            }
        }
        TenantAction::Add {
            id,
            org,
            pat_file,
            webhook_secret_file,
        } => {
            let id = TenantId::parse(&id)?;
            for file in [&pat_file, &webhook_secret_file] {
                if !file.is_file() {
                    bail!("{} does not exist or is not a file", file.display());
                }
            }
            let path = config_path(config_file);
            config::add_tenant(&path, id.as_str(), &org, &pat_file, &webhook_secret_file)?;
            // Prove the result loads before saying so.
            config::load(Some(&path), &Overrides::default())
                .with_context(|| format!("{} no longer loads after the edit", path.display()))?;
            record_tenant_change(config_file, &id, AuditEvent::TenantAdded).await?;
            println!(
                "tenant {id} added to {}; ADO's service hook posts to /hooks/ado/{id} (restart `tollgate serve` to pick it up)",
                path.display()
            );
        }
        TenantAction::Remove { id } => {
            let path = config_path(config_file);
            let tenant = TenantId::parse(&id)?;
            let found = config::remove_tenant(&path, &id)?;
            if !found {
                bail!("no tenant {id:?} in {}", path.display());
            }
            let tenancy = tenancy(config_file, None).await?;
            let removed = tenancy
                .end_access(&tenant, &Actor::local())
                .await
                .context("ending the tenant's memberships and API keys")?;
            println!(
                "tenant {id} removed from {}; {} membership(s) deleted, {} API key(s) revoked; its stored data stays in the database",
                path.display(),
                removed.memberships_removed,
                removed.api_keys_revoked,
            );
        }
        TenantAction::Members(action) => return members(config_file, action).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Tenant administration over the configured store.
async fn tenancy(
    config_file: Option<&Path>,
    db: Option<String>,
) -> Result<crate::services::tenancy::TenancyService> {
    let loaded = config::load(
        config_file,
        &Overrides {
            db,
            ..Overrides::default()
        },
    )?;
    let store = startup::configured_store(&loaded.config).await?;
    let audit = std::sync::Arc::new(startup::audit_service(&loaded.config, store.clone()).await?);
    startup::tenancy_service(&loaded.config, store, audit)
}

async fn members(config_file: Option<&Path>, action: MembersAction) -> Result<ExitCode> {
    match action {
        MembersAction::List { db, tenant } => {
            let tenant = TenantId::parse(&tenant)?;
            let tenancy = tenancy(config_file, db.db).await?;
            if !tenancy.exists(&tenant).await? {
                bail!("no tenant {tenant}; `tollgate tenant list` shows the configured ones");
            }
            let members = tenancy.members(&tenant).await?;
            if members.is_empty() {
                println!("tenant {tenant} has no members; `tollgate tenant members add` adds one");
            }
            for member in members {
                println!(
                    "{}\t{}\t{}\t{}",
                    member.subject,
                    member.role,
                    member.created_at.format(&Rfc3339).unwrap_or_default(),
                    member.created_by
                );
            }
        }
        MembersAction::Add {
            db,
            tenant,
            subject,
            role,
        } => {
            let tenant = TenantId::parse(&tenant)?;
            let role = role
                .parse::<crate::auth::Role>()
                .map_err(|error| anyhow::anyhow!("--role: {error}"))?;
            let tenancy = tenancy(config_file, db.db).await?;
            let put = tenancy
                .put_member(&tenant, &subject, role, &Actor::local())
                .await?;
            match put.previous {
                Some(previous) => {
                    println!("{subject} is now {role} in tenant {tenant} (was {previous})")
                }
                None => println!("{subject} is now a member of tenant {tenant} as {role}"),
            }
        }
        MembersAction::Remove {
            db,
            tenant,
            subject,
        } => {
            let tenant = TenantId::parse(&tenant)?;
            let tenancy = tenancy(config_file, db.db).await?;
            if !tenancy
                .remove_member(&tenant, &subject, &Actor::local())
                .await?
            {
                bail!("{subject} is not a member of tenant {tenant}");
            }
            println!("{subject} may no longer act in tenant {tenant}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A tenant added to or removed from the configuration is a record in that tenant's log.
async fn record_tenant_change(
    config_file: Option<&Path>,
    tenant: &TenantId,
    event: AuditEvent,
) -> Result<()> {
    let loaded = config::load(config_file, &Overrides::default())?;
    let store = startup::configured_store(&loaded.config).await?;
    let audit = startup::audit_service(&loaded.config, store).await?;
    let record = Record::new(event, &Actor::local(), time::OffsetDateTime::now_utc())
        .target(Target::new("tenant", tenant.as_str()))
        .draft();
    audit
        .record(tenant, vec![record])
        .await
        .context("recording the tenant change in the audit log")
}

pub async fn events(config_file: Option<&Path>, action: EventsAction) -> Result<ExitCode> {
    let db = match &action {
        EventsAction::List { db, .. } | EventsAction::Replay { db, .. } => db.db.clone(),
    };
    let loaded = config::load(
        config_file,
        &Overrides {
            db,
            ..Overrides::default()
        },
    )?;
    let pipeline = startup::event_pipeline(&loaded.config).await?;
    match action {
        EventsAction::List {
            tenant,
            status,
            limit,
            ..
        } => {
            let tenant = TenantId::parse(&tenant)?;
            let status = status
                .map(|s| {
                    tollgate_store::EventStatus::parse(&s).with_context(|| {
                        format!("unknown status {s:?}; use received, processed, failed, malformed or unknown")
                    })
                })
                .transpose()?;
            let events = pipeline
                .events(
                    &tenant,
                    &EventFilter {
                        status,
                        limit,
                        ..EventFilter::default()
                    },
                )
                .await?;
            for event in events {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    event.id,
                    event.received_at.format(&Rfc3339).unwrap_or_default(),
                    event.status.as_str(),
                    event.event_type.as_deref().unwrap_or("-"),
                    event.error.as_deref().unwrap_or(""),
                );
            }
        }
        EventsAction::Replay {
            tenant,
            ids,
            since,
            until,
            ..
        } => {
            let tenant = TenantId::parse(&tenant)?;
            let selection = match (ids.is_empty(), since) {
                (false, _) => ReplaySelection::Ids(ids.into_iter().map(EventId).collect()),
                (true, Some(since)) => ReplaySelection::Received {
                    since: parse_time(&since, "since")?,
                    until: until
                        .map(|u| parse_time(&u, "until"))
                        .transpose()?
                        .unwrap_or_else(OffsetDateTime::now_utc),
                },
                (true, None) => bail!("name events with --id N, or a range with --since TIME"),
            };
            let outcome = pipeline
                .replay(
                    &tenant,
                    &selection,
                    &crate::services::audit_events::Actor::local(),
                )
                .await?;
            println!(
                "{} event(s) queued again; {} skipped (malformed or not found)",
                outcome.enqueued, outcome.skipped
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
