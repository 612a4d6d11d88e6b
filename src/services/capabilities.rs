//! Capability flags: the product's switchable capabilities, each with the fallback it takes
//! when switched off or unavailable — `error` (refuse), `skip` (go on without it), `degrade`
//! (do less, safely), `manual` (put a person in the loop). Per tenant; an admin changes them
//! through the API (audited). The gate never falls back to allowing: with evaluation off or
//! its facts unreadable it asks for approval, and with approvals off it denies.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tollgate_domain::TenantId;
use tollgate_store::{AuditStore, InventoryStore};

use crate::services::audit_events::{Actor, AuditEvent, Record, Target};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Capability {
    #[serde(rename = "gate.evaluate")]
    GateEvaluate,
    #[serde(rename = "gate.approvals")]
    GateApprovals,
    #[serde(rename = "gate.callback")]
    GateCallback,
    #[serde(rename = "notifications")]
    Notifications,
    #[serde(rename = "sync.scheduled")]
    ScheduledSync,
}

/// What happens instead when a capability is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    Error,
    Skip,
    Degrade,
    Manual,
}

impl Fallback {
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::Error => "error",
            Fallback::Skip => "skip",
            Fallback::Degrade => "degrade",
            Fallback::Manual => "manual",
        }
    }
}

impl Capability {
    pub const ALL: [Capability; 5] = [
        Capability::GateEvaluate,
        Capability::GateApprovals,
        Capability::GateCallback,
        Capability::Notifications,
        Capability::ScheduledSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::GateEvaluate => "gate.evaluate",
            Capability::GateApprovals => "gate.approvals",
            Capability::GateCallback => "gate.callback",
            Capability::Notifications => "notifications",
            Capability::ScheduledSync => "sync.scheduled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw)
    }

    pub fn description(self) -> &'static str {
        match self {
            Capability::GateEvaluate => {
                "The gate evaluates its rules against the inventory. Off or unable to read its facts: every deployment needs approval (manual/degrade/skip) or is denied (error); never allowed."
            }
            Capability::GateApprovals => {
                "Deployments the rules send for approval wait for people. Off: they are denied instead."
            }
            Capability::GateCallback => {
                "Decisions are posted back to ADO checks in callback mode. Off: the callback waits in the queue (error) until switched on again."
            }
            Capability::Notifications => {
                "Approvers are notified (Teams, Slack, webhook, e-mail). Off: approvals are opened silently (skip)."
            }
            Capability::ScheduledSync => {
                "The scheduler queues periodic syncs. Off: only events and manual requests sync (skip)."
            }
        }
    }

    fn default_fallback(self) -> Fallback {
        match self {
            Capability::GateEvaluate => Fallback::Manual,
            Capability::GateApprovals | Capability::GateCallback => Fallback::Error,
            Capability::Notifications | Capability::ScheduledSync => Fallback::Skip,
        }
    }
}

/// A capability's current setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub enabled: bool,
    pub fallback: Fallback,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapabilityView {
    pub name: &'static str,
    pub enabled: bool,
    pub fallback: Fallback,
    pub description: &'static str,
}

/// Settings live in the store (a per-tenant key, so every replica sees an admin's change);
/// unset capabilities are on with their default fallback.
pub struct Capabilities {
    store: Arc<dyn InventoryStore>,
    audit: Arc<dyn AuditStore>,
}

fn key(capability: Capability) -> String {
    format!("capability:{}", capability.as_str())
}

/// The setting stored for a capability, or its default when unset or unreadable.
fn setting(capability: Capability, stored: Option<String>) -> Setting {
    stored
        .and_then(|raw| serde_json::from_str::<Setting>(&raw).ok())
        .unwrap_or(Setting {
            enabled: true,
            fallback: capability.default_fallback(),
        })
}

impl Capabilities {
    pub fn new(store: Arc<dyn InventoryStore>, audit: Arc<dyn AuditStore>) -> Self {
        Self { store, audit }
    }

    /// The setting in effect. A store that cannot be read yields the default: capabilities
    /// default to on, and the gate's fallbacks never allow.
    pub async fn get(&self, tenant: &TenantId, capability: Capability) -> Setting {
        let stored = self
            .store
            .watermark(tenant, &key(capability))
            .await
            .ok()
            .flatten();
        setting(capability, stored)
    }

    /// [`Capabilities::get`] and another of the tenant's watermarks, in one read: the gate
    /// reads its capability and the inventory's version on every check. A store that cannot
    /// be read yields the default setting and no watermark.
    pub async fn get_with(
        &self,
        tenant: &TenantId,
        capability: Capability,
        watermark: &str,
    ) -> (Setting, Option<String>) {
        let (stored, other) = match self
            .store
            .watermarks(tenant, &[&key(capability), watermark])
            .await
        {
            Ok(values) => {
                let mut values = values.into_iter();
                (values.next().flatten(), values.next().flatten())
            }
            Err(_) => (None, None),
        };
        (setting(capability, stored), other)
    }

    pub async fn list(&self, tenant: &TenantId) -> Vec<CapabilityView> {
        let mut views = Vec::new();
        for capability in Capability::ALL {
            let setting = self.get(tenant, capability).await;
            views.push(CapabilityView {
                name: capability.as_str(),
                enabled: setting.enabled,
                fallback: setting.fallback,
                description: capability.description(),
            });
        }
        views
    }

    /// Change a capability (admins only; the caller checks the role) and record who did.
    pub async fn set(
        &self,
        tenant: &TenantId,
        name: &str,
        enabled: Option<bool>,
        fallback: Option<Fallback>,
        actor: &Actor,
    ) -> Result<CapabilityView> {
        let Some(capability) = Capability::parse(name) else {
            bail!(
                "no capability {name:?}; known: {}",
                Capability::ALL.map(Capability::as_str).join(", ")
            );
        };
        let before = self.get(tenant, capability).await;
        let after = Setting {
            enabled: enabled.unwrap_or(before.enabled),
            fallback: fallback.unwrap_or(before.fallback),
        };
        let encoded = serde_json::to_string(&after).context("encoding the setting")?;
        self.store
            .set_watermark(tenant, &key(capability), &encoded)
            .await
            .context("storing the capability")?;
        let record = Record::new(
            AuditEvent::CapabilityChanged,
            actor,
            time::OffsetDateTime::now_utc(),
        )
        .target(Target::new("capability", capability.as_str()))
        .detail("before", json!(before))
        .detail("after", json!(after))
        .draft();
        self.audit
            .append_audit(tenant, &[record])
            .await
            .context("recording the capability change")?;
        Ok(CapabilityView {
            name: capability.as_str(),
            enabled: after.enabled,
            fallback: after.fallback,
            description: capability.description(),
        })
    }
}
