//! Tenant administration: which tenants exist, who may act in each and with which role.
//! The HTTP API (`/api/v1/admin/tenants…`) and the command line (`tollgate tenant …`) both
//! call this; it reaches storage only through `TenancyStore`. See docs/TENANCY.md.
//!
//! A tenant exists when the configuration file names it (`[ado]`/`[[tenants]]`, with its
//! organisation and secrets) or when it is registered in the store (created through the API
//! or the command line). Registered tenants hold members, API keys, waivers and an audit log
//! from the start; they sync once `[[tenants]]` gives them an organisation.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;
use tollgate_domain::TenantId;
use tollgate_store::{RemovedTenant, StoredMembership, StoredTenant, TenancyStore};

use crate::auth::Role;
use crate::auth::tenancy::operator_tenant;
use crate::services::audit::AuditService;
use crate::services::audit_events::{Actor, AuditEvent, Record, Target};

/// The longest subject accepted (`oidc:` + a tenant GUID + a 256-character id fits).
const MAX_SUBJECT_CHARS: usize = 300;

/// Why a tenant or membership change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error(
        "{0:?} is not a subject: use oidc:{{tid}}:{{oid}} (as GET /api/v1/me shows it) or apikey:{{key id}}"
    )]
    InvalidSubject(String),
    #[error("no tenant {0}")]
    UnknownTenant(TenantId),
    #[error("tenant {0} exists already")]
    Exists(TenantId),
    #[error(
        "tenant {0} is named in the configuration file; remove it there (`tollgate tenant remove {0}`), or the next start brings it back"
    )]
    Configured(TenantId),
    #[error("the operator tenant {0} cannot be removed")]
    OperatorTenant(TenantId),
    #[error("membership of {subject} in {tenant} has the unknown role {role:?} in the database")]
    UnknownRole {
        tenant: TenantId,
        subject: String,
        role: String,
    },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<tollgate_store::StoreError> for TenancyError {
    fn from(error: tollgate_store::StoreError) -> Self {
        Self::Other(anyhow::Error::new(error))
    }
}

/// A tenant, as operators list them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantEntry {
    pub id: TenantId,
    /// Named in the configuration file.
    pub configured: bool,
    /// Created through the API or the command line.
    pub registration: Option<StoredTenant>,
}

/// A principal's role in one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub tenant: TenantId,
    pub subject: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

/// What a put changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutMember {
    pub membership: Membership,
    /// The role before, when the subject was a member already.
    pub previous: Option<Role>,
}

/// Whether `subject` has the shape of a principal's subject.
pub fn check_subject(subject: &str) -> Result<(), TenancyError> {
    let invalid = || TenancyError::InvalidSubject(subject.chars().take(80).collect());
    if subject.chars().count() > MAX_SUBJECT_CHARS
        || subject.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid());
    }
    let valid = if let Some(key_id) = subject.strip_prefix("apikey:") {
        key_id.len() == crate::auth::api_keys::KEY_ID_LEN
            && key_id.bytes().all(|b| b.is_ascii_alphanumeric())
    } else if let Some(rest) = subject.strip_prefix("oidc:") {
        rest.split_once(':')
            .is_some_and(|(tid, id)| !tid.is_empty() && !id.is_empty())
    } else {
        false
    };
    if valid { Ok(()) } else { Err(invalid()) }
}

fn membership_from(row: StoredMembership) -> Result<Membership, TenancyError> {
    let role = row
        .role
        .parse::<Role>()
        .map_err(|_| TenancyError::UnknownRole {
            tenant: row.tenant.clone(),
            subject: row.subject.clone(),
            role: row.role.clone(),
        })?;
    Ok(Membership {
        tenant: row.tenant,
        subject: row.subject,
        role,
        created_at: row.created_at,
        created_by: row.created_by,
    })
}

/// Now, to the microsecond both stores keep.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

pub struct TenancyService {
    store: Arc<dyn TenancyStore>,
    audit: Arc<AuditService>,
    configured: BTreeSet<TenantId>,
}

impl TenancyService {
    /// `configured`: the tenants the configuration file names.
    pub fn new(
        store: Arc<dyn TenancyStore>,
        audit: Arc<AuditService>,
        configured: BTreeSet<TenantId>,
    ) -> Self {
        Self {
            store,
            audit,
            configured,
        }
    }

    pub fn is_configured(&self, tenant: &TenantId) -> bool {
        self.configured.contains(tenant)
    }

    pub async fn is_registered(&self, tenant: &TenantId) -> Result<bool, TenancyError> {
        Ok(self.store.registered_tenant(tenant).await?.is_some())
    }

    /// Configured or registered.
    pub async fn exists(&self, tenant: &TenantId) -> Result<bool, TenancyError> {
        Ok(self.is_configured(tenant) || self.is_registered(tenant).await?)
    }

    /// Every tenant, configured and registered, by id.
    pub async fn tenants(&self) -> Result<Vec<TenantEntry>, TenancyError> {
        let mut entries: std::collections::BTreeMap<TenantId, TenantEntry> = self
            .configured
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    TenantEntry {
                        id: id.clone(),
                        configured: true,
                        registration: None,
                    },
                )
            })
            .collect();
        for registration in self.store.registered_tenants().await? {
            let id = registration.tenant.clone();
            entries
                .entry(id.clone())
                .or_insert_with(|| TenantEntry {
                    id,
                    configured: false,
                    registration: None,
                })
                .registration = Some(registration);
        }
        Ok(entries.into_values().collect())
    }

    /// Register a new tenant. Its log starts with its genesis and this record; the operator
    /// tenant's log records it too.
    pub async fn create(
        &self,
        tenant: &TenantId,
        actor: &Actor,
    ) -> Result<StoredTenant, TenancyError> {
        if self.exists(tenant).await? {
            return Err(TenancyError::Exists(tenant.clone()));
        }
        let registration = StoredTenant {
            tenant: tenant.clone(),
            created_at: now(),
            created_by: actor.id.clone(),
        };
        let record = || {
            Record::new(AuditEvent::TenantAdded, actor, registration.created_at)
                .target(Target::new("tenant", tenant.as_str()))
                .detail("after", json!({ "registered": true }))
                .draft()
        };
        self.audit.ensure_genesis(tenant).await?;
        if !self
            .store
            .register_tenant(&registration, &[record()])
            .await?
        {
            // Another request registered it between the check and the insert.
            return Err(TenancyError::Exists(tenant.clone()));
        }
        if *tenant != operator_tenant() {
            self.audit
                .record(&operator_tenant(), vec![record()])
                .await?;
        }
        Ok(registration)
    }

    /// Remove a registered tenant: its registration and memberships go, its API keys are
    /// revoked, its data stays. Tenants the configuration names and the operator tenant are
    /// refused.
    pub async fn remove(
        &self,
        tenant: &TenantId,
        actor: &Actor,
    ) -> Result<RemovedTenant, TenancyError> {
        if *tenant == operator_tenant() {
            return Err(TenancyError::OperatorTenant(tenant.clone()));
        }
        if self.is_configured(tenant) {
            return Err(TenancyError::Configured(tenant.clone()));
        }
        if !self.is_registered(tenant).await? {
            return Err(TenancyError::UnknownTenant(tenant.clone()));
        }
        self.end_access(tenant, actor).await
    }

    /// End every way to act in `tenant` (it was just removed from the configuration file,
    /// or is registered): memberships deleted, API keys revoked, registration gone. One
    /// transaction, recorded in the tenant's log and the operator tenant's.
    pub async fn end_access(
        &self,
        tenant: &TenantId,
        actor: &Actor,
    ) -> Result<RemovedTenant, TenancyError> {
        let at = now();
        self.audit.ensure_genesis(tenant).await?;
        let record = Record::new(AuditEvent::TenantRemoved, actor, at)
            .target(Target::new("tenant", tenant.as_str()))
            .draft();
        let removed = self
            .store
            .remove_tenant(tenant, at, std::slice::from_ref(&record))
            .await?;
        if *tenant != operator_tenant() {
            let summary = Record::new(AuditEvent::TenantRemoved, actor, at)
                .target(Target::new("tenant", tenant.as_str()))
                .detail(
                    "details",
                    json!({
                        "memberships_removed": removed.memberships_removed,
                        "api_keys_revoked": removed.api_keys_revoked,
                    }),
                )
                .draft();
            self.audit.record(&operator_tenant(), vec![summary]).await?;
        }
        Ok(removed)
    }

    /// A tenant's members, by subject.
    pub async fn members(&self, tenant: &TenantId) -> Result<Vec<Membership>, TenancyError> {
        self.store
            .memberships(tenant)
            .await?
            .into_iter()
            .map(membership_from)
            .collect()
    }

    /// Give `subject` `role` in `tenant` (a member already: change its role).
    pub async fn put_member(
        &self,
        tenant: &TenantId,
        subject: &str,
        role: Role,
        actor: &Actor,
    ) -> Result<PutMember, TenancyError> {
        check_subject(subject)?;
        if !self.exists(tenant).await? {
            return Err(TenancyError::UnknownTenant(tenant.clone()));
        }
        let row = StoredMembership {
            tenant: tenant.clone(),
            subject: subject.to_owned(),
            role: role.as_str().to_owned(),
            created_at: now(),
            created_by: actor.id.clone(),
        };
        let current = self
            .store
            .memberships(tenant)
            .await?
            .into_iter()
            .find(|m| m.subject == subject);
        let record = Record::new(AuditEvent::MembershipChanged, actor, row.created_at)
            .target(Target::new("membership", format!("{tenant}/{subject}")))
            .detail(
                "before",
                json!({ "role": current.as_ref().map(|m| m.role.clone()) }),
            )
            .detail("after", json!({ "role": role.as_str() }))
            .draft();
        let previous = self.store.put_membership(&row, &[record]).await?;
        let previous = previous.and_then(|raw| raw.parse::<Role>().ok());
        let membership = match current {
            Some(current) => Membership {
                role,
                ..membership_from(current)?
            },
            None => membership_from(row)?,
        };
        Ok(PutMember {
            membership,
            previous,
        })
    }

    /// Take `subject`'s role in `tenant` away; false when it had none.
    pub async fn remove_member(
        &self,
        tenant: &TenantId,
        subject: &str,
        actor: &Actor,
    ) -> Result<bool, TenancyError> {
        let record = Record::new(AuditEvent::MembershipChanged, actor, now())
            .target(Target::new("membership", format!("{tenant}/{subject}")))
            .detail("after", json!({ "role": null }))
            .draft();
        Ok(self
            .store
            .remove_membership(tenant, subject, &[record])
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_have_the_shapes_principals_have() {
        for good in [
            "oidc:72f988bf-86f1-41af-91ab-2d7cd011db47:00000000-0000-0000-0000-000000000001",
            "oidc:-:alice",
            "apikey:AbCdEf123456",
        ] {
            assert!(check_subject(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "alice",
            "oidc:",
            "oidc:tid",
            "oidc::x",
            "oidc:t:",
            "apikey:short",
            "apikey:AbCdEf12345!",
            "oidc:t:a b",
            "oidc:t:a\n",
        ] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
        assert!(check_subject(&format!("oidc:t:{}", "x".repeat(400))).is_err());
    }
}
