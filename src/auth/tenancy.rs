//! Which tenants a principal may act in, with which role, and the tenant a request acts in.
//!
//! A principal has a home tenant: an API key's own tenant (a key is issued in one tenant and
//! keeps its role there), or for a token the configured `[auth.oidc] tenant` when the mapping
//! gives it a role. Membership rows (`TenancyStore`) add tenants: a subject may act in every
//! tenant it has a row in, with that row's role. For a token, a row in the configured tenant
//! overrides the mapped role there; without any row, the mapping alone applies (as before
//! memberships existed). An API key's row in its own tenant is ignored: the key's role is
//! fixed when it is issued. See docs/TENANCY.md.

use std::collections::BTreeMap;

use serde::Serialize;
use tollgate_domain::TenantId;
use tollgate_store::StoredMembership;

use super::{Principal, Role};

/// The header that names the tenant a request acts in (absent: the principal's home tenant).
pub const TENANT_HEADER: &str = "x-tollgate-tenant";

/// The tenant `operator` admins act in: they create and remove tenants and may manage any
/// tenant's members.
pub fn operator_tenant() -> TenantId {
    TenantId::default_tenant()
}

/// Every tenant a principal may act in, with its role there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantRoles {
    home: TenantId,
    roles: BTreeMap<TenantId, Role>,
}

impl TenantRoles {
    /// Only the home tenant (no membership rows, or no membership store).
    pub fn home_only(home: TenantId, role: Role) -> Self {
        Self {
            roles: BTreeMap::from([(home.clone(), role)]),
            home,
        }
    }

    /// An API key's roles: its own tenant and role, plus its rows in other tenants.
    pub fn for_api_key(home: TenantId, role: Role, rows: &[StoredMembership]) -> Self {
        let mut roles: BTreeMap<TenantId, Role> =
            parsed(rows).filter(|(tenant, _)| *tenant != home).collect();
        roles.insert(home.clone(), role);
        Self { home, roles }
    }

    /// A token's roles: the mapped role in the configured tenant (if any), overridden and
    /// extended by its rows. `None` when it may act nowhere. Home: the configured tenant when
    /// it may act there, else the first tenant by id.
    pub fn for_token(
        configured: &TenantId,
        mapped: Option<Role>,
        rows: &[StoredMembership],
    ) -> Option<Self> {
        let mut roles = BTreeMap::new();
        if let Some(role) = mapped {
            roles.insert(configured.clone(), role);
        }
        roles.extend(parsed(rows));
        let home = if roles.contains_key(configured) {
            configured.clone()
        } else {
            roles.keys().next()?.clone()
        };
        Some(Self { home, roles })
    }

    pub fn home(&self) -> &TenantId {
        &self.home
    }

    pub fn role_in(&self, tenant: &TenantId) -> Option<Role> {
        self.roles.get(tenant).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TenantId, Role)> {
        self.roles.iter().map(|(tenant, role)| (tenant, *role))
    }

    /// Whether this principal administers the operator tenant.
    pub fn is_operator_admin(&self) -> bool {
        self.role_in(&operator_tenant()) == Some(Role::Admin)
    }

    /// The principal acting in `requested` (its home tenant when `None`), or `None` when it
    /// may not act there — whether or not that tenant exists.
    pub fn act(&self, principal: &Principal, requested: Option<&TenantId>) -> Option<Principal> {
        let tenant = requested.unwrap_or(&self.home);
        let role = self.role_in(tenant)?;
        Some(Principal {
            tenant: tenant.clone(),
            role,
            ..principal.clone()
        })
    }
}

/// Rows whose role this binary knows; another is skipped loudly rather than guessed at.
fn parsed(rows: &[StoredMembership]) -> impl Iterator<Item = (TenantId, Role)> + '_ {
    rows.iter().filter_map(|row| match row.role.parse::<Role>() {
        Ok(role) => Some((row.tenant.clone(), role)),
        Err(_) => {
            tracing::error!(tenant = %row.tenant, subject = %row.subject, role = %row.role, "membership with an unknown role; ignoring it");
            None
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use super::*;
    use crate::auth::Credential;
    use time::macros::datetime;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    fn row(tenant_id: &str, role: &str) -> StoredMembership {
        StoredMembership {
            tenant: tenant(tenant_id),
            subject: "s".into(),
            role: role.into(),
            created_at: datetime!(2026-01-01 0:00 UTC),
            created_by: "x".into(),
        }
    }

    fn principal() -> Principal {
        Principal {
            subject: "s".into(),
            display_name: "s".into(),
            tenant: tenant("default"),
            role: Role::Viewer,
            credential: Credential::Token,
        }
    }

    #[test]
    fn a_token_without_rows_keeps_the_mapped_role_in_the_configured_tenant() {
        let roles = TenantRoles::for_token(&tenant("default"), Some(Role::Operator), &[]).unwrap();
        assert_eq!(
            roles,
            TenantRoles::home_only(tenant("default"), Role::Operator)
        );
        assert_eq!(TenantRoles::for_token(&tenant("default"), None, &[]), None);
    }

    #[test]
    fn rows_override_the_mapping_and_add_tenants() {
        let rows = [
            row("default", "viewer"),
            row("fabrikam", "admin"),
            row("x", "root"),
        ];
        let roles = TenantRoles::for_token(&tenant("default"), Some(Role::Admin), &rows).unwrap();
        assert_eq!(roles.home(), &tenant("default"));
        assert_eq!(roles.role_in(&tenant("default")), Some(Role::Viewer));
        assert_eq!(roles.role_in(&tenant("fabrikam")), Some(Role::Admin));
        assert_eq!(
            roles.role_in(&tenant("x")),
            None,
            "an unknown role grants nothing"
        );
        // No mapped role: the first membership is home.
        let roles = TenantRoles::for_token(&tenant("default"), None, &rows[1..]).unwrap();
        assert_eq!(roles.home(), &tenant("fabrikam"));
    }

    #[test]
    fn an_api_key_keeps_its_own_role_at_home() {
        let rows = [row("contoso", "admin"), row("fabrikam", "viewer")];
        let roles = TenantRoles::for_api_key(tenant("contoso"), Role::Viewer, &rows);
        assert_eq!(roles.role_in(&tenant("contoso")), Some(Role::Viewer));
        assert_eq!(roles.role_in(&tenant("fabrikam")), Some(Role::Viewer));
        assert!(!roles.is_operator_admin());
    }

    #[test]
    fn acting_elsewhere_needs_a_role_there() {
        let roles =
            TenantRoles::for_api_key(tenant("default"), Role::Admin, &[row("b", "operator")]);
        assert!(roles.is_operator_admin());
        let home = roles.act(&principal(), None).unwrap();
        assert_eq!((home.tenant, home.role), (tenant("default"), Role::Admin));
        let in_b = roles.act(&principal(), Some(&tenant("b"))).unwrap();
        assert_eq!((in_b.tenant, in_b.role), (tenant("b"), Role::Operator));
        assert_eq!(roles.act(&principal(), Some(&tenant("c"))), None);
    }
}
