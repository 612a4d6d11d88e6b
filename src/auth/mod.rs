//! Who is calling, and what they may do.
//!
//! Roles are ordered (admin > release_manager > operator > developer > viewer): a role holds
//! every permission of the roles below it. Permissions are the ten named capabilities the
//! route table (`http::routes::ROUTES`) requires; tests read the same table.

pub mod api_keys;
pub mod authenticator;
pub mod jwks_http;
pub mod oidc;
pub mod tenancy;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tollgate_domain::TenantId;

/// A role, lowest first so that `Ord` follows the hierarchy.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Developer,
    Operator,
    ReleaseManager,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Developer,
        Role::Operator,
        Role::ReleaseManager,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Operator => "operator",
            Role::ReleaseManager => "release_manager",
            Role::Admin => "admin",
        }
    }

    /// Whether this role holds `permission` (its own or a lower role's).
    pub fn grants(self, permission: Permission) -> bool {
        self >= permission.minimum_role()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == raw)
            .ok_or_else(|| {
                format!(
                    "unknown role {raw:?}; expected one of admin, release_manager, operator, developer, viewer"
                )
            })
    }
}

/// The ten permissions. Each belongs to the lowest role that holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Permission {
    /// Read the inventory, sync runs, policies and their configuration.
    #[serde(rename = "inventory.read")]
    InventoryRead,
    /// Read findings and waivers.
    #[serde(rename = "findings.read")]
    FindingsRead,
    /// Dry-run the deployment gate for a change.
    #[serde(rename = "deployments.validate")]
    DeploymentsValidate,
    /// Add and remove waivers.
    #[serde(rename = "waivers.manage")]
    WaiversManage,
    /// Start syncs and scans.
    #[serde(rename = "sync.run")]
    SyncRun,
    /// Read stored events and jobs; replay events; retry dead jobs.
    #[serde(rename = "events.manage")]
    EventsManage,
    /// Read the audit log, its checkpoints and proofs.
    #[serde(rename = "audit.read")]
    AuditRead,
    /// Queue deployments and rollbacks.
    #[serde(rename = "deployments.execute")]
    DeploymentsExecute,
    /// Approve or reject pending approvals.
    #[serde(rename = "approvals.decide")]
    ApprovalsDecide,
    /// Change configuration: policies settings, tenants, API keys, capability flags.
    #[serde(rename = "config.manage")]
    ConfigManage,
}

impl Permission {
    pub const ALL: [Permission; 10] = [
        Permission::InventoryRead,
        Permission::FindingsRead,
        Permission::DeploymentsValidate,
        Permission::WaiversManage,
        Permission::SyncRun,
        Permission::EventsManage,
        Permission::AuditRead,
        Permission::DeploymentsExecute,
        Permission::ApprovalsDecide,
        Permission::ConfigManage,
    ];

    pub fn minimum_role(self) -> Role {
        match self {
            Permission::InventoryRead | Permission::FindingsRead => Role::Viewer,
            Permission::DeploymentsValidate => Role::Developer,
            Permission::WaiversManage
            | Permission::SyncRun
            | Permission::EventsManage
            | Permission::AuditRead => Role::Operator,
            Permission::DeploymentsExecute | Permission::ApprovalsDecide => Role::ReleaseManager,
            Permission::ConfigManage => Role::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::InventoryRead => "inventory.read",
            Permission::FindingsRead => "findings.read",
            Permission::DeploymentsValidate => "deployments.validate",
            Permission::WaiversManage => "waivers.manage",
            Permission::SyncRun => "sync.run",
            Permission::EventsManage => "events.manage",
            Permission::AuditRead => "audit.read",
            Permission::DeploymentsExecute => "deployments.execute",
            Permission::ApprovalsDecide => "approvals.decide",
            Permission::ConfigManage => "config.manage",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a principal proved who it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Credential {
    /// An Entra ID / OIDC bearer token.
    Token,
    /// An API key, by its public id.
    ApiKey { key_id: String },
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Stable identity: `oidc:{tid}:{oid}` for a token, `apikey:{id}` for a key.
    pub subject: String,
    /// For logs and audit records; never used for decisions.
    pub display_name: String,
    /// The tenant the principal acts in.
    pub tenant: TenantId,
    pub role: Role,
    pub credential: Credential,
}

impl Principal {
    pub fn may(&self, permission: Permission) -> bool {
        self.role.grants(permission)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_inherit_the_permissions_below_them() {
        for permission in Permission::ALL {
            let lowest = permission.minimum_role();
            for role in Role::ALL {
                assert_eq!(
                    role.grants(permission),
                    role >= lowest,
                    "{role} {permission}"
                );
            }
        }
        assert!(Role::Admin.grants(Permission::ConfigManage));
        assert!(!Role::ReleaseManager.grants(Permission::ConfigManage));
        assert!(!Role::Viewer.grants(Permission::DeploymentsValidate));
    }

    #[test]
    fn names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        for permission in Permission::ALL {
            let json = serde_json::to_value(permission).unwrap_or_default();
            assert_eq!(json, permission.as_str());
        }
    }
}
