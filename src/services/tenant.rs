//! One tenant's use cases for the server: read the inventory, findings, waivers, policies
//! and sync runs, page by page, and manage waivers. The HTTP API and the workers call these;
//! they reach storage only through the store traits.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use time::OffsetDateTime;
use tollgate_domain::{InventoryItem, ResourceKind, SecretString, TenantId};
use tollgate_policy::{ControlMeta, PolicySet};
use tollgate_store::{
    Finding, FindingStatus, FindingStore, InventoryStore, NewWaiver, SyncRecord, Waiver,
};

use crate::services::audit_events::{Actor, waiver_created, waiver_removed};
use crate::services::scan::ScanService;
use crate::services::sync::SyncService;

/// The largest page any list returns.
pub const MAX_PAGE: u32 = 1_000;
pub const DEFAULT_PAGE: u32 = 100;

/// A page of results and the cursor for the next one (`None`: this was the last page).
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from a query that fetched `limit + 1` rows: the extra row only says that
    /// another page follows, whose cursor is the key of the last row kept.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let next_cursor = (items.len() > limit as usize).then(|| {
            items.truncate(limit as usize);
            items.last().map(&key).unwrap_or_default()
        });
        Self { items, next_cursor }
    }
}

/// Clamp a requested page size to 1..=MAX_PAGE.
pub fn page_size(requested: Option<u32>) -> u32 {
    requested.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
}

/// How a tenant's service hooks authenticate.
#[derive(Clone, Debug)]
pub struct WebhookSecret {
    pub secret: SecretString,
    /// The custom header that may carry the secret instead of basic auth.
    pub header: String,
}

#[derive(Clone, Debug, Default)]
pub struct FindingFilter {
    pub statuses: Vec<FindingStatus>,
    pub control: Option<String>,
    pub severity: Option<String>,
    pub project: Option<String>,
    pub resource_kind: Option<ResourceKind>,
}

/// Everything the server does for one tenant.
pub struct TenantContext {
    pub id: TenantId,
    pub org_url: Option<String>,
    pub inventory: Arc<dyn InventoryStore>,
    pub findings: Arc<dyn FindingStore>,
    pub policies: Arc<PolicySet>,
    pub scan: Arc<ScanService>,
    /// `None` when no organisation or credential is configured for the tenant (it can still
    /// receive and store events, and serve what is stored).
    pub sync: Option<Arc<SyncService>>,
    pub webhook: Option<WebhookSecret>,
    pub gate: Arc<crate::services::gate::GateService>,
    pub deployments: Arc<crate::services::deployments::DeploymentService>,
    /// The user name and password ADO's check presents; `None`: the gate refuses every call.
    pub gate_credential: Option<(String, SecretString)>,
    pub capabilities: Arc<crate::services::capabilities::Capabilities>,
    /// Serialises syncs and evaluations of this tenant within the process: the job queue
    /// coalesces them, this keeps a scheduled and an event-driven one from overlapping.
    pub refresh_lock: tokio::sync::Mutex<()>,
}

impl TenantContext {
    pub async fn counts(&self) -> Result<BTreeMap<ResourceKind, u64>> {
        Ok(self.inventory.counts(&self.id).await?)
    }

    pub async fn last_sync(&self) -> Result<Option<SyncRecord>> {
        Ok(self.inventory.last_successful_sync(&self.id).await?)
    }

    /// Items of a kind ordered by key; the cursor is the last key of the previous page.
    pub async fn items(
        &self,
        kind: ResourceKind,
        project: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<InventoryItem>> {
        let fetch = limit + 1;
        let items = match project {
            Some(project) => {
                self.inventory
                    .project_items(&self.id, kind, project, cursor, fetch)
                    .await?
            }
            None => self.inventory.items(&self.id, kind, cursor, fetch).await?,
        };
        Ok(Page::from_overfetch(items, limit, |i| i.key.clone()))
    }

    pub async fn item(&self, kind: ResourceKind, key: &str) -> Result<Option<InventoryItem>> {
        Ok(self
            .inventory
            .items_by_keys(&self.id, kind, &[key.to_owned()])
            .await?
            .into_iter()
            .next())
    }

    /// Findings matching the filter, ordered by control then resource key; the cursor is
    /// `{control}\u{1f}{resource_key}` of the last finding returned.
    pub async fn findings(
        &self,
        filter: &FindingFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Finding>> {
        let after = cursor.map(|c| c.split_once('\u{1f}').unwrap_or((c, "")));
        let all = self.findings.findings(&self.id, &filter.statuses).await?;
        let mut matching = all.into_iter().filter(|f| {
            filter
                .control
                .as_deref()
                .is_none_or(|c| f.control.eq_ignore_ascii_case(c))
                && filter.severity.as_deref().is_none_or(|s| f.severity == s)
                && filter.project.as_deref().is_none_or(|p| f.project == p)
                && filter.resource_kind.is_none_or(|k| f.resource_kind == k)
                && after.is_none_or(|(control, key)| {
                    (f.control.as_str(), f.resource_key.as_str()) > (control, key)
                })
        });
        let mut items: Vec<Finding> = matching.by_ref().take(limit as usize).collect();
        let next_cursor = if matching.next().is_some() {
            items
                .last()
                .map(|f| format!("{}\u{1f}{}", f.control, f.resource_key))
        } else {
            None
        };
        items.shrink_to_fit();
        Ok(Page { items, next_cursor })
    }

    pub async fn waivers(&self) -> Result<Vec<Waiver>> {
        Ok(self.findings.waivers(&self.id).await?)
    }

    /// Accept a risk. The control must exist; owner and reason are required; the expiry
    /// must be in the future. It takes effect at the next evaluation.
    pub async fn add_waiver(
        &self,
        waiver: NewWaiver,
        now: OffsetDateTime,
        actor: &Actor,
    ) -> Result<Waiver> {
        let Some(control) = self.policies.control(&waiver.control) else {
            bail!(
                "no control {:?}; GET /api/v1/policies lists them",
                waiver.control
            );
        };
        if waiver.owner.trim().is_empty() || waiver.reason.trim().is_empty() {
            bail!("a waiver needs an owner and a reason");
        }
        if waiver.scope.trim().is_empty() {
            bail!("a waiver needs a scope: a resource key, a key prefix ending in *, or *");
        }
        if waiver.expires_at <= now {
            bail!("the expiry must be in the future");
        }
        let waiver = NewWaiver {
            control: control.id.clone(),
            ..waiver
        };
        self.findings
            .add_waiver(&self.id, &waiver, &[waiver_created(actor, &waiver, now)])
            .await
            .context("storing the waiver")
    }

    pub async fn remove_waiver(&self, id: i64, actor: &Actor) -> Result<bool> {
        let record = waiver_removed(actor, id, OffsetDateTime::now_utc());
        Ok(self.findings.remove_waiver(&self.id, id, &[record]).await?)
    }

    pub fn controls(&self) -> &[ControlMeta] {
        self.policies.controls()
    }

    /// Sync runs, newest first.
    pub async fn syncs(&self, before: Option<i64>, limit: u32) -> Result<Page<SyncRecord>> {
        let mut runs = self.inventory.syncs_since(&self.id, None).await?;
        runs.reverse();
        let mut matching = runs
            .into_iter()
            .filter(|run| before.is_none_or(|b| run.id.0 < b));
        let items: Vec<SyncRecord> = matching.by_ref().take(limit as usize).collect();
        let next_cursor = if matching.next().is_some() {
            items.last().map(|r| r.id.0.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }
}

/// Builds the context of a tenant that has no configuration of its own (registered through
/// the API or the command line): no organisation, webhook secret or gate credential until
/// `[[tenants]]` names it, but its stored data, members, keys and audit log are served.
pub type TenantOpener = Box<dyn Fn(&TenantId) -> Result<TenantContext> + Send + Sync>;

/// The tenants this process serves: those the configuration names, and registered ones,
/// opened at start or when first acted in (another replica may have registered them).
#[derive(Default)]
pub struct Tenants {
    by_id: std::sync::RwLock<BTreeMap<TenantId, Arc<TenantContext>>>,
    configured: std::collections::BTreeSet<TenantId>,
    opener: Option<TenantOpener>,
}

impl Tenants {
    /// The configured tenants; registered ones cannot be opened.
    pub fn new(contexts: Vec<TenantContext>) -> Self {
        let configured = contexts.iter().map(|c| c.id.clone()).collect();
        Self {
            by_id: std::sync::RwLock::new(
                contexts
                    .into_iter()
                    .map(|c| (c.id.clone(), Arc::new(c)))
                    .collect(),
            ),
            configured,
            opener: None,
        }
    }

    /// The configured tenants, and `opener` for registered ones.
    pub fn with_opener(contexts: Vec<TenantContext>, opener: TenantOpener) -> Self {
        Self {
            opener: Some(opener),
            ..Self::new(contexts)
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<TenantId, Arc<TenantContext>>> {
        self.by_id
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<TenantId, Arc<TenantContext>>> {
        self.by_id
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, id: &TenantId) -> Option<Arc<TenantContext>> {
        self.read().get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<TenantContext>> {
        self.read().values().cloned().collect()
    }

    pub fn ids(&self) -> Vec<TenantId> {
        self.read().keys().cloned().collect()
    }

    /// Whether the configuration file names this tenant (it then cannot be removed through
    /// the API: the next start would bring it back).
    pub fn is_configured(&self, id: &TenantId) -> bool {
        self.configured.contains(id)
    }

    /// Serve a registered tenant (no-op when it is served already). Only for tenants known
    /// to be registered: this does not look.
    pub fn open(&self, id: &TenantId) -> Result<Arc<TenantContext>> {
        if let Some(served) = self.get(id) {
            return Ok(served);
        }
        let Some(opener) = &self.opener else {
            bail!("tenant {id} is not served by this instance");
        };
        let context = Arc::new(opener(id).with_context(|| format!("opening tenant {id}"))?);
        Ok(self.write().entry(id.clone()).or_insert(context).clone())
    }

    /// Stop serving a removed tenant (its data stays in the store).
    pub fn close(&self, id: &TenantId) {
        self.write().remove(id);
    }
}
