//! Deployment-gate latency benchmark: `cargo bench --bench gate` (see docs/PERFORMANCE.md).
//!
//! The simulator's small organisation is synced, then:
//!
//! 1. **In process** (SQLite): one gate decision — `GateService::judge`, the run's facts read
//!    from the inventory and every gate rule evaluated, nothing recorded — against one bare
//!    regorus evaluation of the same rules: a prepared engine holding the same rule files and
//!    the same generated aggregate module, given the very input the decision evaluated, asked
//!    for the same rule. Our evaluation alone (engine clone + evaluation + result conversion,
//!    no facts) is shown between the two.
//! 2. **Over loopback HTTP**, against `tollgate serve` (the release binary, child processes):
//!    `POST /gate/ado/default` in sync mode, each call a new check (a new task instance, so a
//!    new decision: judged, stored with its audit record, answered), next to `GET /healthz` (the
//!    server's trivial endpoint) measured in the same run at the same load:
//!    - open loop at 1,000 and 10,000 requests/s: requests leave on a fixed schedule whatever
//!      the answers do, and latency runs from the scheduled send time (no coordinated
//!      omission: a stalled server shows as latency, not as a lower rate); at most
//!      `TOLLGATE_BENCH_MAX_IN_FLIGHT` (default 2,000) requests are outstanding, the rest are
//!      counted as dropped;
//!    - closed loop with 200 concurrent callers, each sending its next request when the last
//!      one is answered.
//!
//!    The backends: SQLite; and, when `TOLLGATE_TEST_POSTGRES_URL` and
//!    `TOLLGATE_TEST_POSTGRES_OWNER_URL` are set (`eval "$(scripts/pg-test-cluster.sh start)"`),
//!    PostgreSQL with one replica and with two replicas sharing the database (the load
//!    alternates between them).
//!
//! Knobs: `TOLLGATE_BENCH_SECONDS` (measured window per point, default 5),
//! `TOLLGATE_BENCH_WARMUP` (default 1), `TOLLGATE_BENCH_RATES` (default `1000,10000`),
//! `TOLLGATE_BENCH_CONCURRENCY` (default 200), `TOLLGATE_BENCH_DECISIONS` (in-process rounds,
//! default 2,000), `TOLLGATE_BENCH_BACKENDS` (default `sqlite,pg1,pg2`), `TOLLGATE_BENCH_BIN`,
//! `TOLLGATE_BENCH_TRACE` (a directory: every request's send time and latency, a CSV per point).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark harness stops on any failure"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize as _;
use serde_json::Value;
use sqlx::Connection as _;
use time::OffsetDateTime;
use tollgate::config::{self, Config, Overrides};
use tollgate::services::gate::DeploymentRequest;
use tollgate::services::sync::{ModeRequest, NoProgress};
use tollgate::startup;
use tollgate_domain::SecretString;
use tollgate_sim::{Profile, RunningSimulator, SimConfig, Simulator};

const GATE_USER: &str = "bench-check";
const GATE_PASSWORD: &str = "bench-gate-password";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// What the load is aimed at: a project of the organisation and one of its runs.
#[derive(Clone)]
struct Target {
    org_url: String,
    project_id: String,
    run_id: u64,
}

async fn target(sim: &RunningSimulator) -> Target {
    let client = reqwest::Client::new();
    let org_url = sim.org_url();
    let get = |url: String| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .basic_auth("", Some("bench"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let projects = get(format!("{org_url}/_apis/projects?api-version=7.1")).await;
    let project_id = projects["value"][0]["id"].as_str().unwrap().to_owned();
    let builds = get(format!(
        "{org_url}/{project_id}/_apis/build/builds?api-version=7.1"
    ))
    .await;
    let run_id = builds["value"][0]["id"].as_u64().unwrap();
    Target {
        org_url,
        project_id,
        run_id,
    }
}

// ---------------------------------------------------------------------------------------------
// In process

struct InProcess {
    decision: Vec<Duration>,
    remembered: Vec<Duration>,
    our_evaluation: Vec<Duration>,
    bare: Vec<Duration>,
    /// Each rule's sets evaluated on their own (bare regorus, median), costliest first.
    per_rule: Vec<(String, Duration)>,
    input_bytes: usize,
    rules: usize,
}

async fn in_process(target: &Target, scratch: &Path, rounds: usize) -> InProcess {
    let overrides = Overrides {
        db: Some(scratch.join("in-process.db").display().to_string()),
        org_url: Some(target.org_url.clone()),
        ..Overrides::default()
    };
    let mut config: Config = config::load_from(None, &[], &overrides).unwrap().config;
    config.ado.pat = Some(SecretString::new("bench"));
    let sync = startup::sync_service(&config).await.unwrap();
    sync.run(ModeRequest::Full, &NoProgress).await.unwrap();
    let store = startup::configured_store(&config).await.unwrap();
    let (policies, problems) = startup::policies(&config).unwrap();
    let contexts = startup::tenant_contexts(&config, store, policies.clone(), &problems).unwrap();
    let gate = contexts[0].gate.clone();
    let request = DeploymentRequest {
        project: target.project_id.clone(),
        environment: "production".to_owned(),
        run_id: Some(target.run_id),
        ..DeploymentRequest::default()
    };
    let now = OffsetDateTime::now_utc();
    let warmup = rounds / 10;

    let mut decision = Vec::with_capacity(rounds);
    let mut input = Value::Null;
    for round in 0..rounds + warmup {
        let started = Instant::now();
        let (verdict, findings, evaluated) = gate.judge_afresh(&request, now).await.unwrap();
        let took = started.elapsed();
        std::hint::black_box((verdict, findings));
        if round >= warmup {
            decision.push(took);
        }
        input = evaluated;
    }

    // The same check again within the same second and inventory version: what a burst of
    // checks about one run costs after its first.
    let mut remembered = Vec::with_capacity(rounds);
    gate.judge(&request, now).await.unwrap();
    for round in 0..rounds + warmup {
        let started = Instant::now();
        std::hint::black_box(gate.judge(&request, now).await.unwrap());
        if round >= warmup {
            remembered.push(started.elapsed());
        }
    }

    let mut our_evaluation = Vec::with_capacity(rounds);
    for round in 0..rounds + warmup {
        let started = Instant::now();
        std::hint::black_box(policies.evaluate_gate(&input).unwrap());
        if round >= warmup {
            our_evaluation.push(started.elapsed());
        }
    }

    let mut engine = regorus::Engine::new();
    for source in tollgate_policy::builtin_sources() {
        engine.add_policy(source.name, source.text).unwrap();
    }
    engine
        .add_policy(
            "generated/gate.rego".to_owned(),
            tollgate_policy::gate::aggregate_module(policies.gate_rules()),
        )
        .unwrap();
    let mut bare = Vec::with_capacity(rounds);
    for round in 0..rounds + warmup {
        let started = Instant::now();
        engine.set_input(regorus::Value::deserialize(&input).unwrap());
        let outcomes = engine
            .eval_rule(tollgate_policy::gate::AGGREGATE_RULE.to_owned())
            .unwrap();
        if round >= warmup {
            bare.push(started.elapsed());
        }
        std::hint::black_box(outcomes);
    }
    // Where the bare evaluation's time goes: each rule's sets on their own.
    let mut per_rule = Vec::new();
    for rule in policies.gate_rules() {
        let mut took = Vec::with_capacity(200);
        for _ in 0..200 {
            let started = Instant::now();
            engine.set_input(regorus::Value::deserialize(&input).unwrap());
            for effect in &rule.effects {
                std::hint::black_box(
                    engine
                        .eval_rule(format!("data.{}.{}", rule.package, effect.as_str()))
                        .unwrap(),
                );
            }
            took.push(started.elapsed());
        }
        took.sort();
        per_rule.push((rule.id.clone(), percentile(&took, 50.0)));
    }
    per_rule.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
    for series in [
        &mut decision,
        &mut remembered,
        &mut our_evaluation,
        &mut bare,
    ] {
        series.sort();
    }
    InProcess {
        decision,
        remembered,
        our_evaluation,
        bare,
        per_rule,
        input_bytes: input.to_string().len(),
        rules: policies.gate_rules().len(),
    }
}

// ---------------------------------------------------------------------------------------------
// Servers

struct Tollgate {
    child: Child,
    base: String,
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
    assert!(path.is_file(), "no tollgate binary at {}", path.display());
    path
}

/// A `tollgate` command with this bench's own `TOLLGATE_*` knobs removed (tollgate refuses
/// variables it does not know).
fn tollgate(config: &Path) -> Command {
    let mut command = Command::new(tollgate_binary());
    command.arg("--config").arg(config);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TOLLGATE_") {
            command.env_remove(name);
        }
    }
    // `TOLLGATE_BENCH_SERVER_LOG` (a `TOLLGATE_LOG` filter) to see what the servers do.
    let log = std::env::var("TOLLGATE_BENCH_SERVER_LOG").unwrap_or_else(|_| "error".to_owned());
    command.env("TOLLGATE_LOG", log);
    command
}

fn run_ok(mut command: Command, what: &str) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn start_server(config: &Path) -> Tollgate {
    let mut child = tollgate(config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (address_tx, address_rx) = std::sync::mpsc::channel();
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
    let base = address_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("tollgate serve printed its address");
    Tollgate { child, base }
}

fn config_text(database: &str, target: &Target, dir: &Path) -> String {
    format!(
        "[database]\nurl = \"{database}\"\n\n[ado]\norg_url = \"{org}\"\npat = \"bench\"\n\n\
         [audit]\nkey_file = \"{key}\"\n\n\
         [worker]\nincremental_sync_every_secs = 0\nfull_sync_every_secs = 0\n\n\
         [gate]\nusername = \"{GATE_USER}\"\npassword = \"{GATE_PASSWORD}\"\n",
        org = target.org_url,
        key = dir.join("audit.key").display()
    )
}

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let root = base[authority..]
        .find('/')
        .map_or(base, |slash| &base[..authority + slash]);
    if query.is_empty() {
        format!("{root}/{database}")
    } else {
        format!("{root}/{database}?{query}")
    }
}

/// Synced servers on one database: SQLite with one replica, or PostgreSQL with `replicas`.
async fn start_backend(
    label: &str,
    replicas: usize,
    target: &Target,
    scratch: &Path,
) -> Option<Vec<Tollgate>> {
    let dir = scratch.join(label);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tollgate.toml");
    let database = if label == "sqlite" {
        dir.join("tollgate.db").display().to_string()
    } else {
        let (Ok(app), Ok(owner)) = (
            std::env::var("TOLLGATE_TEST_POSTGRES_URL"),
            std::env::var("TOLLGATE_TEST_POSTGRES_OWNER_URL"),
        ) else {
            eprintln!(
                "  {label}: skipped (no PostgreSQL: eval \"$(scripts/pg-test-cluster.sh start)\")"
            );
            return None;
        };
        let name = format!("tg_gate_bench_{}_{label}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&owner).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let app_role = sqlx::postgres::PgConnectOptions::from_str(&app)
            .unwrap()
            .get_username()
            .to_owned();
        let mut migrate = tollgate(&config);
        migrate.args([
            "migrate",
            "--db",
            &with_database(&owner, &name),
            "--app-role",
            &app_role,
        ]);
        std::fs::write(&config, "").unwrap();
        run_ok(migrate, "tollgate migrate");
        with_database(&app, &name)
    };
    std::fs::write(&config, config_text(&database, target, &dir)).unwrap();
    let mut sync = tollgate(&config);
    sync.args(["sync", "--full", "--quiet"]);
    run_ok(sync, "tollgate sync --full");
    Some((0..replicas).map(|_| start_server(&config)).collect())
}

// ---------------------------------------------------------------------------------------------
// Load

#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Health,
    Gate,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::Health => "GET /healthz",
            Endpoint::Gate => "POST /gate/ado (sync, new check)",
        }
    }
}

#[derive(Clone, Copy)]
enum Load {
    Rate(u64),
    Concurrent(usize),
}

impl Load {
    fn label(self) -> String {
        match self {
            Load::Rate(rate) => format!("{rate}/s open loop"),
            Load::Concurrent(n) => format!("{n} concurrent"),
        }
    }
}

/// The load generator's client: plain HTTP/1.1 keep-alive connections over loopback, each
/// request written as prepared bytes and each answer read by its `Content-Length`. A general
/// client (reqwest) cost ≈ 50 µs of CPU per request here, half a core at 10,000/s taken from
/// the server it measures on a two-core machine; this costs a few µs. Idle connections are
/// reused; when none is idle a new one is opened, as a client with an unbounded pool would.
struct Caller {
    servers: Vec<Server>,
    target: Target,
    authorization: String,
    counter: AtomicU64,
}

struct Server {
    address: std::net::SocketAddr,
    idle: std::sync::Mutex<Vec<Connection>>,
}

struct Connection {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
    /// When it last answered: the server closes keep-alive connections idle past its header
    /// read timeout (10 s), so older ones are not reused.
    last_used: Instant,
}

/// Idle connections older than this are closed rather than reused (well inside the server's
/// 10 s header read timeout).
const IDLE_REUSE: Duration = Duration::from_secs(5);

impl Caller {
    fn new(bases: &[String], target: Target) -> Self {
        use base64::Engine as _;
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{GATE_USER}:{GATE_PASSWORD}"));
        Caller {
            servers: bases
                .iter()
                .map(|base| Server {
                    address: base.trim_start_matches("http://").parse().unwrap(),
                    idle: std::sync::Mutex::new(Vec::new()),
                })
                .collect(),
            target,
            authorization: format!("Basic {credentials}"),
            counter: AtomicU64::new(0),
        }
    }

    fn request(&self, endpoint: Endpoint, n: u64, host: &str) -> Vec<u8> {
        match endpoint {
            Endpoint::Health => format!("GET /healthz HTTP/1.1\r\nhost: {host}\r\n\r\n"),
            Endpoint::Gate => {
                let id = |part: u64| format!("{:08x}-0000-4000-8000-{:012x}", part, n);
                let run = self.target.run_id;
                let body = format!(
                    "{{\"environment\":\"staging\",\"stage\":\"staging\",\"runId\":\"{run}\"}}"
                );
                format!(
                    "POST /gate/ado/default HTTP/1.1\r\nhost: {host}\r\n\
                     authorization: {auth}\r\nplanurl: {org}/\r\nprojectid: {project}\r\n\
                     hubname: checks\r\nplanid: {plan}\r\njobid: {job}\r\n\
                     timelineid: {timeline}\r\ntaskinstanceid: {task}\r\n\
                     authtoken: bench-job-token\r\nbuildid: {run}\r\n\
                     content-type: application/json\r\ncontent-length: {length}\r\n\r\n{body}",
                    auth = self.authorization,
                    org = self.target.org_url,
                    project = self.target.project_id,
                    plan = id(1),
                    job = id(2),
                    timeline = id(3),
                    task = id(4),
                    length = body.len(),
                )
            }
        }
        .into_bytes()
    }

    async fn call(&self, endpoint: Endpoint) -> Result<u16, String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let server = &self.servers[n as usize % self.servers.len()];
        let request = self.request(endpoint, n, &server.address.to_string());
        let idle = {
            // A stack: the top was used last, everything under it before.
            let mut idle = server.idle.lock().unwrap();
            match idle.pop() {
                Some(connection) if connection.last_used.elapsed() < IDLE_REUSE => Some(connection),
                Some(_) => {
                    idle.clear();
                    None
                }
                None => None,
            }
        };
        let mut connection = match idle {
            Some(connection) => connection,
            None => {
                let stream = tokio::net::TcpStream::connect(server.address)
                    .await
                    .map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                Connection {
                    stream,
                    buffer: Vec::with_capacity(8192),
                    last_used: Instant::now(),
                }
            }
        };
        let status = connection.exchange(&request).await?;
        connection.last_used = Instant::now();
        server.idle.lock().unwrap().push(connection);
        Ok(status)
    }
}

impl Connection {
    /// Write one request and read its answer (status line, headers, `Content-Length` bytes).
    async fn exchange(&mut self, request: &[u8]) -> Result<u16, String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        self.stream
            .write_all(request)
            .await
            .map_err(|e| e.to_string())?;
        self.buffer.clear();
        let mut filled = 0;
        loop {
            if let Some(end) = self.buffer[..filled]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            {
                let head = std::str::from_utf8(&self.buffer[..end]).map_err(|e| e.to_string())?;
                let status: u16 = head
                    .get(9..12)
                    .and_then(|code| code.parse().ok())
                    .ok_or_else(|| format!("no status in {head:?}"))?;
                let length: usize = head
                    .split("\r\n")
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .ok_or_else(|| format!("no content-length in {head:?}"))?;
                let total = end + 4 + length;
                while filled < total {
                    if self.buffer.len() < total {
                        self.buffer.resize(total, 0);
                    }
                    let read = self.stream.read(&mut self.buffer[filled..]).await;
                    match read.map_err(|e| e.to_string())? {
                        0 => return Err("connection closed mid-answer".to_owned()),
                        got => filled += got,
                    }
                }
                if filled != total {
                    return Err("bytes after the answer (the server never pipelines)".to_owned());
                }
                return Ok(status);
            }
            if self.buffer.len() < filled + 4096 {
                self.buffer.resize(filled + 4096, 0);
            }
            let read = self.stream.read(&mut self.buffer[filled..]).await;
            match read.map_err(|e| e.to_string())? {
                0 => return Err("connection closed before an answer".to_owned()),
                got => filled += got,
            }
        }
    }
}

#[derive(Default)]
struct Point {
    latencies: Vec<Duration>,
    /// When each measured request was (to be) sent, from the start of the window: with
    /// `TOLLGATE_BENCH_TRACE` the samples are written out to see *when* the slow ones happen.
    sent_at: Vec<Duration>,
    /// The window's start on the wall clock (Unix seconds), to line the trace up with others.
    window_from_unix: f64,
    answered: u64,
    /// Answers a check may give: 200 approved, 403 rejected, 409 pending.
    decided: u64,
    errors: u64,
    dropped: u64,
    window: Duration,
}

impl Point {
    fn summary(&self, endpoint: Endpoint) -> String {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let ok = match endpoint {
            Endpoint::Health => self.answered - self.errors,
            Endpoint::Gate => self.decided,
        };
        format!(
            "{:.0}/s | {:.2} ms | {:.2} ms | {:.2} ms | {} | {}",
            ok as f64 / self.window.as_secs_f64(),
            ms(percentile(&sorted, 50.0)),
            ms(percentile(&sorted, 99.0)),
            ms(percentile(&sorted, 99.9)),
            self.errors,
            self.dropped
        )
    }
}

fn is_success(endpoint: Endpoint, status: u16) -> bool {
    match endpoint {
        Endpoint::Health => status == 200,
        Endpoint::Gate => matches!(status, 200 | 403 | 409),
    }
}

async fn open_loop(
    caller: Arc<Caller>,
    endpoint: Endpoint,
    rate: u64,
    warmup: Duration,
    window: Duration,
    max_in_flight: usize,
) -> Point {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let total = ((warmup + window).as_secs_f64() * rate as f64) as u64;
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let measured_from = start + warmup;
    let mut tasks = tokio::task::JoinSet::new();
    let mut point = Point {
        window,
        window_from_unix: unix_time_of(measured_from),
        ..Point::default()
    };
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(at).await;
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            if at >= measured_from {
                point.dropped += 1;
            }
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (caller, in_flight) = (caller.clone(), in_flight.clone());
        tasks.spawn(async move {
            let result = caller.call(endpoint).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            (at, at.elapsed(), result)
        });
        // Collect what is done as we go so the set does not grow with the run.
        while let Some(done) = tasks.try_join_next() {
            record(&mut point, endpoint, measured_from, done.unwrap());
        }
    }
    while let Some(done) = tasks.join_next().await {
        record(&mut point, endpoint, measured_from, done.unwrap());
    }
    point
}

fn record(
    point: &mut Point,
    endpoint: Endpoint,
    measured_from: tokio::time::Instant,
    (at, took, result): (tokio::time::Instant, Duration, Result<u16, String>),
) {
    if at < measured_from {
        return;
    }
    point.answered += 1;
    point.latencies.push(took);
    point.sent_at.push(at - measured_from);
    match result {
        Ok(status) if is_success(endpoint, status) => {
            if endpoint == Endpoint::Gate {
                point.decided += 1;
            }
        }
        _ => point.errors += 1,
    }
}

fn unix_time_of(instant: tokio::time::Instant) -> f64 {
    let now = tokio::time::Instant::now();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    if instant >= now {
        wall + (instant - now).as_secs_f64()
    } else {
        wall - (now - instant).as_secs_f64()
    }
}

/// One CSV per point: send time (ms from the window's start), latency (µs).
fn write_trace(dir: &Path, backend: &str, load: Load, endpoint: Endpoint, point: &Point) {
    std::fs::create_dir_all(dir).unwrap();
    let load = match load {
        Load::Rate(rate) => format!("rate{rate}"),
        Load::Concurrent(n) => format!("conc{n}"),
    };
    let endpoint = match endpoint {
        Endpoint::Health => "health",
        Endpoint::Gate => "gate",
    };
    let mut text = format!(
        "# window from unix {:.3}\nsent_ms,latency_us\n",
        point.window_from_unix
    );
    for (sent, took) in point.sent_at.iter().zip(&point.latencies) {
        text.push_str(&format!("{:.3},{:.0}\n", ms(*sent), us(*took)));
    }
    std::fs::write(dir.join(format!("{backend}-{load}-{endpoint}.csv")), text).unwrap();
}

async fn closed_loop(
    caller: Arc<Caller>,
    endpoint: Endpoint,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> Point {
    let started = tokio::time::Instant::now();
    let measured_from = started + warmup;
    let until = measured_from + window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let caller = caller.clone();
        tasks.spawn(async move {
            let mut done = Vec::new();
            while tokio::time::Instant::now() < until {
                let at = tokio::time::Instant::now();
                let result = caller.call(endpoint).await;
                done.push((at, at.elapsed(), result));
            }
            done
        });
    }
    let mut point = Point {
        window,
        window_from_unix: unix_time_of(measured_from),
        ..Point::default()
    };
    while let Some(done) = tasks.join_next().await {
        for one in done.unwrap() {
            record(&mut point, endpoint, measured_from, one);
        }
    }
    point
}

// ---------------------------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then we only check
    // that the harness builds.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let window = Duration::from_secs(env_number("TOLLGATE_BENCH_SECONDS", 5));
    let warmup = Duration::from_secs(env_number("TOLLGATE_BENCH_WARMUP", 1));
    let max_in_flight = env_number("TOLLGATE_BENCH_MAX_IN_FLIGHT", 2000) as usize;
    let rounds = env_number("TOLLGATE_BENCH_DECISIONS", 2000) as usize;
    let concurrency = env_number("TOLLGATE_BENCH_CONCURRENCY", 200) as usize;
    let rates: Vec<u64> = std::env::var("TOLLGATE_BENCH_RATES")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .map(|r| r.trim().parse().unwrap())
        .collect();
    let backends =
        std::env::var("TOLLGATE_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,pg1,pg2".to_owned());

    let sim = Simulator::new(SimConfig {
        seed: 1,
        profile: Profile::Small,
        ..SimConfig::default()
    })
    .spawn("127.0.0.1:0")
    .await
    .unwrap();
    let target = target(&sim).await;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(root).unwrap();
    let scratch = tempfile::Builder::new()
        .prefix("gate-bench-")
        .tempdir_in(root)
        .unwrap();

    eprintln!("in process: {rounds} decisions …");
    let local = in_process(&target, scratch.path(), rounds).await;
    println!(
        "In process ({} gate rules, {rounds} rounds after {} warm-up):\n",
        local.rules,
        rounds / 10
    );
    println!("| | p50 | p99 | p99 ÷ bare regorus p99 |");
    println!("|---|---|---|---|");
    let bare_p99 = percentile(&local.bare, 99.0);
    for (label, series) in [
        (
            "one gate decision (`judge_afresh`: facts from the store + evaluation)",
            &local.decision,
        ),
        (
            "the same decision again (facts and verdict remembered: same run, inventory and second)",
            &local.remembered,
        ),
        (
            "our evaluation alone (`evaluate_gate`: engine clone + evaluation + findings)",
            &local.our_evaluation,
        ),
        (
            "bare regorus (prepared engine, set_input + eval_rule)",
            &local.bare,
        ),
    ] {
        println!(
            "| {label} | {:.0} µs | {:.0} µs | {:.2}× |",
            us(percentile(series, 50.0)),
            us(percentile(series, 99.0)),
            percentile(series, 99.0).as_secs_f64() / bare_p99.as_secs_f64()
        );
    }
    println!();
    println!(
        "The input the rules judged: {} bytes of JSON. Each rule alone (bare regorus, median): {}\n",
        local.input_bytes,
        local
            .per_rule
            .iter()
            .map(|(id, took)| format!("{id} {:.0} µs", us(*took)))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut loads: Vec<Load> = rates.into_iter().map(Load::Rate).collect();
    loads.push(Load::Concurrent(concurrency));
    println!(
        "Over loopback HTTP ({} s measured after {} s warm-up per point):\n",
        window.as_secs(),
        warmup.as_secs()
    );
    println!(
        "| backend | load | endpoint | answered | p50 | p99 | p99.9 | errors | dropped | p99 ÷ /healthz p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (label, replicas) in [("sqlite", 1), ("pg1", 1), ("pg2", 2)] {
        if !backends.split(',').any(|b| b.trim() == label) {
            continue;
        }
        eprintln!("{label}: syncing and starting {replicas} replica(s) …");
        let Some(servers) = start_backend(label, replicas, &target, scratch.path()).await else {
            continue;
        };
        let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
        let caller = Arc::new(Caller::new(&bases, target.clone()));
        let backend = match label {
            "sqlite" => "SQLite".to_owned(),
            _ => format!("PostgreSQL, {replicas} replica(s)"),
        };
        for load in &loads {
            let mut health_p99 = Duration::ZERO;
            for endpoint in [Endpoint::Health, Endpoint::Gate] {
                eprintln!("  {label}: {} {} …", load.label(), endpoint.label());
                let point = match *load {
                    Load::Rate(rate) => {
                        open_loop(
                            caller.clone(),
                            endpoint,
                            rate,
                            warmup,
                            window,
                            max_in_flight,
                        )
                        .await
                    }
                    Load::Concurrent(n) => {
                        closed_loop(caller.clone(), endpoint, n, warmup, window).await
                    }
                };
                if let Ok(dir) = std::env::var("TOLLGATE_BENCH_TRACE") {
                    write_trace(Path::new(&dir), label, *load, endpoint, &point);
                }
                let mut sorted = point.latencies.clone();
                sorted.sort();
                let p99 = percentile(&sorted, 99.0);
                let ratio = if endpoint == Endpoint::Health {
                    health_p99 = p99;
                    "1×".to_owned()
                } else {
                    format!("{:.1}×", p99.as_secs_f64() / health_p99.as_secs_f64())
                };
                println!(
                    "| {backend} | {} | {} | {} | {ratio} |",
                    load.label(),
                    endpoint.label(),
                    point.summary(endpoint)
                );
            }
        }
        drop(servers);
    }
    drop(sim);
}
