//! The two halves of scripts/crash-test.sh that need more than a shell:
//!
//! - `load`: post service-hook samples, each with a fresh event id, over N keep-alive
//!   connections until the server goes away (it is killed with SIGKILL), and write the id of
//!   every event the server acknowledged (2xx) to a file;
//! - `verify`: read the `events` table of the (crashed) database directly and report, per
//!   cycle's file, how many acknowledged events are stored and how many are missing. Exits 1
//!   if any acknowledged event is missing, the database fails its integrity check, or a cycle
//!   acknowledged nothing (then the test proved nothing).
//!
//! Reading the file rather than asking the API means no credential is needed and nothing of
//! the server is trusted to report its own losses.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

#[derive(Parser)]
#[command(about = "Load generator and checker for scripts/crash-test.sh")]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Post events until the server goes away; write the acknowledged event ids to --out.
    Load {
        /// The receiver, e.g. http://127.0.0.1:8080/hooks/ado/default
        #[arg(long)]
        url: String,
        /// File holding the webhook secret (sent as the basic-auth password)
        #[arg(long)]
        secret_file: PathBuf,
        /// Where the acknowledged event ids go, one a line
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Stop on our own after this long, in case the server is never killed
        #[arg(long, default_value_t = 60)]
        max_seconds: u64,
    },
    /// Check that every id in the files is in the database's events table.
    Verify {
        #[arg(long)]
        db: PathBuf,
        /// One file of acknowledged ids per cycle, in cycle order
        #[arg(required = true)]
        acknowledged: Vec<PathBuf>,
    },
}

/// The samples, serialised with a placeholder id split out.
fn templates() -> Result<Vec<(String, String)>> {
    const PLACEHOLDER: &str = "00000000-0000-4000-8000-000000000000";
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/servicehooks");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let mut templates = Vec::new();
    for path in paths {
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut event: serde_json::Value =
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
        event["id"] = serde_json::Value::from(PLACEHOLDER);
        let text = serde_json::to_string(&event)?;
        let Some((before, after)) = text.split_once(PLACEHOLDER) else {
            bail!("{} has no top-level id", path.display());
        };
        templates.push((before.to_owned(), after.to_owned()));
    }
    if templates.is_empty() {
        bail!("no samples in {}", dir.display());
    }
    Ok(templates)
}

enum Ending {
    /// The connection failed: the server is gone, which is what we wait for.
    ServerGone,
    TimeUp,
}

async fn load(
    url: String,
    secret_file: PathBuf,
    out: PathBuf,
    connections: usize,
    max_seconds: u64,
) -> Result<ExitCode> {
    let secret = std::fs::read_to_string(&secret_file)
        .with_context(|| format!("reading {}", secret_file.display()))?
        .trim()
        .to_owned();
    let templates = Arc::new(templates()?);
    // A nonce per process keeps ids unique across cycles; the counter within one.
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 40);
    let counter = Arc::new(AtomicU64::new(0));
    let unavailable = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(max_seconds);
    let mut tasks = Vec::new();
    for connection in 0..connections.max(1) {
        let (url, secret) = (url.clone(), secret.clone());
        let (templates, counter, unavailable) = (
            Arc::clone(&templates),
            Arc::clone(&counter),
            Arc::clone(&unavailable),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut acknowledged = Vec::new();
            let mut next = connection;
            let ending = loop {
                if Instant::now() >= deadline {
                    break Ending::TimeUp;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let id = format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    (nonce >> 32) as u32,
                    (nonce >> 16) as u16,
                    nonce & 0xfff,
                    (n >> 48) & 0xfff,
                    n & 0xffff_ffff_ffff
                );
                let (before, after) = &templates[next % templates.len()];
                next += 1;
                let sent = client
                    .post(&url)
                    .basic_auth("ado", Some(&secret))
                    .header("content-type", "application/json")
                    .body(format!("{before}{id}{after}"))
                    .send()
                    .await;
                let Ok(response) = sent else {
                    break Ending::ServerGone;
                };
                let status = response.status();
                let Ok(text) = response.text().await else {
                    // Headers came but the body did not: not an acknowledgement.
                    break Ending::ServerGone;
                };
                if status.is_success() {
                    acknowledged.push(id);
                } else if status.as_u16() == 503 {
                    // Refused for now; ADO would retry. Not acknowledged, so not checked.
                    unavailable.fetch_add(1, Ordering::Relaxed);
                } else {
                    bail!("POST {url} answered {status}: {text}");
                }
            };
            anyhow::Ok((acknowledged, ending))
        }));
    }
    let mut acknowledged = Vec::new();
    let mut timed_out = false;
    for task in tasks {
        let (ids, ending) = task.await.context("a load task panicked")??;
        acknowledged.extend(ids);
        timed_out |= matches!(ending, Ending::TimeUp);
    }
    let mut text = acknowledged.join("\n");
    text.push('\n');
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "load: {} acknowledged, {} answered 503{}",
        acknowledged.len(),
        unavailable.load(Ordering::Relaxed),
        if timed_out {
            format!(", stopped after {max_seconds} s without the server going away")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

async fn verify(db: PathBuf, files: Vec<PathBuf>) -> Result<ExitCode> {
    if !db.is_file() {
        bail!("no database at {}", db.display());
    }
    // Opening runs SQLite's recovery of the write-ahead log left by the killed server.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::new().filename(&db))
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await?;
    let stored: HashSet<String> =
        sqlx::query("SELECT event_id FROM events WHERE event_id IS NOT NULL")
            .fetch_all(&pool)
            .await?
            .iter()
            .map(|row| row.try_get("event_id"))
            .collect::<Result<_, _>>()?;
    pool.close().await;

    let mut failed = false;
    let mut all_acknowledged = HashSet::new();
    println!("| cycle | acknowledged | stored | missing |");
    println!("|---|---|---|---|");
    let (mut total_acknowledged, mut total_stored, mut total_missing) = (0, 0, 0);
    for (index, file) in files.iter().enumerate() {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let ids: HashSet<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let present = ids.iter().filter(|id| stored.contains(**id)).count();
        let missing = ids.len() - present;
        println!("| {} | {} | {present} | {missing} |", index + 1, ids.len());
        if ids.is_empty() {
            eprintln!(
                "cycle {}: nothing was acknowledged, so this cycle proved nothing",
                index + 1
            );
            failed = true;
        }
        for id in ids.iter().filter(|id| !stored.contains(**id)).take(5) {
            eprintln!("cycle {}: acknowledged but not stored: {id}", index + 1);
        }
        failed |= missing > 0;
        total_acknowledged += ids.len();
        total_stored += present;
        total_missing += missing;
        all_acknowledged.extend(ids.into_iter().map(str::to_owned));
    }
    println!("| all | {total_acknowledged} | {total_stored} | {total_missing} |");
    let unacknowledged = stored.difference(&all_acknowledged).count();
    println!(
        "\nevents table: {} rows; {unacknowledged} stored without an acknowledgement \
         (committed, answer cut off by the kill; ADO would retry and get \"duplicate\")",
        stored.len()
    );
    println!("integrity_check: {integrity}");
    if integrity != "ok" {
        failed = true;
    }
    if failed {
        println!("FAILED");
        Ok(ExitCode::FAILURE)
    } else {
        println!("OK: every acknowledged event survived SIGKILL");
        Ok(ExitCode::SUCCESS)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<ExitCode> {
    match Cli::parse().command {
        Action::Load {
            url,
            secret_file,
            out,
            connections,
            max_seconds,
        } => load(url, secret_file, out, connections, max_seconds).await,
        Action::Verify { db, acknowledged } => verify(db, acknowledged).await,
    }
}
