//! The HTTP client against small loopback servers that misbehave in one precise way each.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tollgate_ado::{
    AdoClient, AdoError, ClientConfig, Credential, HttpAdoClient, ListRequest, RetryPolicy,
    ServicePrincipal,
};
use tollgate_domain::{ResourceKind, SecretString};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}/org")
}

fn client(org_url: &str, credential: Credential) -> HttpAdoClient {
    let mut config = ClientConfig::from_org_url(org_url, credential).unwrap();
    config.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    HttpAdoClient::new(config).unwrap()
}

fn pat() -> Credential {
    Credential::Pat(SecretString::new("pat"))
}

const PROJECTS_PATH: &str = "/org/_apis/projects";

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new().route(
        PROJECTS_PATH,
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { (StatusCode::BAD_GATEWAY, "upstream down") }
        }),
    );
    let client = client(&serve(router).await, pat());
    let error = client
        .list_page(&ListRequest::organization(ResourceKind::Projects), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AdoError::RetriesExhausted { attempts: 4, .. }),
        "{error}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert_eq!(client.stats().retries, 3);
}

#[tokio::test]
async fn not_found_and_forbidden_are_answers_not_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new()
        .route(
            PROJECTS_PATH,
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        StatusCode::NOT_FOUND,
                        r#"{"message":"TF200016: The following project does not exist"}"#,
                    )
                }
            }),
        )
        .route(
            "/org/_apis/distributedtask/pools",
            get(|| async { (StatusCode::FORBIDDEN, r#"{"message":"TF400813: denied"}"#) }),
        );
    let client = client(&serve(router).await, pat());
    let error = client
        .list_page(&ListRequest::organization(ResourceKind::Projects), None)
        .await
        .unwrap_err();
    assert!(
        error.is_not_found() && error.to_string().contains("TF200016"),
        "{error}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let error = client
        .list_page(&ListRequest::organization(ResourceKind::AgentPools), None)
        .await
        .unwrap_err();
    assert!(
        error.is_permission_denied() && error.to_string().contains("TF400813"),
        "{error}"
    );
}

#[tokio::test]
async fn a_429_is_retried_after_the_server_says_and_then_succeeds() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new().route(
        PROJECTS_PATH,
        get(move || {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    let mut headers = HeaderMap::new();
                    headers.insert("x-ms-retry-after-ms", "50".parse().unwrap());
                    (StatusCode::TOO_MANY_REQUESTS, headers, "TF400733").into_response()
                } else {
                    r#"{"count":1,"value":[{"id":"p1","name":"One"}]}"#.into_response()
                }
            }
        }),
    );
    let client = client(&serve(router).await, pat());
    let page = client
        .list_page(&ListRequest::organization(ResourceKind::Projects), None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(client.stats().throttled, 1);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_truncated_body_is_fetched_again() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new().route(
        PROJECTS_PATH,
        get(move || {
            let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    r#"{"count":1,"value":[{"id":"p1","na"#
                } else {
                    r#"{"count":1,"value":[{"id":"p1"}]}"#
                }
            }
        }),
    );
    let client = client(&serve(router).await, pat());
    let page = client
        .list_page(&ListRequest::organization(ResourceKind::Projects), None)
        .await
        .unwrap();
    assert_eq!(page.items[0].ado_id, "p1");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_continuation_token_that_does_not_advance_is_an_error_not_a_loop() {
    let router = Router::new().route(
        PROJECTS_PATH,
        get(|| async {
            let mut headers = HeaderMap::new();
            headers.insert("x-ms-continuationtoken", "same".parse().unwrap());
            (headers, r#"{"count":1,"value":[{"id":"p1"}]}"#)
        }),
    );
    let client = client(&serve(router).await, pat());
    let request = ListRequest::organization(ResourceKind::Projects);
    let first = client.list_page(&request, None).await.unwrap();
    let error = client.list_page(&request, first.next).await.unwrap_err();
    assert!(error.to_string().contains("did not advance"), "{error}");
}

#[tokio::test]
async fn an_object_without_an_id_is_a_decode_error_naming_the_kind() {
    let router = Router::new().route(
        PROJECTS_PATH,
        get(|| async { r#"{"count":1,"value":[{"name":"no id"}]}"# }),
    );
    let client = client(&serve(router).await, pat());
    let error = client
        .list_page(&ListRequest::organization(ResourceKind::Projects), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            AdoError::Decode {
                kind: ResourceKind::Projects,
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn entra_tokens_are_cached_and_refreshed_once_after_a_401() {
    let token_requests = Arc::new(AtomicUsize::new(0));
    let api_hits = Arc::new(AtomicUsize::new(0));
    let tokens = token_requests.clone();
    let hits = api_hits.clone();
    let router = Router::new()
        .route(
            "/tenant-1/oauth2/v2.0/token",
            post(move |body: String| {
                let n = tokens.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(body.contains("grant_type=client_credentials"), "{body}");
                    assert!(
                        body.contains("scope=499b84ac-1321-427f-aa17-267ca6975798%2F.default"),
                        "{body}"
                    );
                    format!(
                        r#"{{"token_type":"Bearer","expires_in":3600,"access_token":"token-{n}"}}"#
                    )
                }
            }),
        )
        .route(
            PROJECTS_PATH,
            get(move |headers: HeaderMap| {
                hits.fetch_add(1, Ordering::SeqCst);
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                async move {
                    // The first token has been revoked: only a fresh one is accepted.
                    if auth == "Bearer token-1" {
                        r#"{"count":0,"value":[]}"#.into_response()
                    } else {
                        (StatusCode::UNAUTHORIZED, "").into_response()
                    }
                }
            }),
        );
    let org_url = serve(router).await;
    let authority = org_url.trim_end_matches("/org").to_owned();
    let credential = Credential::ServicePrincipal(ServicePrincipal {
        tenant_id: "tenant-1".into(),
        client_id: "app".into(),
        client_secret: SecretString::new("secret"),
        authority,
    });
    let client = client(&org_url, credential);
    let request = ListRequest::organization(ResourceKind::Projects);
    client.list_page(&request, None).await.unwrap();
    client.list_page(&request, None).await.unwrap();
    assert_eq!(
        token_requests.load(Ordering::SeqCst),
        2,
        "one token, one refresh after the 401, then cached"
    );
    assert_eq!(api_hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_pat_rejected_with_401_fails_at_once_without_echoing_the_pat() {
    let router = Router::new().route(PROJECTS_PATH, get(|| async { StatusCode::UNAUTHORIZED }));
    let client = client(
        &serve(router).await,
        Credential::Pat(SecretString::new("super-secret-pat")),
    );
    let error = client
        .list_page(&ListRequest::organization(ResourceKind::Projects), None)
        .await
        .unwrap_err();
    assert!(matches!(error, AdoError::Unauthorized { .. }));
    assert!(!format!("{error} {error:?}").contains("super-secret-pat"));
}

#[tokio::test]
async fn summaries_are_read_in_full_and_one_deleted_meanwhile_is_left_out() {
    let router = Router::new()
        .route(
            "/org/p1/_apis/release/definitions",
            get(|| async {
                r#"{"count":3,"value":[{"id":1,"name":"a"},{"id":2,"name":"b"},{"id":3,"name":"c"}]}"#
            }),
        )
        .route(
            "/org/p1/_apis/release/definitions/{id}",
            get(
                |axum::extract::Path(id): axum::extract::Path<u64>| async move {
                    match id {
                        2 => (StatusCode::NOT_FOUND, r#"{"message":"gone"}"#.to_owned()),
                        _ => (
                            StatusCode::OK,
                            format!(r#"{{"id":{id},"name":"full-{id}","revision":2,"environments":[]}}"#),
                        ),
                    }
                },
            ),
        );
    let client = client(&serve(router).await, pat());
    let request = ListRequest::project(ResourceKind::ReleaseDefinitions, "p1");
    let page = client.list_page(&request, None).await.unwrap();
    let read: Vec<(&str, Option<&str>)> = page
        .items
        .iter()
        .map(|item| (item.ado_id.as_str(), item.name.as_deref()))
        .collect();
    assert_eq!(read, vec![("1", Some("full-1")), ("3", Some("full-3"))]);
    assert!(
        page.items
            .iter()
            .all(|item| item.raw.contains("environments")
                && item.key == format!("p1/{}", item.ado_id)
                && item.project == "p1")
    );
    assert_eq!(client.stats().requests, 4, "one list and three reads");
}

#[tokio::test]
async fn a_forbidden_read_of_a_listed_object_is_a_permission_error() {
    let router = Router::new()
        .route(
            "/org/p1/_apis/release/definitions",
            get(|| async { r#"{"count":1,"value":[{"id":7,"name":"a"}]}"# }),
        )
        .route(
            "/org/p1/_apis/release/definitions/{id}",
            get(|| async { (StatusCode::FORBIDDEN, r#"{"message":"TF400813: denied"}"#) }),
        );
    let client = client(&serve(router).await, pat());
    let request = ListRequest::project(ResourceKind::ReleaseDefinitions, "p1");
    let error = client.list_page(&request, None).await.unwrap_err();
    assert!(error.is_permission_denied(), "{error}");
}

#[tokio::test]
async fn a_queued_run_names_its_branch_commit_and_template_parameters() {
    let received = Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let keep = received.clone();
    let router = Router::new().route(
        "/org/Payments/_apis/pipelines/{id}/runs",
        post(move |body: String| {
            let keep = keep.clone();
            async move {
                keep.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap());
                r#"{"id": 77, "state": "inProgress"}"#
            }
        }),
    );
    let client = client(&serve(router).await, pat());
    let mut request = tollgate_ado::RunRequest {
        project: "Payments".to_owned(),
        pipeline_id: 12,
        ref_name: Some("refs/heads/release/1.0".to_owned()),
        version: Some("abc123".to_owned()),
        template_parameters: [("environment".to_owned(), "staging".to_owned())]
            .into_iter()
            .collect(),
    };
    let run = client.queue_run(&request).await.unwrap();
    assert_eq!(run["id"], 77);
    request.ref_name = None;
    request.version = None;
    client.queue_run(&request).await.unwrap();
    let bodies = received.lock().unwrap().clone();
    assert_eq!(
        bodies[0],
        serde_json::json!({
            "templateParameters": {"environment": "staging"},
            "resources": {"repositories": {"self": {"refName": "refs/heads/release/1.0", "version": "abc123"}}},
        })
    );
    // Neither branch nor commit: the pipeline's default branch at its head, as ADO decides.
    assert_eq!(
        bodies[1],
        serde_json::json!({"templateParameters": {"environment": "staging"}})
    );
}
