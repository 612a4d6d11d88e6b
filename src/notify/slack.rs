//! Slack incoming webhooks: Block Kit blocks (a header, the facts as section fields, a context
//! line and a button to the approval) with `text` as the fallback notifications and screen
//! readers show. Slack answers `200 ok`; errors come as 4xx with a short reason in the body
//! (`invalid_payload`, `no_service`, `channel_is_archived`), which the error carries.

use anyhow::Result;
use serde_json::{Value, json};
use tollgate_domain::SecretString;

use crate::services::notify::{ApprovalNotice, Notifier};

/// Block Kit limits: header text 150 characters, a section field 2,000.
const HEADER_CHARS: usize = 150;
const FIELD_CHARS: usize = 2000;

pub struct SlackNotifier {
    name: String,
    url: SecretString,
    client: reqwest::Client,
}

impl SlackNotifier {
    pub fn new(name: &str, url: SecretString) -> Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            url,
            client: super::http_client()?,
        })
    }
}

/// Text placed in `mrkdwn` must have `&`, `<` and `>` escaped, or a pipeline named `<!here>`
/// would ping a channel.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit - 1).collect();
    cut.push('…');
    cut
}

/// The webhook payload.
pub fn message(notice: &ApprovalNotice) -> Value {
    let headline = super::headline(notice);
    let fields: Vec<Value> = super::facts(notice)
        .into_iter()
        .map(|(title, value)| {
            json!({
                "type": "mrkdwn",
                "text": cut(&format!("*{title}*\n{}", escape(&value)), FIELD_CHARS),
            })
        })
        .collect();
    let fallback = format!(
        "{headline}, requested by {}; expires {}",
        notice.requested_by,
        super::human_time(notice.expires_at)
    );
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": { "type": "plain_text", "text": cut(&headline, HEADER_CHARS), "emoji": false },
        }),
        json!({ "type": "section", "fields": fields }),
        json!({
            "type": "context",
            "elements": [{
                "type": "mrkdwn",
                "text": escape(&format!("tollgate · tenant {} · approval {}", notice.tenant, notice.approval_id)),
            }],
        }),
    ];
    if let Some(link) = &notice.link {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "action_id": "open_approval",
                "text": { "type": "plain_text", "text": "Open in tollgate" },
                "url": link,
            }],
        }));
    }
    json!({ "text": escape(&fallback), "blocks": blocks })
}

#[async_trait::async_trait]
impl Notifier for SlackNotifier {
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
