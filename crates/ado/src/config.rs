use std::collections::HashMap;
use std::time::Duration;

use tollgate_domain::SecretString;
use tollgate_domain::ado_api::AdoHost;

use crate::AdoError;

/// How the client authenticates.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A personal access token, sent as HTTP basic auth with an empty user name.
    Pat(SecretString),
    /// An Entra ID service principal using the client-credentials grant.
    ServicePrincipal(ServicePrincipal),
}

#[derive(Clone, Debug)]
pub struct ServicePrincipal {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `https://login.microsoftonline.com` unless pointed at a test issuer.
    pub authority: String,
}

/// Azure DevOps' well-known application id: the audience of Entra tokens for ADO.
pub const ADO_RESOURCE_ID: &str = "499b84ac-1321-427f-aa17-267ca6975798";
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";

/// Retry and pacing limits. Every request is bounded in attempts and in time.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub max_elapsed: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest Retry-After we will honour before giving up on a request.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            max_elapsed: Duration::from_secs(300),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// Everything needed to talk to one organisation.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub organization: String,
    /// Base URL per host, without the organisation segment.
    pub base_urls: HashMap<AdoHost, String>,
    pub credential: Credential,
    /// Requests in flight at once for this organisation.
    pub max_concurrency: usize,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Build from an organisation URL such as `https://dev.azure.com/fabrikam`,
    /// `https://fabrikam.visualstudio.com` or a simulator's `http://127.0.0.1:8080/fabrikam`.
    ///
    /// For dev.azure.com and visualstudio.com every host gets its public default. For any
    /// other URL, every host defaults to that URL's base, so one simulator stands in for all.
    pub fn from_org_url(org_url: &str, credential: Credential) -> Result<Self, AdoError> {
        let (base, organization) = parse_org_url(org_url)?;
        let public = base == "https://dev.azure.com";
        let base_urls = AdoHost::ALL
            .iter()
            .map(|host| {
                (
                    *host,
                    if public {
                        host.default_base_url().to_owned()
                    } else {
                        base.clone()
                    },
                )
            })
            .collect();
        Ok(Self {
            organization,
            base_urls,
            credential,
            max_concurrency: 8,
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        })
    }

    pub fn base_url(&self, host: AdoHost) -> &str {
        self.base_urls
            .get(&host)
            .map(String::as_str)
            .unwrap_or(host.default_base_url())
    }

    /// The organisation URL as users write it (dev host + organisation).
    pub fn org_url(&self) -> String {
        format!("{}/{}", self.base_url(AdoHost::Dev), self.organization)
    }
}

/// Split an organisation URL into (host base URL, organisation name).
pub fn parse_org_url(org_url: &str) -> Result<(String, String), AdoError> {
    let invalid = |why: &str| AdoError::Config(format!("organisation URL {org_url:?} {why}"));
    let trimmed = org_url.trim().trim_end_matches('/');
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| invalid("has no scheme (https://…)"))?;
    if scheme != "https" && scheme != "http" {
        return Err(invalid("must use https (or http for a local simulator)"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(invalid("has no host"));
    }
    if let Some(organization) = authority.strip_suffix(".visualstudio.com") {
        if organization.is_empty() || !path.is_empty() {
            return Err(invalid("is not of the form https://{org}.visualstudio.com"));
        }
        return Ok(("https://dev.azure.com".to_owned(), organization.to_owned()));
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let organization = segments
        .next()
        .ok_or_else(|| invalid("names no organisation (https://dev.azure.com/{org})"))?;
    if segments.next().is_some() {
        return Err(invalid(
            "has segments after the organisation; give the organisation URL, not a project URL",
        ));
    }
    Ok((format!("{scheme}://{authority}"), organization.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_urls_of_every_form_parse() {
        let parse = |url: &str| parse_org_url(url).ok();
        assert_eq!(
            parse("https://dev.azure.com/fabrikam"),
            Some(("https://dev.azure.com".into(), "fabrikam".into()))
        );
        assert_eq!(
            parse("https://dev.azure.com/fabrikam/"),
            Some(("https://dev.azure.com".into(), "fabrikam".into()))
        );
        assert_eq!(
            parse("https://fabrikam.visualstudio.com"),
            Some(("https://dev.azure.com".into(), "fabrikam".into()))
        );
        assert_eq!(
            parse("http://127.0.0.1:9000/sim"),
            Some(("http://127.0.0.1:9000".into(), "sim".into()))
        );
        assert!(parse("dev.azure.com/fabrikam").is_none());
        assert!(parse("https://dev.azure.com").is_none());
        assert!(parse("https://dev.azure.com/fabrikam/project").is_none());
        assert!(parse("ftp://dev.azure.com/fabrikam").is_none());
    }

    #[test]
    fn a_simulator_url_stands_in_for_every_host() {
        let config = ClientConfig::from_org_url(
            "http://127.0.0.1:9000/sim",
            Credential::Pat(SecretString::new("x")),
        );
        let config = config.ok();
        for host in AdoHost::ALL {
            assert_eq!(
                config.as_ref().map(|c| c.base_url(*host)),
                Some("http://127.0.0.1:9000")
            );
        }
        let public = ClientConfig::from_org_url(
            "https://dev.azure.com/f",
            Credential::Pat(SecretString::new("x")),
        )
        .ok();
        assert_eq!(
            public.as_ref().map(|c| c.base_url(AdoHost::AdvSec)),
            Some("https://advsec.dev.azure.com")
        );
    }
}
