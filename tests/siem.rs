//! SIEM sinks against real receivers on loopback: a TCP and a TLS syslog listener (RFC 6587
//! octet counting), a UDP one, a Splunk HEC-compatible HTTP receiver with indexer
//! acknowledgement (which refuses the first batch, so delivery must retry), an Azure Logs
//! Ingestion endpoint with its Entra token endpoint, and a JSON-lines file. Records and
//! checkpoints arrive, and a restarted server continues from its persisted cursors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/server.rs"]
mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use reqwest::Client;
use serde_json::{Value, json};
use server::Server;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

type Received = Arc<Mutex<Vec<String>>>;

/// Read RFC 6587 octet-counted frames until the peer goes away.
async fn read_frames(stream: impl tokio::io::AsyncRead + Unpin, into: Received) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = Vec::new();
        if reader.read_until(b' ', &mut length).await.unwrap_or(0) == 0 {
            return;
        }
        let Ok(length) = std::str::from_utf8(&length[..length.len() - 1])
            .unwrap()
            .parse::<usize>()
        else {
            panic!("a frame does not start with its length: {length:?}");
        };
        let mut message = vec![0; length];
        if reader.read_exact(&mut message).await.is_err() {
            return;
        }
        into.lock()
            .unwrap()
            .push(String::from_utf8(message).unwrap());
    }
}

async fn tcp_receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Received::default();
    let into = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(read_frames(stream, into.clone()));
        }
    });
    (address, received)
}

async fn tls_receiver(dir: &std::path::Path) -> (String, std::path::PathBuf, Received) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let ca_file = dir.join("siem-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("localhost:{}", listener.local_addr().unwrap().port());
    let received = Received::default();
    let into = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let into = into.clone();
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(stream).await {
                    read_frames(stream, into).await;
                }
            });
        }
    });
    (address, ca_file, received)
}

async fn udp_receiver() -> (String, Received) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap().to_string();
    let received = Received::default();
    let into = received.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0; 65_536];
        while let Ok(n) = socket.recv(&mut buffer).await {
            into.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    });
    (address, received)
}

#[derive(Clone, Default)]
struct Hec {
    events: Arc<Mutex<Vec<Value>>>,
    posts: Arc<AtomicU64>,
}

async fn hec_event(
    State(hec): State<Hec>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Splunk hec-token") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"text": "Invalid token", "code": 4})),
        );
    }
    assert!(
        headers.contains_key("x-splunk-request-channel"),
        "acknowledgement needs a channel"
    );
    let post = hec.posts.fetch_add(1, Ordering::SeqCst);
    if post == 0 {
        // Busy: the sink must retry this batch.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"text": "Server is busy", "code": 9})),
        );
    }
    let events: Vec<Value> = serde_json::Deserializer::from_str(&body)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect();
    hec.events.lock().unwrap().extend(events);
    (
        StatusCode::OK,
        axum::Json(json!({"text": "Success", "code": 0, "ackId": post})),
    )
}

async fn hec_ack(body: axum::Json<Value>) -> axum::Json<Value> {
    let acks: serde_json::Map<String, Value> = body["acks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| (id.to_string(), Value::Bool(true)))
        .collect();
    axum::Json(json!({ "acks": acks }))
}

#[derive(Clone, Default)]
struct Azure {
    rows: Arc<Mutex<Vec<Value>>>,
}

async fn azure_token(body: String) -> axum::Json<Value> {
    assert!(body.contains("grant_type=client_credentials"), "{body}");
    assert!(body.contains("client_secret=azure-secret"), "{body}");
    axum::Json(json!({"access_token": "azure-token", "expires_in": 3600, "token_type": "Bearer"}))
}

async fn azure_ingest(State(azure): State<Azure>, headers: HeaderMap, body: String) -> StatusCode {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer azure-token") {
        return StatusCode::UNAUTHORIZED;
    }
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    azure.rows.lock().unwrap().extend(rows);
    StatusCode::NO_CONTENT
}

async fn http_receivers() -> (String, Hec, Azure) {
    let (hec, azure) = (Hec::default(), Azure::default());
    let app = Router::new()
        .route(
            "/services/collector/event",
            post(hec_event).with_state(hec.clone()),
        )
        .route("/services/collector/ack", post(hec_ack))
        .route("/entra-tenant/oauth2/v2.0/token", post(azure_token))
        .route(
            "/dataCollectionRules/dcr-123/streams/Custom-Tollgate",
            post(azure_ingest).with_state(azure.clone()),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hec, azure)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has(received: &Received, needle: &str) -> bool {
    received.lock().unwrap().iter().any(|m| m.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_checkpoints_reach_every_sink_and_cursors_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, tcp_received) = tcp_receiver().await;
    let (tls, ca_file, tls_received) = tls_receiver(dir.path()).await;
    let (udp, udp_received) = udp_receiver().await;
    let (http, hec, azure) = http_receivers().await;
    std::fs::write(dir.path().join("hec-token"), "hec-token\n").unwrap();
    std::fs::write(dir.path().join("azure-secret"), "azure-secret\n").unwrap();
    let file = dir.path().join("siem/audit.jsonl");
    let sinks = format!(
        r#"[audit]
checkpoint_interval_secs = 1

[[audit.sinks]]
kind = "syslog"
name = "syslog-tcp"
address = "{tcp}"

[[audit.sinks]]
kind = "syslog"
name = "syslog-tls"
address = "{tls}"
transport = "tls"
ca_file = "{ca}"

[[audit.sinks]]
kind = "syslog"
name = "syslog-udp"
address = "{udp}"
transport = "udp"

[[audit.sinks]]
kind = "splunk_hec"
name = "splunk"
url = "{http}"
token_file = "{hec_token}"
ack = true

[[audit.sinks]]
kind = "azure_logs"
name = "sentinel"
endpoint = "{http}"
dcr_immutable_id = "dcr-123"
stream = "Custom-Tollgate"
tenant_id = "entra-tenant"
client_id = "app-id"
client_secret_file = "{azure_secret}"
authority = "{http}"

[[audit.sinks]]
kind = "file"
name = "archive"
path = "{file}"
"#,
        ca = ca_file.display(),
        hec_token = dir.path().join("hec-token").display(),
        azure_secret = dir.path().join("azure-secret").display(),
        file = file.display(),
    );
    let server = Server::start_in(dir, &sinks).await;
    let client = Client::new();
    let created = client
        .post(server.url("/api/v1/waivers"))
        .bearer_auth(server.admin_key())
        .json(&json!({"control": "BP-01", "scope": "*", "reason": "siem test", "expires_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    for (name, received) in [
        ("tcp", &tcp_received),
        ("tls", &tls_received),
        ("udp", &udp_received),
    ] {
        wait_until(
            &format!("{name} syslog: the waiver and a checkpoint"),
            || has(received, "|waiver.created|") && has(received, "|log.checkpoint|"),
        )
        .await;
        let messages = received.lock().unwrap().clone();
        let waiver = messages
            .iter()
            .find(|m| m.contains("|waiver.created|"))
            .unwrap();
        // authpriv (10) × 8 + warning (4, a medium record); RFC 5424 version 1.
        assert!(waiver.starts_with("<84>1 "), "{waiver}");
        assert!(
            waiver.contains("\u{feff}CEF:0|tollgate|tollgate|"),
            "{waiver}"
        );
        assert!(waiver.contains("cs5Label=leafSha256 cs5="), "{waiver}");
        assert!(
            waiver.contains("cs6Label=logOrigin cs6=tollgate/default"),
            "{waiver}"
        );
    }
    wait_until(
        "HEC: the waiver (after a refused first batch) and a checkpoint",
        || {
            let events = hec.events.lock().unwrap();
            events
                .iter()
                .any(|e| e["event"]["event"]["type"] == "waiver.created")
                && events
                    .iter()
                    .any(|e| e["sourcetype"] == "tollgate:checkpoint")
        },
    )
    .await;
    assert!(
        hec.posts.load(Ordering::SeqCst) >= 2,
        "the busy answer was retried"
    );
    let genesis_via_hec = hec
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["event"]["type"] == "log.genesis")
        .count();
    assert_eq!(genesis_via_hec, 1);
    wait_until("Azure: the waiver and a checkpoint", || {
        let rows = azure.rows.lock().unwrap();
        rows.iter().any(|r| r["EventType"] == "waiver.created")
            && rows.iter().any(|r| r["EventType"] == "log.checkpoint")
    })
    .await;
    let row = azure
        .rows
        .lock()
        .unwrap()
        .iter()
        .find(|r| r["EventType"] == "waiver.created")
        .cloned()
        .unwrap();
    assert_eq!(row["Record"]["event"]["type"], "waiver.created");
    assert_eq!(
        tollgate_audit::merkle::leaf_hash(row["RecordJcs"].as_str().unwrap().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        row["LeafSha256"].as_str().unwrap(),
        "a SIEM copy can be checked against the log"
    );
    wait_until("file: the waiver", || {
        std::fs::read_to_string(&file).is_ok_and(|text| text.contains("\"waiver.created\""))
    })
    .await;

    // A restart continues from the persisted cursors: nothing is delivered twice.
    let dir = {
        let Server { mut child, dir, .. } = server;
        child.kill().await.unwrap();
        dir
    };
    let config = dir.path().join("tollgate.toml");
    let server = Server::spawn(dir, config, &[]).await;
    let before = hec.events.lock().unwrap().len();
    let key_after = client
        .post(server.url("/api/v1/waivers"))
        .bearer_auth(server.admin_key_or_none().unwrap_or("none"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    // No bootstrap key on the second start (a key exists): this is an authentication failure,
    // which is itself recorded and delivered.
    assert_eq!(key_after.status(), 401);
    wait_until("HEC: the failed authentication after the restart", || {
        hec.events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["event"]["event"]["type"] == "auth.failed")
    })
    .await;
    let genesis_again = hec
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["event"]["type"] == "log.genesis")
        .count();
    assert_eq!(
        genesis_again, 1,
        "records delivered before the restart are not sent again"
    );
    assert!(hec.events.lock().unwrap().len() > before);
    server.stop().await;
}

/// The file sink rotates by size and keeps `keep` old files.
#[tokio::test]
async fn the_file_sink_rotates_and_keeps_its_old_files() {
    use tollgate::services::siem::{Sink, SinkItem};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let sink = tollgate::siem::FileSink::new("archive", &path, 1_000, 2);
    for seq in 0..30 {
        let record =
            json!({"seq": seq, "event": {"type": "waiver.created"}, "pad": "x".repeat(100)});
        sink.send(&[SinkItem::Record {
            canonical: record.to_string(),
            record,
            leaf_hash: format!("{seq:064x}"),
        }])
        .await
        .unwrap();
    }
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    assert!(
        size(&path) <= 1_000,
        "the current file stays under max_bytes"
    );
    assert!(dir.path().join("audit.jsonl.1").exists());
    assert!(dir.path().join("audit.jsonl.2").exists());
    assert!(
        !dir.path().join("audit.jsonl.3").exists(),
        "only `keep` old files remain"
    );
    // The newest record is in the current file, whole lines everywhere.
    let current = std::fs::read_to_string(&path).unwrap();
    assert!(current.lines().last().unwrap().contains("\"seq\":29"));
    for name in ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"] {
        for line in std::fs::read_to_string(dir.path().join(name))
            .unwrap()
            .lines()
        {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
}
