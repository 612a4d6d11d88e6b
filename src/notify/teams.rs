//! Microsoft Teams incoming webhooks (Workflows "when a Teams webhook request is received", and
//! the retired Office 365 connectors): a `message` whose one attachment is an Adaptive Card
//! with the headline, the facts and a button to the approval. Any 2xx is success (Workflows
//! answers 202 Accepted).

use anyhow::Result;
use serde_json::{Value, json};
use tollgate_domain::SecretString;

use crate::services::notify::{ApprovalNotice, Notifier};

pub struct TeamsNotifier {
    name: String,
    url: SecretString,
    client: reqwest::Client,
}

impl TeamsNotifier {
    pub fn new(name: &str, url: SecretString) -> Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            url,
            client: super::http_client()?,
        })
    }
}

/// The message envelope with the Adaptive Card (schema 1.4, which Teams renders everywhere).
pub fn message(notice: &ApprovalNotice) -> Value {
    let facts: Vec<Value> = super::facts(notice)
        .into_iter()
        .map(|(title, value)| json!({ "title": title, "value": value }))
        .collect();
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": { "width": "Full" },
        "body": [
            {
                "type": "TextBlock",
                "text": super::headline(notice),
                "size": "Large",
                "weight": "Bolder",
                "wrap": true,
            },
            {
                "type": "TextBlock",
                "text": format!("tollgate · tenant {} · approval {}", notice.tenant, notice.approval_id),
                "isSubtle": true,
                "spacing": "None",
                "wrap": true,
            },
            { "type": "FactSet", "facts": facts },
        ],
    });
    if let Some(link) = &notice.link {
        card["actions"] = json!([
            { "type": "Action.OpenUrl", "title": "Open in tollgate", "url": link }
        ]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[async_trait::async_trait]
impl Notifier for TeamsNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn notify(&self, notice: &ApprovalNotice) -> Result<()> {
        let body = message(notice);
        super::post_with_retries(&self.name, || {
            Ok(self.client.post(self.url.expose()).json(&body))
        })
        .await?;
        Ok(())
    }
}
