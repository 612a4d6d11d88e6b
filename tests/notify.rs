//! Approval notifications against real receivers on loopback: a Teams and a Slack incoming
//! webhook, a Standard Webhooks endpoint that checks signatures with its own HMAC code, and a
//! small SMTP server (plain, and STARTTLS with AUTH under a throwaway certificate authority).
//! Channels are built the way `tollgate serve` builds them: from `[[notifications]]` in a
//! configuration file, through `startup::notifications`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac as _;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tollgate::config::{Overrides, load_from};
use tollgate::services::notify::{ApprovalNotice, NoticeKind, Notifications, TryLater};

/// 32 random bytes, as Standard Webhooks secrets are given.
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwLHhLqaaQ2Fk=";

fn notice() -> ApprovalNotice {
    ApprovalNotice {
        id: "msg_apr-42_requested".to_owned(),
        tenant: "contoso".to_owned(),
        approval_id: "apr-42".to_owned(),
        kind: NoticeKind::Requested,
        environment: "production".to_owned(),
        pipeline: "payments-deploy".to_owned(),
        run_id: Some(1234),
        project: "Payments".to_owned(),
        requested_by: "alice@contoso.example".to_owned(),
        reasons: vec![
            "BP-02: main has no required reviewers".to_owned(),
            "out of the change window".to_owned(),
        ],
        approvers: vec!["release-managers".to_owned(), "bob".to_owned()],
        quorum: 2,
        expires_at: datetime!(2026-05-01 12:30 UTC),
        link: Some("https://tollgate.contoso.example/approvals/apr-42".to_owned()),
    }
}

/// Load `toml` as `tollgate.toml` in `dir` and build its channels.
fn channels(dir: &Path, toml: &str) -> Notifications {
    let config = write_config(dir, toml);
    let loaded = load_from(Some(&config), &[], &Overrides::default()).unwrap();
    tollgate::startup::notifications(&loaded.config).unwrap()
}

fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("tollgate.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn load_error(dir: &Path, toml: &str) -> String {
    let config = write_config(dir, toml);
    format!(
        "{:#}",
        load_from(Some(&config), &[], &Overrides::default()).unwrap_err()
    )
}

// ---------------------------------------------------------------------------------------------
// An HTTP receiver that records every request and answers from a script.

#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

/// Status, body and headers of one answer.
type Answer = (u16, &'static str, Vec<(&'static str, &'static str)>);

#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<Request>>>,
    /// Answers in order; once used up, `200 ok`.
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Receiver {
    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn record(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receiver.requests.lock().unwrap().push(Request {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let (status, body, headers) =
        receiver
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, "ok", Vec::new()));
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// A receiver on 127.0.0.1:0; returns its base URL.
async fn receiver(script: Vec<Answer>) -> (String, Receiver) {
    let receiver = Receiver {
        script: Arc::new(Mutex::new(script.into())),
        ..Receiver::default()
    };
    let app = Router::new().fallback(record).with_state(receiver.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, receiver)
}

fn only_outcome(outcomes: Vec<(String, Result<(), String>)>) -> (String, Result<(), String>) {
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    outcomes.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Teams

#[tokio::test]
async fn teams_receives_an_adaptive_card_with_the_facts_and_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (base, teams) = receiver(vec![(202, "", Vec::new())]).await;
    // The URL is a secret: it comes from a file.
    let url_file = dir.path().join("teams-url");
    std::fs::write(
        &url_file,
        format!("{base}/workflows/abc/triggers/manual?sig=s3cret\n"),
    )
    .unwrap();
    let notifications = channels(
        dir.path(),
        &format!(
            "[[notifications]]\nkind = \"teams\"\nname = \"release-channel\"\nurl_file = \"{}\"\n",
            url_file.display()
        ),
    );
    assert_eq!(notifications.names(), ["release-channel"]);

    let (name, outcome) = only_outcome(notifications.send(&notice()).await);
    assert_eq!(name, "release-channel");
    assert_eq!(outcome, Ok(()));

    let requests = teams.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/workflows/abc/triggers/manual");
    assert_eq!(requests[0].header("content-type"), "application/json");
    let message = requests[0].json();
    assert_eq!(message["type"], "message");
    let attachment = &message["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["body"][0]["text"],
        "Approval needed: production (payments-deploy)"
    );
    let facts: Vec<(String, String)> = card["body"]
        .as_array()
        .unwrap()
        .iter()
        .find(|element| element["type"] == "FactSet")
        .expect("a FactSet")["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fact| {
            (
                fact["title"].as_str().unwrap().to_owned(),
                fact["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let fact = |title: &str| {
        facts
            .iter()
            .find(|(t, _)| t == title)
            .unwrap_or_else(|| panic!("no {title} fact in {facts:?}"))
            .1
            .clone()
    };
    assert_eq!(fact("Environment"), "production");
    assert_eq!(fact("Pipeline"), "payments-deploy");
    assert_eq!(fact("Run"), "#1234");
    assert_eq!(fact("Requested by"), "alice@contoso.example");
    assert_eq!(
        fact("Reasons"),
        "BP-02: main has no required reviewers; out of the change window"
    );
    assert_eq!(fact("Approvers"), "release-managers, bob (2 needed)");
    assert_eq!(fact("Expires"), "2026-05-01 12:30 UTC");
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        "https://tollgate.contoso.example/approvals/apr-42"
    );
}

#[tokio::test]
async fn teams_shows_the_decision_and_leaves_out_the_button_without_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (base, teams) = receiver(Vec::new()).await;
    let notifications = channels(
        dir.path(),
        &format!("[[notifications]]\nkind = \"teams\"\nurl = \"{base}/hook\"\n"),
    );
    let decided = ApprovalNotice {
        kind: NoticeKind::Decided {
            state: "rejected".to_owned(),
            by: Some("bob".to_owned()),
        },
        link: None,
        ..notice()
    };
    let (name, outcome) = only_outcome(notifications.send(&decided).await);
    assert_eq!((name.as_str(), outcome), ("teams", Ok(())));
    let card = &teams.requests()[0].json()["attachments"][0]["content"];
    assert_eq!(
        card["body"][0]["text"],
        "Approval rejected: production (payments-deploy)"
    );
    assert!(
        card["body"][2]["facts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["title"] == "Decision" && f["value"] == "rejected by bob"),
        "{card}"
    );
    assert!(card.get("actions").is_none(), "{card}");
}

// ---------------------------------------------------------------------------------------------
// Slack

#[tokio::test]
async fn slack_receives_blocks_with_a_text_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let (base, slack) = receiver(vec![(200, "ok", Vec::new())]).await;
    let notifications = channels(
        dir.path(),
        &format!(
            "[[notifications]]\nkind = \"slack\"\nname = \"ops\"\nurl = \"{base}/services/T0/B0/token\"\n"
        ),
    );
    let hostile = ApprovalNotice {
        pipeline: "deploy <!channel> & co".to_owned(),
        ..notice()
    };
    let (_, outcome) = only_outcome(notifications.send(&hostile).await);
    assert_eq!(outcome, Ok(()));

    let requests = slack.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/services/T0/B0/token");
    let message = requests[0].json();
    let text = message["text"].as_str().unwrap();
    assert!(
        text.starts_with("Approval needed: production (deploy &lt;!channel&gt; &amp; co)"),
        "mrkdwn is escaped, so a pipeline name cannot ping a channel: {text}"
    );
    assert!(text.contains("alice@contoso.example"), "{text}");
    let blocks = message["blocks"].as_array().unwrap();
    let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["header", "section", "context", "actions"]);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(
        blocks[0]["text"]["text"], "Approval needed: production (deploy <!channel> & co)",
        "plain text is shown as is"
    );
    let fields: Vec<&str> = blocks[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    for expected in [
        "*Environment*\nproduction",
        "*Pipeline*\ndeploy &lt;!channel&gt; &amp; co",
        "*Run*\n#1234",
        "*Requested by*\nalice@contoso.example",
        "*Expires*\n2026-05-01 12:30 UTC",
        "*Approvers*\nrelease-managers, bob (2 needed)",
    ] {
        assert!(fields.contains(&expected), "{expected:?} not in {fields:?}");
    }
    assert!(fields.len() <= 10, "Slack allows 10 fields per section");
    let button = &blocks[3]["elements"][0];
    assert_eq!(button["type"], "button");
    assert_eq!(
        button["url"],
        "https://tollgate.contoso.example/approvals/apr-42"
    );
}

#[tokio::test]
async fn slack_errors_carry_slacks_reason_and_are_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (base, slack) = receiver(vec![(400, "invalid_payload", Vec::new())]).await;
    let notifications = channels(
        dir.path(),
        &format!(
            "[[notifications]]\nkind = \"slack\"\nurl = \"{base}/services/T0/B0/s3cret-token\"\n"
        ),
    );
    let (name, outcome) = only_outcome(notifications.send(&notice()).await);
    assert_eq!(name, "slack");
    let error = outcome.unwrap_err();
    assert!(
        error.contains("400") && error.contains("invalid_payload"),
        "{error}"
    );
    assert!(
        !error.contains("s3cret-token"),
        "the URL is a secret: {error}"
    );
    assert_eq!(slack.requests().len(), 1, "a 400 is final");
}

/// A loopback port nobody listens on: bound, then released.
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_channel_fails_without_naming_its_url() {
    let dir = tempfile::tempdir().unwrap();
    let port = unused_port();
    let notifications = channels(
        dir.path(),
        &format!(
            "[[notifications]]\nkind = \"slack\"\nurl = \"http://127.0.0.1:{port}/services/T0/B0/s3cret-token\"\n"
        ),
    );
    let (_, outcome) = only_outcome(notifications.send(&notice()).await);
    let error = outcome.unwrap_err();
    assert!(error.contains("sending failed"), "{error}");
    assert!(
        !error.contains("s3cret-token"),
        "the URL is a secret: {error}"
    );
}

/// A channel that cannot be reached never got the notice: the gate's job sends it again
/// later (`TryLater`), over HTTP and over SMTP alike.
#[tokio::test]
async fn an_unreachable_channel_is_worth_trying_later() {
    let dir = tempfile::tempdir().unwrap();
    let port = unused_port();
    // A plain SMTP greeting where TLS is expected: the handshake fails, nothing was sent.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = plain.accept().await {
            use tokio::io::AsyncWriteExt as _;
            let _ = socket.write_all(b"220 plain.example ESMTP\r\n").await;
        }
    });
    let notifications = channels(
        dir.path(),
        &format!(
            r#"{webhook}
[[notifications]]
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from = "tollgate@contoso.example"
to = ["release-managers@contoso.example"]

[[notifications]]
kind = "email"
name = "mail-over-tls"
smtp_host = "localhost"
smtp_port = {plain_port}
tls = "tls"
from = "tollgate@contoso.example"
to = ["release-managers@contoso.example"]
"#,
            webhook = webhook_config(dir.path(), &format!("http://127.0.0.1:{port}/hook")),
        ),
    );
    for channel in ["hub", "email", "mail-over-tls"] {
        let error = notifications
            .send_to(channel, &notice())
            .await
            .expect("the channel is configured")
            .unwrap_err();
        assert!(error.is::<TryLater>(), "{channel}: {error:#}");
    }
    assert!(notifications.send_to("teams", &notice()).await.is_none());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (base, slack) = receiver(vec![(
        307,
        "",
        vec![("location", "http://127.0.0.1:1/elsewhere")],
    )])
    .await;
    let notifications = channels(
        dir.path(),
        &format!("[[notifications]]\nkind = \"slack\"\nurl = \"{base}/hook\"\n"),
    );
    let (_, outcome) = only_outcome(notifications.send(&notice()).await);
    let error = outcome.unwrap_err();
    assert!(error.contains("307"), "{error}");
    assert_eq!(slack.requests().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks

/// The receiving side as the specification describes it, written here without tollgate's code:
/// HMAC-SHA256 over `{id}.{timestamp}.{body}` with the base64-decoded secret, compared with
/// each `v1,` entry.
fn independently_verified(request: &Request, body: &[u8]) -> bool {
    let key = BASE64
        .decode(WEBHOOK_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.",
            request.header("webhook-id"),
            request.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    mac.update(body);
    let expected = BASE64.encode(mac.finalize().into_bytes());
    request
        .header("webhook-signature")
        .split(' ')
        .any(|entry| entry == format!("v1,{expected}"))
}

fn webhook_config(dir: &Path, url: &str) -> String {
    let secret_file = dir.join("webhook-secret");
    std::fs::write(&secret_file, format!("{WEBHOOK_SECRET}\n")).unwrap();
    format!(
        "[[notifications]]\nkind = \"webhook\"\nname = \"hub\"\nurl = \"{url}\"\nsecret_file = \"{}\"\n",
        secret_file.display()
    )
}

#[tokio::test]
async fn webhook_deliveries_are_signed_per_standard_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let (base, hub) = receiver(Vec::new()).await;
    let notifications = channels(
        dir.path(),
        &webhook_config(dir.path(), &format!("{base}/in")),
    );
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let (_, outcome) = only_outcome(notifications.send(&notice()).await);
    assert_eq!(outcome, Ok(()));

    let request = hub.requests().remove(0);
    assert_eq!(request.header("content-type"), "application/json");
    let id = request.header("webhook-id");
    assert!(id.starts_with("msg_") && !id.contains('.'), "{id}");
    let timestamp: i64 = request.header("webhook-timestamp").parse().unwrap();
    assert!(
        timestamp >= before && timestamp <= OffsetDateTime::now_utc().unix_timestamp(),
        "the attempt's Unix seconds"
    );
    assert!(independently_verified(&request, &request.body));
    let secret = tollgate::notify::WebhookSecret::parse(WEBHOOK_SECRET).unwrap();
    let verify = |body: &[u8]| {
        tollgate::notify::verify(
            &secret,
            request.header("webhook-id"),
            request.header("webhook-timestamp"),
            request.header("webhook-signature"),
            body,
            OffsetDateTime::now_utc(),
        )
    };
    assert_eq!(verify(&request.body), Ok(()));

    // One changed byte and neither implementation accepts it.
    let tampered = String::from_utf8(request.body.to_vec())
        .unwrap()
        .replace("production", "prodvction");
    assert!(!independently_verified(&request, tampered.as_bytes()));
    assert_eq!(
        verify(tampered.as_bytes()),
        Err(tollgate::notify::VerifyError::NoMatch)
    );

    let payload = request.json();
    assert_eq!(payload["type"], "approval.requested");
    let sent = OffsetDateTime::parse(
        payload["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(sent.unix_timestamp() >= before);
    let data = &payload["data"];
    assert_eq!(data["tenant"], "contoso");
    assert_eq!(data["approval_id"], "apr-42");
    assert_eq!(data["state"], "pending");
    assert_eq!(data["environment"], "production");
    assert_eq!(data["pipeline"], "payments-deploy");
    assert_eq!(data["run_id"], 1234);
    assert_eq!(data["project"], "Payments");
    assert_eq!(data["requested_by"], "alice@contoso.example");
    assert_eq!(data["reasons"][1], "out of the change window");
    assert_eq!(
        data["approvers"],
        serde_json::json!(["release-managers", "bob"])
    );
    assert_eq!(data["quorum"], 2);
    assert_eq!(data["expires_at"], "2026-05-01T12:30:00Z");
    assert_eq!(
        data["link"],
        "https://tollgate.contoso.example/approvals/apr-42"
    );
}

#[tokio::test]
async fn a_decision_is_its_own_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let (base, hub) = receiver(Vec::new()).await;
    let notifications = channels(dir.path(), &webhook_config(dir.path(), &base));
    let expired = ApprovalNotice {
        kind: NoticeKind::Decided {
            state: "expired".to_owned(),
            by: None,
        },
        ..notice()
    };
    let (_, outcome) = only_outcome(notifications.send(&expired).await);
    assert_eq!(outcome, Ok(()));
    let payload = hub.requests()[0].json();
    assert_eq!(payload["type"], "approval.decided");
    assert_eq!(payload["data"]["state"], "expired");
    assert_eq!(payload["data"]["decided_by"], Value::Null);
}

#[tokio::test]
async fn webhook_retries_unavailable_and_rate_limited_answers_with_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let (base, hub) = receiver(vec![
        (503, "busy", vec![("retry-after", "0")]),
        (429, "slow down", Vec::new()),
        (200, "", Vec::new()),
    ])
    .await;
    let notifications = channels(dir.path(), &webhook_config(dir.path(), &base));
    let (_, outcome) = only_outcome(notifications.send(&notice()).await);
    assert_eq!(outcome, Ok(()));

    let requests = hub.requests();
    assert_eq!(requests.len(), 3, "503 and 429 are retried");
    let id = requests[0].header("webhook-id");
    for request in &requests {
        assert_eq!(request.header("webhook-id"), id, "one message, one id");
        assert!(
            independently_verified(request, &request.body),
            "every attempt is signed"
        );
    }
}

#[tokio::test]
async fn webhook_gives_up_after_three_retries_and_never_retries_a_client_error() {
    let dir = tempfile::tempdir().unwrap();
    let always_busy = vec![(502, "bad gateway", vec![("retry-after", "0")]); 10];
    let (base, busy) = receiver(always_busy).await;
    let notifications = channels(dir.path(), &webhook_config(dir.path(), &base));
    let (_, outcome) = only_outcome(notifications.send(&notice()).await);
    let error = outcome.unwrap_err();
    assert!(
        error.contains("502") && error.contains("after 4 attempts"),
        "{error}"
    );
    assert_eq!(
        busy.requests().len(),
        4,
        "the first attempt and three retries"
    );

    let (base, refusing) = receiver(vec![(400, "unknown event type", Vec::new())]).await;
    let notifications = channels(dir.path(), &webhook_config(dir.path(), &base));
    let (_, outcome) = only_outcome(notifications.send(&notice()).await);
    let error = outcome.unwrap_err();
    assert!(
        error.contains("400") && error.contains("unknown event type"),
        "{error}"
    );
    assert_eq!(refusing.requests().len(), 1, "a 400 is final");
}

// ---------------------------------------------------------------------------------------------
// E-mail: a minimal SMTP server.

#[derive(Clone, Debug, Default)]
struct Mail {
    /// Whether MAIL FROM came over TLS.
    encrypted: bool,
    /// `user:password` from AUTH PLAIN.
    auth: Option<String>,
    from: String,
    to: Vec<String>,
    data: String,
}

#[derive(Clone, Default)]
struct Smtp {
    mails: Arc<Mutex<Vec<Mail>>>,
    /// MAIL FROM commands seen, including refused ones.
    mail_commands: Arc<Mutex<u32>>,
}

#[derive(Clone)]
struct SmtpBehaviour {
    /// Offer STARTTLS with this acceptor (and AUTH once encrypted).
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Answer the first MAIL FROM with 451 (greylisting).
    greylist_first: bool,
}

enum Next {
    StartTls,
    Closed,
}

async fn reply<S: AsyncWrite + Unpin>(stream: &mut S, text: &str) {
    stream.write_all(text.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
}

/// Speak SMTP on `stream` until QUIT, EOF or STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    smtp: &Smtp,
    behaviour: &SmtpBehaviour,
    encrypted: bool,
) -> Next {
    let mut mail = Mail {
        encrypted,
        ..Mail::default()
    };
    let mut auth = None;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return Next::Closed;
        }
        let line = line.trim_end();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            let mut answer = "250-localhost greets you\r\n".to_owned();
            if behaviour.tls.is_some() && !encrypted {
                answer.push_str("250-STARTTLS\r\n");
            }
            if encrypted {
                answer.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            answer.push_str("250 8BITMIME\r\n");
            reply(stream, &answer).await;
        } else if upper == "STARTTLS" {
            reply(stream, "220 2.0.0 ready to start TLS\r\n").await;
            return Next::StartTls;
        } else if let Some(initial) = line.strip_prefix("AUTH PLAIN ") {
            let decoded = BASE64.decode(initial).unwrap();
            let parts: Vec<String> = decoded
                .split(|b| *b == 0)
                .map(|p| String::from_utf8(p.to_vec()).unwrap())
                .collect();
            auth = Some(format!("{}:{}", parts[1], parts[2]));
            reply(stream, "235 2.7.0 authenticated\r\n").await;
        } else if upper.starts_with("MAIL FROM:") {
            let seen = {
                let mut count = smtp.mail_commands.lock().unwrap();
                *count += 1;
                *count
            };
            if behaviour.greylist_first && seen == 1 {
                reply(stream, "451 4.7.1 greylisted, come back later\r\n").await;
                continue;
            }
            mail.from = line[10..].to_owned();
            reply(stream, "250 2.1.0 ok\r\n").await;
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line[8..].to_owned());
            reply(stream, "250 2.1.5 ok\r\n").await;
        } else if upper == "DATA" {
            reply(stream, "354 end with <CRLF>.<CRLF>\r\n").await;
            let mut data = String::new();
            loop {
                let mut line = String::new();
                stream.read_line(&mut line).await.unwrap();
                if line == ".\r\n" {
                    break;
                }
                // Undo dot-stuffing.
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mail.data = data;
            mail.auth = auth.clone();
            smtp.mails.lock().unwrap().push(mail.clone());
            reply(stream, "250 2.0.0 queued\r\n").await;
        } else if upper == "RSET" || upper == "NOOP" {
            reply(stream, "250 2.0.0 ok\r\n").await;
        } else if upper == "QUIT" {
            reply(stream, "221 2.0.0 bye\r\n").await;
            return Next::Closed;
        } else {
            reply(stream, "502 5.5.2 not implemented\r\n").await;
        }
    }
}

async fn smtp_server(behaviour: SmtpBehaviour) -> (u16, Smtp) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let smtp = Smtp::default();
    let shared = smtp.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (smtp, behaviour) = (shared.clone(), behaviour.clone());
            tokio::spawn(async move {
                let mut plain = BufReader::new(socket);
                reply(&mut plain, "220 localhost ESMTP test server\r\n").await;
                if let Next::StartTls = converse(&mut plain, &smtp, &behaviour, false).await {
                    let acceptor = behaviour.tls.clone().unwrap();
                    let tls = acceptor.accept(plain.into_inner()).await.unwrap();
                    converse(&mut BufReader::new(tls), &smtp, &behaviour, true).await;
                }
            });
        }
    });
    (port, smtp)
}

/// A certificate authority (written to `dir/ca.pem`) and an acceptor for `localhost`.
fn throwaway_tls(dir: &Path) -> (PathBuf, tokio_rustls::TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    let ca_file = dir.join("ca.pem");
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
    (ca_file, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Headers and body of a received message, line endings normalised and the body decoded
/// (lettre picks 7bit, or quoted-printable once a line is long).
fn split_message(data: &str) -> (String, String) {
    let data = data.replace("\r\n", "\n");
    let (headers, body) = data.split_once("\n\n").unwrap();
    let body = match header(headers, "Content-Transfer-Encoding") {
        "7bit" => body.to_owned(),
        "quoted-printable" => decode_quoted_printable(body),
        other => panic!("unexpected transfer encoding {other}"),
    };
    (headers.to_owned(), body)
}

fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\n", "");
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'=' {
            let hex = std::str::from_utf8(&tail[..2]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).unwrap()
}

fn header<'a>(headers: &'a str, name: &str) -> &'a str {
    headers
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} header in\n{headers}"))
}

#[tokio::test]
async fn email_reaches_every_recipient_with_subject_and_facts() {
    let dir = tempfile::tempdir().unwrap();
    let (port, smtp) = smtp_server(SmtpBehaviour {
        tls: None,
        greylist_first: false,
    })
    .await;
    let notifications = channels(
        dir.path(),
        &format!(
            r#"[[notifications]]
kind = "email"
name = "approvers-mail"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from = "tollgate <tollgate@contoso.example>"
to = ["release-managers@contoso.example", "Bob <bob@contoso.example>"]
"#
        ),
    );
    let (name, outcome) = only_outcome(notifications.send(&notice()).await);
    assert_eq!((name.as_str(), outcome), ("approvers-mail", Ok(())));

    let mails = smtp.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(!mail.encrypted && mail.auth.is_none());
    assert_eq!(mail.from, "<tollgate@contoso.example>");
    assert_eq!(
        mail.to,
        [
            "<release-managers@contoso.example>",
            "<bob@contoso.example>"
        ]
    );
    let (headers, body) = split_message(&mail.data);
    assert_eq!(
        header(&headers, "From"),
        "tollgate <tollgate@contoso.example>"
    );
    assert_eq!(
        header(&headers, "To"),
        "release-managers@contoso.example, Bob <bob@contoso.example>"
    );
    assert_eq!(
        header(&headers, "Subject"),
        "[tollgate] approval needed: production (payments-deploy)"
    );
    assert_eq!(
        header(&headers, "Content-Type"),
        "text/plain; charset=utf-8"
    );
    for fact in [
        "Approval needed: production (payments-deploy)",
        "Environment:  production",
        "Pipeline:     payments-deploy",
        "Run:          #1234",
        "Project:      Payments",
        "Requested by: alice@contoso.example",
        "Reasons:      BP-02: main has no required reviewers; out of the change window",
        "Approvers:    release-managers, bob (2 needed)",
        "Expires:      2026-05-01 12:30 UTC",
        "Open the approval: https://tollgate.contoso.example/approvals/apr-42",
    ] {
        assert!(body.contains(fact), "{fact:?} not in\n{body}");
    }
}

#[tokio::test]
async fn email_over_starttls_authenticates_and_retries_a_greylisting() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, acceptor) = throwaway_tls(dir.path());
    let (port, smtp) = smtp_server(SmtpBehaviour {
        tls: Some(acceptor),
        greylist_first: true,
    })
    .await;
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, "mail-pass\n").unwrap();
    let notifications = channels(
        dir.path(),
        &format!(
            r#"[[notifications]]
kind = "email"
smtp_host = "localhost"
smtp_port = {port}
tls = "starttls"
ca_file = "{}"
username = "tollgate"
password_file = "{}"
from = "tollgate@contoso.example"
to = ["approvers@contoso.example"]
"#,
            ca_file.display(),
            password_file.display()
        ),
    );
    let decided = ApprovalNotice {
        kind: NoticeKind::Decided {
            state: "approved".to_owned(),
            by: Some("bob".to_owned()),
        },
        ..notice()
    };
    let (name, outcome) = only_outcome(notifications.send(&decided).await);
    assert_eq!((name.as_str(), outcome), ("email", Ok(())));

    assert_eq!(
        *smtp.mail_commands.lock().unwrap(),
        2,
        "the 451 was retried"
    );
    let mails = smtp.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].encrypted, "the message went over TLS");
    assert_eq!(mails[0].auth.as_deref(), Some("tollgate:mail-pass"));
    let (headers, body) = split_message(&mails[0].data);
    assert_eq!(
        header(&headers, "Subject"),
        "[tollgate] approval approved: production (payments-deploy)"
    );
    assert!(body.contains("Decision:     approved by bob"), "{body}");
}

#[tokio::test]
async fn email_refuses_a_server_without_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, _) = throwaway_tls(dir.path());
    // A server that never offers STARTTLS: no downgrade to plain text.
    let (port, smtp) = smtp_server(SmtpBehaviour {
        tls: None,
        greylist_first: false,
    })
    .await;
    let notifications = channels(
        dir.path(),
        &format!(
            "[[notifications]]\nkind = \"email\"\nsmtp_host = \"localhost\"\nsmtp_port = {port}\nca_file = \"{}\"\nfrom = \"a@contoso.example\"\nto = [\"b@contoso.example\"]\n",
            ca_file.display()
        ),
    );
    let (_, outcome) = only_outcome(notifications.send(&notice()).await);
    let error = outcome.unwrap_err();
    assert!(error.contains("STARTTLS"), "{error}");
    assert!(smtp.mails.lock().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Several channels

#[tokio::test]
async fn one_failing_channel_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (failing, _) = receiver(vec![(404, "no_service", Vec::new())]).await;
    let (teams_base, teams) = receiver(Vec::new()).await;
    let (hub_base, hub) = receiver(Vec::new()).await;
    let toml = format!(
        "[[notifications]]\nkind = \"slack\"\nurl = \"{failing}/gone\"\n\n[[notifications]]\nkind = \"teams\"\nurl = \"{teams_base}/hook\"\n\n{}",
        webhook_config(dir.path(), &hub_base)
    );
    let notifications = channels(dir.path(), &toml);
    assert!(!notifications.is_empty());
    let outcomes = notifications.send(&notice()).await;
    let names: Vec<&str> = outcomes.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["slack", "teams", "hub"], "configuration order");
    assert!(outcomes[0].1.as_ref().unwrap_err().contains("no_service"));
    assert_eq!(outcomes[1].1, Ok(()));
    assert_eq!(outcomes[2].1, Ok(()));
    assert_eq!(teams.requests().len(), 1);
    assert_eq!(hub.requests().len(), 1);
}

#[test]
fn no_channels_configured_is_an_empty_set() {
    let dir = tempfile::tempdir().unwrap();
    let notifications = channels(dir.path(), "");
    assert!(notifications.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn configuration_errors_name_the_channel_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("bad-secret"), "not-a-whsec-secret\n").unwrap();
    std::fs::write(path("short-secret"), "whsec_c2hvcnQ=\n").unwrap();
    std::fs::write(path("password"), "pw\n").unwrap();
    std::fs::write(path("empty"), "\n").unwrap();

    let cases: Vec<(String, &[&str])> = vec![
        (
            "[[notifications]]\nkind = \"pager\"\n".to_owned(),
            &["unknown variant `pager`", "teams", "slack", "webhook", "email"],
        ),
        (
            "[[notifications]]\nkind = \"teams\"\nname = \"t\"\n".to_owned(),
            &["\"t\" (teams)", "needs url_file"],
        ),
        (
            format!(
                "[[notifications]]\nkind = \"slack\"\nurl = \"https://hooks.slack.example/x\"\nurl_file = \"{}\"\n",
                path("empty")
            ),
            &["(slack)", "both url and url_file"],
        ),
        (
            format!("[[notifications]]\nkind = \"slack\"\nurl_file = \"{}\"\n", path("empty")),
            &["(slack)", "is empty"],
        ),
        (
            "[[notifications]]\nkind = \"slack\"\nurl = \"ftp://hooks.example/s3cret-path\"\n"
                .to_owned(),
            &["(slack)", "not an http(s) URL"],
        ),
        (
            "[[notifications]]\nkind = \"teams\"\nurl = \"https://x.example\"\nchannel = \"#ops\"\n"
                .to_owned(),
            &["unknown field `channel`"],
        ),
        (
            format!("[[notifications]]\nkind = \"webhook\"\nsecret_file = \"{}\"\n", path("bad-secret")),
            &["(webhook)", "needs url"],
        ),
        (
            "[[notifications]]\nkind = \"webhook\"\nurl = \"https://hub.example/in\"\n".to_owned(),
            &["(webhook)", "needs secret_file"],
        ),
        (
            format!(
                "[[notifications]]\nkind = \"webhook\"\nurl = \"https://hub.example/in\"\nsecret_file = \"{}\"\n",
                path("bad-secret")
            ),
            &["(webhook)", "bad-secret", "starts with whsec_"],
        ),
        (
            format!(
                "[[notifications]]\nkind = \"webhook\"\nurl = \"https://hub.example/in\"\nsecret_file = \"{}\"\n",
                path("short-secret")
            ),
            &["(webhook)", "5 bytes", "24 to 64"],
        ),
        (
            format!(
                "[[notifications]]\nkind = \"webhook\"\nurl = \"https://hub.example/in\"\nsecret_file = \"{}\"\n",
                path("missing-file")
            ),
            &["(webhook)", "missing-file"],
        ),
        (
            "[[notifications]]\nkind = \"email\"\nsmtp_host = \"mail.example\"\nfrom = \"not an address\"\nto = [\"a@b.example\"]\n".to_owned(),
            &["(email)", "from \"not an address\" is not an e-mail address"],
        ),
        (
            "[[notifications]]\nkind = \"email\"\nsmtp_host = \"mail.example\"\nfrom = \"a@b.example\"\nto = [\"ok@b.example\", \"bob at example\"]\n".to_owned(),
            &["(email)", "to \"bob at example\" is not an e-mail address"],
        ),
        (
            "[[notifications]]\nkind = \"email\"\nsmtp_host = \"mail.example\"\nfrom = \"a@b.example\"\n".to_owned(),
            &["(email)", "needs to"],
        ),
        (
            "[[notifications]]\nkind = \"email\"\nfrom = \"a@b.example\"\nto = [\"c@b.example\"]\n".to_owned(),
            &["(email)", "needs smtp_host"],
        ),
        (
            "[[notifications]]\nkind = \"email\"\nsmtp_host = \"mail.example\"\nfrom = \"a@b.example\"\nto = [\"c@b.example\"]\ntls = \"ssl\"\n".to_owned(),
            &["unknown variant `ssl`"],
        ),
        (
            format!(
                "[[notifications]]\nkind = \"email\"\nsmtp_host = \"mail.example\"\ntls = \"none\"\nusername = \"u\"\npassword_file = \"{}\"\nfrom = \"a@b.example\"\nto = [\"c@b.example\"]\n",
                path("password")
            ),
            &["(email)", "never sent over plain SMTP"],
        ),
        (
            "[[notifications]]\nkind = \"email\"\nsmtp_host = \"mail.example\"\nusername = \"u\"\nfrom = \"a@b.example\"\nto = [\"c@b.example\"]\n".to_owned(),
            &["(email)", "username needs password_file"],
        ),
        (
            format!(
                "[[notifications]]\nkind = \"email\"\nsmtp_host = \"mail.example\"\nca_file = \"{}\"\nfrom = \"a@b.example\"\nto = [\"c@b.example\"]\n",
                path("password")
            ),
            &["(email)", "holds no PEM certificate"],
        ),
        (
            "[[notifications]]\nkind = \"teams\"\nurl = \"https://a.example/1\"\n\n[[notifications]]\nkind = \"teams\"\nurl = \"https://a.example/2\"\n".to_owned(),
            &["two [[notifications]] are named \"teams\""],
        ),
    ];
    for (toml, expected) in cases {
        let error = load_error(dir.path(), &toml);
        for part in expected {
            assert!(
                error.contains(part),
                "{part:?} not in {error:?} for\n{toml}"
            );
        }
        assert!(!error.contains("s3cret-path"), "a URL is a secret: {error}");
    }
}

#[test]
fn inline_urls_are_redacted_and_defaults_apply() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[notifications]]\nkind = \"slack\"\nurl = \"https://hooks.slack.example/services/T/B/s3cret\"\n\n[[notifications]]\nkind = \"email\"\nsmtp_host = \"mail.example\"\nfrom = \"a@b.example\"\nto = [\"c@b.example\"]\n",
    );
    let loaded = load_from(Some(&config), &[], &Overrides::default()).unwrap();
    let shown = format!(
        "{:?} {}",
        loaded.config,
        toml::to_string(&loaded.config).unwrap()
    );
    assert!(!shown.contains("s3cret"), "{shown}");
    match &loaded.config.notifications[1] {
        tollgate::config::NotificationConfig::Email { smtp_port, tls, .. } => {
            assert_eq!(*smtp_port, 587);
            assert_eq!(*tls, tollgate::config::SmtpTls::Starttls);
        }
        other => panic!("expected email, got {other:?}"),
    }
}
