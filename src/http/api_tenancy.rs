//! `/api/v1/admin/tenants…`: creating and removing tenants (admins of the operator tenant) and
//! managing a tenant's members (its admins, or the operator tenant's). See docs/TENANCY.md.

use axum::Json;
use axum::extract::{Path, State};
use axum::{Extension, http::StatusCode};
use serde::{Deserialize, Serialize};
use tollgate_domain::TenantId;
use utoipa::ToSchema;

use super::AppState;
use super::api::rfc3339;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::auth::tenancy::{TenantRoles, operator_tenant};
use crate::auth::{Permission, Principal, Role};
use crate::http::extract::JsonBody;
use crate::services::audit_events::Actor;
use crate::services::tenancy::{Membership, TenancyError, TenantEntry};

fn tenancy_error(error: TenancyError) -> ApiError {
    match error {
        TenancyError::InvalidSubject(_) => ApiError::bad_request(error.to_string()),
        TenancyError::UnknownTenant(_) => ApiError::not_found(error.to_string()),
        TenancyError::Exists(_) | TenancyError::Configured(_) | TenancyError::OperatorTenant(_) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string())
        }
        TenancyError::UnknownRole { .. } | TenancyError::Other(_) => {
            ApiError::internal(&anyhow::Error::new(error))
        }
    }
}

fn parse_tenant(raw: &str) -> ApiResult<TenantId> {
    TenantId::parse(raw).map_err(|error| ApiError::bad_request(error.to_string()))
}

/// Creating, listing and removing tenants is for admins acting in the operator tenant.
fn require_operator(principal: &Principal) -> ApiResult<()> {
    if principal.tenant == operator_tenant() && principal.may(Permission::ConfigManage) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "only admins of the operator tenant {} administer tenants",
            operator_tenant()
        )))
    }
}

/// Members of `tenant` are managed by its admins and the operator tenant's. Anyone else gets
/// the same 403 whether or not the tenant exists.
fn require_member_admin(
    principal: &Principal,
    roles: &TenantRoles,
    tenant: &TenantId,
) -> ApiResult<()> {
    let operator = principal.tenant == operator_tenant() && principal.may(Permission::ConfigManage);
    let tenant_admin = roles
        .role_in(tenant)
        .is_some_and(|role| role.grants(Permission::ConfigManage));
    if operator || tenant_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "you may not manage the members of tenant {tenant}"
        )))
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdminTenantView {
    pub id: String,
    /// Named in the configuration file (with its organisation and secrets).
    pub configured: bool,
    /// Created through the API or the command line.
    pub registered: bool,
    pub created_at: Option<String>,
    pub created_by: Option<String>,
}

impl From<TenantEntry> for AdminTenantView {
    fn from(entry: TenantEntry) -> Self {
        Self {
            id: entry.id.to_string(),
            configured: entry.configured,
            registered: entry.registration.is_some(),
            created_at: entry.registration.as_ref().map(|r| rfc3339(r.created_at)),
            created_by: entry.registration.map(|r| r.created_by),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/admin/tenants", tag = "administration",
    responses((status = 200, body = Vec<AdminTenantView>), (status = 403, body = ErrorBody)))]
pub async fn admin_tenants(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<AdminTenantView>>> {
    require_operator(&principal)?;
    let tenants = state.tenancy.tenants().await.map_err(tenancy_error)?;
    Ok(Json(
        tenants.into_iter().map(AdminTenantView::from).collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantRequest {
    /// Lowercase letters, digits, '-' and '_'.
    pub id: String,
}

#[utoipa::path(post, path = "/api/v1/admin/tenants", tag = "administration",
    request_body = NewTenantRequest,
    responses((status = 201, body = AdminTenantView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(request): JsonBody<NewTenantRequest>,
) -> ApiResult<(StatusCode, Json<AdminTenantView>)> {
    require_operator(&principal)?;
    let id = parse_tenant(request.id.trim())?;
    let registration = state
        .tenancy
        .create(&id, &Actor::principal(&principal))
        .await
        .map_err(tenancy_error)?;
    // Served here at once; other replicas open it when someone first acts in it.
    state
        .tenants
        .open(&id)
        .map_err(|error| ApiError::internal(&error))?;
    tracing::info!(subject = %principal.subject, tenant = %id, "tenant created");
    Ok((
        StatusCode::CREATED,
        Json(AdminTenantView::from(TenantEntry {
            id,
            configured: false,
            registration: Some(registration),
        })),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct RemovedTenantView {
    pub id: String,
    pub memberships_removed: u64,
    pub api_keys_revoked: u64,
}

#[utoipa::path(delete, path = "/api/v1/admin/tenants/{id}", tag = "administration",
    params(("id" = String, Path, description = "The tenant id")),
    responses((status = 200, body = RemovedTenantView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_tenant(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<RemovedTenantView>> {
    require_operator(&principal)?;
    let id = parse_tenant(&id)?;
    let removed = state
        .tenancy
        .remove(&id, &Actor::principal(&principal))
        .await
        .map_err(tenancy_error)?;
    state.tenants.close(&id);
    tracing::info!(subject = %principal.subject, tenant = %id, "tenant removed");
    Ok(Json(RemovedTenantView {
        id: id.to_string(),
        memberships_removed: removed.memberships_removed,
        api_keys_revoked: removed.api_keys_revoked,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub tenant: String,
    /// `oidc:{tid}:{oid}` or `apikey:{key id}`.
    pub subject: String,
    pub role: Role,
    pub created_at: String,
    pub created_by: String,
}

impl From<Membership> for MemberView {
    fn from(membership: Membership) -> Self {
        Self {
            tenant: membership.tenant.to_string(),
            subject: membership.subject,
            role: membership.role,
            created_at: rfc3339(membership.created_at),
            created_by: membership.created_by,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/admin/tenants/{id}/members", tag = "administration",
    params(("id" = String, Path, description = "The tenant id")),
    responses((status = 200, body = Vec<MemberView>), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn members(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(roles): Extension<TenantRoles>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<MemberView>>> {
    let id = parse_tenant(&id)?;
    require_member_admin(&principal, &roles, &id)?;
    if !state.tenancy.exists(&id).await.map_err(tenancy_error)? {
        return Err(tenancy_error(TenancyError::UnknownTenant(id)));
    }
    let members = state.tenancy.members(&id).await.map_err(tenancy_error)?;
    Ok(Json(members.into_iter().map(MemberView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMemberRequest {
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct PutMemberView {
    #[serde(flatten)]
    pub member: MemberView,
    /// The role before this change; absent when the subject was not a member.
    pub previous_role: Option<Role>,
}

#[utoipa::path(put, path = "/api/v1/admin/tenants/{id}/members/{subject}", tag = "administration",
    params(("id" = String, Path, description = "The tenant id"),
        ("subject" = String, Path, description = "oidc:{tid}:{oid} or apikey:{key id}")),
    request_body = PutMemberRequest,
    responses((status = 200, body = PutMemberView, description = "The role changed"),
        (status = 201, body = PutMemberView, description = "The subject became a member"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn put_member(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(roles): Extension<TenantRoles>,
    Path((id, subject)): Path<(String, String)>,
    JsonBody(request): JsonBody<PutMemberRequest>,
) -> ApiResult<(StatusCode, Json<PutMemberView>)> {
    let id = parse_tenant(&id)?;
    require_member_admin(&principal, &roles, &id)?;
    let put = state
        .tenancy
        .put_member(&id, &subject, request.role, &Actor::principal(&principal))
        .await
        .map_err(tenancy_error)?;
    let status = if put.previous.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    tracing::info!(by = %principal.subject, tenant = %id, subject, role = %request.role, "membership changed");
    Ok((
        status,
        Json(PutMemberView {
            member: MemberView::from(put.membership),
            previous_role: put.previous,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/admin/tenants/{id}/members/{subject}", tag = "administration",
    params(("id" = String, Path, description = "The tenant id"),
        ("subject" = String, Path, description = "oidc:{tid}:{oid} or apikey:{key id}")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_member(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(roles): Extension<TenantRoles>,
    Path((id, subject)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = parse_tenant(&id)?;
    require_member_admin(&principal, &roles, &id)?;
    let removed = state
        .tenancy
        .remove_member(&id, &subject, &Actor::principal(&principal))
        .await
        .map_err(tenancy_error)?;
    if removed {
        tracing::info!(by = %principal.subject, tenant = %id, subject, "membership removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{subject} is not a member of tenant {id}"
        )))
    }
}
