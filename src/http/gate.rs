//! `POST /gate/ado/{tenant}`: ADO's *Invoke REST API* environment check.
//!
//! The check authenticates with the tenant's gate credential (basic auth, from the Generic
//! service connection behind the check) and sends the documented headers (PlanUrl, ProjectId,
//! HubName, PlanId, JobId, TimelineId, TaskInstanceId, AuthToken, BuildId) and a JSON body
//! naming the environment (docs/GATE.md has the body template).
//!
//! Two modes, chosen by the check's URL (`?mode=callback` or the default sync):
//! - sync ("ApiResponse"): allowed → 200 `{"status":"approved"}` (success criterion
//!   `eq(root['status'], 'approved')`); denied → 403 `{"status":"rejected","reasons":…}`;
//!   waiting for approval → 409 `{"status":"pending"}` (ADO asks again; the same check gets
//!   the approval's current state). A deny is never a 2xx, and an error is never an approve.
//! - callback: 200 `{"status":"received"}` at once; the decision is posted to the plan
//!   (TaskCompleted) by a queued job, once known.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tollgate_domain::{SecretString, TenantId};
use tollgate_store::gate::CallbackTarget;

use super::AppState;
use super::error::ApiError;
use super::hooks::same_secret;
use crate::http::extract::QueryParams;
use crate::services::gate::{CheckContext, DeploymentRequest, GateRefusal, Outcome};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GateQuery {
    /// `sync` (default) or `callback`, as the check's completion event is configured.
    pub mode: Option<String>,
}

/// The answer ADO's success criterion reads.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckAnswer {
    /// approved, rejected, pending, received or error
    pub status: &'static str,
    pub decision: Option<String>,
    pub reasons: Vec<String>,
    pub approval: Option<String>,
}

/// The largest id a check may name: the decision and its audit record hold ids as JSON
/// numbers, exact only up to 2^53 − 1 (ADO's run, pipeline and work item ids are 32-bit).
/// Refused here with a 400 rather than failing later, when the record is encoded, with a 500.
const LARGEST_ID: u64 = (1 << 53) - 1;

/// The check's body as a deployment. ADO expands macros such as `$(Build.BuildId)` into
/// strings, so ids are accepted as numbers or digit strings, and a macro ADO did not know stays
/// as written (`$(…)`) and counts as absent. Besides our template's names (docs/GATE.md) the
/// names of the variables themselves are understood (`environmentName`, `stageName`,
/// `buildId`, `definitionId`, `repositoryName`, `requestedForEmail`, `teamProject` …), so a body
/// written from ADO's variable list works as well. Other fields are ignored.
fn deployment_from_check_body(body: &Value) -> Result<DeploymentRequest, String> {
    let Some(fields) = body.as_object() else {
        return Err("expected a JSON object".to_owned());
    };
    let text = |names: &[&str]| -> Result<Option<String>, String> {
        for name in names {
            match fields.get(*name) {
                None | Some(Value::Null) => {}
                Some(Value::String(text)) => {
                    let text = text.trim();
                    if !text.is_empty() && !text.starts_with("$(") {
                        return Ok(Some(text.to_owned()));
                    }
                }
                Some(Value::Number(number)) => return Ok(Some(number.to_string())),
                Some(_) => return Err(format!("`{name}` must be a string")),
            }
        }
        Ok(None)
    };
    let id = |names: &[&str]| -> Result<Option<u64>, String> {
        for name in names {
            if let Some(digits) = text(&[name])? {
                return match digits.parse() {
                    Ok(id) if id <= LARGEST_ID => Ok(Some(id)),
                    Ok(_) => Err(format!("`{name}` {digits} is beyond 2^53 − 1")),
                    Err(_) => Err(format!("`{name}` must be a number, not {digits:?}")),
                };
            }
        }
        Ok(None)
    };
    let work_items = match fields.get("workItems") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                match item {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .filter(|id| *id <= LARGEST_ID)
                .ok_or_else(|| format!("`workItems` holds {item}, not a work item id"))
            })
            .collect::<Result<_, _>>()?,
        // `$(…)` variables can only give a string: "12, 34".
        Some(Value::String(list)) if list.trim().starts_with("$(") => Vec::new(),
        Some(Value::String(list)) => list
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.trim_start_matches('#')
                    .parse()
                    .ok()
                    .filter(|id| *id <= LARGEST_ID)
                    .ok_or_else(|| format!("`workItems` holds {part:?}, not a work item id"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`workItems` must be a list of work item ids".to_owned()),
    };
    Ok(DeploymentRequest {
        project: text(&["project", "teamProjectId", "teamProject"])?.unwrap_or_default(),
        environment: text(&["environment", "environmentName"])?.unwrap_or_default(),
        stage: text(&["stage", "stageName"])?,
        run_id: id(&["runId", "buildId"])?,
        pipeline_id: id(&["pipelineId", "definitionId"])?,
        pipeline: text(&["pipeline", "definitionName"])?,
        requested_for: text(&["requestedFor", "requestedForEmail"])?
            .filter(|who| who.contains('@'))
            .or(text(&["requestedForEmail", "requestedFor"])?),
        source_branch: text(&["sourceBranch"])?,
        source_version: text(&["sourceVersion"])?,
        repository: text(&["repository", "repositoryName"])?,
        work_items,
    })
}

fn authenticated(headers: &HeaderMap, expected: &(String, SecretString)) -> bool {
    let Some(decoded) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
    else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return false;
    };
    // Both compared, always, so timing says nothing about which one was wrong.
    let user = same_secret(&decoded[..colon], &expected.0);
    let password = same_secret(&decoded[colon + 1..], expected.1.expose());
    user & password
}

fn answer(status: StatusCode, body: CheckAnswer) -> Response {
    (status, Json(body)).into_response()
}

fn header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.starts_with("$("))
        .map(str::to_owned)
}

#[utoipa::path(post, path = "/gate/ado/{tenant}", tag = "gate",
    params(("tenant" = String, Path, description = "The tenant id"), GateQuery),
    request_body(content = Object, description = "The check body: environment, stage, runId, pipelineId … (docs/GATE.md)"),
    responses(
        (status = 200, body = CheckAnswer, description = "Approved (sync) or received (callback)"),
        (status = 400, body = CheckAnswer, description = "Headers or body incomplete"),
        (status = 401, body = super::error::ErrorBody),
        (status = 403, body = CheckAnswer, description = "Rejected, or PlanUrl is not the tenant's organisation"),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = CheckAnswer, description = "Waiting for approval (sync mode)"),
        (status = 503, body = CheckAnswer, description = "The gate could not decide; never an approve"),
    ),
    security(()))]
pub async fn check(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    QueryParams(query): QueryParams<GateQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(context) = TenantId::parse(&tenant)
        .ok()
        .and_then(|id| state.tenants.get(&id))
    else {
        return ApiError::not_found(format!("no tenant {tenant:?}")).into_response();
    };
    let authorised = context
        .gate_credential
        .as_ref()
        .is_some_and(|credential| authenticated(&headers, credential));
    if !authorised {
        let record = crate::services::audit_events::Record::new(
            crate::services::audit_events::AuditEvent::AuthenticationFailed,
            &crate::services::audit_events::Actor::anonymous(None),
            time::OffsetDateTime::now_utc(),
        )
        .failure()
        .reason("the gate credential is missing or wrong")
        .draft();
        if let Err(error) = state.audit.record(&context.id, vec![record]).await {
            tracing::error!(error = %format!("{error:#}"), "an audit record could not be written");
        }
        let mut error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the gate credential is missing or wrong",
        );
        error.challenge = Some("Basic realm=\"tollgate gate\"".to_owned());
        return error.into_response();
    }
    let callback = match query.mode.as_deref() {
        None | Some("sync") => false,
        Some("callback") => true,
        Some(other) => {
            return bad(format!("mode {other:?}: use sync or callback"));
        }
    };
    let required = [
        "PlanUrl",
        "ProjectId",
        "HubName",
        "PlanId",
        "JobId",
        "TaskInstanceId",
        "AuthToken",
    ];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| header_value(&headers, name).is_none())
        .collect();
    if !missing.is_empty() {
        return bad(format!(
            "the check must send the headers {} (docs/GATE.md)",
            missing.join(", ")
        ));
    }
    let value = |name: &str| header_value(&headers, name).unwrap_or_default();
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(error) => return bad(format!("the body is not JSON: {error}")),
        }
    };
    let mut request = match deployment_from_check_body(&body) {
        Ok(request) => request,
        Err(error) => return bad(format!("the body does not describe a deployment: {error}")),
    };
    if request.project.is_empty() {
        request.project = value("ProjectId");
    }
    if request.run_id.is_none() {
        request.run_id = header_value(&headers, "BuildId")
            .and_then(|id| id.parse().ok())
            .filter(|id| *id <= LARGEST_ID);
    }
    if request.environment.is_empty() {
        match request.stage.clone() {
            Some(stage) => request.environment = stage,
            None => return bad("the body must name the environment (or the stage)".to_owned()),
        }
    }
    let check = CheckContext {
        plan_url: value("PlanUrl"),
        target: CallbackTarget {
            project_id: value("ProjectId"),
            hub_name: value("HubName"),
            plan_id: value("PlanId"),
            job_id: value("JobId"),
            task_instance_id: value("TaskInstanceId"),
        },
        auth_token: SecretString::new(value("AuthToken")),
        callback,
    };
    match context.gate.check(check, request).await {
        Err(error) => {
            tracing::error!(tenant, error = %format!("{error:#}"), "the gate could not decide");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                CheckAnswer {
                    status: "error",
                    decision: None,
                    reasons: vec![
                        "the gate could not decide; the server log has the details".to_owned(),
                    ],
                    approval: None,
                },
            )
        }
        Ok(Err(refusal)) => {
            let status = match refusal {
                GateRefusal::ForeignPlan { .. } => StatusCode::FORBIDDEN,
                GateRefusal::NoOrganisation => StatusCode::SERVICE_UNAVAILABLE,
            };
            answer(
                status,
                CheckAnswer {
                    status: "rejected",
                    decision: None,
                    reasons: vec![refusal.to_string()],
                    approval: None,
                },
            )
        }
        Ok(Ok(decided)) => {
            let body = |status| CheckAnswer {
                status,
                decision: Some(decided.decision_id.clone()),
                reasons: decided.reasons(),
                approval: decided.approval.as_ref().map(|a| a.id.clone()),
            };
            if callback {
                return answer(StatusCode::OK, body("received"));
            }
            match decided.outcome() {
                Outcome::Allowed => answer(StatusCode::OK, body("approved")),
                Outcome::Denied => answer(StatusCode::FORBIDDEN, body("rejected")),
                Outcome::Pending => answer(StatusCode::CONFLICT, body("pending")),
            }
        }
    }
}

fn bad(message: String) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        CheckAnswer {
            status: "rejected",
            decision: None,
            reasons: vec![message],
            approval: None,
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test reports failure by panicking")]

    use serde_json::json;

    use super::deployment_from_check_body;

    #[test]
    fn our_template_as_ado_expands_it_is_a_deployment() {
        // ADO expands every macro into a string.
        let request = deployment_from_check_body(&json!({
            "environment": "production", "stage": "deploy_prod", "runId": "4711",
            "pipelineId": "12", "requestedFor": "ana@fabrikam.example",
            "sourceBranch": "refs/heads/main", "sourceVersion": "83efc98",
            "repository": "payments-api", "workItems": "101,\t#102\n"
        }))
        .unwrap();
        assert_eq!(request.environment, "production");
        assert_eq!(request.stage.as_deref(), Some("deploy_prod"));
        assert_eq!(request.run_id, Some(4711));
        assert_eq!(request.pipeline_id, Some(12));
        assert_eq!(request.work_items, vec![101, 102]);
        assert_eq!(request.repository.as_deref(), Some("payments-api"));
    }

    #[test]
    fn the_variable_names_work_too_and_the_email_wins_over_a_display_name() {
        let request = deployment_from_check_body(&json!({
            "environmentName": "staging", "stageName": "staging", "buildId": "9",
            "definitionId": 3, "requestedFor": "Ana Souza",
            "requestedForEmail": "ana@fabrikam.example", "repositoryName": "web",
            "teamProjectId": "1605632c-ca1b-4d22-b737-049612415eb7", "planId": "ignored"
        }))
        .unwrap();
        assert_eq!(request.environment, "staging");
        assert_eq!(request.run_id, Some(9));
        assert_eq!(request.pipeline_id, Some(3));
        assert_eq!(
            request.requested_for.as_deref(),
            Some("ana@fabrikam.example")
        );
        assert_eq!(request.project, "1605632c-ca1b-4d22-b737-049612415eb7");
    }

    #[test]
    fn an_unexpanded_macro_counts_as_absent() {
        let request = deployment_from_check_body(&json!({
            "environment": "$(Environment.Name)", "stage": "production",
            "runId": "$(Build.BuildId)", "workItems": "$(WorkItems)"
        }))
        .unwrap();
        assert_eq!(request.environment, "");
        assert_eq!(request.run_id, None);
        assert!(request.work_items.is_empty());
    }

    #[test]
    fn wrong_types_are_named() {
        for (body, field) in [
            (json!({"runId": "forty-two"}), "runId"),
            (json!({"environment": {"name": "x"}}), "environment"),
            (json!({"workItems": [true]}), "workItems"),
            (json!({"workItems": "12,x"}), "workItems"),
            (json!({"buildId": "x"}), "buildId"),
            (json!({"runId": "9007199254740992"}), "runId"),
            (
                json!({"pipelineId": 9_007_199_254_740_992_u64}),
                "pipelineId",
            ),
            (
                json!({"workItems": [9_007_199_254_740_992_u64]}),
                "workItems",
            ),
            (json!({"workItems": "12, 9007199254740992"}), "workItems"),
        ] {
            let error = deployment_from_check_body(&body).unwrap_err();
            assert!(error.contains(field), "{error}");
        }
        assert!(deployment_from_check_body(&json!([1])).is_err());
        let largest = deployment_from_check_body(&json!({"runId": "9007199254740991"})).unwrap();
        assert_eq!(largest.run_id, Some(9_007_199_254_740_991));
    }
}
