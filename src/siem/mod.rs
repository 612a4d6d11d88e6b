//! SIEM sink adapters: syslog (TCP, TLS, UDP), JSON-lines files, Splunk HEC and Azure
//! Monitor Logs Ingestion. Each turns [`SinkItem`]s into its wire format with the
//! encoders of `tollgate_audit::encode` and delivers a batch as a whole or fails it.

mod azure;
mod file;
mod hec;
mod syslog;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tollgate_audit::encode::Device;

pub use azure::AzureLogsSink;
pub use file::FileSink;
pub use hec::HecSink;
pub use syslog::SyslogSink;

use crate::config::SinkConfig;
use crate::services::siem::Sink;

pub(crate) const DEVICE: Device<'static> = Device {
    vendor: "tollgate",
    product: "tollgate",
    version: env!("CARGO_PKG_VERSION"),
};

pub(crate) fn read_secret(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the secret file {}", path.display()))?;
    let secret = text.trim().to_owned();
    anyhow::ensure!(
        !secret.is_empty(),
        "the secret file {} is empty",
        path.display()
    );
    Ok(secret)
}

/// An HTTP client trusting `ca_file` (PEM) in addition to the system roots.
pub(crate) fn http_client(ca_file: Option<&Path>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificate", path.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().context("building the HTTP client")
}

/// The sinks a configuration names.
pub fn sinks(configs: &[SinkConfig], hostname: &str) -> Result<Vec<Arc<dyn Sink>>> {
    let mut names = std::collections::BTreeSet::new();
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    for config in configs {
        anyhow::ensure!(
            names.insert(config.name().to_owned()),
            "two audit sinks are named {:?}; names key their delivery cursors",
            config.name()
        );
        let sink: Arc<dyn Sink> = match config {
            SinkConfig::Syslog {
                name,
                address,
                transport,
                ca_file,
                server_name,
                facility,
            } => Arc::new(SyslogSink::new(
                name,
                address,
                *transport,
                ca_file.as_deref(),
                server_name.as_deref(),
                *facility,
                hostname,
            )?),
            SinkConfig::File {
                name,
                path,
                max_bytes,
                keep,
            } => Arc::new(FileSink::new(name, path, *max_bytes, *keep)),
            SinkConfig::SplunkHec {
                name,
                url,
                token_file,
                index,
                ack,
                ca_file,
            } => Arc::new(HecSink::new(
                name,
                url,
                &read_secret(token_file)?,
                index.clone(),
                *ack,
                ca_file.as_deref(),
                hostname,
            )?),
            SinkConfig::AzureLogs {
                name,
                endpoint,
                dcr_immutable_id,
                stream,
                tenant_id,
                client_id,
                client_secret_file,
                authority,
                ca_file,
            } => Arc::new(AzureLogsSink::new(
                name,
                azure::AzureSettings {
                    endpoint: endpoint.clone(),
                    dcr_immutable_id: dcr_immutable_id.clone(),
                    stream: stream.clone(),
                    tenant_id: tenant_id.clone(),
                    client_id: client_id.clone(),
                    client_secret: read_secret(client_secret_file)?,
                    authority: authority.clone(),
                },
                ca_file.as_deref(),
            )?),
        };
        sinks.push(sink);
    }
    Ok(sinks)
}
