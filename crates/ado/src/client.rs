//! `HttpAdoClient`: retries, rate-limit pacing, concurrency limits and the paging schemes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use reqwest::header::{AUTHORIZATION, HeaderMap};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Semaphore;
use tollgate_domain::ado_api::{
    self, AdoHost, Delta, Paging, WIQL_MAX_RESULTS, WIQL_PATH, WIT_API_VERSION,
    WORK_ITEMS_BATCH_MAX, WORK_ITEMS_BATCH_PATH,
};
use tollgate_domain::{InventoryItem, ResourceKind};
use tracing::{debug, warn};

use crate::auth::Authorizer;
use crate::config::ClientConfig;
use crate::wire::{self, ListEnvelope, WiqlResult};
use crate::{AdoClient, AdoError, ClientStats, Cursor, ListRequest, Page, PlanEvent, RunRequest};

/// The Post Event API's version (the one the checks documentation and its example use).
const PLAN_EVENTS_API_VERSION: &str = "2.0-preview.1";
const RUNS_API_VERSION: &str = "7.1";

/// Slow down once fewer than this share of the TSTU budget remains (perf goal S2).
const SLOW_DOWN_BELOW: f64 = 0.25;

pub struct HttpAdoClient {
    /// For calls made with a job access token: never follows a redirect, so the token cannot
    /// be led to another host.
    token_http: reqwest::Client,
    config: ClientConfig,
    http: reqwest::Client,
    permits: Semaphore,
    authorizer: Authorizer,
    pacing: Mutex<Pacing>,
    stats: Counters,
    jitter_state: AtomicU64,
}

#[derive(Default)]
struct Pacing {
    paused_until: Option<Instant>,
    limit: Option<f64>,
    remaining: Option<f64>,
    reset_at: Option<SystemTime>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    paced: AtomicU64,
}

/// The internal cursor state. Opaque to callers: they only hand it back.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum CursorState {
    Token(String),
    Skip(u32),
    WorkItems {
        pending: Vec<u64>,
        last_id: u64,
        window_exhausted: bool,
    },
}

enum Attempt<T> {
    Done(T),
    Retry { wait: Duration, problem: String },
    Fail(AdoError),
}

impl HttpAdoClient {
    pub fn new(config: ClientConfig) -> Result<Self, AdoError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| AdoError::Config(format!("HTTP client: {error}")))?;
        let token_http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| AdoError::Config(format!("HTTP client: {error}")))?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9);
        Ok(Self {
            permits: Semaphore::new(config.max_concurrency.max(1)),
            authorizer: Authorizer::new(config.credential.clone()),
            config,
            http,
            token_http,
            pacing: Mutex::new(Pacing::default()),
            stats: Counters::default(),
            jitter_state: AtomicU64::new(seed | 1),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn url(&self, host: AdoHost, path: &str) -> String {
        format!(
            "{}{}",
            self.config.base_url(host).trim_end_matches('/'),
            path
        )
    }

    /// A random factor in [0.5, 1.0): "full jitter" halved, so waits stay near the schedule.
    fn jitter(&self) -> f64 {
        let mut x = self.jitter_state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter_state.store(x, Ordering::Relaxed);
        0.5 + (x >> 11) as f64 / (1u64 << 53) as f64 / 2.0
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let policy = &self.config.retry;
        let exponential = policy
            .initial_backoff
            .saturating_mul(1u32 << attempt.min(16));
        exponential.min(policy.max_backoff).mul_f64(self.jitter())
    }

    /// Wait out a Retry-After pause, and spread the remaining TSTU budget over the time left
    /// until it resets once it runs low, so a sync slows down before ADO starts delaying it.
    async fn pace(&self) {
        let wait = {
            let pacing = self
                .pacing
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            let paused = pacing
                .paused_until
                .filter(|until| *until > now)
                .map(|until| until - now);
            let budget = match (pacing.limit, pacing.remaining, pacing.reset_at) {
                (Some(limit), Some(remaining), Some(reset_at))
                    if limit > 0.0 && remaining < limit * SLOW_DOWN_BELOW =>
                {
                    let until_reset = reset_at
                        .duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO);
                    Some(
                        until_reset
                            .div_f64(remaining.max(0.0) + 1.0)
                            .min(Duration::from_secs(5)),
                    )
                }
                _ => None,
            };
            paused.max(budget)
        };
        if let Some(wait) = wait.filter(|w| !w.is_zero()) {
            self.stats.paced.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    fn observe_rate_headers(&self, headers: &HeaderMap) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        let (limit, remaining, reset) = (
            number("x-ratelimit-limit"),
            number("x-ratelimit-remaining"),
            number("x-ratelimit-reset"),
        );
        if limit.is_none() && remaining.is_none() {
            return;
        }
        let mut pacing = self
            .pacing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        pacing.limit = limit.or(pacing.limit);
        pacing.remaining = remaining;
        pacing.reset_at = reset.map(|epoch| UNIX_EPOCH + Duration::from_secs_f64(epoch.max(0.0)));
    }

    fn pause_all(&self, wait: Duration) {
        let mut pacing = self
            .pacing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let until = Instant::now() + wait;
        if pacing.paused_until.is_none_or(|current| current < until) {
            pacing.paused_until = Some(until);
        }
    }

    /// Send one logical request, retrying transient failures within the retry policy, and
    /// hand the body to `parse` inside the loop so that a truncated body is retried too.
    async fn call<T>(
        &self,
        method: Method,
        host: AdoHost,
        path: &str,
        query: &[(String, String)],
        body: Option<&serde_json::Value>,
        parse: impl Fn(&str, &HeaderMap) -> Result<T, AdoError>,
    ) -> Result<T, AdoError> {
        let url = self.url(host, path);
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut refreshed_token = false;
        loop {
            attempt += 1;
            let outcome = self
                .attempt(
                    &method,
                    &url,
                    query,
                    body,
                    &parse,
                    &mut refreshed_token,
                    attempt,
                )
                .await;
            let (wait, problem) = match outcome {
                Attempt::Done(value) => return Ok(value),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry { wait, problem } => (wait, problem),
            };
            let policy = &self.config.retry;
            if attempt >= policy.max_attempts || started.elapsed() + wait > policy.max_elapsed {
                return Err(AdoError::RetriesExhausted {
                    url,
                    attempts: attempt,
                    elapsed_ms: started.elapsed().as_millis(),
                    last: problem,
                });
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            debug!(url = %url, attempt, wait_ms = wait.as_millis() as u64, problem = %problem, "retrying ADO request");
            tokio::time::sleep(wait).await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt<T>(
        &self,
        method: &Method,
        url: &str,
        query: &[(String, String)],
        body: Option<&serde_json::Value>,
        parse: &impl Fn(&str, &HeaderMap) -> Result<T, AdoError>,
        refreshed_token: &mut bool,
        attempt: u32,
    ) -> Attempt<T> {
        self.pace().await;
        let Ok(_permit) = self.permits.acquire().await else {
            return Attempt::Fail(AdoError::Config("client is shutting down".to_owned()));
        };
        let authorization = match self.authorizer.header(&self.http).await {
            Ok(header) => header,
            Err(error) => return Attempt::Fail(error),
        };
        let mut request = self
            .http
            .request(method.clone(), url)
            .query(query)
            .header(AUTHORIZATION, authorization);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let problem = if error.is_timeout() {
                    "request timed out".to_owned()
                } else {
                    format!("transport: {error}")
                };
                return Attempt::Retry {
                    wait: self.backoff(attempt),
                    problem,
                };
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        self.observe_rate_headers(&headers);
        let text = match response.text().await {
            Ok(text) => text,
            Err(error) => {
                return Attempt::Retry {
                    wait: self.backoff(attempt),
                    problem: format!("reading body: {error}"),
                };
            }
        };
        if status.is_success() {
            return match parse(&text, &headers) {
                Ok(value) => Attempt::Done(value),
                // A body that does not parse is most often a truncated transfer: try again.
                // If it persists, the decode error itself is what the caller sees.
                Err(error @ AdoError::Decode { .. })
                    if attempt < self.config.retry.max_attempts =>
                {
                    Attempt::Retry {
                        wait: self.backoff(attempt),
                        problem: error.to_string(),
                    }
                }
                Err(error) => Attempt::Fail(error),
            };
        }
        let message = ado_error_message(&text);
        match status {
            StatusCode::TOO_MANY_REQUESTS => {
                self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                let wait = retry_after(&headers).unwrap_or_else(|| self.backoff(attempt));
                if wait > self.config.retry.max_retry_after {
                    return Attempt::Fail(AdoError::Status {
                        status: 429,
                        url: url.to_owned(),
                        message,
                    });
                }
                warn!(url = %url, wait_ms = wait.as_millis() as u64, "ADO throttled the request (429); pausing");
                self.pause_all(wait);
                Attempt::Retry {
                    wait,
                    problem: format!("429 throttled: {message}"),
                }
            }
            StatusCode::REQUEST_TIMEOUT
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => {
                let wait = retry_after(&headers).unwrap_or_else(|| self.backoff(attempt));
                Attempt::Retry {
                    wait,
                    problem: format!("{status}: {message}"),
                }
            }
            StatusCode::UNAUTHORIZED if self.authorizer.can_refresh() && !*refreshed_token => {
                // An Entra token can be revoked or rotated early: fetch a fresh one once.
                *refreshed_token = true;
                self.authorizer.invalidate().await;
                Attempt::Retry {
                    wait: Duration::ZERO,
                    problem: "401 with a cached token".to_owned(),
                }
            }
            StatusCode::UNAUTHORIZED => Attempt::Fail(AdoError::Unauthorized {
                url: url.to_owned(),
            }),
            StatusCode::FORBIDDEN => Attempt::Fail(AdoError::Forbidden {
                url: url.to_owned(),
                message,
            }),
            StatusCode::NOT_FOUND => Attempt::Fail(AdoError::NotFound {
                url: url.to_owned(),
                message,
            }),
            _ => Attempt::Fail(AdoError::Status {
                status: status.as_u16(),
                url: url.to_owned(),
                message,
            }),
        }
    }

    async fn list_work_items(
        &self,
        request: &ListRequest,
        cursor: Option<Cursor>,
    ) -> Result<Page, AdoError> {
        let kind = ResourceKind::WorkItems;
        let project = request.project.as_deref().unwrap_or_default();
        let mut state = match cursor.map(|c| c.0) {
            Some(state @ CursorState::WorkItems { .. }) => state,
            _ => CursorState::WorkItems {
                pending: Vec::new(),
                last_id: 0,
                window_exhausted: false,
            },
        };
        let CursorState::WorkItems {
            pending,
            last_id,
            window_exhausted,
        } = &mut state
        else {
            return Err(AdoError::Decode {
                kind,
                detail: "work item cursor in the wrong state".to_owned(),
            });
        };
        if pending.is_empty() && !*window_exhausted {
            let window = self.wiql_window(project, *last_id, request.since).await?;
            *window_exhausted = window.len() < WIQL_MAX_RESULTS as usize;
            *last_id = window.iter().copied().max().unwrap_or(*last_id);
            *pending = window;
            pending.reverse(); // pop from the end in ascending id order
        }
        let take = pending.len().min(WORK_ITEMS_BATCH_MAX as usize);
        let mut batch: Vec<u64> = pending.split_off(pending.len() - take);
        batch.reverse();
        let items = if batch.is_empty() {
            Vec::new()
        } else {
            self.work_items_batch(project, &batch).await?
        };
        let more = !pending.is_empty() || !*window_exhausted;
        Ok(Page {
            items,
            next: more.then_some(Cursor(state)),
        })
    }

    /// One WIQL window: up to 20,000 ids above `after_id`, ascending.
    async fn wiql_window(
        &self,
        project: &str,
        after_id: u64,
        since: Option<OffsetDateTime>,
    ) -> Result<Vec<u64>, AdoError> {
        let changed = match since {
            Some(since) => format!(" AND [System.ChangedDate] >= '{}'", format_time(since)),
            None => String::new(),
        };
        let query = format!(
            "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project AND [System.Id] > {after_id}{changed} ORDER BY [System.Id]"
        );
        let path = ado_api::fill_path(WIQL_PATH, &self.config.organization, Some(project), None);
        let params = vec![
            ("api-version".to_owned(), WIT_API_VERSION.to_owned()),
            ("$top".to_owned(), WIQL_MAX_RESULTS.to_string()),
            ("timePrecision".to_owned(), "true".to_owned()),
        ];
        let body = serde_json::json!({ "query": query });
        self.call(
            Method::POST,
            AdoHost::Dev,
            &path,
            &params,
            Some(&body),
            |text, _| {
                let result: WiqlResult =
                    serde_json::from_str(text).map_err(|error| AdoError::Decode {
                        kind: ResourceKind::WorkItems,
                        detail: format!("WIQL result: {error}"),
                    })?;
                let mut ids: Vec<u64> = result.work_items.into_iter().map(|w| w.id).collect();
                ids.sort_unstable();
                Ok(ids)
            },
        )
        .await
    }

    async fn work_items_batch(
        &self,
        project: &str,
        ids: &[u64],
    ) -> Result<Vec<InventoryItem>, AdoError> {
        let path = ado_api::fill_path(
            WORK_ITEMS_BATCH_PATH,
            &self.config.organization,
            Some(project),
            None,
        );
        let params = vec![("api-version".to_owned(), WIT_API_VERSION.to_owned())];
        // errorPolicy=omit: an item deleted since the WIQL query comes back as null, not a 404 for the batch.
        let body = serde_json::json!({ "ids": ids, "$expand": "relations", "errorPolicy": "omit" });
        self.call(
            Method::POST,
            AdoHost::Dev,
            &path,
            &params,
            Some(&body),
            |text, _| {
                let kind = ResourceKind::WorkItems;
                let envelope: ListEnvelope<'_> =
                    serde_json::from_str(text).map_err(|error| AdoError::Decode {
                        kind,
                        detail: error.to_string(),
                    })?;
                envelope
                    .value
                    .into_iter()
                    .filter(|raw| raw.get() != "null")
                    .map(|raw| {
                        wire::extract(kind, project, raw).map(|item| InventoryItem {
                            project: project.to_owned(),
                            ..item
                        })
                    })
                    .collect()
            },
        )
        .await
    }
}

impl HttpAdoClient {
    /// Read every listed object by id, for lists that return summaries only (the endpoint's
    /// `detail_path`). An object deleted between the list and its read (404) is left out, as
    /// the next list would leave it out; any other error fails the page.
    async fn read_in_full(
        &self,
        kind: ResourceKind,
        template: &str,
        project: &str,
        scope: &str,
        summaries: Vec<InventoryItem>,
    ) -> Result<Vec<InventoryItem>, AdoError> {
        let endpoint = ado_api::endpoint_for(kind);
        let params = vec![("api-version".to_owned(), endpoint.api_version.to_owned())];
        let params = &params;
        let reads = summaries.into_iter().map(|summary| {
            let path = ado_api::fill_detail_path(
                template,
                &self.config.organization,
                project,
                &summary.ado_id,
            );
            async move {
                let read = self
                    .call(
                        Method::GET,
                        endpoint.host,
                        &path,
                        params,
                        None,
                        |text, _| {
                            let raw: &RawValue =
                                serde_json::from_str(text).map_err(|error| AdoError::Decode {
                                    kind,
                                    detail: error.to_string(),
                                })?;
                            wire::extract(kind, scope, raw)
                        },
                    )
                    .await;
                match read {
                    Ok(item) => Ok(Some(item)),
                    Err(error) if error.is_not_found() => Ok(None),
                    Err(error) => Err(error),
                }
            }
        });
        // In list order; the client's permits bound what is in flight across all scopes.
        let results: Vec<Result<Option<InventoryItem>, AdoError>> = stream::iter(reads)
            .buffered(self.config.max_concurrency.max(1))
            .collect()
            .await;
        results.into_iter().filter_map(Result::transpose).collect()
    }
}

#[async_trait]
impl AdoClient for HttpAdoClient {
    fn organization(&self) -> &str {
        &self.config.organization
    }

    async fn list_page(
        &self,
        request: &ListRequest,
        cursor: Option<Cursor>,
    ) -> Result<Page, AdoError> {
        let kind = request.kind;
        let endpoint = ado_api::endpoint_for(kind);
        if endpoint.paging == Paging::WiqlBatch {
            return self.list_work_items(request, cursor).await;
        }
        let scope = request.scope();
        let path = ado_api::fill_path(
            endpoint.path,
            &self.config.organization,
            request.project.as_deref(),
            request.parent.as_deref(),
        );
        let mut params: Vec<(String, String)> =
            vec![("api-version".to_owned(), endpoint.api_version.to_owned())];
        params.extend(
            endpoint
                .fixed_query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        if endpoint.paging != Paging::Single {
            params.push((
                endpoint.top_param.to_owned(),
                endpoint.page_size.to_string(),
            ));
        }
        if let (Delta::SinceParam(name), Some(since)) = (endpoint.delta, request.since) {
            params.push((name.to_owned(), format_time(since)));
        }
        let state = cursor.map(|c| c.0);
        let skip = match &state {
            Some(CursorState::Token(token)) => {
                params.push(("continuationToken".to_owned(), token.clone()));
                0
            }
            Some(CursorState::Skip(skip)) => {
                params.push(("$skip".to_owned(), skip.to_string()));
                *skip
            }
            _ => 0,
        };
        let page_size = endpoint.page_size as usize;
        let (items, next) = self
            .call(
                Method::GET,
                endpoint.host,
                &path,
                &params,
                None,
                |text, headers| match endpoint.paging {
                    Paging::BodyToken => {
                        let (items, token) = wire::parse_audit_page(text)?;
                        Ok((items, token.map(CursorState::Token)))
                    }
                    paging => {
                        let items = wire::parse_list(kind, &scope, text)?;
                        let next = match paging {
                            Paging::HeaderToken => {
                                continuation_header(headers).map(CursorState::Token)
                            }
                            Paging::TopSkip if items.len() >= page_size => {
                                Some(CursorState::Skip(skip + items.len() as u32))
                            }
                            Paging::IdSeek if items.len() >= page_size => items
                                .iter()
                                .filter_map(|item| item.ado_id.parse::<u64>().ok())
                                .max()
                                .map(|max| CursorState::Token((max + 1).to_string())),
                            _ => None,
                        };
                        Ok((items, next))
                    }
                },
            )
            .await?;
        if next.is_some() && next == state {
            return Err(AdoError::Decode {
                kind,
                detail: "the continuation token did not advance".to_owned(),
            });
        }
        let project = request.project.clone().unwrap_or_default();
        let items = match endpoint.detail_path {
            Some(template) => {
                self.read_in_full(kind, template, &project, &scope, items)
                    .await?
            }
            None => items,
        };
        let items = items
            .into_iter()
            .map(|item| InventoryItem {
                project: project.clone(),
                ..item
            })
            .collect();
        Ok(Page {
            items,
            next: next.map(Cursor),
        })
    }

    async fn work_item_ids(&self, project: &str) -> Result<Vec<u64>, AdoError> {
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let window = self.wiql_window(project, after, None).await?;
            let full = window.len() >= WIQL_MAX_RESULTS as usize;
            after = window.iter().copied().max().unwrap_or(after);
            ids.extend(window);
            if !full {
                return Ok(ids);
            }
        }
    }

    async fn post_plan_event(
        &self,
        event: &PlanEvent,
        token: &tollgate_domain::SecretString,
    ) -> Result<(), AdoError> {
        event.validate()?;
        let url = format!(
            "{}/{}/{}/_apis/distributedtask/hubs/{}/plans/{}/events?api-version={PLAN_EVENTS_API_VERSION}",
            self.config.base_url(AdoHost::Dev).trim_end_matches('/'),
            self.config.organization,
            event.project_id,
            event.hub_name,
            event.plan_id,
        );
        let body = serde_json::json!({
            "name": "TaskCompleted",
            "taskId": event.task_id,
            "jobId": event.job_id,
            "result": event.result,
        });
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let sent = self
                .token_http
                .post(&url)
                .bearer_auth(token.expose())
                .json(&body)
                .send()
                .await;
            let (wait, problem) = match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let wait = retry_after(response.headers());
                    let message = ado_error_message(&response.text().await.unwrap_or_default());
                    match status.as_u16() {
                        401 => return Err(AdoError::Unauthorized { url }),
                        403 => return Err(AdoError::Forbidden { url, message }),
                        404 => return Err(AdoError::NotFound { url, message }),
                        429 | 500..=599 | 408 => (
                            wait.unwrap_or_else(|| self.backoff(attempt)),
                            format!("{status}: {message}"),
                        ),
                        code => {
                            // A redirect lands here too: it is never followed.
                            return Err(AdoError::Status {
                                status: code,
                                url,
                                message,
                            });
                        }
                    }
                }
                Err(error) => (self.backoff(attempt), format!("transport: {error}")),
            };
            let policy = &self.config.retry;
            if attempt >= policy.max_attempts || started.elapsed() + wait > policy.max_elapsed {
                return Err(AdoError::RetriesExhausted {
                    url,
                    attempts: attempt,
                    elapsed_ms: started.elapsed().as_millis(),
                    last: problem,
                });
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }

    async fn queue_run(&self, request: &RunRequest) -> Result<serde_json::Value, AdoError> {
        let path = format!(
            "/{}/{}/_apis/pipelines/{}/runs",
            self.config.organization,
            ado_api::encode_segment(&request.project),
            request.pipeline_id
        );
        let mut body = serde_json::json!({"templateParameters": request.template_parameters});
        let mut repository = serde_json::Map::new();
        if let Some(ref_name) = &request.ref_name {
            repository.insert("refName".to_owned(), serde_json::json!(ref_name));
        }
        if let Some(version) = &request.version {
            repository.insert("version".to_owned(), serde_json::json!(version));
        }
        if !repository.is_empty() {
            body["resources"] = serde_json::json!({"repositories": {"self": repository}});
        }
        let params = vec![("api-version".to_owned(), RUNS_API_VERSION.to_owned())];
        self.call(
            Method::POST,
            AdoHost::Dev,
            &path,
            &params,
            Some(&body),
            |text, _| {
                serde_json::from_str(text).map_err(|error| AdoError::Decode {
                    kind: ResourceKind::PipelineRuns,
                    detail: format!("queued run: {error}"),
                })
            },
        )
        .await
    }

    async fn run(
        &self,
        project: &str,
        pipeline_id: u64,
        run_id: u64,
    ) -> Result<serde_json::Value, AdoError> {
        let path = format!(
            "/{}/{}/_apis/pipelines/{pipeline_id}/runs/{run_id}",
            self.config.organization,
            ado_api::encode_segment(project),
        );
        let params = vec![("api-version".to_owned(), RUNS_API_VERSION.to_owned())];
        self.call(
            Method::GET,
            AdoHost::Dev,
            &path,
            &params,
            None,
            |text, _| {
                serde_json::from_str(text).map_err(|error| AdoError::Decode {
                    kind: ResourceKind::PipelineRuns,
                    detail: format!("run: {error}"),
                })
            },
        )
        .await
    }

    fn stats(&self) -> ClientStats {
        ClientStats {
            requests: self.stats.requests.load(Ordering::Relaxed),
            retries: self.stats.retries.load(Ordering::Relaxed),
            throttled: self.stats.throttled.load(Ordering::Relaxed),
            paced: self.stats.paced.load(Ordering::Relaxed),
        }
    }
}

fn continuation_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-ms-continuationtoken")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
}

/// `Retry-After` in seconds, or ADO's millisecond variants.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    read("x-ms-retry-after-ms")
        .or_else(|| read("retry-after-ms"))
        .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
        .or_else(|| read("retry-after").map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// The `message` of ADO's error envelope, or a short prefix of whatever came back.
fn ado_error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        message: Option<String>,
    }
    match serde_json::from_str::<Envelope>(body)
        .ok()
        .and_then(|e| e.message)
    {
        Some(message) => message,
        None => body.chars().take(200).collect(),
    }
}

fn format_time(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_millisecond_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("x-ms-retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn error_messages_come_from_the_ado_envelope() {
        let body = r#"{"$id":"1","innerException":null,"message":"TF200016: The following project does not exist","typeKey":"ProjectDoesNotExistWithNameException","errorCode":0,"eventId":3000}"#;
        assert_eq!(
            ado_error_message(body),
            "TF200016: The following project does not exist"
        );
        assert_eq!(
            ado_error_message("<html>gateway</html>"),
            "<html>gateway</html>"
        );
    }
}
