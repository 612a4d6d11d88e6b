//! The issuer's key set over HTTP: OpenID discovery (unless a JWKS URL is configured), then
//! the JWKS document. The only place in `auth` that names reqwest.
//!
//! Defences: HTTPS only (plain HTTP to a loopback address is allowed for local issuers and
//! tests), no redirects (a redirect could point key retrieval at another host), bounded time
//! and bounded size, and the discovery document's `issuer` must equal the configured one
//! (OpenID Connect Discovery §4.3).

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::jwk::JwkSet;
use reqwest::Url;
use reqwest::header::ACCEPT;
use serde::Deserialize;

use super::oidc::{KeySource, KeySourceError, OidcSettings, parse_jwks};

/// Discovery and JWKS documents are a few kilobytes; anything near this is not one.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches the configured issuer's signing keys.
#[derive(Debug)]
pub struct HttpKeySource {
    client: reqwest::Client,
    issuer: String,
    discovery_url: Url,
    jwks_url: Option<Url>,
}

/// `https://…`, or `http://` to a loopback host.
fn trusted_url(raw: &str, what: &str) -> Result<Url, KeySourceError> {
    let url = Url::parse(raw)
        .map_err(|error| KeySourceError::Config(format!("{what} {raw:?} is not a URL: {error}")))?;
    let loopback = url.host_str().is_some_and(|host| {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    });
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(KeySourceError::Config(format!(
            "{what} {raw:?} must use https (plain http only to a loopback address)"
        ))),
    }
}

fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

impl HttpKeySource {
    pub fn new(settings: &OidcSettings) -> Result<Self, KeySourceError> {
        let discovery_url = trusted_url(&settings.discovery_url(), "the issuer")?;
        let jwks_url = settings
            .jwks_url
            .as_deref()
            .map(|raw| trusted_url(raw, "auth.oidc.jwks_url"))
            .transpose()?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| KeySourceError::Config(format!("HTTP client: {error}")))?;
        Ok(Self {
            client,
            issuer: settings.issuer.clone(),
            discovery_url,
            jwks_url,
        })
    }

    /// The body of a successful GET, at most [`MAX_DOCUMENT_BYTES`].
    async fn get(&self, url: &Url) -> Result<Vec<u8>, KeySourceError> {
        let request_failed = |error: reqwest::Error| KeySourceError::Request {
            url: url.to_string(),
            message: error.without_url().to_string(),
        };
        let mut response = self
            .client
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(request_failed)?;
        if !response.status().is_success() {
            return Err(KeySourceError::Status {
                url: url.to_string(),
                status: response.status().as_u16(),
            });
        }
        let too_large = || KeySourceError::TooLarge {
            url: url.to_string(),
            limit: MAX_DOCUMENT_BYTES,
        };
        if response
            .content_length()
            .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_failed)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The `jwks_uri` the issuer's discovery document names.
    async fn discover(&self) -> Result<Url, KeySourceError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let body = self.get(&self.discovery_url).await?;
        let invalid = |message: String| KeySourceError::Invalid {
            url: self.discovery_url.to_string(),
            message,
        };
        let document: Discovery = serde_json::from_slice(&body)
            .map_err(|error| invalid(format!("not an OpenID configuration: {error}")))?;
        if !same_issuer(&document.issuer, &self.issuer) {
            return Err(invalid(format!(
                "it names the issuer {:?}, not the configured {:?}",
                document.issuer, self.issuer
            )));
        }
        trusted_url(&document.jwks_uri, "the discovered jwks_uri")
    }
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn fetch_keys(&self) -> Result<JwkSet, KeySourceError> {
        let url = match &self.jwks_url {
            Some(url) => url.clone(),
            None => self.discover().await?,
        };
        let body = self.get(&url).await?;
        parse_jwks(&body, url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_trusted() {
        for good in [
            "https://login.microsoftonline.com/x/v2.0",
            "http://127.0.0.1:8080/keys",
            "http://localhost/keys",
            "http://[::1]:9/keys",
        ] {
            assert!(trusted_url(good, "t").is_ok(), "{good}");
        }
        for bad in [
            "http://login.microsoftonline.com/x",
            "http://10.0.0.1/keys",
            "file:///etc/passwd",
            "ftp://example.com/keys",
            "not a url",
        ] {
            assert!(trusted_url(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn issuers_compare_without_a_trailing_slash() {
        assert!(same_issuer(
            "https://sts.windows.net/t/",
            "https://sts.windows.net/t"
        ));
        assert!(!same_issuer(
            "https://sts.windows.net/t",
            "https://sts.windows.net/u"
        ));
    }
}
