//! The simulator's HTTP surface: ADO-shaped list endpoints (routed from the shared endpoint
//! table), WIQL and work-item batches, an Entra-style token endpoint, and `/_sim/*` controls.

// Handlers return early with a finished `Response` for ADO-style errors; boxing them would
// only add noise to a test server.
#![allow(clippy::result_large_err)]

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tollgate_domain::ResourceKind;
use tollgate_domain::ado_api::{
    self, Paging, WIQL_MAX_RESULTS, WIQL_PATH, WORK_ITEMS_BATCH_MAX, WORK_ITEMS_BATCH_PATH,
    endpoint_for,
};
use tollgate_domain::kind::ScopeLevel;

use crate::SimConfig;
use crate::hooks::{self, Hooks};
use crate::model::Org;
use crate::mutate::MutateRequest;
use crate::rng::SplitMix64;
use crate::runs::{self, Runs};

/// Faults that can be changed while the simulator runs (`POST /_sim/faults`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added to every ADO request.
    pub latency_ms: u64,
    /// Share of ADO requests answered 503 (or 500, every third one).
    pub error_rate: f64,
    /// Share of successful ADO responses whose body is cut in half.
    pub truncate_rate: f64,
    /// Answer every ADO request with 429 for this long from now (a throttling storm).
    pub throttle_for_ms: u64,
}

#[derive(Default, Serialize)]
struct CallCounts {
    total: u64,
    by_endpoint: BTreeMap<String, u64>,
    injected_errors: u64,
    injected_truncations: u64,
    throttled: u64,
    unauthorized: u64,
}

pub(crate) struct Shared {
    config: SimConfig,
    org: RwLock<Org>,
    faults: Mutex<Faults>,
    throttle_until: Mutex<Option<Instant>>,
    calls: Mutex<CallCounts>,
    fault_rng: Mutex<SplitMix64>,
    tstu_window: Mutex<VecDeque<Instant>>,
    issued_tokens: Mutex<HashSet<String>>,
    token_counter: AtomicU64,
    pub(crate) hooks: Arc<Hooks>,
    pub(crate) runs: Arc<Runs>,
    /// Where the simulator listens (`http://host:port`), once it does.
    base_url: OnceLock<String>,
}

type AppState = Arc<Shared>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Shared {
    pub(crate) fn new(config: SimConfig, org: Org) -> Self {
        let faults = config.faults.clone();
        let throttle_until = (faults.throttle_for_ms > 0)
            .then(|| Instant::now() + Duration::from_millis(faults.throttle_for_ms));
        Self {
            fault_rng: Mutex::new(SplitMix64::new(config.seed ^ 0x5eed_f417)),
            faults: Mutex::new(faults),
            throttle_until: Mutex::new(throttle_until),
            calls: Mutex::new(CallCounts::default()),
            tstu_window: Mutex::new(VecDeque::new()),
            issued_tokens: Mutex::new(HashSet::new()),
            token_counter: AtomicU64::new(0),
            hooks: Arc::new(Hooks::new(&org.name, config.hooks.clone())),
            runs: Arc::new(Runs::new(config.runs.clone())),
            base_url: OnceLock::new(),
            org: RwLock::new(org),
            config,
        }
    }

    pub(crate) fn set_base_url(&self, base_url: String) {
        // The first listener is the one checks are told about.
        let _ = self.base_url.set(base_url);
    }

    /// The organisation's collection URI as checks get it (`PlanUrl`, with a trailing slash):
    /// where the simulator listens, or, for a router served by someone else, the host the
    /// request came to.
    pub(crate) fn collection_uri(&self, headers: &HeaderMap) -> String {
        let base = self.base_url.get().cloned().unwrap_or_else(|| {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            format!("http://{host}")
        });
        format!("{base}/{}/", self.read_org().name)
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    pub(crate) fn read_org(&self) -> std::sync::RwLockReadGuard<'_, Org> {
        self.org
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn write_org(&self) -> std::sync::RwLockWriteGuard<'_, Org> {
        self.org
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn roll(&self) -> f64 {
        lock(&self.fault_rng).next_f64()
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        if let Some(token) = value.strip_prefix("Bearer ") {
            // Tokens from the token endpoint, and the AuthTokens handed to checks (job tokens
            // in ADO, which may read the organisation's APIs).
            return lock(&self.issued_tokens).contains(token) || self.runs.token_is_live(token);
        }
        let Some(encoded) = value.strip_prefix("Basic ") else {
            return false;
        };
        use base64::Engine as _;
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(text) = String::from_utf8(decoded) else {
            return false;
        };
        let pat = text.split_once(':').map(|(_, pat)| pat).unwrap_or(&text);
        match &self.config.pat {
            Some(expected) => pat == expected,
            None => !pat.is_empty(),
        }
    }

    /// Count one request against the TSTU-style budget. Returns the rate-limit headers to send,
    /// or the Retry-After when the budget is spent.
    fn consume_budget(&self) -> Result<Vec<(&'static str, String)>, Duration> {
        let budget = self.config.tstu_budget;
        if budget == 0 {
            return Ok(Vec::new());
        }
        let window = self.config.tstu_window;
        let now = Instant::now();
        let mut requests = lock(&self.tstu_window);
        while requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            requests.pop_front();
        }
        let reset_in = requests
            .front()
            .map(|oldest| window.saturating_sub(now.duration_since(*oldest)))
            .unwrap_or(window);
        if requests.len() >= budget as usize {
            return Err(reset_in);
        }
        requests.push_back(now);
        let reset_epoch = SystemTime::now() + reset_in;
        let reset_epoch = reset_epoch
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(vec![
            ("x-ratelimit-resource", "Core".to_owned()),
            ("x-ratelimit-limit", budget.to_string()),
            (
                "x-ratelimit-remaining",
                (budget as usize - requests.len()).to_string(),
            ),
            ("x-ratelimit-reset", reset_epoch.to_string()),
        ])
    }
}

/// ADO's error envelope.
pub(crate) fn ado_error(status: StatusCode, type_key: &str, message: &str) -> Response {
    let body = json!({"$id": "1", "innerException": null, "message": message,
                      "typeName": format!("Microsoft.VisualStudio.Services.WebApi.{type_key}, Microsoft.VisualStudio.Services.WebApi"),
                      "typeKey": type_key, "errorCode": 0, "eventId": 3000});
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn too_many_requests(retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = ado_error(
        StatusCode::TOO_MANY_REQUESTS,
        "RequestBlockedException",
        "TF400733: The request has been canceled: Request was blocked due to exceeding usage of resource 'Core' in namespace 'User'.",
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    headers.insert("x-ratelimit-resource", HeaderValue::from_static("Core"));
    headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
    response
}

/// Everything an ADO request goes through before its handler: counting, authentication,
/// throttling, the TSTU budget, latency and injected faults.
async fn ado_gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    gate(state, request, next, true).await
}

/// The same for Post Event, which authenticates the check's AuthToken itself (so it can tell a
/// wrong token from a wrong plan, and record both in the run).
async fn callback_gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    gate(state, request, next, false).await
}

async fn gate(state: AppState, request: Request, next: Next, authenticate: bool) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let endpoint = format!("{} {route}", request.method());
    {
        let mut calls = lock(&state.calls);
        calls.total += 1;
        *calls.by_endpoint.entry(endpoint).or_default() += 1;
    }
    let faults = lock(&state.faults).clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if authenticate && !state.authorized(request.headers()) {
        lock(&state.calls).unauthorized += 1;
        return ado_error(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedRequestException",
            "TF400813: The user is not authorized to access this resource.",
        );
    }
    let throttled_for =
        lock(&state.throttle_until).and_then(|until| until.checked_duration_since(Instant::now()));
    if let Some(remaining) = throttled_for {
        lock(&state.calls).throttled += 1;
        return too_many_requests(remaining);
    }
    let rate_headers = match state.consume_budget() {
        Ok(headers) => headers,
        Err(retry_after) => {
            lock(&state.calls).throttled += 1;
            return too_many_requests(retry_after);
        }
    };
    if faults.error_rate > 0.0 && state.roll() < faults.error_rate {
        let mut calls = lock(&state.calls);
        calls.injected_errors += 1;
        let status = if calls.injected_errors.is_multiple_of(3) {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        return ado_error(
            status,
            "ServiceUnavailableException",
            "The service is temporarily unavailable (injected by the simulator).",
        );
    }
    let mut response = next.run(request).await;
    for (name, value) in rate_headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    if response.status().is_success()
        && faults.truncate_rate > 0.0
        && state.roll() < faults.truncate_rate
    {
        lock(&state.calls).injected_truncations += 1;
        let (mut parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let cut = bytes.slice(..bytes.len() / 2);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(cut.len()));
        return Response::from_parts(parts, Body::from(cut));
    }
    response
}

pub(crate) fn json_response(body: String, extra: Vec<(&'static str, String)>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response();
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn list_body<S: AsRef<str>>(objects: impl Iterator<Item = S>) -> String {
    let mut body = String::from("{\"count\":");
    let values: Vec<S> = objects.collect();
    body.push_str(&values.len().to_string());
    body.push_str(",\"value\":[");
    let values: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
    body.push_str(&values.join(","));
    body.push_str("]}");
    body
}

fn parse_time_ms(raw: &str) -> Option<i64> {
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub(crate) fn check_api_version(query: &HashMap<String, String>) -> Result<(), Response> {
    if query.get("api-version").is_some_and(|v| !v.is_empty()) {
        return Ok(());
    }
    Err(ado_error(
        StatusCode::BAD_REQUEST,
        "VssVersionNotSpecifiedException",
        "No api-version was supplied for the request. You must specify an api-version.",
    ))
}

/// Resolve `{organization}` and `{project}` path parameters, ADO style (id or name).
pub(crate) fn resolve_project(
    org: &Org,
    params: &HashMap<String, String>,
) -> Result<Option<String>, Response> {
    if params.get("organization").map(String::as_str) != Some(org.name.as_str()) {
        return Err(ado_error(
            StatusCode::NOT_FOUND,
            "AccountNotFoundException",
            "TF400898: The organization was not found.",
        ));
    }
    match params.get("project") {
        None => Ok(None),
        Some(project) => org.project(project).map(|p| Some(p.id.clone())).ok_or_else(|| {
            ado_error(
                StatusCode::NOT_FOUND,
                "ProjectDoesNotExistWithNameException",
                &format!("TF200016: The following project does not exist: {project}. Verify that the name of the project is correct and that the project exists on the specified Azure DevOps Server."),
            )
        }),
    }
}

async fn list(
    State(state): State<AppState>,
    kind: ResourceKind,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = check_api_version(&query) {
        return response;
    }
    if state.config.forbidden.contains(&kind) {
        return ado_error(
            StatusCode::FORBIDDEN,
            "UnauthorizedAccessException",
            &format!("TF400813: Access denied: the identity lacks permission to read {kind}."),
        );
    }
    let endpoint = endpoint_for(kind);
    let org = state.read_org();
    let project = match resolve_project(&org, &params) {
        Ok(project) => project,
        Err(response) => return response,
    };
    let scope = match kind.scope_level() {
        ScopeLevel::Organization => String::new(),
        ScopeLevel::Project => project.clone().unwrap_or_default(),
        ScopeLevel::Parent(parent_kind) => {
            let parent = params.get("parent").cloned().unwrap_or_default();
            if org
                .collection(parent_kind)
                .get(project.as_deref().unwrap_or_default(), &parent)
                .is_none()
            {
                return ado_error(
                    StatusCode::NOT_FOUND,
                    "NotFoundException",
                    &format!(
                        "TF401019: The {parent_kind} with identifier {parent} does not exist or you do not have permissions for the operation you are attempting."
                    ),
                );
            }
            parent
        }
    };
    let since = match endpoint.delta {
        ado_api::Delta::SinceParam(name) => match query.get(name) {
            Some(raw) => match parse_time_ms(raw) {
                Some(ms) => Some(ms),
                None => {
                    return ado_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgumentValueException",
                        &format!("{name}: not a valid date-time: {raw}"),
                    );
                }
            },
            None => None,
        },
        _ => None,
    };
    let page_size = query
        .get(endpoint.top_param)
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(endpoint.page_size as usize)
        .clamp(1, endpoint.page_size.max(1) as usize);
    let token = query.get("continuationToken").cloned();
    let expand = query.get("$expand").cloned().unwrap_or_default();
    let shown = |json| as_listed(kind, &expand, json);
    let collection = org.collection(kind);
    let matching = |from: Option<&str>| {
        collection
            .scope(&scope, from)
            .filter(move |(_, o)| since.is_none_or(|s| o.modified_ms >= s))
    };

    match endpoint.paging {
        Paging::Single => json_response(
            list_body(matching(None).map(|(_, o)| shown(&o.json))),
            Vec::new(),
        ),
        Paging::HeaderToken => {
            let from = token.map(|t| format!("{scope}\u{1}{t}"));
            let mut page: Vec<(&String, &crate::model::SimObject)> =
                matching(from.as_deref()).take(page_size + 1).collect();
            let next = (page.len() > page_size).then(|| page.pop()).flatten();
            let headers = next
                .map(|(key, _)| {
                    vec![(
                        "x-ms-continuationtoken",
                        key.split_once('\u{1}')
                            .map(|(_, t)| t.to_owned())
                            .unwrap_or_default(),
                    )]
                })
                .unwrap_or_default();
            json_response(list_body(page.iter().map(|(_, o)| shown(&o.json))), headers)
        }
        Paging::TopSkip => {
            let skip = query
                .get("$skip")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            json_response(
                list_body(
                    matching(None)
                        .skip(skip)
                        .take(page_size)
                        .map(|(_, o)| shown(&o.json)),
                ),
                Vec::new(),
            )
        }
        Paging::IdSeek => {
            let from_id = token.and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
            let page = matching(None)
                .filter(|(_, o)| o.ado_id.parse::<u64>().is_ok_and(|id| id >= from_id))
                .take(page_size);
            json_response(list_body(page.map(|(_, o)| shown(&o.json))), Vec::new())
        }
        Paging::BodyToken => {
            let start = token.and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
            let entries: Vec<&str> = matching(None)
                .skip(start)
                .take(page_size + 1)
                .map(|(_, o)| o.json.as_str())
                .collect();
            let has_more = entries.len() > page_size;
            let shown = &entries[..entries.len().min(page_size)];
            let body = format!(
                "{{\"decoratedAuditLogEntries\":[{}],\"continuationToken\":{},\"hasMore\":{has_more}}}",
                shown.join(","),
                if has_more {
                    format!("\"{}\"", start + page_size)
                } else {
                    "null".to_owned()
                }
            );
            json_response(body, Vec::new())
        }
        Paging::WiqlBatch => ado_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "NotSupportedException",
            "use WIQL",
        ),
    }
}

/// An object as its list shows it: whole, or the summary of kinds whose list returns
/// summaries (the endpoint has a detail path).
fn as_listed<'a>(kind: ResourceKind, expand: &str, json: &'a str) -> Cow<'a, str> {
    match kind {
        ResourceKind::ReleaseDefinitions => Cow::Owned(crate::release::listed(json, expand)),
        _ => Cow::Borrowed(json),
    }
}

/// One object read by id, for kinds whose list returns summaries (the endpoint's detail path).
async fn detail(
    State(state): State<AppState>,
    kind: ResourceKind,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(response) = check_api_version(&query) {
        return response;
    }
    if state.config.forbidden.contains(&kind) {
        return ado_error(
            StatusCode::FORBIDDEN,
            "UnauthorizedAccessException",
            &format!("TF400813: Access denied: the identity lacks permission to read {kind}."),
        );
    }
    let org = state.read_org();
    let project = match resolve_project(&org, &params) {
        Ok(project) => project.unwrap_or_default(),
        Err(response) => return response,
    };
    let id = params.get("id").cloned().unwrap_or_default();
    match org.collection(kind).get(&project, &id) {
        Some(object) => json_response(object.json.clone(), Vec::new()),
        None => ado_error(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            &format!(
                "The {kind} object with id {id} does not exist or you do not have permissions to read it."
            ),
        ),
    }
}

#[derive(Deserialize)]
struct WiqlRequest {
    query: String,
}

/// A deliberately small WIQL: the id window and optional changed-date filter tollgate sends.
async fn wiql(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    if let Err(response) = check_api_version(&query) {
        return response;
    }
    if state.config.forbidden.contains(&ResourceKind::WorkItems) {
        return ado_error(
            StatusCode::FORBIDDEN,
            "UnauthorizedAccessException",
            "TF400813: Access denied: the identity lacks permission to read work items.",
        );
    }
    let Ok(request) = serde_json::from_str::<WiqlRequest>(&body) else {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgumentValueException",
            "The request body must be {\"query\": \"…\"}.",
        );
    };
    let org = state.read_org();
    let project = match resolve_project(&org, &params) {
        Ok(project) => project.unwrap_or_default(),
        Err(response) => return response,
    };
    let after_id = capture_after(&request.query, "[System.Id] >")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let changed_since = capture_after(&request.query, "[System.ChangedDate] >=")
        .and_then(|v| {
            v.trim()
                .strip_prefix('\'')
                .and_then(|v| v.split('\'').next())
                .map(str::to_owned)
        })
        .and_then(|v| parse_time_ms(&v));
    let ids: Vec<u64> = org
        .collection(ResourceKind::WorkItems)
        .scope(&project, None)
        .filter(|(_, o)| changed_since.is_none_or(|s| o.modified_ms >= s))
        .filter_map(|(_, o)| o.ado_id.parse::<u64>().ok())
        .filter(|id| *id > after_id)
        .collect();
    let top = query.get("$top").and_then(|v| v.parse::<usize>().ok());
    if top.is_none() && ids.len() > WIQL_MAX_RESULTS as usize {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "LegacyQueryException",
            "VS402337: The number of work items returned exceeds the size limit of 20000. Change the query to return fewer items.",
        );
    }
    let shown = ids
        .iter()
        .take(top.unwrap_or(usize::MAX).min(WIQL_MAX_RESULTS as usize));
    let work_items: Vec<serde_json::Value> = shown
        .map(|id| json!({"id": id, "url": format!("https://dev.azure.com/{}/_apis/wit/workItems/{id}", org.name)}))
        .collect();
    let body = json!({"queryType": "flat", "queryResultType": "workItem", "asOf": crate::model::iso(now_ms()),
                      "columns": [{"referenceName": "System.Id", "name": "ID"}], "workItems": work_items});
    json_response(body.to_string(), Vec::new())
}

fn capture_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let start = text.find(marker)? + marker.len();
    let rest = text.get(start..)?;
    let end = rest
        .find(" AND ")
        .or_else(|| rest.find(" ORDER BY"))
        .unwrap_or(rest.len());
    rest.get(..end)
}

#[derive(Deserialize)]
struct BatchRequest {
    ids: Vec<u64>,
    #[serde(rename = "errorPolicy", default)]
    error_policy: Option<String>,
}

async fn work_items_batch(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> Response {
    if let Err(response) = check_api_version(&query) {
        return response;
    }
    let Ok(request) = serde_json::from_str::<BatchRequest>(&body) else {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgumentValueException",
            "The request body must name ids.",
        );
    };
    if request.ids.len() > WORK_ITEMS_BATCH_MAX as usize {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "VssServiceException",
            &format!(
                "VS403474: You requested {} work items which exceeds the limit of 200",
                request.ids.len()
            ),
        );
    }
    let org = state.read_org();
    let project = match resolve_project(&org, &params) {
        Ok(project) => project.unwrap_or_default(),
        Err(response) => return response,
    };
    let omit = request
        .error_policy
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("omit"));
    let collection = org.collection(ResourceKind::WorkItems);
    let mut values = Vec::with_capacity(request.ids.len());
    for id in &request.ids {
        match collection.get(&project, &id.to_string()) {
            Some(object) => values.push(object.json.as_str()),
            None if omit => values.push("null"),
            None => {
                return ado_error(
                    StatusCode::NOT_FOUND,
                    "WorkItemUnauthorizedAccessException",
                    &format!(
                        "TF401232: Work item {id} does not exist, or you do not have permissions to read it."
                    ),
                );
            }
        }
    }
    json_response(list_body(values.into_iter()), Vec::new())
}

#[derive(Deserialize)]
struct TokenForm {
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// An Entra-style client-credentials endpoint, so the service-principal path runs for real.
async fn token(State(state): State<AppState>, body: String) -> Response {
    let form: TokenForm = match serde_urlencoded_lite(&body) {
        Some(form) => form,
        None => return (StatusCode::BAD_REQUEST, "malformed form").into_response(),
    };
    let secret_ok = match &state.config.client_secret {
        Some(expected) => form.client_secret.as_deref() == Some(expected.as_str()),
        None => form.client_secret.is_some_and(|s| !s.is_empty()),
    };
    if form.client_id.is_none_or(|id| id.is_empty()) || !secret_ok {
        let body = json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."});
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let token = format!(
        "simtoken-{}",
        state.token_counter.fetch_add(1, Ordering::Relaxed)
    );
    lock(&state.issued_tokens).insert(token.clone());
    let body = json!({"token_type": "Bearer", "expires_in": state.config.token_lifetime_secs, "access_token": token});
    json_response(body.to_string(), Vec::new())
}

/// Parse an `application/x-www-form-urlencoded` body into the two fields we read.
fn serde_urlencoded_lite(body: &str) -> Option<TokenForm> {
    let mut form = TokenForm {
        client_id: None,
        client_secret: None,
    };
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        let value = percent_decode(&value.replace('+', " "))?;
        match key {
            "client_id" => form.client_id = Some(value),
            "client_secret" => form.client_secret = Some(value),
            _ => {}
        }
    }
    Some(form)
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = raw.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

async fn manifest(State(state): State<AppState>) -> Response {
    let org = state.read_org();
    let counts: BTreeMap<&str, usize> = org
        .counts()
        .into_iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let body = json!({"organization": org.name, "seed": state.config.seed, "profile": org.profile,
                      "counts": counts, "planted": org.planted});
    json_response(body.to_string(), Vec::new())
}

async fn calls(State(state): State<AppState>) -> Response {
    let body = serde_json::to_string(&*lock(&state.calls)).unwrap_or_default();
    json_response(body, Vec::new())
}

async fn reset_calls(State(state): State<AppState>) -> StatusCode {
    *lock(&state.calls) = CallCounts::default();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(state): State<AppState>) -> Response {
    json_response(
        serde_json::to_string(&*lock(&state.faults)).unwrap_or_default(),
        Vec::new(),
    )
}

async fn set_faults(State(state): State<AppState>, body: String) -> Response {
    let faults: Faults = match serde_json::from_str(&body) {
        Ok(faults) => faults,
        Err(error) => {
            return (StatusCode::BAD_REQUEST, format!("invalid faults: {error}")).into_response();
        }
    };
    let invalid_rate = |r: f64| !(0.0..=1.0).contains(&r);
    if invalid_rate(faults.error_rate) || invalid_rate(faults.truncate_rate) {
        return (StatusCode::BAD_REQUEST, "rates must be between 0 and 1").into_response();
    }
    *lock(&state.throttle_until) = (faults.throttle_for_ms > 0)
        .then(|| Instant::now() + Duration::from_millis(faults.throttle_for_ms));
    *lock(&state.faults) = faults;
    get_faults(State(state)).await
}

async fn mutate(State(state): State<AppState>, body: String) -> Response {
    let request: MutateRequest = match serde_json::from_str(&body) {
        Ok(request) => request,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid mutation request: {error}"),
            )
                .into_response();
        }
    };
    let mutation = state.write_org().mutate(&request, now_ms());
    let mutation = match mutation {
        Ok(mutation) => mutation,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("invalid mutation request: {error}"),
            )
                .into_response();
        }
    };
    // Deliveries run in the background: the change is made when this answers, not delivered.
    let events: Vec<serde_json::Value> = state
        .hooks
        .publish(mutation.events)
        .into_iter()
        .map(|(id, event_type)| json!({"id": id, "event_type": event_type}))
        .collect();
    json_response(
        json!({"applied": mutation.applied, "events": events}).to_string(),
        Vec::new(),
    )
}

pub(crate) fn router(state: AppState) -> Router {
    let mut ado = Router::new();
    for kind in ResourceKind::ALL {
        let endpoint = endpoint_for(*kind);
        if endpoint.paging == Paging::WiqlBatch {
            continue;
        }
        let kind = *kind;
        ado = ado.route(
            endpoint.path,
            get(move |state, path, query| list(state, kind, path, query)),
        );
        if let Some(detail_path) = endpoint.detail_path {
            ado = ado.route(
                detail_path,
                get(move |state, path, query| detail(state, kind, path, query)),
            );
        }
    }
    let ado = ado
        .route(WIQL_PATH, post(wiql))
        .route(WORK_ITEMS_BATCH_PATH, post(work_items_batch))
        .route(
            "/{organization}/_apis/hooks/subscriptions",
            get(hooks::api::list).post(hooks::api::create),
        )
        .route(
            "/{organization}/_apis/hooks/subscriptions/{id}",
            get(hooks::api::read)
                .put(hooks::api::replace)
                .delete(hooks::api::delete),
        )
        // Joins the `pipeline_runs` list route of the endpoint table (same path, GET).
        .route(
            "/{organization}/{project}/_apis/pipelines/{parent}/runs",
            post(runs::api::queue),
        )
        .route(
            "/{organization}/{project}/_apis/pipelines/{parent}/runs/{runId}",
            get(runs::api::read),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), ado_gate));
    let callbacks = Router::new()
        .route(
            "/{organization}/{project}/_apis/distributedtask/hubs/{hubName}/plans/{planId}/events",
            post(runs::api::post_event),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), callback_gate));
    Router::new()
        .merge(ado)
        .merge(callbacks)
        .route("/{organization}/oauth2/v2.0/token", post(token))
        .route("/_sim/manifest", get(manifest))
        .route("/_sim/calls", get(calls).delete(reset_calls))
        .route("/_sim/faults", get(get_faults).post(set_faults))
        .route("/_sim/mutate", post(mutate))
        .route(
            "/_sim/deliveries",
            get(hooks::api::deliveries).delete(hooks::api::clear_deliveries),
        )
        .route(
            "/_sim/checks/rest",
            get(runs::api::list_rest_checks).post(runs::api::add_rest_check),
        )
        .route(
            "/_sim/checks/rest/{id}",
            delete(runs::api::delete_rest_check),
        )
        .route("/_sim/approvals", get(runs::api::list_holds))
        .route("/_sim/approvals/hold", post(runs::api::hold))
        .route("/_sim/approvals/release", post(runs::api::release))
        .route("/_sim/runs", get(runs::api::list_runs))
        .route(
            "/_sim/runs/settings",
            get(runs::api::get_settings).post(runs::api::set_settings),
        )
        .route("/_sim/runs/{id}", get(runs::api::run_detail))
        .with_state(state)
}
