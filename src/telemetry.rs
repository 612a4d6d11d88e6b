//! Prometheus metrics shared by the HTTP server, the webhook receiver and the workers.
//!
//! One registry per process; `/metrics` renders it in the OpenMetrics text format. Queue
//! depth and lag are read from the store when scraped, so every replica reports the shared
//! queue's state rather than only its own work.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route template (`/api/v1/findings`), never the raw path: bounded cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub tenant: String,
    /// stored, duplicate, malformed, unknown_type, unauthorized, unavailable, too_large
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    /// done, retry, dead
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub webhook_events: Family<WebhookLabels, Counter>,
    pub webhook_ack_seconds: Histogram,
    pub webhook_batch_size: Histogram,
    pub jobs: Family<JobLabels, Counter>,
    pub job_seconds: Family<RouteLabels, Histogram>,
    pub queue_depth: Family<StatusLabels, Gauge>,
    pub queue_lag_seconds: Gauge<f64, AtomicU64>,
    pub syncs: Family<StatusLabels, Counter>,
    pub sync_seconds: Histogram,
    pub evaluations: Family<StatusLabels, Counter>,
    pub evaluation_seconds: Histogram,
    /// Audit records a SIEM sink has yet to deliver, per sink and tenant.
    pub siem_lag: Family<SinkLabels, Gauge>,
    pub siem_delivered: Family<SinkLabels, Counter>,
    pub siem_failures: Family<SinkLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
    pub tenant: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~65 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tollgate");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            http_duration.clone(),
        );
        let webhook_events = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_events",
            "Service-hook deliveries by outcome",
            webhook_events.clone(),
        );
        let webhook_ack_seconds = latency_histogram();
        registry.register(
            "webhook_ack_seconds",
            "Time from receiving a service-hook delivery to acknowledging it (durably stored)",
            webhook_ack_seconds.clone(),
        );
        let webhook_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "webhook_commit_batch_size",
            "Events committed together in one durable transaction",
            webhook_batch_size.clone(),
        );
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register("jobs", "Jobs processed by outcome", jobs.clone());
        let job_seconds =
            Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "job_duration_seconds",
            "Time to run one job attempt, by kind (label route holds the kind)",
            job_seconds.clone(),
        );
        let queue_depth = Family::<StatusLabels, Gauge>::default();
        registry.register(
            "queue_jobs",
            "Jobs in the durable queue by status",
            queue_depth.clone(),
        );
        let siem_lag = Family::<SinkLabels, Gauge>::default();
        registry.register(
            "siem_lag_records",
            "Audit records a SIEM sink has not delivered yet",
            siem_lag.clone(),
        );
        let siem_delivered = Family::<SinkLabels, Counter>::default();
        registry.register(
            "siem_delivered_records",
            "Audit records delivered to a SIEM sink",
            siem_delivered.clone(),
        );
        let siem_failures = Family::<SinkLabels, Counter>::default();
        registry.register(
            "siem_delivery_failures",
            "Failed delivery attempts to a SIEM sink (retried with backoff)",
            siem_failures.clone(),
        );
        let queue_lag_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "queue_lag_seconds",
            "Age of the oldest queued job",
            queue_lag_seconds.clone(),
        );
        let syncs = Family::<StatusLabels, Counter>::default();
        registry.register("syncs", "Inventory syncs by status", syncs.clone());
        let sync_seconds = latency_histogram();
        registry.register(
            "sync_duration_seconds",
            "Inventory sync duration",
            sync_seconds.clone(),
        );
        let evaluations = Family::<StatusLabels, Counter>::default();
        registry.register(
            "evaluations",
            "Policy evaluations by mode (all, changed)",
            evaluations.clone(),
        );
        let evaluation_seconds = latency_histogram();
        registry.register(
            "evaluation_duration_seconds",
            "Policy evaluation duration",
            evaluation_seconds.clone(),
        );
        Self {
            registry,
            http_requests,
            http_duration,
            webhook_events,
            webhook_ack_seconds,
            webhook_batch_size,
            jobs,
            job_seconds,
            queue_depth,
            queue_lag_seconds,
            syncs,
            sync_seconds,
            evaluations,
            evaluation_seconds,
            siem_lag,
            siem_delivered,
            siem_failures,
        }
    }

    pub fn webhook(&self, tenant: &str, outcome: &str) {
        self.webhook_events
            .get_or_create(&WebhookLabels {
                tenant: tenant.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn job(&self, kind: &str, outcome: &str, seconds: f64) {
        self.jobs
            .get_or_create(&JobLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.job_seconds
            .get_or_create(&RouteLabels {
                route: kind.to_owned(),
            })
            .observe(seconds);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
