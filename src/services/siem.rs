//! Streaming the audit log to SIEMs: each sink has a persisted cursor per tenant (the next
//! record it has not delivered) and one for checkpoints, delivers in batches at least once
//! (a record is re-sent if the cursor could not be saved after a delivery; SIEMs dedupe by
//! the record id), retries with exponential backoff, and runs on its own task so a slow or
//! failing sink never holds up the API or the workers. Its lag is a metric.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use time::OffsetDateTime;
use tollgate_domain::TenantId;
use tollgate_store::{AuditStore, JobStore, LeafFilter};

use crate::services::audit::hex;
use crate::telemetry::{Metrics, SinkLabels};

/// What a sink delivers.
#[derive(Clone, Debug)]
pub enum SinkItem {
    Record {
        /// The record as logged (its exact canonical bytes are `canonical`).
        record: Value,
        canonical: String,
        leaf_hash: String,
    },
    Checkpoint {
        origin: String,
        size: u64,
        root: String,
        note: String,
    },
}

/// A destination for audit records. Delivering a batch either succeeds as a whole or is
/// retried as a whole.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    fn name(&self) -> &str;
    async fn send(&self, items: &[SinkItem]) -> Result<()>;
}

/// Records per delivery.
const BATCH: u32 = 500;

/// How long a replica's hold on a tenant's export to a sink lasts without renewal: longer than
/// one batch can take (the HTTP sinks give up after 30 s), renewed before every batch. It is
/// also the pause before another replica (or this one restarted after a crash) takes over.
const EXPORT_LEASE: Duration = Duration::from_secs(45);

pub struct SiemExporter {
    pub store: Arc<dyn AuditStore>,
    /// Leases: one replica at a time delivers a tenant's records to a sink, so replicas do
    /// not send the same records twice.
    pub leases: Arc<dyn JobStore>,
    /// This replica's name in those leases.
    pub replica: String,
    pub sinks: Vec<Arc<dyn Sink>>,
    /// Read each round: tenants created through the API are exported too.
    pub tenants: Arc<crate::services::tenant::Tenants>,
    pub origin_prefix: String,
    pub metrics: Arc<Metrics>,
    pub poll: Duration,
}

impl SiemExporter {
    /// One task per sink, until shutdown (a last round is delivered first).
    pub async fn run(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let tasks: Vec<_> = self
            .sinks
            .iter()
            .cloned()
            .map(|sink| tokio::spawn(self.clone().run_sink(sink, shutdown.clone())))
            .collect();
        let _ = futures_util::future::join_all(tasks).await;
    }

    async fn run_sink(
        self: Arc<Self>,
        sink: Arc<dyn Sink>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut backoff = self.poll;
        loop {
            let mut failed = false;
            for tenant in &self.tenants.ids() {
                // Held while this replica keeps delivering (renewed every round and batch);
                // another replica takes over when it lapses.
                match self
                    .hold_export(sink.as_ref(), tenant, self.export_lease())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(error) => {
                        tracing::warn!(sink = sink.name(), %tenant, %error, "the export lease could not be claimed; skipping this round");
                        continue;
                    }
                }
                let labels = SinkLabels {
                    sink: sink.name().to_owned(),
                    tenant: tenant.to_string(),
                };
                match self.deliver(sink.as_ref(), tenant, &labels).await {
                    Ok(_) => {}
                    Err(error) => {
                        failed = true;
                        self.metrics.siem_failures.get_or_create(&labels).inc();
                        tracing::warn!(sink = sink.name(), %tenant, error = %format!("{error:#}"), "SIEM delivery failed; retrying with backoff");
                    }
                }
            }
            backoff = if failed {
                (backoff * 2).min(Duration::from_secs(60))
            } else {
                self.poll
            };
            let stopping = tokio::select! {
                () = tokio::time::sleep(backoff) => false,
                _ = shutdown.changed() => *shutdown.borrow(),
            };
            if stopping {
                // Hand the leases on at once.
                for tenant in &self.tenants.ids() {
                    let _ = self
                        .hold_export(sink.as_ref(), tenant, Duration::ZERO)
                        .await;
                }
                return;
            }
        }
    }

    /// Take or renew this replica's lease on a tenant's export to `sink` for `lease` (zero hands
    /// a lease it holds on at once: a lease of no time has expired already).
    async fn hold_export(
        &self,
        sink: &dyn Sink,
        tenant: &TenantId,
        lease: Duration,
    ) -> Result<bool> {
        Ok(self
            .leases
            .claim_lease(
                tenant,
                &format!("export:{}", sink.name()),
                &self.replica,
                OffsetDateTime::now_utc(),
                lease,
            )
            .await?)
    }

    /// How long a hold lasts: longer than a batch can take, and than a few polls.
    fn export_lease(&self) -> Duration {
        EXPORT_LEASE.max(self.poll * 3)
    }

    /// Deliver everything pending for one tenant; returns how many records went. The export
    /// lease is renewed before each batch; if another replica holds it by then, this one stops.
    pub async fn deliver(
        &self,
        sink: &dyn Sink,
        tenant: &TenantId,
        labels: &SinkLabels,
    ) -> Result<u64> {
        let mut delivered = 0;
        loop {
            if delivered > 0 && !self.hold_export(sink, tenant, self.export_lease()).await? {
                break;
            }
            let next = self.store.sink_cursor(tenant, sink.name()).await?;
            let size = self.store.audit_size(tenant).await?;
            self.metrics
                .siem_lag
                .get_or_create(labels)
                .set(i64::try_from(size.saturating_sub(next)).unwrap_or(i64::MAX));
            if next >= size {
                break;
            }
            let leaves = self
                .store
                .audit_leaves(
                    tenant,
                    &LeafFilter {
                        from: next,
                        limit: BATCH,
                        ..LeafFilter::default()
                    },
                )
                .await?;
            let Some(last) = leaves.last().map(|leaf| leaf.seq) else {
                break;
            };
            let items: Vec<SinkItem> = leaves
                .iter()
                .filter_map(|leaf| {
                    // Withheld payloads are past retention: nothing to deliver.
                    let bytes = leaf.bytes.as_ref()?;
                    Some(SinkItem::Record {
                        record: serde_json::from_slice(bytes).ok()?,
                        canonical: String::from_utf8(bytes.clone()).ok()?,
                        leaf_hash: hex(&leaf.hash),
                    })
                })
                .collect();
            if !items.is_empty() {
                sink.send(&items).await.context("delivering records")?;
            }
            self.store
                .set_sink_cursor(tenant, sink.name(), last + 1)
                .await
                .context("saving the sink's cursor")?;
            self.metrics
                .siem_delivered
                .get_or_create(labels)
                .inc_by(items.len() as u64);
            delivered += items.len() as u64;
        }
        self.deliver_checkpoints(sink, tenant).await?;
        Ok(delivered)
    }

    /// Checkpoints go to the SIEM too: the external copies the verifier checks against.
    async fn deliver_checkpoints(&self, sink: &dyn Sink, tenant: &TenantId) -> Result<()> {
        let cursor_name = format!("{}#checkpoints", sink.name());
        let after_micros = self.store.sink_cursor(tenant, &cursor_name).await?;
        let after = (after_micros > 0)
            .then(|| {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(after_micros) * 1_000).ok()
            })
            .flatten();
        let checkpoints = self.store.checkpoints(tenant, after, 100).await?;
        let Some(last) = checkpoints.last() else {
            return Ok(());
        };
        let origin = format!("{}/{tenant}", self.origin_prefix);
        let items: Vec<SinkItem> = checkpoints
            .iter()
            .map(|checkpoint| SinkItem::Checkpoint {
                origin: origin.clone(),
                size: checkpoint.size,
                root: hex(&checkpoint.root),
                note: checkpoint.note.clone(),
            })
            .collect();
        sink.send(&items).await.context("delivering checkpoints")?;
        let micros = u64::try_from(last.signed_at.unix_timestamp_nanos() / 1_000).unwrap_or(0);
        self.store
            .set_sink_cursor(tenant, &cursor_name, micros)
            .await?;
        Ok(())
    }
}
