//! Azure Monitor Logs Ingestion API (data collection rules): rows as JSON arrays of at
//! most 1 MB per call, a bearer token from Entra ID (client credentials) cached until it
//! nearly expires, 204 = accepted, 429 honoured through Retry-After.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::sync::Mutex;
use tollgate_audit::encode::{azure_row, json_array_batches};

use crate::services::siem::{Sink, SinkItem};

const MAX_CALL: usize = 1_000_000;
const API_VERSION: &str = "2023-01-01";
const SCOPE: &str = "https://monitor.azure.com//.default";

pub struct AzureSettings {
    pub endpoint: String,
    pub dcr_immutable_id: String,
    pub stream: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub authority: String,
}

pub struct AzureLogsSink {
    name: String,
    settings: AzureSettings,
    client: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

impl AzureLogsSink {
    pub fn new(name: &str, settings: AzureSettings, ca_file: Option<&Path>) -> Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            settings,
            client: super::http_client(ca_file)?,
            token: Mutex::new(None),
        })
    }

    async fn token(&self) -> Result<String> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.settings.authority.trim_end_matches('/'),
            self.settings.tenant_id
        );
        let response = self
            .client
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.settings.client_id.as_str()),
                ("client_secret", self.settings.client_secret.as_str()),
                ("scope", SCOPE),
            ])
            .send()
            .await
            .context("asking Entra ID for a token")?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let Some(token) = answer["access_token"].as_str() else {
            bail!(
                "Entra ID refused a token ({status}): {}",
                answer["error_description"]
                    .as_str()
                    .unwrap_or("no description")
            );
        };
        let lifetime = answer["expires_in"].as_u64().unwrap_or(300);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(30));
        *cached = Some((token.to_owned(), until));
        Ok(token.to_owned())
    }
}

#[async_trait::async_trait]
impl Sink for AzureLogsSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, items: &[SinkItem]) -> Result<()> {
        // Checkpoints are not rows of the records table; they go as records of their own
        // type, so the same DCR stream carries them.
        let rows: Vec<Value> = items
            .iter()
            .map(|item| match item {
                SinkItem::Record {
                    record,
                    canonical,
                    leaf_hash,
                } => azure_row(record, leaf_hash, canonical),
                SinkItem::Checkpoint {
                    origin,
                    size,
                    root,
                    note,
                } => serde_json::json!({
                    "TimeGenerated": crate::services::audit_events::rfc3339(time::OffsetDateTime::now_utc()),
                    "EventType": "log.checkpoint", "Origin": origin, "LogIndex": size,
                    "LeafSha256": root, "RecordJcs": note,
                }),
            })
            .collect();
        let url = format!(
            "{}/dataCollectionRules/{}/streams/{}?api-version={API_VERSION}",
            self.settings.endpoint.trim_end_matches('/'),
            self.settings.dcr_immutable_id,
            self.settings.stream
        );
        for batch in json_array_batches(&rows, MAX_CALL) {
            let token = self.token().await?;
            let response = self
                .client
                .post(&url)
                .bearer_auth(&token)
                .header("Content-Type", "application/json")
                .body(batch)
                .send()
                .await
                .context("posting to the Logs Ingestion API")?;
            let status = response.status();
            if status.as_u16() == 429 {
                let wait = response
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(5)
                    .min(60);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                bail!("the Logs Ingestion API is throttling (429); retrying after {wait} s");
            }
            if status.as_u16() == 401 {
                *self.token.lock().await = None;
            }
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                bail!("the Logs Ingestion API answered {status}: {body}");
            }
        }
        Ok(())
    }
}
