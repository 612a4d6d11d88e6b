//! The audit log as the application uses it: the leaf encoder the store calls while it
//! appends, checkpoints (signed when records arrived, at least hourly as a heartbeat, never
//! inconsistent with the previous one), export bundles, and proofs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use tollgate_audit::bundle::BundleWriter;
use tollgate_audit::checkpoint::Checkpoint;
use tollgate_audit::keys::LogKeys;
use tollgate_audit::merkle::{self, Frontier, Hash};
use tollgate_audit::note;
use tollgate_audit::record::{self, Placement};
use tollgate_domain::TenantId;
use tollgate_store::{
    AuditDraft, AuditStore, EncodedLeaf, LeafEncoder, LeafFilter, StoredCheckpoint, StoredLeaf,
};

use crate::services::audit_events::{Actor, AuditEvent, Record};

/// One log per tenant, named `{prefix}/{tenant}`.
pub fn origin(prefix: &str, tenant: &TenantId) -> String {
    format!("{prefix}/{tenant}")
}

/// Makes drafts v1 records: canonical bytes, leaf hash, a UUIDv7 id.
pub struct RecordEncoder {
    origin_prefix: String,
}

impl RecordEncoder {
    pub fn new(origin_prefix: &str) -> Self {
        Self {
            origin_prefix: origin_prefix.to_owned(),
        }
    }
}

impl LeafEncoder for RecordEncoder {
    fn encode(
        &self,
        tenant: &TenantId,
        draft: &AuditDraft,
        seq: u64,
        logged: OffsetDateTime,
    ) -> Result<EncodedLeaf, String> {
        let origin = origin(&self.origin_prefix, tenant);
        let id = record::new_record_id(logged);
        let placement = Placement {
            origin: &origin,
            seq,
            id: &id,
            logged,
        };
        let leaf = record::build_leaf_with(&placement, draft.time, &draft.fields, &draft.encoded)
            .map_err(|error| error.to_string())?;
        Ok(EncodedLeaf {
            record_id: id,
            bytes: leaf.bytes,
            hash: leaf.hash,
        })
    }
}

/// An inclusion proof, as the CLI prints it and the API returns it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct InclusionProof {
    pub record_id: String,
    pub seq: u64,
    pub leaf_hash: String,
    pub tree_size: u64,
    pub root: String,
    /// Sibling hashes from the leaf up, hex.
    pub proof: Vec<String>,
    /// The signed checkpoint the proof leads to.
    pub checkpoint: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub old_root: String,
    pub new_root: String,
    pub proof: Vec<String>,
}

pub use tollgate_audit::to_hex as hex;

/// What `checkpoint` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointOutcome {
    Signed {
        size: u64,
    },
    /// Nothing new and the last checkpoint is fresh.
    Unchanged,
}

pub struct AuditService {
    store: Arc<dyn AuditStore>,
    keys: LogKeys,
    origin_prefix: String,
    heartbeat: Duration,
    /// Each tenant's tree as this process last signed it, so that the next checkpoint reads
    /// only the leaves appended since rather than the whole log (which grows without end:
    /// with every gate decision a record, re-reading it every few seconds cost more the
    /// longer a server ran).
    signed_trees: Mutex<HashMap<TenantId, SignedTree>>,
}

/// `frontier` extended by `hashes`, hashed on a blocking thread: 50,000 leaves every 5 s at
/// 10,000 gate decisions/s are ≈ 20 ms of hashing that would otherwise hold one of the
/// runtime's threads — the ones answering checks — for as long.
async fn extended_off_the_runtime(mut frontier: Frontier, hashes: Vec<Hash>) -> Result<Frontier> {
    tokio::task::spawn_blocking(move || {
        for hash in hashes {
            frontier.push(hash);
        }
        frontier
    })
    .await
    .context("extending the signed audit tree")
}

/// A tree this process signed: its right edge (enough to extend it) and how many
/// checkpoints have extended it since the whole log was last read and checked.
#[derive(Clone)]
struct SignedTree {
    /// The tree of the last checkpoint this process signed, or of that checkpoint and the
    /// leaves appended after it ([`AuditService::advance`]).
    frontier: Frontier,
    /// The checkpoint the frontier starts from (its size and root): the next checkpoint
    /// extends the frontier only if this is still the latest one stored.
    signed: (u64, Hash),
    extended: u32,
}

/// Every this many checkpoints the whole log is read again and checked against the last
/// signed one (as the first checkpoint after a start always is): extending a tree proves the
/// new leaves follow the old ones, but only a full read notices stored leaves that changed.
const FULL_CHECK_EVERY: u32 = 60;

impl AuditService {
    pub fn new(
        store: Arc<dyn AuditStore>,
        keys: LogKeys,
        origin_prefix: &str,
        heartbeat: Duration,
    ) -> Self {
        Self {
            store,
            keys,
            origin_prefix: origin_prefix.to_owned(),
            heartbeat,
            signed_trees: Mutex::default(),
        }
    }

    pub fn origin(&self, tenant: &TenantId) -> String {
        origin(&self.origin_prefix, tenant)
    }

    pub fn keys(&self) -> &LogKeys {
        &self.keys
    }

    /// Append records that go with no other change (denials, failures, exports).
    pub async fn record(&self, tenant: &TenantId, drafts: Vec<AuditDraft>) -> Result<()> {
        self.ensure_genesis(tenant).await?;
        self.store
            .append_audit(tenant, &drafts)
            .await
            .context("appending to the audit log")?;
        Ok(())
    }

    /// Leaf 0 names the log and its keys.
    pub async fn ensure_genesis(&self, tenant: &TenantId) -> Result<()> {
        if self.store.audit_size(tenant).await? > 0 {
            return Ok(());
        }
        let keys: Vec<String> = self
            .keys
            .verifiers()
            .iter()
            .map(|key| key.to_key_string())
            .collect();
        let genesis = Record::new(
            AuditEvent::Genesis,
            &Actor::system(),
            OffsetDateTime::now_utc(),
        )
        .detail("origin", json!(self.origin(tenant)))
        .detail("hash", json!("sha256"))
        .detail("schema", json!(record::SCHEMA))
        .detail("verifier_keys", json!(keys))
        // Two processes starting at once must not both write a genesis record.
        .dedupe_key("log.genesis")
        .draft();
        self.store
            .append_audit(tenant, &[genesis])
            .await
            .context("writing the audit log's genesis record")?;
        Ok(())
    }

    async fn leaf_hashes(&self, tenant: &TenantId, size: u64) -> Result<Vec<Hash>> {
        Ok(self.store.audit_leaf_hashes(tenant, 0, size).await?)
    }

    /// Sign a checkpoint of the tenant's log if records arrived since the last one, or if
    /// the last one is older than the heartbeat. Refuses to sign (and records an
    /// integrity alert) if the log no longer extends the last signed checkpoint.
    pub async fn checkpoint(&self, tenant: &TenantId) -> Result<CheckpointOutcome> {
        self.sign(tenant, false).await
    }

    /// [`AuditService::checkpoint`], reading and checking the whole log whatever this process
    /// signed before when `whole_log` (an export reads every leaf anyway).
    async fn sign(&self, tenant: &TenantId, whole_log: bool) -> Result<CheckpointOutcome> {
        let now = OffsetDateTime::now_utc();
        // The checkpoint first, then the size: another replica (an export, a proof) may sign
        // in between, and a checkpoint read after the size could be larger than the log as
        // this call saw it — a false integrity alert.
        let previous = self.store.latest_checkpoint(tenant).await?;
        let size = self.store.audit_size(tenant).await?;
        if let Some(previous) = &previous {
            let fresh = now - previous.signed_at < self.heartbeat;
            if previous.size == size && fresh {
                return Ok(CheckpointOutcome::Unchanged);
            }
        } else if size == 0 {
            return Ok(CheckpointOutcome::Unchanged);
        }
        let kept = self.kept_tree(tenant);
        let extended = match (kept, &previous) {
            (Some(tree), Some(previous))
                if !whole_log
                    && tree.extended + 1 < FULL_CHECK_EVERY
                    && tree.signed == (previous.size, previous.root)
                    && tree.frontier.size() <= size =>
            {
                let hashes = self
                    .store
                    .audit_leaf_hashes(tenant, tree.frontier.size(), size)
                    .await?;
                let frontier = extended_off_the_runtime(tree.frontier, hashes).await?;
                // The store reports a gap as an error; a count that still differs takes the
                // whole log's way, which says where the log breaks.
                (frontier.size() == size).then_some(SignedTree {
                    frontier,
                    signed: tree.signed,
                    extended: tree.extended + 1,
                })
            }
            _ => None,
        };
        let mut tree = match extended {
            Some(tree) => tree,
            None => {
                self.check_whole_log(tenant, size, previous.as_ref(), now)
                    .await?
            }
        };
        let root = tree.frontier.root();
        tree.signed = (size, root);
        let body = Checkpoint::new(&self.origin(tenant), size, root).body();
        let timestamp = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        let origin = self.origin(tenant);
        let log = self.keys.log.renamed(&origin)?;
        let clock = self.keys.clock.renamed(&format!("{origin}-clock"))?;
        let signed =
            note::sign(&body, &[&log, &clock], timestamp).context("signing the checkpoint")?;
        self.store
            .add_checkpoint(
                tenant,
                &StoredCheckpoint {
                    size,
                    root,
                    note: signed,
                    signed_at: now,
                },
            )
            .await?;
        self.signed_trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tenant.clone(), tree);
        Ok(CheckpointOutcome::Signed { size })
    }

    /// The tree this process signed last for `tenant` (advanced since, maybe), if any.
    fn kept_tree(&self, tenant: &TenantId) -> Option<SignedTree> {
        self.signed_trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .cloned()
    }

    /// Between checkpoints: extend the tree this process signed last by the leaves appended
    /// since, so that the next checkpoint has only the last few to read and hash. At 10,000
    /// gate decisions/s a checkpoint every 5 s otherwise reads and hashes 50,000 leaves at once,
    /// tens of milliseconds of CPU taken from the checks in one go. Nothing is signed or
    /// trusted here: signing still starts from the latest stored checkpoint (or the whole log).
    /// Returns how many leaves it read and hashed, so that the caller can come back sooner to
    /// a busy log and keep each pass short.
    pub async fn advance(&self, tenant: &TenantId) -> Result<u64> {
        let kept = self.kept_tree(tenant);
        let Some(tree) = kept else {
            return Ok(0);
        };
        let size = self.store.audit_size(tenant).await?;
        let from = tree.frontier.size();
        if size <= from {
            return Ok(0);
        }
        let hashes = self.store.audit_leaf_hashes(tenant, from, size).await?;
        let frontier = extended_off_the_runtime(tree.frontier, hashes).await?;
        let mut trees = self
            .signed_trees
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only if nothing signed or advanced the tree meanwhile (an export signs too).
        if let Some(current) = trees.get_mut(tenant)
            && current.signed == tree.signed
            && current.frontier.size() == from
            && frontier.size() == size
        {
            current.frontier = frontier;
        }
        Ok(size - from)
    }

    /// Read the whole log of `size` leaves and check that it extends the `previous`
    /// checkpoint; if it does not, record an integrity alert and refuse.
    async fn check_whole_log(
        &self,
        tenant: &TenantId,
        size: u64,
        previous: Option<&StoredCheckpoint>,
        now: OffsetDateTime,
    ) -> Result<SignedTree> {
        let hashes = self.leaf_hashes(tenant, size).await?;
        let previous_tree = previous.filter(|p| p.size > 0).map(|p| (p.size, p.root));
        // Hashing the whole log is long work: off the runtime's threads, which answer checks.
        let (frontier, consistent) = tokio::task::spawn_blocking(move || {
            // The tree's right edge, kept to extend it, gives its root as well.
            let mut frontier = Frontier::new();
            for hash in &hashes {
                frontier.push(*hash);
            }
            let root = frontier.root();
            let consistent = previous_tree.is_none_or(|(previous_size, previous_root)| {
                previous_size <= size
                    && merkle::consistency_proof(previous_size as usize, &hashes)
                        .ok()
                        .is_some_and(|proof| {
                            merkle::verify_consistency(
                                previous_size,
                                size,
                                &previous_root,
                                &root,
                                &proof,
                            )
                            .is_ok()
                        })
            });
            (frontier, consistent)
        })
        .await
        .context("checking the whole audit log")?;
        if let Some(previous) = previous.filter(|p| p.size > 0)
            && !consistent
        {
            let alert = Record::new(AuditEvent::IntegrityAlert, &Actor::system(), now)
                .failure()
                .reason(format!(
                    "the log of {size} leaves does not extend the checkpoint of {} leaves; not signing",
                    previous.size
                ))
                .draft();
            self.store.append_audit(tenant, &[alert]).await?;
            bail!(
                "audit log of {tenant}: the stored leaves do not extend the last signed checkpoint (size {}); refusing to sign",
                previous.size
            );
        }
        let root = frontier.root();
        Ok(SignedTree {
            frontier,
            signed: (size, root),
            extended: 0,
        })
    }

    /// Write the tenant's log as a bundle in `dir` (a fresh checkpoint first, so the bundle
    /// covers every record). Returns the number of leaves.
    pub async fn export(&self, tenant: &TenantId, dir: &Path, actor: &Actor) -> Result<u64> {
        self.ensure_genesis(tenant).await?;
        // A log that no longer extends its last checkpoint is exported as it is, under the
        // checkpoints it has: the verifier then says where it breaks.
        if let Err(error) = self.sign(tenant, true).await {
            tracing::warn!(%tenant, error = %format!("{error:#}"), "exporting without a fresh checkpoint");
        }
        let latest = self
            .store
            .latest_checkpoint(tenant)
            .await?
            .context("the audit log has no checkpoint")?;
        let mut writer = BundleWriter::create(dir, &self.origin(tenant))
            .with_context(|| format!("creating the bundle in {}", dir.display()))?;
        let mut from = 0;
        while from < latest.size {
            let page = self
                .store
                .audit_leaves(
                    tenant,
                    &LeafFilter {
                        from,
                        limit: 5_000,
                        ..LeafFilter::default()
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for leaf in page.iter().filter(|leaf| leaf.seq < latest.size) {
                writer
                    .leaf(leaf.bytes.as_deref(), &leaf.hash)
                    .context("writing a leaf")?;
            }
        }
        let mut after = None;
        loop {
            let page = self.store.checkpoints(tenant, after, 1_000).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.signed_at);
            for checkpoint in page.iter().filter(|c| c.size <= latest.size) {
                writer
                    .checkpoint(&checkpoint.note)
                    .context("writing a checkpoint")?;
            }
        }
        let manifest = writer.finish().context("finishing the bundle")?;
        let exported = Record::new(AuditEvent::AuditExported, actor, OffsetDateTime::now_utc())
            .detail("size", json!(manifest.size))
            .detail("root", json!(hex(&latest.root)))
            .draft();
        self.store.append_audit(tenant, &[exported]).await?;
        Ok(manifest.size)
    }

    /// Tier-1 retention: withhold the payloads of records logged before `cutoff` (their
    /// hashes stay, so every proof stays possible), recording the cut in the log itself.
    /// Returns how many payloads were withheld.
    pub async fn withhold_before(
        &self,
        tenant: &TenantId,
        cutoff: OffsetDateTime,
        policy: &str,
    ) -> Result<u64> {
        let size = self.store.audit_size(tenant).await?;
        let below = self
            .store
            .first_seq_logged_since(tenant, cutoff)
            .await?
            .unwrap_or(size);
        // Leaf 0 (genesis) names the keys: it is never withheld.
        if below <= 1 {
            return Ok(0);
        }
        let last_below = self
            .store
            .audit_leaves(
                tenant,
                &LeafFilter {
                    from: below - 1,
                    limit: 1,
                    ..LeafFilter::default()
                },
            )
            .await?;
        if last_below.first().is_none_or(|leaf| leaf.bytes.is_none()) {
            return Ok(0);
        }
        let record = Record::new(
            AuditEvent::Retention,
            &Actor::system(),
            OffsetDateTime::now_utc(),
        )
        .detail("below", json!(below))
        .detail(
            "cutoff",
            json!(crate::services::audit_events::rfc3339(cutoff)),
        )
        .detail("policy", json!(policy))
        .draft();
        Ok(self
            .store
            .withhold_audit_payloads(tenant, below, &record)
            .await?)
    }

    /// Key rotation, for each tenant: a `log.key_rotation` record naming the new verifier keys
    /// and carrying a note by the old log key that vouches for them, then a checkpoint still
    /// signed with the old keys, so the hand-over itself is covered by the old key. The caller
    /// then stores the new keys (and restarts `serve`).
    pub async fn rotate_keys(
        &self,
        tenants: &[TenantId],
        new: &LogKeys,
        actor: &Actor,
    ) -> Result<()> {
        let new_keys: Vec<String> = new.verifiers().iter().map(|k| k.to_key_string()).collect();
        let old_keys: Vec<String> = self
            .keys
            .verifiers()
            .iter()
            .map(|k| k.to_key_string())
            .collect();
        for tenant in tenants {
            self.ensure_genesis(tenant).await?;
            let origin = self.origin(tenant);
            let statement = format!("tollgate key rotation\n{origin}\n{}\n", new_keys.join("\n"));
            let vouched = note::sign(&statement, &[&self.keys.log.renamed(&origin)?], 0)
                .context("signing the new keys with the old one")?;
            let record = Record::new(AuditEvent::KeyRotation, actor, OffsetDateTime::now_utc())
                .detail("new_verifier_keys", json!(new_keys))
                .detail("old_verifier_keys", json!(old_keys))
                .detail("signed_by_old_key", json!(vouched))
                .draft();
            self.store.append_audit(tenant, &[record]).await?;
            self.checkpoint(tenant).await?;
        }
        Ok(())
    }

    /// Append a record of `event` carrying `digest` unless the newest record of that type
    /// already has the same digest: what a server started with, recorded when it changed.
    pub async fn record_if_changed(
        &self,
        tenant: &TenantId,
        event: AuditEvent,
        digest: &str,
        details: serde_json::Value,
    ) -> Result<bool> {
        let mut last: Option<StoredLeaf> = None;
        let mut from = 0;
        loop {
            let page = self
                .store
                .audit_leaves(
                    tenant,
                    &LeafFilter {
                        from,
                        event_type: Some(event.as_str().to_owned()),
                        limit: 1_000,
                        ..LeafFilter::default()
                    },
                )
                .await?;
            let Some(newest) = page.last().cloned() else {
                break;
            };
            from = newest.seq + 1;
            last = Some(newest);
        }
        let unchanged = last
            .and_then(|leaf| leaf.bytes)
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|record| record["details"]["digest"] == digest);
        if unchanged {
            return Ok(false);
        }
        let record = Record::new(event, &Actor::system(), OffsetDateTime::now_utc())
            .detail("digest", json!(digest))
            .detail("what", details)
            .draft();
        self.record(tenant, vec![record]).await?;
        Ok(true)
    }

    pub async fn leaf_by_id(&self, tenant: &TenantId, id: &str) -> Result<Option<StoredLeaf>> {
        Ok(self.store.audit_leaf_by_id(tenant, id).await?)
    }

    pub async fn leaves(&self, tenant: &TenantId, filter: &LeafFilter) -> Result<Vec<StoredLeaf>> {
        Ok(self.store.audit_leaves(tenant, filter).await?)
    }

    pub async fn checkpoints(
        &self,
        tenant: &TenantId,
        after: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        Ok(self.store.checkpoints(tenant, after, limit).await?)
    }

    /// The inclusion proof of a record in the newest checkpoint that covers it (signing
    /// one first if none does yet).
    pub async fn inclusion_proof(
        &self,
        tenant: &TenantId,
        record_id: &str,
    ) -> Result<Option<InclusionProof>> {
        let Some(leaf) = self.store.audit_leaf_by_id(tenant, record_id).await? else {
            return Ok(None);
        };
        let mut checkpoint = self.store.latest_checkpoint(tenant).await?;
        if checkpoint.as_ref().is_none_or(|c| c.size <= leaf.seq) {
            self.checkpoint(tenant).await?;
            checkpoint = self.store.latest_checkpoint(tenant).await?;
        }
        let checkpoint = checkpoint.context("no checkpoint covers the record")?;
        let hashes = self.leaf_hashes(tenant, checkpoint.size).await?;
        let proof = merkle::inclusion_proof(leaf.seq as usize, &hashes)?;
        Ok(Some(InclusionProof {
            record_id: leaf.record_id,
            seq: leaf.seq,
            leaf_hash: hex(&leaf.hash),
            tree_size: checkpoint.size,
            root: hex(&checkpoint.root),
            proof: proof.iter().map(|h| hex(h)).collect(),
            checkpoint: checkpoint.note,
        }))
    }

    pub async fn consistency_proof(
        &self,
        tenant: &TenantId,
        old: u64,
        new: u64,
    ) -> Result<ConsistencyProof> {
        let size = self.store.audit_size(tenant).await?;
        if old == 0 || old > new || new > size {
            bail!("sizes must satisfy 1 ≤ old ≤ new ≤ {size}");
        }
        let hashes = self.leaf_hashes(tenant, new).await?;
        let proof = merkle::consistency_proof(old as usize, &hashes)?;
        Ok(ConsistencyProof {
            old_size: old,
            new_size: new,
            old_root: hex(&merkle::root(&hashes[..old as usize])),
            new_root: hex(&merkle::root(&hashes)),
            proof: proof.iter().map(|h| hex(h)).collect(),
        })
    }
}
