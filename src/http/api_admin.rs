//! `/api/v1/api-keys` and `/api/v1/tenants`: administration (permission `config.manage`).

use axum::Json;
use axum::extract::{Path, State};
use axum::{Extension, http::StatusCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::AppState;
use super::api::rfc3339;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::auth::api_keys::{ApiKeyError, ApiKeyRecord};
use crate::auth::{Principal, Role};
use crate::http::extract::JsonBody;

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    /// The public part of the key (`tg_{key_id}_…`).
    pub key_id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
    pub active: bool,
}

impl ApiKeyView {
    fn new(record: ApiKeyRecord, now: OffsetDateTime) -> Self {
        Self {
            active: record.is_active(now),
            key_id: record.key_id,
            name: record.name,
            role: record.role,
            created_at: rfc3339(record.created_at),
            created_by: record.created_by,
            expires_at: record.expires_at.map(rfc3339),
            revoked_at: record.revoked_at.map(rfc3339),
            last_used_at: record.last_used_at.map(rfc3339),
        }
    }
}

fn key_error(error: ApiKeyError) -> ApiError {
    match error {
        ApiKeyError::InvalidName(_) | ApiKeyError::ExpiryNotInFuture(_) => {
            ApiError::bad_request(error.to_string())
        }
        other => ApiError::internal(&anyhow::Error::new(other)),
    }
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "administration",
    responses((status = 200, body = Vec<ApiKeyView>), (status = 403, body = ErrorBody)))]
pub async fn api_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<ApiKeyView>>> {
    let now = OffsetDateTime::now_utc();
    let keys = state
        .api_keys
        .list(&principal.tenant)
        .await
        .map_err(key_error)?;
    Ok(Json(
        keys.into_iter().map(|k| ApiKeyView::new(k, now)).collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKeyRequest {
    /// What the key is for, e.g. `ci-pipeline`.
    pub name: String,
    pub role: Role,
    /// RFC 3339; absent: the key does not expire (not recommended).
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NewApiKey {
    /// The full key. It is shown this once and cannot be recovered.
    pub key: String,
    #[serde(flatten)]
    pub record: ApiKeyView,
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "administration",
    request_body = NewApiKeyRequest,
    responses((status = 201, body = NewApiKey), (status = 400, body = ErrorBody)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(request): JsonBody<NewApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<NewApiKey>)> {
    let now = OffsetDateTime::now_utc();
    if request.role > principal.role {
        return Err(ApiError::forbidden(format!(
            "a {} cannot create a key with the higher role {}",
            principal.role, request.role
        )));
    }
    let expires_at = request
        .expires_at
        .as_deref()
        .map(|raw| {
            OffsetDateTime::parse(raw, &Rfc3339)
                .map_err(|_| ApiError::bad_request("expires_at must be an RFC 3339 time"))
        })
        .transpose()?;
    let (record, key) = state
        .api_keys
        .create(
            &principal.tenant,
            &request.name,
            request.role,
            expires_at,
            &principal.subject,
            now,
        )
        .await
        .map_err(key_error)?;
    tracing::info!(subject = %principal.subject, key_id = %record.key_id, role = %record.role, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(NewApiKey {
            key: key.expose().to_owned(),
            record: ApiKeyView::new(record, now),
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "administration",
    params(("id" = String, Path, description = "The key id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let revoked = state
        .api_keys
        .revoke(
            &principal.tenant,
            &id,
            OffsetDateTime::now_utc(),
            &crate::services::audit_events::Actor::principal(&principal),
        )
        .await
        .map_err(key_error)?;
    if revoked {
        tracing::info!(subject = %principal.subject, key_id = %id, "API key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no API key {id}")))
    }
}

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub id: String,
    pub org_url: Option<String>,
    /// Whether service-hook deliveries can authenticate (the secret itself is never shown).
    pub webhook_secret_configured: bool,
    /// Where ADO's service hook posts.
    pub webhook_path: String,
}

/// The tenants this instance serves that the caller may act in (every one for an admin of the
/// operator tenant): another tenant's organisation is that tenant's business.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "administration",
    responses((status = 200, body = Vec<TenantView>)))]
pub async fn tenants(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(roles): Extension<crate::auth::tenancy::TenantRoles>,
) -> Json<Vec<TenantView>> {
    let operator = principal.tenant == crate::auth::tenancy::operator_tenant()
        && principal.may(crate::auth::Permission::ConfigManage);
    Json(
        state
            .tenants
            .all()
            .into_iter()
            .filter(|tenant| operator || roles.role_in(&tenant.id).is_some())
            .map(|tenant| TenantView {
                id: tenant.id.to_string(),
                org_url: tenant.org_url.clone(),
                webhook_secret_configured: tenant.webhook.is_some(),
                webhook_path: format!("/hooks/ado/{}", tenant.id),
            })
            .collect(),
    )
}
