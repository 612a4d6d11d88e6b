//! `tollgate mcp`: the MCP server over stdio, acting as the holder of an API key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use rmcp::ServiceExt as _;
use tollgate_domain::SecretString;

use crate::cli::DbArgs;
use crate::config::{self, Overrides};
use crate::mcp::{McpServer, authenticate_api_key};
use crate::startup;

/// The environment variable that may hold the key itself (for clients that pass secrets
/// through the environment of the server they start).
pub const API_KEY_ENV: &str = "TOLLGATE_API_KEY";

#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// A file holding the API key (tg_…) the MCP client acts as [otherwise the key itself in
    /// TOLLGATE_API_KEY]
    #[arg(long, value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
}

/// The key from `--api-key-file`, else from the environment; none is an error that says
/// how to give one.
fn api_key(file: Option<&Path>) -> Result<SecretString> {
    let (raw, from) = match file {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the API key file {}", path.display()))?,
            path.display().to_string(),
        ),
        None => match std::env::var(API_KEY_ENV) {
            Ok(value) => (value, API_KEY_ENV.to_owned()),
            Err(_) => bail!(
                "tollgate mcp acts as the holder of an API key and has none: pass --api-key-file FILE \
or set {API_KEY_ENV} (an admin creates keys with POST /api/v1/api-keys)"
            ),
        },
    };
    let key = raw.trim();
    if key.is_empty() {
        bail!("{from} holds no API key (it is empty)");
    }
    Ok(SecretString::new(key))
}

pub async fn run(config_file: Option<&Path>, args: McpArgs) -> Result<ExitCode> {
    // Refuse before opening anything: without a key there is nobody to act as.
    let key = api_key(args.api_key_file.as_deref())?;
    let loaded = config::load(
        config_file,
        &Overrides {
            db: args.db.db,
            ..Overrides::default()
        },
    )?;
    let parts = startup::mcp_parts(&loaded.config).await?;
    let principal = authenticate_api_key(&parts.authenticator, &parts.audit, &key)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "the API key was refused ({}); check that it is current and not revoked",
                error.reason()
            )
        })?;
    if parts.tenants.get(&principal.tenant).is_none() {
        bail!(
            "the key belongs to tenant {}, which this configuration does not serve",
            principal.tenant
        );
    }
    // stdout carries the protocol; anything for people goes to stderr.
    eprintln!(
        "tollgate mcp: serving over stdio as {} (role {}, tenant {})",
        principal.display_name, principal.role, principal.tenant
    );
    let server = McpServer::with_api_key(parts.tenants, parts.audit, parts.authenticator, key);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .context("starting the MCP session over stdio")?;
    running.waiting().await.context("serving MCP over stdio")?;
    Ok(ExitCode::SUCCESS)
}
