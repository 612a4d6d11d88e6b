//! E-mail over SMTP (lettre): plain, STARTTLS (required, never a silent downgrade) or TLS from
//! the first byte; optional AUTH (PLAIN or LOGIN, only over TLS). One text/plain message to
//! every address in `to`. A transient SMTP answer (4xx) is retried; a permanent one is final.

use std::time::Duration;

use anyhow::{Context, Result};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tollgate_domain::SecretString;

use crate::config::SmtpTls;
use crate::services::notify::{ApprovalNotice, NoticeKind, Notifier, TryLater};

/// Connecting, and each SMTP command.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A channel's resolved settings (files read, addresses parsed).
pub struct EmailSettings {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// PEM certificates to trust in addition to the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// User name and password.
    pub credentials: Option<(String, SecretString)>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
}

pub struct EmailNotifier {
    name: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl EmailNotifier {
    pub fn new(settings: EmailSettings) -> Result<Self> {
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
                .port(settings.port)
                .timeout(Some(TIMEOUT));
        if settings.tls != SmtpTls::None {
            let mut parameters = TlsParameters::builder(settings.host.clone());
            if let Some(pem) = &settings.ca_pem {
                parameters = parameters.add_root_certificate(
                    Certificate::from_pem(pem)
                        .context("ca_file holds an unreadable certificate")?,
                );
            }
            let parameters = parameters
                .build_rustls()
                .context("setting up TLS for SMTP")?;
            builder = builder.tls(match settings.tls {
                SmtpTls::Tls => Tls::Wrapper(parameters),
                _ => Tls::Required(parameters),
            });
        }
        if let Some((user, password)) = settings.credentials {
            builder = builder.credentials(Credentials::new(user, password.expose().to_owned()));
        }
        Ok(Self {
            name: settings.name,
            from: settings.from,
            to: settings.to,
            transport: builder.build(),
        })
    }
}

/// Header values come from pipeline and environment names; line breaks in them must not
/// reach a header (lettre encodes, but a subject should read as one line anyway).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub fn subject(notice: &ApprovalNotice) -> String {
    let what = match &notice.kind {
        NoticeKind::Requested => "approval needed".to_owned(),
        NoticeKind::Decided { state, .. } => format!("approval {state}"),
    };
    one_line(&format!(
        "[tollgate] {what}: {} ({})",
        notice.environment, notice.pipeline
    ))
}

pub fn body(notice: &ApprovalNotice) -> String {
    let facts = super::facts(notice);
    let width = facts
        .iter()
        .map(|(title, _)| title.len())
        .max()
        .unwrap_or(0)
        + 1;
    let mut text = format!("{}\n\n", super::headline(notice));
    for (title, value) in facts {
        text.push_str(&format!("{:width$} {value}\n", format!("{title}:")));
    }
    text.push('\n');
    match &notice.link {
        Some(link) => text.push_str(&format!("Open the approval: {link}\n")),
        None => text.push_str(&format!(
            "Approval {} of tenant {}.\n",
            notice.approval_id, notice.tenant
        )),
    }
    text.push_str(&format!(
        "\n-- \ntollgate, tenant {}, approval {}\n",
        notice.tenant, notice.approval_id
    ));
    text
}

#[async_trait::async_trait]
impl Notifier for EmailNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn notify(&self, notice: &ApprovalNotice) -> Result<()> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject(notice))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message.body(body(notice)).context("composing the e-mail")?;
        let mut attempt = 0;
        loop {
            match self.transport.send(message.clone()).await {
                Ok(_) => return Ok(()),
                // 4xx: the server asks to come back later (greylisting, a full queue).
                Err(error) if error.is_transient() && attempt < super::RETRIES => {
                    tokio::time::sleep(super::backoff(attempt)).await;
                    attempt += 1;
                }
                Err(error) if may_succeed_later(&error) => {
                    let reason = format!("{}: sending the e-mail: {error}", self.name);
                    return Err(TryLater(reason).into());
                }
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("{}: sending the e-mail", self.name));
                }
            }
        }
    }
}

/// Whether sending again later may succeed, without risk of a second copy: the server asked
/// to come back (4xx), or the connection could not be made — refused, unanswered, a name that
/// did not resolve, a failed TLS handshake — so the message never left. lettre reports all of
/// those, and only those, as its connection error, which it exposes only through `Display`.
/// A timeout or a broken connection mid-session may come after the server took the message,
/// so it is final.
fn may_succeed_later(error: &lettre::transport::smtp::Error) -> bool {
    error.is_transient() || error.to_string().starts_with("Connection error")
}
