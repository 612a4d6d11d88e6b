//! `/api/v1`: inventory, findings, waivers, policies and sync runs of the caller's tenant.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, response::IntoResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tollgate_domain::{InventoryItem, ResourceKind};
use tollgate_store::{Finding, FindingStatus, NewWaiver, SyncRecord, Waiver};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use crate::auth::{Permission, Principal, Role};
use crate::http::extract::{JsonBody, PathParams, QueryParams};
use crate::services::tenant::{FindingFilter, TenantContext, page_size};

pub(super) fn tenant_of(
    state: &AppState,
    principal: &Principal,
) -> ApiResult<std::sync::Arc<TenantContext>> {
    state.tenants.get(&principal.tenant).ok_or_else(|| {
        ApiError::forbidden(format!(
            "tenant {} is not served by this instance",
            principal.tenant
        ))
    })
}

pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// A cursor that is a row number (`next_cursor` of the previous page).
pub(super) fn numeric_cursor(raw: Option<&str>, what: &str) -> ApiResult<Option<i64>> {
    raw.map(|c| {
        c.parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("cursor must be a {what}")))
    })
    .transpose()
}

fn parse_kind(raw: &str) -> ApiResult<ResourceKind> {
    raw.parse().map_err(|_| {
        let known: Vec<&str> = ResourceKind::ALL.iter().map(|k| k.as_str()).collect();
        ApiError::not_found(format!(
            "no resource kind {raw:?}; kinds: {}",
            known.join(", ")
        ))
    })
}

/// Who is calling, and what they may do.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub subject: String,
    pub display_name: String,
    /// The tenant this request acts in (`X-Tollgate-Tenant`, else the home tenant).
    pub tenant: String,
    /// The role in that tenant.
    pub role: Role,
    pub permissions: Vec<Permission>,
    /// The tenant requests act in without `X-Tollgate-Tenant`.
    pub home_tenant: String,
    /// Every tenant the caller may act in, with its role there.
    pub tenants: Vec<TenantRole>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantRole {
    pub tenant: String,
    pub role: Role,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(
    Extension(principal): Extension<Principal>,
    Extension(roles): Extension<crate::auth::tenancy::TenantRoles>,
) -> Json<Me> {
    Json(Me {
        subject: principal.subject.clone(),
        display_name: principal.display_name.clone(),
        tenant: principal.tenant.to_string(),
        role: principal.role,
        permissions: Permission::ALL
            .into_iter()
            .filter(|p| principal.may(*p))
            .collect(),
        home_tenant: roles.home().to_string(),
        tenants: roles
            .iter()
            .map(|(tenant, role)| TenantRole {
                tenant: tenant.to_string(),
                role,
            })
            .collect(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct SyncRun {
    pub id: i64,
    /// full or incremental
    pub mode: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// running, ok, partial, incomplete, failed
    pub status: String,
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
}

impl From<SyncRecord> for SyncRun {
    fn from(record: SyncRecord) -> Self {
        Self {
            id: record.id.0,
            mode: record.mode.as_str().to_owned(),
            started_at: rfc3339(record.started_at),
            finished_at: record.finished_at.map(rfc3339),
            status: record.status,
            summary: record.summary,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InventorySummary {
    pub tenant: String,
    /// Objects per kind.
    pub counts: BTreeMap<String, u64>,
    pub last_sync: Option<SyncRun>,
}

#[utoipa::path(get, path = "/api/v1/inventory", tag = "inventory",
    responses((status = 200, body = InventorySummary), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn inventory(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<InventorySummary>> {
    let tenant = tenant_of(&state, &principal)?;
    let counts = tenant.counts().await?;
    Ok(Json(InventorySummary {
        tenant: tenant.id.to_string(),
        counts: counts
            .into_iter()
            .map(|(k, v)| (k.as_str().to_owned(), v))
            .collect(),
        last_sync: tenant.last_sync().await?.map(SyncRun::from),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Item {
    pub kind: String,
    pub key: String,
    pub scope: String,
    pub project: String,
    pub ado_id: String,
    pub name: Option<String>,
    pub revision: Option<String>,
    /// The object exactly as ADO sent it.
    #[schema(value_type = Object)]
    pub resource: Value,
}

impl From<InventoryItem> for Item {
    fn from(item: InventoryItem) -> Self {
        let resource = serde_json::from_str(&item.raw).unwrap_or(Value::String(item.raw));
        Self {
            kind: item.kind.as_str().to_owned(),
            key: item.key,
            scope: item.scope,
            project: item.project,
            ado_id: item.ado_id,
            name: item.name,
            revision: item.revision,
            resource,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ItemPage {
    pub items: Vec<Item>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ItemQuery {
    /// Only this project's objects (project id).
    pub project: Option<String>,
    pub cursor: Option<String>,
    /// 1-1000, default 100.
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/inventory/{kind}", tag = "inventory",
    params(("kind" = String, Path, description = "A resource kind, e.g. repositories"), ItemQuery),
    responses((status = 200, body = ItemPage), (status = 404, body = ErrorBody)))]
pub async fn inventory_items(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(kind): Path<String>,
    QueryParams(query): QueryParams<ItemQuery>,
) -> ApiResult<Json<ItemPage>> {
    let tenant = tenant_of(&state, &principal)?;
    let kind = parse_kind(&kind)?;
    let page = tenant
        .items(
            kind,
            query.project.as_deref(),
            query.cursor.as_deref(),
            page_size(query.limit),
        )
        .await?;
    Ok(Json(ItemPage {
        items: page.items.into_iter().map(Item::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// The stored key (`{scope}/{ado id}` for scoped kinds).
    pub key: String,
}

#[utoipa::path(get, path = "/api/v1/inventory/{kind}/item", tag = "inventory",
    params(("kind" = String, Path, description = "A resource kind"), KeyQuery),
    responses((status = 200, body = Item), (status = 404, body = ErrorBody)))]
pub async fn inventory_item(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(kind): Path<String>,
    QueryParams(query): QueryParams<KeyQuery>,
) -> ApiResult<Json<Item>> {
    let tenant = tenant_of(&state, &principal)?;
    let kind = parse_kind(&kind)?;
    let item = tenant
        .item(kind, &query.key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no {kind} with key {:?}", query.key)))?;
    Ok(Json(Item::from(item)))
}

#[derive(Serialize, ToSchema)]
pub struct FindingView {
    pub control: String,
    pub resource_kind: String,
    pub resource_key: String,
    pub resource_name: Option<String>,
    pub project: String,
    pub severity: String,
    /// deny, warn or dry-run
    pub action: String,
    /// open, fixed, waived, reopened
    pub status: String,
    pub message: String,
    /// The fields and values that decided it.
    #[schema(value_type = Object)]
    pub evidence: Value,
    pub first_seen: String,
    pub last_seen: String,
    pub fixed_at: Option<String>,
    pub waiver_id: Option<i64>,
}

impl From<Finding> for FindingView {
    fn from(f: Finding) -> Self {
        Self {
            control: f.control,
            resource_kind: f.resource_kind.as_str().to_owned(),
            resource_key: f.resource_key,
            resource_name: f.resource_name,
            project: f.project,
            severity: f.severity,
            action: f.action,
            status: f.status.as_str().to_owned(),
            message: f.message,
            evidence: f.evidence,
            first_seen: rfc3339(f.first_seen),
            last_seen: rfc3339(f.last_seen),
            fixed_at: f.fixed_at.map(rfc3339),
            waiver_id: f.waiver_id,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct FindingPage {
    pub items: Vec<FindingView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindingQuery {
    /// Comma-separated: open, reopened, waived, fixed (default: open,reopened).
    pub status: Option<String>,
    pub control: Option<String>,
    /// critical, high, medium or low
    pub severity: Option<String>,
    /// Project id
    pub project: Option<String>,
    pub kind: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/findings", tag = "findings",
    params(FindingQuery),
    responses((status = 200, body = FindingPage), (status = 400, body = ErrorBody)))]
pub async fn findings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<FindingQuery>,
) -> ApiResult<Json<FindingPage>> {
    let tenant = tenant_of(&state, &principal)?;
    let statuses = match query.status.as_deref() {
        None | Some("") => vec![FindingStatus::Open, FindingStatus::Reopened],
        Some("all") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                FindingStatus::parse(s.trim()).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown status {s:?}; use open, reopened, waived, fixed or all"
                    ))
                })
            })
            .collect::<ApiResult<_>>()?,
    };
    if let Some(severity) = query.severity.as_deref()
        && !matches!(severity, "critical" | "high" | "medium" | "low")
    {
        return Err(ApiError::bad_request(format!(
            "unknown severity {severity:?}; use critical, high, medium or low"
        )));
    }
    let resource_kind = query.kind.as_deref().map(parse_kind).transpose()?;
    let filter = FindingFilter {
        statuses,
        control: query.control,
        severity: query.severity,
        project: query.project,
        resource_kind,
    };
    let page = tenant
        .findings(&filter, query.cursor.as_deref(), page_size(query.limit))
        .await?;
    Ok(Json(FindingPage {
        items: page.items.into_iter().map(FindingView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct WaiverView {
    pub id: i64,
    pub control: String,
    /// A resource key, a key prefix ending in `*`, or `*`.
    pub scope: String,
    pub owner: String,
    pub reason: String,
    pub expires_at: String,
    pub created_at: String,
}

impl From<Waiver> for WaiverView {
    fn from(w: Waiver) -> Self {
        Self {
            id: w.id,
            control: w.control,
            scope: w.scope,
            owner: w.owner,
            reason: w.reason,
            expires_at: rfc3339(w.expires_at),
            created_at: rfc3339(w.created_at),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/waivers", tag = "findings",
    responses((status = 200, body = Vec<WaiverView>)))]
pub async fn waivers(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<WaiverView>>> {
    let tenant = tenant_of(&state, &principal)?;
    Ok(Json(
        tenant
            .waivers()
            .await?
            .into_iter()
            .map(WaiverView::from)
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWaiverRequest {
    pub control: String,
    pub scope: String,
    /// Defaults to the caller.
    pub owner: Option<String>,
    pub reason: String,
    /// RFC 3339, in the future.
    pub expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/waivers", tag = "findings",
    request_body = NewWaiverRequest,
    responses((status = 201, body = WaiverView), (status = 400, body = ErrorBody)))]
pub async fn add_waiver(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(request): JsonBody<NewWaiverRequest>,
) -> ApiResult<impl IntoResponse> {
    let tenant = tenant_of(&state, &principal)?;
    let expires_at = OffsetDateTime::parse(&request.expires_at, &Rfc3339).map_err(|_| {
        ApiError::bad_request("expires_at must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z")
    })?;
    let waiver = NewWaiver {
        control: request.control,
        scope: request.scope,
        owner: request
            .owner
            .unwrap_or_else(|| principal.display_name.clone()),
        reason: request.reason,
        expires_at,
    };
    let waiver = tenant
        .add_waiver(
            waiver,
            OffsetDateTime::now_utc(),
            &crate::services::audit_events::Actor::principal(&principal),
        )
        .await
        .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    tracing::info!(subject = %principal.subject, waiver = waiver.id, control = %waiver.control, "waiver added");
    Ok((StatusCode::CREATED, Json(WaiverView::from(waiver))))
}

#[utoipa::path(delete, path = "/api/v1/waivers/{id}", tag = "findings",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_waiver(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    PathParams(id): PathParams<i64>,
) -> ApiResult<StatusCode> {
    let tenant = tenant_of(&state, &principal)?;
    let actor = crate::services::audit_events::Actor::principal(&principal);
    if tenant.remove_waiver(id, &actor).await? {
        tracing::info!(subject = %principal.subject, waiver = id, "waiver removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no waiver {id}")))
    }
}

#[derive(Serialize, ToSchema)]
pub struct Control {
    pub id: String,
    pub title: String,
    pub description: String,
    /// critical, high, medium, low
    pub severity: String,
    pub kind: String,
    pub rationale: String,
    pub remediation: String,
    /// The ADO permission or PAT scope its data needs.
    pub permission: String,
    pub frameworks: Vec<String>,
    #[schema(value_type = Object)]
    pub parameters: BTreeMap<String, Value>,
    pub source: String,
}

impl From<&tollgate_policy::ControlMeta> for Control {
    fn from(c: &tollgate_policy::ControlMeta) -> Self {
        Self {
            id: c.id.clone(),
            title: c.title.clone(),
            description: c.description.clone(),
            severity: c.severity.as_str().to_owned(),
            kind: c.kind.as_str().to_owned(),
            rationale: c.rationale.clone(),
            remediation: c.remediation.clone(),
            permission: c.permission.clone(),
            frameworks: c.frameworks.clone(),
            parameters: c.parameters.clone(),
            source: c.source.clone(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/policies", tag = "policies",
    responses((status = 200, body = Vec<Control>)))]
pub async fn policies(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<Control>>> {
    let tenant = tenant_of(&state, &principal)?;
    Ok(Json(tenant.controls().iter().map(Control::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/policies/{id}", tag = "policies",
    params(("id" = String, Path, description = "A control id such as BP-02")),
    responses((status = 200, body = Control), (status = 404, body = ErrorBody)))]
pub async fn policy(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Control>> {
    let tenant = tenant_of(&state, &principal)?;
    tenant
        .policies
        .control(&id)
        .map(|c| Json(Control::from(c)))
        .ok_or_else(|| ApiError::not_found(format!("no control {id:?}")))
}

/// The policy configuration in effect: actions and parameters per scope.
#[derive(Serialize, ToSchema)]
pub struct PolicySettingsView {
    /// `[[policy.scoped]]` entries, organisation-wide shorthands included.
    #[schema(value_type = Vec<Object>)]
    pub scoped: Vec<Value>,
    /// Policy load problems (`file:line: reason`); the rest of the catalog runs.
    pub problems: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/policies/settings", tag = "policies",
    responses((status = 200, body = PolicySettingsView)))]
pub async fn policy_settings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<PolicySettingsView>> {
    let tenant = tenant_of(&state, &principal)?;
    let scoped = tenant
        .scan
        .scoped_settings()
        .iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect();
    Ok(Json(PolicySettingsView {
        scoped,
        problems: tenant.scan.load_problems().to_vec(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SyncPage {
    pub items: Vec<SyncRun>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SyncQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/syncs", tag = "syncs",
    params(SyncQuery),
    responses((status = 200, body = SyncPage)))]
pub async fn syncs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    QueryParams(query): QueryParams<SyncQuery>,
) -> ApiResult<Json<SyncPage>> {
    let tenant = tenant_of(&state, &principal)?;
    let before = numeric_cursor(query.cursor.as_deref(), "sync run id")?;
    let page = tenant.syncs(before, page_size(query.limit)).await?;
    Ok(Json(SyncPage {
        items: page.items.into_iter().map(SyncRun::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
