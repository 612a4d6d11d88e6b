//! The gate's group commit: decisions judged at the same time are stored together.
//!
//! Every decision is stored durably with its audit records before the check is answered. One
//! transaction per decision makes the database's commit (an fsync on SQLite, the audit log's
//! per-tenant lock on PostgreSQL) the gate's ceiling: a burst of checks queues behind it one by
//! one. Instead, a single writer task per tenant takes every decision that is waiting, stores
//! them in one transaction and then answers each caller. Under light load a batch is one
//! decision and nothing waits; under a burst the batches grow with the queue.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};
use tollgate_domain::TenantId;
use tollgate_store::gate::{DecisionWrite, GateStore, RecordedDecision, Stored};
use tollgate_store::{AuditDraft, StoreError};

/// At most this many decisions in one transaction (each holds its input and findings, a few
/// kilobytes; a larger batch would only make its callers wait for each other longer).
const MAX_BATCH: usize = 256;

/// A group commit at least this long is logged as a warning: each of its checks waited for it.
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Decisions waiting for the writer at most; past that, callers wait to queue (back-pressure
/// rather than unbounded memory).
const QUEUE: usize = 4_096;

struct Pending {
    write: DecisionWrite,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// A stored decision, and what is left of its write: dropped by the caller's task rather than
/// by the writer (the audit records hold the rules' whole input; freeing them is work the one
/// writer need not do).
struct Written {
    recorded: RecordedDecision,
    _leftover: Vec<AuditDraft>,
}

fn written(write: DecisionWrite, stored: Stored) -> Written {
    Written {
        recorded: stored.recorded(write.new.decision),
        _leftover: write.audit,
    }
}

/// Stores a tenant's decisions in batches. The writer task starts with the first decision
/// (so building a tenant's services needs no runtime), starts again if it ever ended (a panic
/// in the store, the runtime that ran it shut down), and ends when the service is dropped.
pub struct DecisionWriter {
    store: Arc<dyn GateStore>,
    tenant: TenantId,
    queue: Mutex<Option<mpsc::Sender<Pending>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the decision writer stopped before storing the decision")]
    Stopped,
}

impl DecisionWriter {
    pub fn new(store: Arc<dyn GateStore>, tenant: TenantId) -> Self {
        Self {
            store,
            tenant,
            queue: Mutex::new(None),
        }
    }

    /// The running writer's queue, starting a writer if there is none or it ended.
    fn queue(&self) -> mpsc::Sender<Pending> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        match &*queue {
            Some(sender) if !sender.is_closed() => sender.clone(),
            _ => {
                let (sender, receiver) = mpsc::channel(QUEUE);
                tokio::spawn(write_batches(
                    self.store.clone(),
                    self.tenant.clone(),
                    receiver,
                ));
                *queue = Some(sender.clone());
                sender
            }
        }
    }

    /// Store one decision (in a batch with whatever else is waiting) and return what storing
    /// it did, once it is committed.
    pub async fn record(&self, write: DecisionWrite) -> Result<RecordedDecision, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.queue()
            .send(Pending { write, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        let written = answer.await.map_err(|_| WriteError::Stopped)??;
        Ok(written.recorded)
    }
}

async fn write_batches(
    store: Arc<dyn GateStore>,
    tenant: TenantId,
    mut receiver: mpsc::Receiver<Pending>,
) {
    let mut waiting = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut waiting, MAX_BATCH).await > 0 {
        let (writes, replies): (Vec<DecisionWrite>, Vec<_>) = waiting
            .drain(..)
            .map(|pending| (pending.write, pending.reply))
            .unzip();
        let started = std::time::Instant::now();
        let result = store.record_decisions(&tenant, &writes).await;
        let took = started.elapsed();
        // Every check of the batch waited this long for its answer: say so when it is long
        // (a slow disk, a database under other load), and always at debug for diagnosis.
        if took >= SLOW_COMMIT {
            tracing::warn!(%tenant, batch = writes.len(), took_ms = took.as_millis(),
                "a group commit of gate decisions was slow");
        } else {
            tracing::debug!(%tenant, batch = writes.len(), took_us = took.as_micros(),
                "gate decisions committed");
        }
        match result {
            Ok(stored) => {
                for ((write, reply), stored) in writes.into_iter().zip(replies).zip(stored) {
                    // A caller that gave up (its request was dropped) needs no answer; its
                    // decision is stored all the same, as the check's retry will find.
                    let _ = reply.send(Ok(written(write, stored)));
                }
            }
            // One bad decision (say, an audit record too large) must not fail the others that
            // happened to share its transaction: each is tried alone and gets its own answer.
            // Only a decision can be at fault that way; a database that is down or busy fails
            // every retry as well, so the batch fails at once instead of 256 times in a row.
            Err(error @ StoreError::InvalidInput(_)) if writes.len() > 1 => {
                tracing::warn!(%tenant, batch = writes.len(), %error,
                    "storing a batch of gate decisions failed; storing them one by one");
                for (write, reply) in writes.into_iter().zip(replies) {
                    let alone = match store
                        .record_decisions(&tenant, std::slice::from_ref(&write))
                        .await
                    {
                        Ok(mut stored) => match stored.pop() {
                            Some(stored) => Ok(written(write, stored)),
                            None => Err(StoreError::Corrupt(
                                "a batch of one recorded nothing".to_owned(),
                            )),
                        },
                        Err(error) => Err(error),
                    };
                    let _ = reply.send(alone);
                }
            }
            Err(error) => {
                let message = error.to_string();
                let mut replies = replies.into_iter();
                if let Some(reply) = replies.next() {
                    let _ = reply.send(Err(error));
                }
                // The error is not `Clone`; the others get its words.
                for reply in replies {
                    let _ = reply.send(Err(StoreError::BatchFailed(message.clone())));
                }
            }
        }
    }
}
