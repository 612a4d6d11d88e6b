//! Webhook ingest benchmark: `cargo bench --bench webhook` (see docs/PERFORMANCE.md).
//!
//! A loopback load generator (N connections, keep-alive, one request in flight per
//! connection) posts the service-hook samples of tests/fixtures/servicehooks, each with a fresh
//! event id, and measures acknowledged events per second and the acknowledge latency (request
//! sent → response read) over a fixed window after a warm-up, against:
//! - `tollgate serve` (the release binary, a child process), with its workers and with
//!   `--no-workers`;
//! - a probe in this process: an axum handler that only inserts the body into SQLite (WAL,
//!   `synchronous = FULL`, one connection) through a single writer task that commits whatever
//!   has queued up in one transaction (group commit) — the best case for durable ingest on this
//!   disk;
//! - the same probe committing each request on its own;
//! - the probe with tollgate's own write in place of the bare insert: the handler classifies
//!   the body (`services::events::classify`) and the writer calls `SqliteStore::ingest` (the
//!   real schema, the event and its job). Between this and the bare probe is the cost of what
//!   tollgate stores; between tollgate and this, the rest of the server (middleware, secret
//!   check, metrics, its ingest service).
//!
//! Every setup gets a fresh database under target/tmp (a real disk, not tmpfs, so fsync costs
//! what it costs). Setups are interleaved run by run and the table shows medians.
//!
//! Knobs: `TOLLGATE_BENCH_SECONDS` (measured window, default 10), `TOLLGATE_BENCH_WARMUP`
//! (default 2), `TOLLGATE_BENCH_CONNECTIONS` (default 64), `TOLLGATE_BENCH_RUNS` (default 3),
//! `TOLLGATE_BENCH_BIN` (the tollgate binary; default the one cargo built for this bench).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness stops on any failure"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tollgate::services::events;
use tollgate_domain::TenantId;
use tollgate_store::{EventStore as _, IngestOutcome, NewEvent, SqliteStore};

const WEBHOOK_SECRET: &str = "bench-webhook-secret";
/// Stands in for the event id in the serialised samples; replaced per request.
const ID_PLACEHOLDER: &str = "00000000-0000-4000-8000-000000000000";

struct Settings {
    warmup: Duration,
    window: Duration,
    connections: usize,
    runs: usize,
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(raw) => raw
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={raw:?} is not a whole number")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Self {
        Self {
            warmup: Duration::from_secs(env_number("TOLLGATE_BENCH_WARMUP", 2)),
            window: Duration::from_secs(env_number("TOLLGATE_BENCH_SECONDS", 10).max(1)),
            connections: env_number("TOLLGATE_BENCH_CONNECTIONS", 64).max(1) as usize,
            runs: env_number("TOLLGATE_BENCH_RUNS", 3).max(1) as usize,
        }
    }
}

/// One sample event, serialised, split around its id.
struct Template {
    before_id: Vec<u8>,
    after_id: Vec<u8>,
}

impl Template {
    fn render(&self, id: &str) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.before_id.len() + id.len() + self.after_id.len());
        body.extend_from_slice(&self.before_id);
        body.extend_from_slice(id.as_bytes());
        body.extend_from_slice(&self.after_id);
        body
    }
}

fn load_templates() -> Vec<Template> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/servicehooks");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let templates: Vec<Template> = paths
        .iter()
        .map(|path| {
            let mut event: serde_json::Value =
                serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            event["id"] = serde_json::Value::from(ID_PLACEHOLDER);
            let text = serde_json::to_string(&event).unwrap();
            let (before, after) = text
                .split_once(ID_PLACEHOLDER)
                .unwrap_or_else(|| panic!("{} has no top-level id", path.display()));
            Template {
                before_id: before.as_bytes().to_vec(),
                after_id: after.as_bytes().to_vec(),
            }
        })
        .collect();
    assert!(!templates.is_empty(), "no samples in {}", dir.display());
    templates
}

/// Unique GUID-shaped event ids: a nonce per bench process and a counter.
struct Ids {
    nonce: u64,
    counter: AtomicU64,
}

impl Ids {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        Self {
            nonce: nanos ^ (u64::from(std::process::id()) << 32),
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (self.nonce >> 32) as u32,
            (self.nonce >> 16) as u16,
            self.nonce & 0xfff,
            (n >> 48) & 0xfff,
            n & 0xffff_ffff_ffff
        )
    }
}

/// What one setup did in the measured window.
struct Measurement {
    acknowledged: u64,
    refused: u64,
    first_refusal: Option<String>,
    window: Duration,
    /// Acknowledge latencies in microseconds, sorted.
    latencies_us: Vec<u64>,
    /// Events per commit, over the whole run (warm-up included), when the setup reports it.
    mean_batch: Option<f64>,
    /// CPU time the receiving side used in the window (all its threads).
    server_cpu: Duration,
}

impl Measurement {
    fn events_per_second(&self) -> f64 {
        self.acknowledged as f64 / self.window.as_secs_f64()
    }

    fn server_cpu_us_per_event(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.acknowledged as f64
    }

    /// Nearest-rank percentile, in milliseconds.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
        self.latencies_us[rank.clamp(1, self.latencies_us.len()) - 1] as f64 / 1000.0
    }
}

struct Worker {
    acknowledged: u64,
    refused: u64,
    first_refusal: Option<String>,
    latencies_us: Vec<u64>,
}

/// Drive `url` with `connections` keep-alive connections, one request in flight on each, for
/// warm-up + window; count what completes inside the window.
async fn drive(
    urls: &[String],
    settings: &Settings,
    templates: &Arc<Vec<Template>>,
    ids: &Arc<Ids>,
    server_cpu: CpuClock,
) -> Measurement {
    let started = Instant::now();
    let window_start = started + settings.warmup;
    let end = window_start + settings.window;
    let cpu_in_window = tokio::spawn(async move {
        tokio::time::sleep_until(window_start.into()).await;
        let before = server_cpu();
        tokio::time::sleep_until(end.into()).await;
        server_cpu().saturating_sub(before)
    });
    let mut tasks = Vec::with_capacity(settings.connections);
    for connection in 0..settings.connections {
        // Connections spread over the replicas, as a load balancer would.
        let url = urls[connection % urls.len()].clone();
        let templates = Arc::clone(templates);
        let ids = Arc::clone(ids);
        tasks.push(tokio::spawn(async move {
            // One client per connection: each task owns exactly one keep-alive connection.
            let client = reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .build()
                .unwrap();
            let mut worker = Worker {
                acknowledged: 0,
                refused: 0,
                first_refusal: None,
                latencies_us: Vec::new(),
            };
            let mut next = connection;
            while Instant::now() < end {
                let body = templates[next % templates.len()].render(&ids.next());
                next += 1;
                let sent = Instant::now();
                let outcome = match client
                    .post(&url)
                    .basic_auth("ado", Some(WEBHOOK_SECRET))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(_) if status.is_success() => Ok(()),
                            Ok(text) => {
                                Err(format!("{status}: {}", String::from_utf8_lossy(&text)))
                            }
                            Err(error) => Err(format!("reading the answer: {error}")),
                        }
                    }
                    Err(error) => Err(format!("sending: {error}")),
                };
                let done = Instant::now();
                if done < window_start || done >= end {
                    continue;
                }
                match outcome {
                    Ok(()) => {
                        worker.acknowledged += 1;
                        worker
                            .latencies_us
                            .push(done.duration_since(sent).as_micros() as u64);
                    }
                    Err(reason) => {
                        worker.refused += 1;
                        worker.first_refusal.get_or_insert(reason);
                    }
                }
            }
            worker
        }));
    }
    let mut measurement = Measurement {
        acknowledged: 0,
        refused: 0,
        first_refusal: None,
        window: settings.window,
        latencies_us: Vec::new(),
        mean_batch: None,
        server_cpu: Duration::ZERO,
    };
    for task in tasks {
        let worker = task.await.unwrap();
        measurement.acknowledged += worker.acknowledged;
        measurement.refused += worker.refused;
        if measurement.first_refusal.is_none() {
            measurement.first_refusal = worker.first_refusal;
        }
        measurement.latencies_us.extend(worker.latencies_us);
    }
    measurement.latencies_us.sort_unstable();
    measurement.server_cpu = cpu_in_window.await.unwrap();
    measurement
}

/// Reads the CPU time (user + system) some set of threads has used so far.
type CpuClock = Box<dyn Fn() -> Duration + Send>;

/// utime + stime of a /proc `stat` file, in clock ticks of 10 ms.
fn cpu_of_stat(path: &Path) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of proc_pid_stat(5), counted after the `(comm)` field.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The CPU time of this process's threads other than the load generator's: the probe's
/// runtime and its SQLite connection thread (the main thread only waits).
fn cpu_outside_load_generator() -> Duration {
    let mut total = cpu_of_stat(Path::new("/proc/self/stat"));
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("load") {
            total = total.saturating_sub(cpu_of_stat(&task.path().join("stat")));
        }
    }
    total
}

/// One request before measuring, so a misconfigured setup fails with its answer rather than
/// as a column of zeros.
async fn check_accepts(url: &str, templates: &[Template], ids: &Ids) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(url)
        .basic_auth("ado", Some(WEBHOOK_SECRET))
        .header("content-type", "application/json")
        .body(templates[0].render(&ids.next()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(
        status.is_success() && text.contains("\"stored\""),
        "POST {url} answered {status}: {text}"
    );
}

// ---------------------------------------------------------------------------------------------
// tollgate serve, as a child process

struct Tollgate {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tollgate_binary() -> PathBuf {
    let path = std::env::var_os("TOLLGATE_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tollgate")));
    assert!(
        path.is_file(),
        "the tollgate binary {} does not exist; run `cargo bench --bench webhook` (which builds \
         it) or set TOLLGATE_BENCH_BIN",
        path.display()
    );
    path
}

fn scratch_dir() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(root).unwrap();
    tempfile::Builder::new()
        .prefix("webhook-bench-")
        .tempdir_in(root)
        .unwrap()
}

fn start_tollgate(workers: bool) -> Tollgate {
    let dir = scratch_dir();
    let secret_file = dir.path().join("webhook-secret");
    std::fs::write(&secret_file, WEBHOOK_SECRET).unwrap();
    let config = dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n\n[webhook]\nsecret_file = \"{}\"\n",
            dir.path().join("tollgate.db").display(),
            secret_file.display()
        ),
    )
    .unwrap();
    spawn_tollgate(dir, &config, workers)
}

/// The app role's URL of a new, migrated database on the PostgreSQL test cluster, or `None`
/// when none is configured (`eval "$(scripts/pg-test-cluster.sh start)"`).
fn postgres_database(load: &tokio::runtime::Runtime) -> Option<String> {
    use sqlx::Connection as _;
    use std::str::FromStr as _;
    let app = std::env::var("TOLLGATE_TEST_POSTGRES_URL").ok()?;
    let owner = std::env::var("TOLLGATE_TEST_POSTGRES_OWNER_URL").ok()?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "tg_webhook_bench_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    load.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&owner).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
    });
    let role = sqlx::postgres::PgConnectOptions::from_str(&app)
        .unwrap()
        .get_username()
        .to_owned();
    let with_database = |url: &str| {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let authority = base.find("://").map_or(0, |i| i + 3);
        let root = base[authority..]
            .find('/')
            .map_or(base, |slash| &base[..authority + slash]);
        if query.is_empty() {
            format!("{root}/{name}")
        } else {
            format!("{root}/{name}?{query}")
        }
    };
    let mut migrate = Command::new(tollgate_binary());
    for (variable, _) in std::env::vars_os() {
        if variable.to_string_lossy().starts_with("TOLLGATE_") {
            migrate.env_remove(variable);
        }
    }
    let migrated = migrate
        .args([
            "migrate",
            "--db",
            &with_database(&owner),
            "--app-role",
            &role,
        ])
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    Some(with_database(&app))
}

/// `replicas` servers (workers on) sharing one PostgreSQL database and one audit key.
fn start_tollgate_postgres(database: &str, replicas: usize) -> Vec<Tollgate> {
    let shared = scratch_dir();
    let secret_file = shared.path().join("webhook-secret");
    std::fs::write(&secret_file, WEBHOOK_SECRET).unwrap();
    let text = format!(
        "[database]\nurl = \"{database}\"\n\n[webhook]\nsecret_file = \"{}\"\n\n\
         [audit]\nkey_file = \"{}\"\n",
        secret_file.display(),
        shared.path().join("audit.key").display()
    );
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let dir = scratch_dir();
        let config = dir.path().join("tollgate.toml");
        std::fs::write(&config, &text).unwrap();
        servers.push(spawn_tollgate(dir, &config, true));
    }
    // The shared directory lives as long as the first replica.
    std::mem::forget(shared);
    servers
}

fn spawn_tollgate(dir: tempfile::TempDir, config: &Path, workers: bool) -> Tollgate {
    let mut command = Command::new(tollgate_binary());
    command
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", "127.0.0.1:0"]);
    if !workers {
        command.arg("--no-workers");
    }
    // tollgate refuses TOLLGATE_* variables it does not know (this bench's knobs among them),
    // and the ones it knows would override the configuration written above.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TOLLGATE_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        // Slow-statement warnings under this load are expected and would bury the table.
        .env("TOLLGATE_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", tollgate_binary().display()));
    let stdout = child.stdout.take().unwrap();
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    // Read until the address, then keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(address) = line.strip_prefix("listening on ") {
                let _ = address_tx.send(address.trim().to_owned());
                sent = true;
            }
        }
    });
    let base = match address_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(base) => base,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.wait();
            panic!("tollgate serve exited ({status:?}) before listening; its stderr is above");
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            panic!("tollgate serve did not print its address within 60 s; its stderr is above");
        }
    };
    Tollgate {
        child,
        base,
        _dir: dir,
    }
}

/// Mean events per commit from the server's own histogram.
async fn tollgate_mean_batch(base: &str) -> Option<f64> {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .ok()?
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |suffix: &str| {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.split_once(' ')?;
                let name = name.split('{').next()?;
                name.ends_with(suffix)
                    .then(|| value.trim().parse::<f64>().ok())?
            })
    };
    let sum = value("webhook_commit_batch_size_sum")?;
    let count = value("webhook_commit_batch_size_count")?;
    (count > 0.0).then(|| sum / count)
}

// ---------------------------------------------------------------------------------------------
// The probe: nothing but the durable insert

type Reply = oneshot::Sender<Result<i64, String>>;

/// What the probe's writer commits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeWrite {
    /// `INSERT INTO events (body)` into a one-table database, up to this many per transaction.
    Bare { max_batch: usize },
    /// tollgate's own `SqliteStore::ingest` (its schema, the event with its job), on events
    /// classified in the handler as tollgate's receiver does; at most as many per transaction
    /// as tollgate commits together.
    Store,
}

enum Delivery {
    Body(Bytes),
    Event(Box<NewEvent>),
}

#[derive(Clone)]
struct ProbeState {
    write: ProbeWrite,
    writer: mpsc::Sender<(Delivery, Reply)>,
}

async fn probe_receive(State(state): State<ProbeState>, body: Bytes) -> Response {
    let delivery = match state.write {
        ProbeWrite::Bare { .. } => Delivery::Body(body),
        ProbeWrite::Store => Delivery::Event(Box::new(events::classify(
            &TenantId::default_tenant(),
            &body,
            OffsetDateTime::now_utc(),
            events::DEFAULT_MAX_ATTEMPTS,
        ))),
    };
    let (reply, answer) = oneshot::channel();
    if state.writer.try_send((delivery, reply)).is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match answer.await {
        Ok(Ok(id)) => {
            axum::Json(serde_json::json!({"status": "stored", "event": id})).into_response()
        }
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

enum Database {
    Bare(SqlitePool),
    Store(SqliteStore),
}

/// Insert one batch in one transaction; the new rows' ids in order.
async fn commit_batch(
    database: &Database,
    batch: &[(Delivery, Reply)],
) -> Result<Vec<i64>, String> {
    match database {
        Database::Bare(pool) => {
            let inserted: Result<Vec<i64>, sqlx::Error> = async {
                let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
                let mut ids = Vec::with_capacity(batch.len());
                for (delivery, _) in batch {
                    let Delivery::Body(body) = delivery else {
                        unreachable!("the bare probe receives bodies")
                    };
                    let row = sqlx::query("INSERT INTO events (body) VALUES (?) RETURNING id")
                        .bind(&body[..])
                        .fetch_one(&mut *transaction)
                        .await?;
                    ids.push(row.try_get("id")?);
                }
                transaction.commit().await?;
                Ok(ids)
            }
            .await;
            inserted.map_err(|e| e.to_string())
        }
        Database::Store(store) => {
            let events: Vec<NewEvent> = batch
                .iter()
                .map(|(delivery, _)| match delivery {
                    Delivery::Event(event) => (**event).clone(),
                    Delivery::Body(_) => unreachable!("the store probe receives events"),
                })
                .collect();
            let outcomes = store
                .ingest(&events, &tollgate::services::events::receipt_records)
                .await
                .map_err(|e| e.to_string())?;
            Ok(outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    IngestOutcome::Stored { id, .. } | IngestOutcome::Duplicate { id } => id.0,
                })
                .collect())
        }
    }
}

/// The single writer: takes up to `max_batch` queued deliveries (whatever arrived while the
/// previous commit was syncing), commits them in one transaction, answers each.
async fn probe_writer(
    database: Database,
    mut queue: mpsc::Receiver<(Delivery, Reply)>,
    max_batch: usize,
    commits: Arc<AtomicU64>,
    committed: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while queue.recv_many(&mut batch, max_batch).await > 0 {
        let result = commit_batch(&database, &batch).await;
        commits.fetch_add(1, Ordering::Relaxed);
        committed.fetch_add(batch.len() as u64, Ordering::Relaxed);
        match result {
            Ok(ids) => {
                for ((_, reply), id) in batch.drain(..).zip(ids) {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(error) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

struct Probe {
    runtime: tokio::runtime::Runtime,
    url: String,
    commits: Arc<AtomicU64>,
    committed: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
}

/// Start the probe on its own runtime (two worker threads, like the server process gets on
/// this machine), so it does not share the load generator's scheduler.
fn start_probe(write: ProbeWrite) -> Probe {
    let dir = scratch_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("probe")
        .enable_all()
        .build()
        .unwrap();
    let commits = Arc::new(AtomicU64::new(0));
    let committed = Arc::new(AtomicU64::new(0));
    let db = dir.path().join("probe.db");
    let url = runtime.block_on({
        let commits = Arc::clone(&commits);
        let committed = Arc::clone(&committed);
        async move {
            let (database, max_batch) = match write {
                ProbeWrite::Bare { max_batch } => {
                    let options = SqliteConnectOptions::new()
                        .filename(&db)
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full);
                    let pool = SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(options)
                        .await
                        .unwrap();
                    sqlx::query("CREATE TABLE events (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
                        .execute(&pool)
                        .await
                        .unwrap();
                    (Database::Bare(pool), max_batch)
                }
                ProbeWrite::Store => {
                    let store = SqliteStore::open(&db.display().to_string()).await.unwrap();
                    // As in the server: each commit group's receipts go to the audit log.
                    store
                        .set_leaf_encoder(std::sync::Arc::new(
                            tollgate::services::audit::RecordEncoder::new("tollgate.bench"),
                        ))
                        .unwrap();
                    (Database::Store(store), 1_024)
                }
            };
            let (writer, queue) = mpsc::channel(16_384);
            tokio::spawn(probe_writer(database, queue, max_batch, commits, committed));
            let app = Router::new()
                .route("/hooks/ado/{tenant}", post(probe_receive))
                .with_state(ProbeState { write, writer });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{address}/hooks/ado/default")
        }
    });
    Probe {
        runtime,
        url,
        commits,
        committed,
        _dir: dir,
    }
}

impl Probe {
    fn mean_batch(&self) -> Option<f64> {
        let commits = self.commits.load(Ordering::Relaxed);
        (commits > 0).then(|| self.committed.load(Ordering::Relaxed) as f64 / commits as f64)
    }

    fn stop(self) {
        self.runtime.shutdown_background();
    }
}

// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    Tollgate,
    TollgateNoWorkers,
    ProbeGroupCommit,
    ProbeCommitPerRequest,
    ProbeStoreIngest,
    PostgresOneReplica,
    PostgresTwoReplicas,
}

impl Setup {
    const ALL: [Setup; 7] = [
        Setup::Tollgate,
        Setup::TollgateNoWorkers,
        Setup::ProbeGroupCommit,
        Setup::ProbeCommitPerRequest,
        Setup::ProbeStoreIngest,
        Setup::PostgresOneReplica,
        Setup::PostgresTwoReplicas,
    ];

    /// The setups this machine can run: the PostgreSQL ones need the test cluster.
    fn available() -> Vec<Setup> {
        let postgres = std::env::var_os("TOLLGATE_TEST_POSTGRES_URL").is_some()
            && std::env::var_os("TOLLGATE_TEST_POSTGRES_OWNER_URL").is_some();
        Setup::ALL
            .into_iter()
            .filter(|s| {
                postgres || !matches!(s, Setup::PostgresOneReplica | Setup::PostgresTwoReplicas)
            })
            .collect()
    }

    fn label(self) -> &'static str {
        match self {
            Setup::Tollgate => "tollgate serve (workers on)",
            Setup::TollgateNoWorkers => "tollgate serve --no-workers",
            Setup::ProbeGroupCommit => "probe, group commit",
            Setup::ProbeCommitPerRequest => "probe, one commit per request",
            Setup::ProbeStoreIngest => "probe + tollgate's store.ingest",
            Setup::PostgresOneReplica => "tollgate serve on PostgreSQL, 1 replica",
            Setup::PostgresTwoReplicas => "tollgate serve on PostgreSQL, 2 replicas",
        }
    }
}

fn measure(
    setup: Setup,
    load: &tokio::runtime::Runtime,
    settings: &Settings,
    templates: &Arc<Vec<Template>>,
    ids: &Arc<Ids>,
) -> Measurement {
    match setup {
        Setup::Tollgate | Setup::TollgateNoWorkers => {
            let server = start_tollgate(setup == Setup::Tollgate);
            let url = format!("{}/hooks/ado/default", server.base);
            let stat = PathBuf::from(format!("/proc/{}/stat", server.child.id()));
            let clock: CpuClock = Box::new(move || cpu_of_stat(&stat));
            load.block_on(async {
                check_accepts(&url, templates, ids).await;
                let mut measurement =
                    drive(std::slice::from_ref(&url), settings, templates, ids, clock).await;
                measurement.mean_batch = tollgate_mean_batch(&server.base).await;
                measurement
            })
        }
        Setup::PostgresOneReplica | Setup::PostgresTwoReplicas => {
            let replicas = if setup == Setup::PostgresOneReplica {
                1
            } else {
                2
            };
            let database = postgres_database(load).expect("the PostgreSQL test cluster");
            let servers = start_tollgate_postgres(&database, replicas);
            let urls: Vec<String> = servers
                .iter()
                .map(|server| format!("{}/hooks/ado/default", server.base))
                .collect();
            let stats: Vec<PathBuf> = servers
                .iter()
                .map(|server| PathBuf::from(format!("/proc/{}/stat", server.child.id())))
                .collect();
            // The replicas' CPU together (PostgreSQL's own is not counted).
            let clock: CpuClock =
                Box::new(move || stats.iter().map(|stat| cpu_of_stat(stat)).sum());
            load.block_on(async {
                for url in &urls {
                    check_accepts(url, templates, ids).await;
                }
                drive(&urls, settings, templates, ids, clock).await
            })
        }
        Setup::ProbeGroupCommit | Setup::ProbeCommitPerRequest | Setup::ProbeStoreIngest => {
            let probe = start_probe(match setup {
                Setup::ProbeGroupCommit => ProbeWrite::Bare { max_batch: 1_024 },
                Setup::ProbeCommitPerRequest => ProbeWrite::Bare { max_batch: 1 },
                _ => ProbeWrite::Store,
            });
            let mut measurement = load.block_on(async {
                check_accepts(&probe.url, templates, ids).await;
                drive(
                    std::slice::from_ref(&probe.url),
                    settings,
                    templates,
                    ids,
                    Box::new(cpu_outside_load_generator),
                )
                .await
            });
            measurement.mean_batch = probe.mean_batch();
            probe.stop();
            measurement
        }
    }
}

struct Summary {
    rate: f64,
    p50: f64,
    p99: f64,
    cpu_us: f64,
    batch: f64,
    refused: u64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then we only check
    // that the harness builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let settings = Settings::from_env();
    let templates = Arc::new(load_templates());
    let ids = Arc::new(Ids::new());
    // The load generator's own runtime, two workers like the server's.
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load")
        .enable_all()
        .build()
        .unwrap();
    eprintln!(
        "webhook ingest: {} connections, {} s warm-up + {} s measured, {} run(s) per setup, \
         {} samples, binary {}",
        settings.connections,
        settings.warmup.as_secs(),
        settings.window.as_secs(),
        settings.runs,
        templates.len(),
        tollgate_binary().display()
    );
    let mut results: Vec<(Setup, Vec<Measurement>)> = Setup::available()
        .into_iter()
        .map(|s| (s, Vec::new()))
        .collect();
    for run in 1..=settings.runs {
        for (setup, measurements) in &mut results {
            let m = measure(*setup, &load, &settings, &templates, &ids);
            eprintln!(
                "  run {run} {:<30} {:>7.0} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms  \
                 server CPU {:>4.0} µs/event  events/commit {}  refused {}{}",
                setup.label(),
                m.events_per_second(),
                m.percentile_ms(50.0),
                m.percentile_ms(99.0),
                m.server_cpu_us_per_event(),
                m.mean_batch.map_or("-".to_owned(), |b| format!("{b:.1}")),
                m.refused,
                m.first_refusal
                    .as_deref()
                    .map_or(String::new(), |r| format!("  first refusal: {r}"))
            );
            assert!(
                m.acknowledged > 0,
                "{}: nothing was acknowledged in the window",
                setup.label()
            );
            measurements.push(m);
        }
    }
    let summary = |setup: Setup| {
        let measurements = &results.iter().find(|(s, _)| *s == setup).unwrap().1;
        let pick = |f: &dyn Fn(&Measurement) -> f64| median(measurements.iter().map(f).collect());
        Summary {
            rate: pick(&|m| m.events_per_second()),
            p50: pick(&|m| m.percentile_ms(50.0)),
            p99: pick(&|m| m.percentile_ms(99.0)),
            cpu_us: pick(&|m| m.server_cpu_us_per_event()),
            batch: pick(&|m| m.mean_batch.unwrap_or(f64::NAN)),
            refused: measurements.iter().map(|m| m.refused).sum(),
        }
    };
    println!();
    println!(
        "Medians over {} run(s); {} connections; {} s measured after {} s warm-up.",
        settings.runs,
        settings.connections,
        settings.window.as_secs(),
        settings.warmup.as_secs()
    );
    println!();
    println!(
        "| setup | events/s | p50 | p99 | server CPU per event | events per commit | refused |"
    );
    println!("|---|---|---|---|---|---|---|");
    for setup in Setup::available() {
        let s = summary(setup);
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.0} µs | {} | {} |",
            setup.label(),
            s.rate,
            s.p50,
            s.p99,
            s.cpu_us,
            if s.batch.is_nan() {
                "-".to_owned()
            } else {
                format!("{:.1}", s.batch)
            },
            s.refused
        );
    }
    let probe = summary(Setup::ProbeGroupCommit);
    println!();
    for setup in [Setup::Tollgate, Setup::TollgateNoWorkers] {
        let s = summary(setup);
        println!(
            "{}: throughput {:.2}× the probe's (target ≥ 0.50), p99 {:.2}× the probe's \
             ({:.2} ms; target < 20 ms)",
            setup.label(),
            s.rate / probe.rate,
            s.p99 / probe.p99,
            s.p99
        );
    }
    let sqlite = summary(Setup::Tollgate);
    for setup in [Setup::PostgresOneReplica, Setup::PostgresTwoReplicas] {
        if !Setup::available().contains(&setup) {
            continue;
        }
        let s = summary(setup);
        println!(
            "{}: throughput {:.2}× SQLite's (tollgate serve, workers on), p99 {:.2} ms",
            setup.label(),
            s.rate / sqlite.rate,
            s.p99
        );
    }
}
