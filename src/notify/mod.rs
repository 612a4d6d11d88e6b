//! Approval notification adapters: Microsoft Teams and Slack incoming webhooks, a generic
//! webhook signed per the Standard Webhooks specification, and e-mail over SMTP. Each turns an
//! [`ApprovalNotice`] into its wire format and delivers it, retrying transient failures.
//!
//! Teams and Slack URLs carry their credential, so no error or log line names a URL.

mod email;
mod slack;
mod teams;
pub mod webhook;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use lettre::message::Mailbox;
use time::OffsetDateTime;
use tollgate_domain::SecretString;

pub use email::{EmailNotifier, EmailSettings};
pub use slack::SlackNotifier;
pub use teams::TeamsNotifier;
pub use webhook::{VerifyError, WebhookNotifier, WebhookSecret, verify};

use crate::config::{NotificationConfig, SmtpTls};
use crate::services::notify::{ApprovalNotice, NoticeKind, Notifier, TryLater};

/// Per request; a chat service that has not answered by then is not going to.
const TIMEOUT: Duration = Duration::from_secs(10);
/// To open a connection; below `TIMEOUT`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries after the first attempt (429, 5xx, connection refused or reset before sending).
const RETRIES: u32 = 3;
/// The first retry waits this long, each further one twice as long.
const BACKOFF: Duration = Duration::from_millis(250);
/// A longer `Retry-After` is cut to this: a notice is worth little once it is late, and the
/// caller waits for the outcome.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(10);
/// Of an error answer's body, this much goes into the error.
const ERROR_BODY_CHARS: usize = 300;

/// The channels a configuration names, built and ready to send.
pub fn notifiers(configs: &[NotificationConfig]) -> Result<Vec<Arc<dyn Notifier>>> {
    check_names(configs)?;
    configs
        .iter()
        .map(|config| {
            let channel: Arc<dyn Notifier> = match resolve(config)? {
                Channel::Teams { name, url } => Arc::new(TeamsNotifier::new(&name, url)?),
                Channel::Slack { name, url } => Arc::new(SlackNotifier::new(&name, url)?),
                Channel::Webhook { name, url, secret } => {
                    Arc::new(WebhookNotifier::new(&name, &url, secret)?)
                }
                Channel::Email(settings) => Arc::new(
                    EmailNotifier::new(settings)
                        .with_context(|| described(config, "setting up SMTP"))?,
                ),
            };
            Ok(channel)
        })
        .collect()
}

/// Check every channel as far as possible without sending: names, URLs, addresses, and the
/// secret files (read and parsed, so a bad `whsec_` secret fails at load, not at the first
/// approval).
pub fn validate(configs: &[NotificationConfig]) -> Result<()> {
    check_names(configs)?;
    for config in configs {
        resolve(config)?;
    }
    Ok(())
}

fn check_names(configs: &[NotificationConfig]) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for config in configs {
        ensure!(
            !config.name().trim().is_empty(),
            "[[notifications]] of kind {}: name is empty",
            config.kind()
        );
        ensure!(
            names.insert(config.name()),
            "two [[notifications]] are named {:?}; give each a distinct name",
            config.name()
        );
    }
    Ok(())
}

/// `[[notifications]] "name" (kind)`, the prefix of every configuration error.
fn described(config: &NotificationConfig, what: &str) -> String {
    format!(
        "[[notifications]] {:?} ({}): {what}",
        config.name(),
        config.kind()
    )
}

/// A channel's settings with its files read and its values parsed.
enum Channel {
    Teams {
        name: String,
        url: SecretString,
    },
    Slack {
        name: String,
        url: SecretString,
    },
    Webhook {
        name: String,
        url: String,
        secret: WebhookSecret,
    },
    Email(EmailSettings),
}

fn resolve(config: &NotificationConfig) -> Result<Channel> {
    let error = |what: &str| anyhow!(described(config, what));
    let name = config.name().to_owned();
    Ok(match config {
        NotificationConfig::Teams { url, url_file, .. } => Channel::Teams {
            url: secret_url(url.as_ref(), url_file.as_deref()).map_err(|e| error(&e))?,
            name,
        },
        NotificationConfig::Slack { url, url_file, .. } => Channel::Slack {
            url: secret_url(url.as_ref(), url_file.as_deref()).map_err(|e| error(&e))?,
            name,
        },
        NotificationConfig::Webhook {
            url, secret_file, ..
        } => {
            let url = url.clone().ok_or_else(|| error("needs url"))?;
            check_http_url(&url).map_err(|e| error(&format!("url {url:?} {e}")))?;
            let path = secret_file.as_deref().ok_or_else(|| {
                error("needs secret_file (a file holding the whsec_ signing secret)")
            })?;
            let text = read_file(path).map_err(|e| error(&e))?;
            let secret = WebhookSecret::parse(text.expose())
                .map_err(|e| error(&format!("the secret in {}: {e}", path.display())))?;
            Channel::Webhook { name, url, secret }
        }
        NotificationConfig::Email {
            smtp_host,
            smtp_port,
            tls,
            ca_file,
            username,
            password_file,
            from,
            to,
            ..
        } => {
            let host = smtp_host
                .clone()
                .filter(|h| !h.trim().is_empty())
                .ok_or_else(|| error("needs smtp_host"))?;
            ensure!(*smtp_port != 0, error("smtp_port must not be 0"));
            let from = from.as_deref().ok_or_else(|| error("needs from"))?;
            let from: Mailbox = from
                .parse()
                .map_err(|e| error(&format!("from {from:?} is not an e-mail address: {e}")))?;
            ensure!(
                !to.is_empty(),
                error("needs to = [\"approvers@example.com\", …]")
            );
            let to = to
                .iter()
                .map(|address| {
                    address.parse::<Mailbox>().map_err(|e| {
                        error(&format!("to {address:?} is not an e-mail address: {e}"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let credentials = match (username, password_file) {
                (None, None) => None,
                (Some(user), Some(path)) => {
                    // lettre would send AUTH over a plain connection; refuse to configure it.
                    ensure!(
                        *tls != SmtpTls::None,
                        error(
                            "a password is never sent over plain SMTP; set tls = \"starttls\" or \"tls\""
                        )
                    );
                    Some((user.clone(), read_file(path).map_err(|e| error(&e))?))
                }
                (Some(_), None) => bail!(error("username needs password_file")),
                (None, Some(_)) => bail!(error("password_file needs username")),
            };
            let ca_pem = match ca_file {
                Some(path) => {
                    ensure!(
                        *tls != SmtpTls::None,
                        error("ca_file is set but tls = \"none\"")
                    );
                    let pem = std::fs::read(path)
                        .with_context(|| described(config, "reading ca_file"))?;
                    ensure!(
                        <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(&pem)
                            .any(|certificate| certificate.is_ok()),
                        error(&format!("{} holds no PEM certificate", path.display()))
                    );
                    Some(pem)
                }
                None => None,
            };
            Channel::Email(EmailSettings {
                name,
                host,
                port: *smtp_port,
                tls: *tls,
                ca_pem,
                credentials,
                from,
                to,
            })
        }
    })
}

/// A Teams or Slack URL, inline or from its file (exactly one), never echoed in an error.
fn secret_url(
    url: Option<&SecretString>,
    url_file: Option<&Path>,
) -> std::result::Result<SecretString, String> {
    let url = match (url, url_file) {
        (Some(_), Some(_)) => return Err("both url and url_file are set; keep one".to_owned()),
        (None, None) => {
            return Err(
                "needs url_file (a file holding the incoming-webhook URL) or url".to_owned(),
            );
        }
        (Some(url), None) => url.clone(),
        (None, Some(path)) => read_file(path)?,
    };
    check_http_url(url.expose()).map_err(|e| format!("the url {e}"))?;
    Ok(url)
}

fn check_http_url(url: &str) -> std::result::Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("is not an http(s) URL".to_owned());
    }
    Ok(())
}

fn read_file(path: &Path) -> std::result::Result<SecretString, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::new(text))
}

/// The HTTP client of a channel: short timeout, no redirects (a webhook that moved should be
/// reconfigured, and following one could carry the payload somewhere unintended).
fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        // A host that drops the connection attempt is then a connect failure (retried, and
        // sent again later), not a timeout of a request that may have arrived.
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

/// POST what `request` builds (again for every attempt, so a signature can carry the attempt's
/// time) until it is answered 2xx; 429, 5xx and connection failures are retried `RETRIES`
/// times with backoff, honouring `Retry-After` seconds up to a cap, and are then [`TryLater`]
/// errors. Returns the answer's body.
async fn post_with_retries(
    channel: &str,
    mut request: impl FnMut() -> Result<reqwest::RequestBuilder>,
) -> Result<String> {
    let mut attempt = 0;
    loop {
        let wait = match request()?.send().await {
            Err(error) => {
                // Only failures before the request went out are retried: after a timeout the
                // message may have arrived, and a chat message must not be posted twice.
                let error = error.without_url();
                if !error.is_connect() {
                    return Err(anyhow::Error::new(error))
                        .with_context(|| format!("{channel}: sending failed"));
                }
                if attempt == RETRIES {
                    let reason = format!("{channel}: sending failed: {error}");
                    return Err(TryLater(reason).into());
                }
                backoff(attempt)
            }
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    return response
                        .text()
                        .await
                        .map_err(reqwest::Error::without_url)
                        .with_context(|| format!("{channel}: reading the answer"));
                }
                let retry_after = retry_after(&response);
                let transient =
                    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                if !transient || attempt == RETRIES {
                    let body = response.text().await.unwrap_or_default();
                    let body: String = body.trim().chars().take(ERROR_BODY_CHARS).collect();
                    if transient {
                        let tries = attempt + 1;
                        let reason =
                            format!("{channel} answered {status} (after {tries} attempts): {body}");
                        return Err(TryLater(reason).into());
                    }
                    bail!("{channel} answered {status}: {body}");
                }
                retry_after.map_or_else(|| backoff(attempt), |wait| wait.min(RETRY_AFTER_CAP))
            }
        };
        tracing::debug!(
            channel,
            attempt,
            ?wait,
            "notification not delivered; retrying"
        );
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

fn backoff(attempt: u32) -> Duration {
    BACKOFF * 2_u32.saturating_pow(attempt)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from chat services and ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The one-line summary every channel leads with.
pub(crate) fn headline(notice: &ApprovalNotice) -> String {
    let what = match &notice.kind {
        NoticeKind::Requested => "Approval needed".to_owned(),
        NoticeKind::Decided { state, .. } => format!("Approval {state}"),
    };
    format!("{what}: {} ({})", notice.environment, notice.pipeline)
}

/// The facts every channel lists, in this order.
pub(crate) fn facts(notice: &ApprovalNotice) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    if let NoticeKind::Decided { state, by } = &notice.kind {
        facts.push((
            "Decision",
            match by {
                Some(by) => format!("{state} by {by}"),
                None => state.clone(),
            },
        ));
    }
    facts.extend([
        ("Environment", notice.environment.clone()),
        ("Pipeline", notice.pipeline.clone()),
        (
            "Run",
            notice
                .run_id
                .map_or_else(|| "none".to_owned(), |run| format!("#{run}")),
        ),
        ("Project", notice.project.clone()),
        ("Requested by", notice.requested_by.clone()),
        (
            "Reasons",
            if notice.reasons.is_empty() {
                "none given".to_owned()
            } else {
                notice.reasons.join("; ")
            },
        ),
        (
            "Approvers",
            format!(
                "{} ({} needed)",
                if notice.approvers.is_empty() {
                    "anyone allowed".to_owned()
                } else {
                    notice.approvers.join(", ")
                },
                notice.quorum
            ),
        ),
        ("Expires", human_time(notice.expires_at)),
    ]);
    facts
}

/// `2026-05-01 12:00 UTC`: for people, in one zone, with no ambiguity.
pub(crate) fn human_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}
