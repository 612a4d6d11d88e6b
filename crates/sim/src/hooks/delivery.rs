//! One worker per subscription POSTs its notifications in order, with ADO's failure rules
//! ("Troubleshoot service hooks"): 408, 502, 503, 504 and connection failures are transient and
//! retried with backoff; 410 disables the subscription; any other failure is enduring and puts
//! it on probation, where only the failed notification is retried (new events are lost) until
//! one retry succeeds (enabled again) or all fail (disabled by the system).

use std::sync::Arc;

use tokio::sync::mpsc;

use super::subscription::{SubscriptionStatus, WebHookTarget};
use super::{DeliveryRecord, Hooks, Notification, Outcome};
use crate::model::iso;
use crate::server::now_ms;

/// How ADO treats one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Delivered,
    Transient,
    Gone,
    Enduring,
}

fn verdict(answer: &Result<u16, String>) -> Verdict {
    match answer {
        Ok(status) if (200..300).contains(status) => Verdict::Delivered,
        Ok(408 | 502 | 503 | 504) | Err(_) => Verdict::Transient,
        Ok(410) => Verdict::Gone,
        Ok(_) => Verdict::Enduring,
    }
}

/// The text of an error and its causes ("error sending request …: connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(super) async fn run(
    hooks: Arc<Hooks>,
    subscription_id: String,
    mut queue: mpsc::UnboundedReceiver<Notification>,
) {
    while let Some(notification) = queue.recv().await {
        match hooks.status_of(&subscription_id) {
            None => return,
            Some(SubscriptionStatus::Enabled) => {
                hooks.deliver(&subscription_id, &notification).await;
            }
            // Queued before the subscription stopped taking events.
            Some(status) => hooks.record_attempt(
                &subscription_id,
                &notification,
                &hooks
                    .target_of(&subscription_id)
                    .map(|t| t.url.to_string())
                    .unwrap_or_default(),
                0,
                Err(format!("the subscription is {}", status.as_str())),
                Outcome::Dropped,
            ),
        }
    }
}

impl Hooks {
    fn record_attempt(
        &self,
        subscription_id: &str,
        notification: &Notification,
        url: &str,
        attempt: u32,
        answer: Result<u16, String>,
        outcome: Outcome,
    ) {
        let (status, error) = match answer {
            Ok(status) => (Some(status), None),
            Err(error) => (None, Some(error)),
        };
        self.record(DeliveryRecord {
            subscription_id: subscription_id.to_owned(),
            event_id: notification.event.id.clone(),
            event_type: notification.event.event.event_type.to_owned(),
            url: url.to_owned(),
            attempt,
            status,
            error,
            outcome,
            time: iso(now_ms()),
        });
    }

    async fn post(&self, target: &WebHookTarget, body: &str) -> Result<u16, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let mut request = client
            .post(target.url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(body.to_owned());
        for (name, value) in &target.headers {
            request = request.header(name, value);
        }
        if let Some((user, password)) = &target.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        match request.send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(error) => Err(describe(&error)),
        }
    }

    /// Send one notification until it is delivered or the subscription gives up on it. The
    /// subscription is read afresh before every attempt: a PUT may change its URL, and a user
    /// may disable or delete it meanwhile (then the notification is abandoned).
    async fn deliver(&self, subscription_id: &str, notification: &Notification) {
        let event = &notification.event;
        let body = event
            .event
            .envelope(
                &event.id,
                &event.created_date,
                &event.resource_containers,
                subscription_id,
                notification.notification_id,
            )
            .to_string();
        let mut attempt = 0;
        let mut retry_delays = self.settings.retry_delays.iter();
        loop {
            let Some(target) = self.target_of(subscription_id) else {
                return;
            };
            attempt += 1;
            let answer = self.post(&target, &body).await;
            let url = target.url.as_str();
            match verdict(&answer) {
                Verdict::Delivered => {
                    self.record_attempt(
                        subscription_id,
                        notification,
                        url,
                        attempt,
                        answer,
                        Outcome::Delivered,
                    );
                    return;
                }
                Verdict::Gone => {
                    self.update(subscription_id, |s| {
                        s.status = SubscriptionStatus::DisabledBySystem;
                    });
                    self.record_attempt(
                        subscription_id,
                        notification,
                        url,
                        attempt,
                        answer,
                        Outcome::DisabledBySystem,
                    );
                    return;
                }
                Verdict::Transient => {
                    if let Some(delay) = retry_delays.next() {
                        self.record_attempt(
                            subscription_id,
                            notification,
                            url,
                            attempt,
                            answer,
                            Outcome::Retrying,
                        );
                        tokio::time::sleep(*delay).await;
                        if self.status_of(subscription_id) != Some(SubscriptionStatus::Enabled) {
                            return;
                        }
                        continue;
                    }
                }
                Verdict::Enduring => {}
            }
            // Enduring, or transient with no retry left: probation (or, with no probation
            // retries configured, straight to disabled).
            let outcome = if self.settings.probation_delays.is_empty() {
                SubscriptionStatus::DisabledBySystem
            } else {
                SubscriptionStatus::OnProbation
            };
            self.update(subscription_id, |s| {
                s.status = outcome;
                s.probation_retries = 0;
            });
            let recorded = match outcome {
                SubscriptionStatus::OnProbation => Outcome::OnProbation,
                _ => Outcome::DisabledBySystem,
            };
            self.record_attempt(
                subscription_id,
                notification,
                url,
                attempt,
                answer,
                recorded,
            );
            break;
        }
        self.probation(subscription_id, notification, &body, attempt)
            .await;
    }

    /// Retry the failed notification on the probation schedule while the subscription stays
    /// on probation.
    async fn probation(
        &self,
        subscription_id: &str,
        notification: &Notification,
        body: &str,
        mut attempt: u32,
    ) {
        let retries = self.settings.probation_delays.len();
        for (index, delay) in self.settings.probation_delays.iter().enumerate() {
            tokio::time::sleep(*delay).await;
            if self.status_of(subscription_id) != Some(SubscriptionStatus::OnProbation) {
                return;
            }
            let Some(target) = self.target_of(subscription_id) else {
                return;
            };
            attempt += 1;
            let answer = self.post(&target, body).await;
            let last = index + 1 == retries;
            let (status, outcome) = match verdict(&answer) {
                Verdict::Delivered => (SubscriptionStatus::Enabled, Outcome::Delivered),
                Verdict::Gone => (
                    SubscriptionStatus::DisabledBySystem,
                    Outcome::DisabledBySystem,
                ),
                _ if last => (
                    SubscriptionStatus::DisabledBySystem,
                    Outcome::DisabledBySystem,
                ),
                _ => (SubscriptionStatus::OnProbation, Outcome::OnProbation),
            };
            let retried_at = iso(now_ms());
            self.update(subscription_id, |s| {
                s.status = status;
                s.probation_retries = if status == SubscriptionStatus::OnProbation {
                    (index + 1) as u32
                } else {
                    0
                };
                s.last_probation_retry_date = Some(retried_at);
            });
            self.record_attempt(
                subscription_id,
                notification,
                target.url.as_str(),
                attempt,
                answer,
                outcome,
            );
            if status != SubscriptionStatus::OnProbation {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_judged_as_ado_judges_them() {
        for status in [200, 201, 204] {
            assert_eq!(verdict(&Ok(status)), Verdict::Delivered);
        }
        for status in [408, 502, 503, 504] {
            assert_eq!(verdict(&Ok(status)), Verdict::Transient);
        }
        assert_eq!(
            verdict(&Err("connection refused".into())),
            Verdict::Transient
        );
        assert_eq!(verdict(&Ok(410)), Verdict::Gone);
        for status in [301, 400, 401, 403, 404, 429, 500, 501] {
            assert_eq!(verdict(&Ok(status)), Verdict::Enduring, "{status}");
        }
    }
}
