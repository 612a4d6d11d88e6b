//! `tollgate audit`: export the tamper-evident log as a bundle, verify a bundle offline,
//! print a record's inclusion proof, sign a checkpoint now.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use tollgate_audit::bundle::{self, Report};
use tollgate_domain::TenantId;

use crate::cli::DbArgs;
use crate::config::{self, Overrides};
use crate::services::audit::CheckpointOutcome;
use crate::services::audit_events::Actor;
use crate::startup;

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Write a tenant's audit log as a bundle (JSONL leaves, leaf hashes, signed checkpoints).
    #[command(
        after_help = "Example:\n  tollgate audit export --output audit-2026-11\n  tollgate audit verify audit-2026-11\n\n\
A checkpoint is signed first, so the bundle covers every record. The directory must not hold an\n\
earlier bundle."
    )]
    Export {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The bundle directory (created)
        #[arg(long, value_name = "DIR")]
        output: PathBuf,
    },
    /// Verify a bundle offline against trusted public keys.
    #[command(
        after_help = "Trusted keys come from --trusted-keys, or this instance's public key file (the key file\n\
+ .pub; see [audit] key_file) — never from the bundle itself.\n\n\
Exit codes: 0 verified; 1 tamper evidence (the first bad index and why); 2 incomplete (files\n\
missing, no checkpoint signed by a trusted key); 3 usage or configuration error."
    )]
    Verify {
        /// The bundle directory
        dir: PathBuf,
        /// A file of verifier keys, one per line (`name+id+key`)
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a record's inclusion proof (JSON) up to a signed checkpoint.
    Proof {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The record's id (its `id` field; a SIEM's dedupe key)
        #[arg(long, value_name = "ID")]
        id: String,
    },
    /// Withhold the payloads of records logged before a time (retention, tier 1): their
    /// hashes stay, so the log still verifies and every proof stays possible.
    #[command(
        after_help = "Example:\n  tollgate audit prune --before 2026-01-01T00:00:00Z\n\n\
`tollgate serve` does this daily for [audit] retention_days (default 90). The cut is itself\n\
recorded (log.retention). The genesis record is always kept."
    )]
    Prune {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Records logged before this time (RFC 3339)
        #[arg(long, value_name = "TIME")]
        before: String,
    },
    /// Replace the log's signing keys. Each tenant's log records the new public keys, vouched
    /// for by the old key, under a last checkpoint signed with the old key.
    #[command(
        after_help = "The old key file is kept as <key file>.retired-<time>; the public key file keeps the old\n\
keys and gains the new ones (give it to auditors again), so every checkpoint still verifies.\n\
Restart `tollgate serve` afterwards: a running server keeps signing with the key it loaded."
    )]
    RotateKey {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Sign a checkpoint now if records arrived since the last one.
    Checkpoint {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

fn db_of(action: &AuditAction) -> Option<String> {
    match action {
        AuditAction::Export { db, .. }
        | AuditAction::Verify { db, .. }
        | AuditAction::Proof { db, .. }
        | AuditAction::Checkpoint { db, .. }
        | AuditAction::Prune { db, .. }
        | AuditAction::RotateKey { db } => db.db.clone(),
    }
}

/// Exit code 3 for usage and configuration errors (the verifier's convention).
fn usage(error: anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(3)
}

pub async fn run(config_file: Option<&Path>, action: AuditAction) -> Result<ExitCode> {
    let loaded = match config::load(
        config_file,
        &Overrides {
            db: db_of(&action),
            ..Overrides::default()
        },
    ) {
        Ok(loaded) => loaded,
        Err(error) => return Ok(usage(error)),
    };
    let config = &loaded.config;
    if let AuditAction::Verify {
        dir, trusted_keys, ..
    } = &action
    {
        return Ok(verify(config, dir, trusted_keys.as_deref()));
    }
    let store = startup::configured_store(config).await?;
    let audit = startup::audit_service(config, store).await?;
    match action {
        AuditAction::Export { tenant, output, .. } => {
            let tenant = TenantId::parse(&tenant)?;
            let size = audit
                .export(&tenant, &output, &Actor::system())
                .await
                .with_context(|| format!("exporting the audit log of {tenant}"))?;
            println!(
                "exported {size} records of {} to {}",
                audit.origin(&tenant),
                output.display()
            );
        }
        AuditAction::Proof { tenant, id, .. } => {
            let tenant = TenantId::parse(&tenant)?;
            let Some(proof) = audit.inclusion_proof(&tenant, &id).await? else {
                eprintln!("error: no record {id:?} in the audit log of {tenant}");
                return Ok(ExitCode::from(1));
            };
            println!("{}", serde_json::to_string_pretty(&proof)?);
        }
        AuditAction::Checkpoint { tenant, .. } => {
            let tenant = TenantId::parse(&tenant)?;
            audit.ensure_genesis(&tenant).await?;
            match audit.checkpoint(&tenant).await? {
                CheckpointOutcome::Signed { size } => {
                    println!("signed a checkpoint of {size} records")
                }
                CheckpointOutcome::Unchanged => println!("nothing new since the last checkpoint"),
            }
        }
        AuditAction::Prune { tenant, before, .. } => {
            let tenant = TenantId::parse(&tenant)?;
            let before = match time::OffsetDateTime::parse(
                &before,
                &time::format_description::well_known::Rfc3339,
            ) {
                Ok(before) => before,
                Err(_) => return Ok(usage(anyhow::anyhow!("--before must be an RFC 3339 time"))),
            };
            let withheld = audit
                .withhold_before(
                    &tenant,
                    before,
                    &format!("tollgate audit prune --before {before}"),
                )
                .await?;
            println!("withheld the payloads of {withheld} records logged before {before}");
        }
        AuditAction::RotateKey { .. } => {
            let mut tenants = vec![TenantId::default_tenant()];
            for tenant in config.tenants() {
                tenants.push(TenantId::parse(&tenant.id)?);
            }
            let new = tollgate_audit::keys::LogKeys::generate(&config.audit.origin_prefix)?;
            audit
                .rotate_keys(&tenants, &new, &Actor::local())
                .await
                .context("recording the key rotation")?;
            let path = config.audit.key_path(&config.database.url);
            let retired = tollgate_audit::keys::LogKeys::replace_file(&path, &new)?;
            println!(
                "new audit keys in {}; the old ones kept as {}; public keys (old and new): {}",
                path.display(),
                retired.display(),
                tollgate_audit::keys::public_path(&path).display()
            );
        }
        AuditAction::Verify { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(config: &config::Config, dir: &Path, trusted_keys: Option<&Path>) -> ExitCode {
    let keys_path = trusted_keys.map_or_else(
        || tollgate_audit::keys::public_path(&config.audit.key_path(&config.database.url)),
        Path::to_path_buf,
    );
    let trusted = match tollgate_audit::keys::read_trusted(&keys_path) {
        Ok(keys) => keys,
        Err(error) => {
            return usage(anyhow::anyhow!(
                "the trusted keys: {error} (pass --trusted-keys FILE)"
            ));
        }
    };
    if !dir.is_dir() {
        return usage(anyhow::anyhow!("{} is not a directory", dir.display()));
    }
    let report = bundle::verify_dir(dir, &trusted);
    match &report {
        Report::Verified {
            size,
            checkpoints,
            withheld,
            timestamp,
        } => {
            println!(
                "verified: {size} records, {checkpoints} signed checkpoints{}{}",
                if *withheld > 0 {
                    format!(", {withheld} payloads withheld by retention (their hashes verified)")
                } else {
                    String::new()
                },
                timestamp
                    .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
                    .map(|t| format!(", newest signed time {t}"))
                    .unwrap_or_default()
            );
        }
        Report::Tamper { index, reason } => {
            println!("TAMPER EVIDENCE at record {index}: {reason}");
        }
        Report::Incomplete { reason } => {
            println!("incomplete: {reason}");
        }
    }
    ExitCode::from(report.exit_code() as u8)
}
