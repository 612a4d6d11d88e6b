//! CEF over syslog: RFC 5424 messages, framed with RFC 6587 octet counting over TCP or TLS
//! (RFC 5425), one datagram each over UDP (RFC 5426).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tollgate_audit::encode::{
    SyslogMessage, cef_checkpoint, cef_record, octet_counted, syslog_5424, syslog_severity,
};

use super::DEVICE;
use crate::config::SyslogTransport;
use crate::services::siem::{Sink, SinkItem};

trait Stream: AsyncWrite + Unpin + Send {}
impl<T: AsyncWrite + Unpin + Send> Stream for T {}

pub struct SyslogSink {
    name: String,
    address: String,
    transport: SyslogTransport,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    facility: u8,
    hostname: String,
    connection: Mutex<Option<Box<dyn Stream>>>,
}

impl SyslogSink {
    pub fn new(
        name: &str,
        address: &str,
        transport: SyslogTransport,
        ca_file: Option<&Path>,
        server_name: Option<&str>,
        facility: u8,
        hostname: &str,
    ) -> Result<Self> {
        let tls = match transport {
            SyslogTransport::Tls => {
                let mut roots = rustls::RootCertStore::empty();
                match ca_file {
                    Some(path) => {
                        use rustls_pki_types::pem::PemObject as _;
                        for certificate in rustls_pki_types::CertificateDer::pem_file_iter(path)
                            .with_context(|| format!("reading {}", path.display()))?
                        {
                            roots.add(certificate.context("a PEM certificate")?)?;
                        }
                    }
                    None => bail!(
                        "audit sink {name}: TLS syslog needs ca_file (the CA that signed the receiver's certificate)"
                    ),
                }
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .context("TLS versions")?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let host = server_name
                    .map(str::to_owned)
                    .or_else(|| address.rsplit_once(':').map(|(host, _)| host.to_owned()))
                    .context("the address is host:port")?;
                let server =
                    rustls_pki_types::ServerName::try_from(host).context("the TLS server name")?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(config)), server))
            }
            _ => None,
        };
        Ok(Self {
            name: name.to_owned(),
            address: address.to_owned(),
            transport,
            tls,
            facility,
            hostname: hostname.to_owned(),
            connection: Mutex::new(None),
        })
    }

    fn message(&self, item: &SinkItem) -> String {
        let (severity, time, msg_id, text) = match item {
            SinkItem::Record {
                record, leaf_hash, ..
            } => (
                record["event"]["severity"]
                    .as_str()
                    .unwrap_or("informational"),
                record["time"].as_str().unwrap_or("-").to_owned(),
                record["event"]["type"].as_str().unwrap_or("-").to_owned(),
                cef_record(&DEVICE, record, leaf_hash),
            ),
            SinkItem::Checkpoint {
                origin,
                size,
                root,
                note,
            } => (
                "informational",
                crate::services::audit_events::rfc3339(time::OffsetDateTime::now_utc()),
                "log.checkpoint".to_owned(),
                cef_checkpoint(&DEVICE, origin, *size, root, note),
            ),
        };
        syslog_5424(&SyslogMessage {
            facility: self.facility,
            severity: syslog_severity(severity),
            timestamp: &time,
            hostname: &self.hostname,
            app_name: "tollgate",
            proc_id: "-",
            msg_id: &msg_id,
            structured: &[],
            message: &text,
        })
    }

    async fn connect(&self) -> Result<Box<dyn Stream>> {
        let tcp = TcpStream::connect(&self.address)
            .await
            .with_context(|| format!("connecting to {}", self.address))?;
        tcp.set_nodelay(true)?;
        Ok(match &self.tls {
            Some((connector, server)) => Box::new(
                connector
                    .connect(server.clone(), tcp)
                    .await
                    .context("the TLS handshake")?,
            ),
            None => Box::new(tcp),
        })
    }
}

#[async_trait::async_trait]
impl Sink for SyslogSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, items: &[SinkItem]) -> Result<()> {
        if self.transport == SyslogTransport::Udp {
            let socket = UdpSocket::bind("0.0.0.0:0").await?;
            socket.connect(&self.address).await?;
            for item in items {
                socket.send(self.message(item).as_bytes()).await?;
            }
            return Ok(());
        }
        let mut frames = Vec::new();
        for item in items {
            frames.extend_from_slice(&octet_counted(&self.message(item)));
        }
        let mut connection = self.connection.lock().await;
        if connection.is_none() {
            *connection = Some(self.connect().await?);
        }
        let Some(stream) = connection.as_mut() else {
            bail!("no connection");
        };
        let written = async {
            stream.write_all(&frames).await?;
            stream.flush().await
        }
        .await;
        if let Err(error) = written {
            // A broken connection is dropped; the batch is sent again on a new one.
            *connection = None;
            return Err(error).context("writing to the syslog receiver");
        }
        Ok(())
    }
}
