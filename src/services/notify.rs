//! Telling approvers about deployment approvals: a [`Notifier`] per channel (Teams, Slack, a
//! signed webhook, e-mail; the adapters live in `src/notify`) and [`Notifications`], the
//! configured channels. The gate sends each notice to one channel per `approval.notify` job.
//!
//! A notification is a courtesy, never part of the decision: a channel that fails is reported
//! back (and logged) but neither stops the other channels nor fails the approval.

use std::sync::Arc;

use anyhow::Result;
use time::OffsetDateTime;

/// What happened to the approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    /// A deployment waits for approvers.
    Requested,
    /// The approval is settled.
    Decided {
        /// `approved`, `rejected`, `expired` or `cancelled`.
        state: String,
        /// Who decided (none for an expiry, or a cancellation by the system).
        by: Option<String>,
    },
}

/// One approval event, everything a channel shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalNotice {
    /// Names this notice to receivers, the same on every attempt to deliver it (the signed
    /// webhook's `webhook-id`, which receivers deduplicate on). Never contains `.`.
    pub id: String,
    pub tenant: String,
    pub approval_id: String,
    pub kind: NoticeKind,
    pub environment: String,
    pub pipeline: String,
    pub run_id: Option<u64>,
    pub project: String,
    pub requested_by: String,
    /// Why approval is needed (the controls or rules that asked for it).
    pub reasons: Vec<String>,
    /// Roles or names that may approve.
    pub approvers: Vec<String>,
    /// How many approvals settle it.
    pub quorum: u32,
    pub expires_at: OffsetDateTime,
    /// The approval in tollgate's UI or API.
    pub link: Option<String>,
}

/// A notice that did not reach its channel, and may if sent again later: the channel was
/// unreachable, or answered 429 or 5xx, through all of its own retries. Every other failure
/// is final (a 4xx, or a timeout after the request went out, when the message may have
/// arrived and must not be posted twice).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TryLater(pub String);

/// One destination for approval notices.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// Names the channel in outcomes and logs (never a URL: Teams and Slack URLs are secrets).
    fn name(&self) -> &str;
    /// Deliver the notice, retrying transient failures itself briefly. An error is
    /// [`TryLater`] when sending again later may succeed, else final.
    async fn notify(&self, notice: &ApprovalNotice) -> Result<()>;
}

/// Every configured channel.
#[derive(Clone, Default)]
pub struct Notifications {
    channels: Vec<Arc<dyn Notifier>>,
}

impl Notifications {
    pub fn new(channels: Vec<Arc<dyn Notifier>>) -> Self {
        Self { channels }
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// The channels' names, in the order outcomes are returned.
    pub fn names(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name().to_owned()).collect()
    }

    /// Send to the channel named `name`; `None` when no channel has that name. A failure
    /// is logged here too.
    pub async fn send_to(&self, name: &str, notice: &ApprovalNotice) -> Option<Result<()>> {
        let channel = self
            .channels
            .iter()
            .find(|channel| channel.name() == name)?;
        Some(deliver(channel.as_ref(), notice).await)
    }

    /// Send to every channel at once, so a slow or retrying channel delays no other; returns
    /// each channel's outcome in configuration order. Failures are logged here too.
    pub async fn send(&self, notice: &ApprovalNotice) -> Vec<(String, Result<(), String>)> {
        let deliveries = self.channels.iter().map(|channel| async move {
            let outcome = deliver(channel.as_ref(), notice)
                .await
                .map_err(|error| format!("{error:#}"));
            (channel.name().to_owned(), outcome)
        });
        futures_util::future::join_all(deliveries).await
    }
}

async fn deliver(channel: &dyn Notifier, notice: &ApprovalNotice) -> Result<()> {
    let outcome = channel.notify(notice).await;
    if let Err(error) = &outcome {
        tracing::warn!(
            channel = channel.name(),
            tenant = %notice.tenant,
            approval = %notice.approval_id,
            error = format!("{error:#}"),
            "approval notification failed"
        );
    }
    outcome
}
