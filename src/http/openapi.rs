//! The OpenAPI 3.1 document, generated from the handlers' annotations, and the Swagger UI
//! bundled into the binary (no CDN).

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{
    api, api_admin, api_audit, api_backtest, api_deployments, api_events, api_gate, api_tenancy,
    error, gate, hooks, ops,
};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (Entra ID) or tg_ API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tollgate",
        description = "Governance, compliance and deployment gating for Azure DevOps.\n\nEvery /api/v1 route needs a bearer token (Entra ID) or an API key; the permission each needs is listed in docs/API.md.",
        license(name = "Apache-2.0")
    ),
    paths(
        ops::healthz, ops::readyz, ops::metrics,
        api::me, api::inventory, api::inventory_items, api::inventory_item,
        api::findings, api::waivers, api::add_waiver, api::remove_waiver,
        api::policies, api::policy, api::policy_settings, api::syncs,
        api_events::start_sync, api_events::start_scan,
        api_events::events, api_events::event, api_events::replay,
        api_events::jobs, api_events::job, api_events::retry_job,
        api_audit::records, api_audit::inclusion_proof, api_audit::checkpoints, api_audit::consistency_proof,
        api_admin::api_keys, api_admin::create_api_key, api_admin::revoke_api_key, api_admin::tenants,
        api_tenancy::admin_tenants, api_tenancy::create_tenant, api_tenancy::remove_tenant,
        api_tenancy::members, api_tenancy::put_member, api_tenancy::remove_member,
        api_gate::validate, api_gate::decisions, api_gate::approvals, api_gate::approval,
        api_gate::approve, api_gate::reject, api_gate::cancel,
        api_gate::capabilities, api_gate::set_capability, api_backtest::backtest,
        api_deployments::deploy, api_deployments::list, api_deployments::status,
        api_deployments::rollback,
        hooks::receive, gate::check,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail)),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = [])),
)]
pub struct ApiDoc;

/// The document as served (and as the snapshot test compares it).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// The Swagger UI at /api/docs, reading /api/openapi.json.
pub fn swagger_ui() -> axum::Router<super::AppState> {
    SwaggerUi::new("/api/docs")
        .config(utoipa_swagger_ui::Config::from("/api/openapi.json"))
        .into()
}
