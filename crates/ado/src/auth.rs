//! Credentials → an `Authorization` header value, with Entra tokens cached and refreshed
//! before they expire.

use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;
use tollgate_domain::ado_api::encode_segment;

use crate::AdoError;
use crate::config::{ADO_RESOURCE_ID, Credential, ServicePrincipal};

/// Refresh this long before expiry, so a token never expires mid-request.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

pub(crate) struct Authorizer {
    credential: Credential,
    cached: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    header: String,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl Authorizer {
    pub(crate) fn new(credential: Credential) -> Self {
        Self {
            credential,
            cached: Mutex::new(None),
        }
    }

    pub(crate) fn can_refresh(&self) -> bool {
        matches!(self.credential, Credential::ServicePrincipal(_))
    }

    /// Forget a cached token (after a 401), so the next call fetches a fresh one.
    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    pub(crate) async fn header(&self, http: &reqwest::Client) -> Result<String, AdoError> {
        match &self.credential {
            Credential::Pat(pat) => Ok(basic_auth_header(pat.expose())),
            Credential::ServicePrincipal(principal) => {
                let mut cached = self.cached.lock().await;
                if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
                    return Ok(token.header.clone());
                }
                let fresh = fetch_token(http, principal).await?;
                let header = fresh.header.clone();
                *cached = Some(fresh);
                Ok(header)
            }
        }
    }
}

fn basic_auth_header(pat: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(":{pat}"))
    )
}

async fn fetch_token(
    http: &reqwest::Client,
    principal: &ServicePrincipal,
) -> Result<CachedToken, AdoError> {
    let url = format!(
        "{}/{}/oauth2/v2.0/token",
        principal.authority.trim_end_matches('/'),
        encode_segment(&principal.tenant_id)
    );
    let failed = |detail: String| AdoError::Token {
        url: url.clone(),
        detail,
    };
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", principal.client_id.as_str()),
        ("client_secret", principal.client_secret.expose()),
        ("scope", &format!("{ADO_RESOURCE_ID}/.default")),
    ]
    .iter()
    .map(|(key, value)| format!("{key}={}", encode_segment(value)))
    .collect::<Vec<_>>()
    .join("&");
    let response = http
        .post(&url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .map_err(|error| failed(format!("transport: {error}")))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|error| failed(format!("reading body: {error}")))?;
    if !status.is_success() {
        // Entra's error bodies name the problem (AADSTS codes) and never echo the secret.
        let summary: String = body.chars().take(300).collect();
        return Err(failed(format!("status {status}: {summary}")));
    }
    let token: TokenResponse = serde_json::from_str(&body)
        .map_err(|error| failed(format!("bad token response: {error}")))?;
    let lifetime = Duration::from_secs(token.expires_in);
    Ok(CachedToken {
        header: format!("Bearer {}", token.access_token),
        refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pat_is_sent_as_basic_auth_with_an_empty_user() {
        assert_eq!(basic_auth_header("abc"), "Basic OmFiYw==");
    }
}
