//! Service hooks as ADO runs them: a Subscriptions API, and Web Hooks deliveries of the events
//! the organisation's changes raise, asynchronous and in order per subscription, with ADO's
//! retry, probation and disable rules (see [`HookDelivery`]). Every attempt is recorded for
//! `GET /_sim/deliveries`.

pub(crate) mod api;
mod delivery;
pub(crate) mod events;
pub(crate) mod subscription;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::model::iso;
use crate::rng::SplitMix64;
use crate::server::now_ms;

pub use events::{Envelope, HookEvent, Message};
pub use subscription::SubscriptionStatus;
use subscription::{Accepted, Subscription};

/// How the simulator retries Web Hooks deliveries. ADO's schedule (see [`HookDelivery::ado`])
/// takes minutes and then hours; the default is ADO's shape made short, so tests are fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookDelivery {
    /// The waits before each retry of a transient failure (408, 502, 503, 504, a connection
    /// error or timeout); as many retries as waits. When they run out the failure counts as
    /// enduring. Default: 100, 200, 400, 800 ms.
    pub retry_delays: Vec<Duration>,
    /// The waits before each probation retry of the notification that failed for good; as many
    /// retries as waits. A success restores the subscription; when they run out it is
    /// `disabledBySystem`. Default: 1, 2, 4, 8, 16, 32, 60 s (ADO's seven, made short).
    pub probation_delays: Vec<Duration>,
    /// How long one POST may take before it counts as a connection failure. ADO does not
    /// publish its own. Default: 10 s.
    pub timeout: Duration,
}

impl Default for HookDelivery {
    fn default() -> Self {
        Self {
            retry_delays: [100, 200, 400, 800].map(Duration::from_millis).to_vec(),
            probation_delays: [1, 2, 4, 8, 16, 32, 60].map(Duration::from_secs).to_vec(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl HookDelivery {
    /// ADO's published schedule ("Troubleshoot service hooks"): 8 transient retries over about
    /// 3 minutes, then 7 probation retries over about 36 hours.
    pub fn ado() -> Self {
        Self {
            retry_delays: [1, 2, 4, 8, 16, 32, 60, 60]
                .map(Duration::from_secs)
                .to_vec(),
            probation_delays: [20, 40, 80, 160, 320, 640, 900]
                .map(|minutes| Duration::from_secs(minutes * 60))
                .to_vec(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// What came of one delivery attempt (or of an event a subscription did not get).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// A transient failure; the same notification is sent again after a wait.
    Retrying,
    /// An enduring failure: the subscription is (still) on probation.
    OnProbation,
    /// 410 Gone, or the last probation retry failed.
    DisabledBySystem,
    /// Not sent: the subscription was on probation or disabled when the event came
    /// (`attempt` 0, no status).
    Dropped,
}

/// One line of `GET /_sim/deliveries`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub url: String,
    /// 1 for the first POST of a notification, counting on through retries and probation
    /// retries; 0 for a dropped event.
    pub attempt: u32,
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why there was no status (connection refused, timeout), or why the event was dropped.
    pub error: Option<String>,
    pub outcome: Outcome,
    pub time: String,
}

/// Why an event raised while its subscription is on probation is not sent.
const LOST_ON_PROBATION: &str = "the subscription is on probation: new events are lost";

/// The newest records kept; older ones are forgotten so a long-running simulator stays small.
const RECORDS_KEPT: usize = 10_000;

/// An event with the identity ADO gives it when it is raised: one id for every subscriber and
/// every retry.
pub(crate) struct PublishedEvent {
    pub id: String,
    pub created_date: String,
    pub resource_containers: Value,
    pub event: HookEvent,
}

/// One event addressed to one subscription.
pub(crate) struct Notification {
    pub event: Arc<PublishedEvent>,
    pub notification_id: u64,
}

struct Entry {
    subscription: Subscription,
    queue: mpsc::UnboundedSender<Notification>,
    worker: AbortHandle,
}

pub(crate) struct Hooks {
    organization: String,
    settings: HookDelivery,
    client: Result<reqwest::Client, String>,
    subscriptions: Mutex<BTreeMap<String, Entry>>,
    records: Mutex<VecDeque<DeliveryRecord>>,
    ids: Mutex<SplitMix64>,
    notifications: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A GUID that is the same for the same text: the organisation's collection and account ids.
fn stable_guid(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    SplitMix64::new(hash).guid()
}

impl Hooks {
    pub(crate) fn new(organization: &str, settings: HookDelivery) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            // ADO judges the status it gets; a redirect is not a success.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("VSServices/16.255 (tollgate-sim)")
            .build()
            .map_err(|error| format!("no HTTP client: {error}"));
        // Event and subscription ids must differ between runs, or a receiver that remembers
        // event ids would take a restarted simulator's events for redeliveries.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (std::process::id() as u64).rotate_left(32);
        Self {
            organization: organization.to_owned(),
            settings,
            client,
            subscriptions: Mutex::new(BTreeMap::new()),
            records: Mutex::new(VecDeque::new()),
            ids: Mutex::new(SplitMix64::new(seed)),
            notifications: AtomicU64::new(0),
        }
    }

    pub(crate) fn organization_url(&self) -> String {
        format!("https://dev.azure.com/{}", self.organization)
    }

    pub(crate) fn fresh_guid(&self) -> String {
        lock(&self.ids).guid()
    }

    /// The organisation's `hostId` (its collection id), as subscriptions record it.
    pub(crate) fn host_id(&self) -> String {
        stable_guid(&format!("collection:{}", self.organization))
    }

    fn resource_containers(&self, project_id: &str) -> Value {
        let base_url = format!("{}/", self.organization_url());
        json!({
            "collection": {"id": self.host_id(), "baseUrl": base_url},
            "account": {"id": stable_guid(&format!("account:{}", self.organization)), "baseUrl": base_url},
            "project": {"id": project_id, "baseUrl": base_url},
        })
    }

    /// Give each event its id and address it to every subscription that wants it. Returns the
    /// `(id, eventType)` of each event. Subscriptions on probation lose the event, as in ADO.
    pub(crate) fn publish(&self, events: Vec<HookEvent>) -> Vec<(String, &'static str)> {
        let mut published = Vec::with_capacity(events.len());
        for event in events {
            let event = Arc::new(PublishedEvent {
                id: self.fresh_guid(),
                created_date: iso(now_ms()),
                resource_containers: self.resource_containers(&event.project_id),
                event,
            });
            published.push((event.id.clone(), event.event.event_type));
            let subscriptions = lock(&self.subscriptions);
            for (id, entry) in subscriptions.iter() {
                let subscription = &entry.subscription;
                if !subscription.wants(&event.event) {
                    continue;
                }
                match subscription.status {
                    SubscriptionStatus::Enabled => {
                        let notification_id =
                            self.notifications.fetch_add(1, Ordering::Relaxed) + 1;
                        let notification = Notification {
                            event: event.clone(),
                            notification_id,
                        };
                        // A closed queue means the worker is gone with its subscription.
                        let _ = entry.queue.send(notification);
                    }
                    SubscriptionStatus::OnProbation => self.record(DeliveryRecord {
                        subscription_id: id.clone(),
                        event_id: event.id.clone(),
                        event_type: event.event.event_type.to_owned(),
                        url: subscription
                            .target
                            .as_ref()
                            .map(|t| t.url.to_string())
                            .unwrap_or_default(),
                        attempt: 0,
                        status: None,
                        error: Some(LOST_ON_PROBATION.to_owned()),
                        outcome: Outcome::Dropped,
                        time: iso(now_ms()),
                    }),
                    _ => {}
                }
            }
        }
        published
    }

    fn record(&self, record: DeliveryRecord) {
        let mut records = lock(&self.records);
        if records.len() >= RECORDS_KEPT {
            records.pop_front();
        }
        records.push_back(record);
    }

    pub(crate) fn records(&self) -> Vec<DeliveryRecord> {
        lock(&self.records).iter().cloned().collect()
    }

    pub(crate) fn clear_records(&self) {
        lock(&self.records).clear();
    }

    pub(crate) fn list(&self) -> Vec<Subscription> {
        lock(&self.subscriptions)
            .values()
            .map(|e| e.subscription.clone())
            .collect()
    }

    pub(crate) fn get(&self, id: &str) -> Option<Subscription> {
        lock(&self.subscriptions)
            .get(&id.to_ascii_lowercase())
            .map(|e| e.subscription.clone())
    }

    /// Create a subscription and the worker that delivers to it.
    pub(crate) fn create(self: &Arc<Self>, accepted: Accepted, created_by: &str) -> Subscription {
        let id = self.fresh_guid();
        let now = iso(now_ms());
        let mut subscription = Subscription {
            id: id.clone(),
            publisher_id: String::new(),
            event_type: String::new(),
            resource_version: None,
            consumer_id: String::new(),
            consumer_action_id: String::new(),
            publisher_inputs: BTreeMap::from([
                ("hostId".to_owned(), self.host_id()),
                ("tfsSubscriptionId".to_owned(), self.fresh_guid()),
            ]),
            consumer_inputs: BTreeMap::new(),
            status: SubscriptionStatus::Enabled,
            probation_retries: 0,
            last_probation_retry_date: None,
            created_by: created_by.to_owned(),
            created_date: now.clone(),
            modified_date: now,
            target: None,
        };
        subscription.apply(accepted);
        let (queue, receiver) = mpsc::unbounded_channel();
        let worker = tokio::spawn(delivery::run(self.clone(), id.clone(), receiver));
        lock(&self.subscriptions).insert(
            id,
            Entry {
                subscription: subscription.clone(),
                queue,
                worker: worker.abort_handle(),
            },
        );
        subscription
    }

    /// Replace a subscription's settings (PUT). `None` when there is no such subscription.
    pub(crate) fn replace(&self, id: &str, accepted: Accepted) -> Option<Subscription> {
        let mut subscriptions = lock(&self.subscriptions);
        let entry = subscriptions.get_mut(&id.to_ascii_lowercase())?;
        entry.subscription.apply(accepted);
        entry.subscription.modified_date = iso(now_ms());
        Some(entry.subscription.clone())
    }

    /// Delete a subscription; its queued notifications go with it.
    pub(crate) fn delete(&self, id: &str) -> bool {
        match lock(&self.subscriptions).remove(&id.to_ascii_lowercase()) {
            Some(entry) => {
                entry.worker.abort();
                true
            }
            None => false,
        }
    }

    /// Stop every delivery worker (the simulator is going away).
    pub(crate) fn shutdown(&self) {
        for entry in lock(&self.subscriptions).values() {
            entry.worker.abort();
        }
    }

    fn status_of(&self, id: &str) -> Option<SubscriptionStatus> {
        lock(&self.subscriptions)
            .get(id)
            .map(|e| e.subscription.status)
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Subscription)) {
        if let Some(entry) = lock(&self.subscriptions).get_mut(id) {
            change(&mut entry.subscription);
        }
    }

    fn target_of(&self, id: &str) -> Option<subscription::WebHookTarget> {
        lock(&self.subscriptions)
            .get(id)
            .and_then(|e| e.subscription.target.clone())
    }
}
