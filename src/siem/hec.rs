//! Splunk HTTP Event Collector: events concatenated into batches of at most ~1 MB,
//! `Authorization: Splunk <token>`, and with `ack` the indexer acknowledgement protocol
//! (a channel per sink; a batch counts as delivered only once Splunk says it is indexed).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tollgate_audit::encode::{hec_batches, hec_checkpoint, hec_record};

use crate::services::siem::{Sink, SinkItem};

const MAX_BATCH: usize = 1_000_000;
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HecSink {
    name: String,
    url: String,
    token: String,
    index: Option<String>,
    /// The acknowledgement channel (a GUID), when acknowledgements are on.
    channel: Option<String>,
    host: String,
    client: reqwest::Client,
}

impl HecSink {
    pub fn new(
        name: &str,
        url: &str,
        token: &str,
        index: Option<String>,
        ack: bool,
        ca_file: Option<&Path>,
        host: &str,
    ) -> Result<Self> {
        // Any GUID names the channel; a UUIDv7 is one.
        let channel =
            ack.then(|| tollgate_audit::record::new_record_id(time::OffsetDateTime::now_utc()));
        Ok(Self {
            name: name.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            index,
            channel,
            host: host.to_owned(),
            client: super::http_client(ca_file)?,
        })
    }

    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .client
            .post(format!("{}{path}", self.url))
            .header("Authorization", format!("Splunk {}", self.token));
        if let Some(channel) = &self.channel {
            request = request.header("X-Splunk-Request-Channel", channel);
        }
        request
    }

    async fn wait_for_ack(&self, ack_id: u64) -> Result<()> {
        let started = Instant::now();
        loop {
            let answer: Value = self
                .request("/services/collector/ack")
                .json(&json!({ "acks": [ack_id] }))
                .send()
                .await
                .context("polling HEC acknowledgements")?
                .error_for_status()?
                .json()
                .await?;
            if answer["acks"][ack_id.to_string()].as_bool() == Some(true) {
                return Ok(());
            }
            if started.elapsed() > ACK_TIMEOUT {
                bail!("Splunk did not acknowledge batch {ack_id} within {ACK_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[async_trait::async_trait]
impl Sink for HecSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, items: &[SinkItem]) -> Result<()> {
        let events: Vec<Value> = items
            .iter()
            .map(|item| match item {
                SinkItem::Record {
                    record, leaf_hash, ..
                } => hec_record(record, leaf_hash, &self.host, self.index.as_deref()),
                SinkItem::Checkpoint {
                    origin,
                    size,
                    root,
                    note,
                } => hec_checkpoint(origin, *size, root, note, &self.host),
            })
            .collect();
        for batch in hec_batches(&events, MAX_BATCH) {
            let response = self
                .request("/services/collector/event")
                .header("Content-Type", "application/json")
                .body(batch)
                .send()
                .await
                .context("posting to the HTTP Event Collector")?;
            let status = response.status();
            let answer: Value = response.json().await.unwrap_or(Value::Null);
            // Codes 0 success; anything else (8/9 server busy, 2-4 token problems, …) fails
            // the batch, which is retried with backoff.
            if !status.is_success() || answer["code"].as_i64().unwrap_or(0) != 0 {
                bail!("HEC answered {status}: {answer}");
            }
            if self.channel.is_some() {
                let ack_id = answer["ackId"]
                    .as_u64()
                    .context("HEC acknowledgement is on, but the answer has no ackId")?;
                self.wait_for_ack(ack_id).await?;
            }
        }
        Ok(())
    }
}
