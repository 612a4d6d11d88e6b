//! One entry point for every request: which credential was presented, and who it proves.
//!
//! `Authorization: Bearer tg_…` and `X-Api-Key: tg_…` are API keys; any other bearer token is
//! an OIDC token. Framework-free: the HTTP layer passes header values in and maps
//! [`AuthError`] to a status and a `WWW-Authenticate` header.

use time::OffsetDateTime;

use std::sync::Arc;

use tollgate_store::TenancyStore;

use super::api_keys::{API_KEY_PREFIX, ApiKeyService};
use super::oidc::{MAX_TOKEN_BYTES, OidcValidator};
use super::tenancy::TenantRoles;
use super::{Credential, Principal};

/// Why a request is not authenticated. Reasons are short machine words for logs and the
/// `WWW-Authenticate` header; none of them contains any part of the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential at all.
    #[error("no credential was presented")]
    Missing,
    /// A credential that is malformed, forged, expired, revoked or unknown.
    #[error("the credential was refused: {reason}")]
    Invalid { reason: &'static str },
    /// A valid identity that holds no tollgate role.
    #[error("{subject} is authenticated but holds no tollgate role ({reason})")]
    NoRole {
        subject: String,
        reason: &'static str,
    },
    /// The credential cannot be checked right now (the issuer's key set or the key store is
    /// unreachable). Fails closed, but tells the client to retry rather than to re-login.
    #[error("credentials cannot be checked right now ({reason})")]
    Unavailable { reason: &'static str },
}

/// How an [`AuthError`] is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// 401: present a (different) credential.
    Unauthorized,
    /// 403: the identity is known and lacks a role.
    Forbidden,
    /// 503: try again later.
    Unavailable,
}

impl AuthFailure {
    pub fn http_status(self) -> u16 {
        match self {
            AuthFailure::Unauthorized => 401,
            AuthFailure::Forbidden => 403,
            AuthFailure::Unavailable => 503,
        }
    }
}

impl AuthError {
    pub fn failure(&self) -> AuthFailure {
        match self {
            AuthError::Missing | AuthError::Invalid { .. } => AuthFailure::Unauthorized,
            AuthError::NoRole { .. } => AuthFailure::Forbidden,
            AuthError::Unavailable { .. } => AuthFailure::Unavailable,
        }
    }

    pub fn http_status(&self) -> u16 {
        self.failure().http_status()
    }

    /// A short machine word: `missing_credential`, `token_expired`, `bad_signature`,
    /// `unknown_kid`, `wrong_audience`, `no_role`, `jwks_unavailable`, …
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_credential",
            AuthError::Invalid { reason }
            | AuthError::NoRole { reason, .. }
            | AuthError::Unavailable { reason } => reason,
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), if the response should carry one.
    pub fn www_authenticate(&self) -> Option<String> {
        match self {
            // §3.1: a request without credentials gets no error code.
            AuthError::Missing => Some(r#"Bearer realm="tollgate""#.to_owned()),
            AuthError::Invalid { reason } => Some(format!(
                r#"Bearer realm="tollgate", error="invalid_token", error_description="{reason}""#
            )),
            AuthError::NoRole { reason, .. } => Some(format!(
                r#"Bearer realm="tollgate", error="insufficient_scope", error_description="{reason}""#
            )),
            AuthError::Unavailable { .. } => None,
        }
    }
}

/// Authenticates requests by bearer token or API key.
pub struct Authenticator {
    /// `None` when no identity provider is configured: bearer JWTs are then refused.
    pub oidc: Option<OidcValidator>,
    pub api_keys: ApiKeyService,
    /// Membership rows; `None`: every principal acts in its home tenant only.
    pub memberships: Option<Arc<dyn TenancyStore>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("oidc", &self.oidc)
            .field("api_keys", &self.api_keys)
            .field("memberships", &self.memberships.is_some())
            .finish()
    }
}

/// The credential in an `Authorization` header value.
fn bearer_token(authorization: &str) -> Result<&str, AuthError> {
    let Some((scheme, token)) = authorization.trim().split_once(' ') else {
        return Err(AuthError::Invalid {
            reason: if authorization.trim().eq_ignore_ascii_case("bearer") {
                "malformed_token"
            } else {
                "unsupported_scheme"
            },
        });
    };
    // RFC 7235 §2.1: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid {
            reason: "unsupported_scheme",
        });
    }
    let token = token.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(AuthError::Invalid {
            reason: "malformed_token",
        });
    }
    Ok(token)
}

impl Authenticator {
    pub fn new(oidc: Option<OidcValidator>, api_keys: ApiKeyService) -> Self {
        Self {
            oidc,
            api_keys,
            memberships: None,
        }
    }

    /// Principals may also act in the tenants they have membership rows in.
    #[must_use]
    pub fn with_memberships(mut self, store: Arc<dyn TenancyStore>) -> Self {
        self.memberships = Some(store);
        self
    }

    /// Who the request's credential proves, acting in its home tenant, from the raw
    /// `Authorization` and `X-Api-Key` header values. Presenting both is refused (RFC 6750
    /// §3.1: one method per request).
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        x_api_key: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Principal, AuthError> {
        Ok(self
            .authenticate_with_tenants(authorization, x_api_key, now)
            .await?
            .0)
    }

    /// Like [`Authenticator::authenticate`], with every tenant the principal may act in.
    pub async fn authenticate_with_tenants(
        &self,
        authorization: Option<&str>,
        x_api_key: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(Principal, TenantRoles), AuthError> {
        let credential = match (authorization, x_api_key) {
            (Some(_), Some(_)) => {
                return Err(AuthError::Invalid {
                    reason: "multiple_credentials",
                });
            }
            (None, None) => return Err(AuthError::Missing),
            (Some(authorization), None) => {
                if authorization.len() > MAX_TOKEN_BYTES + 64 {
                    return Err(AuthError::Invalid {
                        reason: "token_too_large",
                    });
                }
                bearer_token(authorization)?
            }
            (None, Some(key)) => {
                let key = key.trim();
                if !key.starts_with(API_KEY_PREFIX) {
                    return Err(AuthError::Invalid {
                        reason: "malformed_api_key",
                    });
                }
                key
            }
        };
        if credential.starts_with(API_KEY_PREFIX) {
            let principal = self.api_keys.verify(credential, now).await?;
            let rows = self.memberships_of(&principal.subject).await?;
            let roles = TenantRoles::for_api_key(principal.tenant.clone(), principal.role, &rows);
            return Ok((principal, roles));
        }
        let Some(oidc) = &self.oidc else {
            return Err(AuthError::Invalid {
                reason: "oidc_not_configured",
            });
        };
        let identity = oidc.identify(credential, now).await?;
        let rows = self.memberships_of(&identity.subject).await?;
        let Some(roles) = TenantRoles::for_token(oidc.tenant(), identity.role, &rows) else {
            return Err(AuthError::NoRole {
                subject: identity.subject,
                reason: identity.no_role_reason,
            });
        };
        let home = roles.home().clone();
        let principal = Principal {
            role: roles.role_in(&home).ok_or(AuthError::NoRole {
                subject: identity.subject.clone(),
                reason: identity.no_role_reason,
            })?,
            tenant: home,
            subject: identity.subject,
            display_name: identity.display_name,
            credential: Credential::Token,
        };
        Ok((principal, roles))
    }

    async fn memberships_of(
        &self,
        subject: &str,
    ) -> Result<Vec<tollgate_store::StoredMembership>, AuthError> {
        let Some(store) = &self.memberships else {
            return Ok(Vec::new());
        };
        store.memberships_of(subject).await.map_err(|error| {
            tracing::warn!(%error, "membership lookup failed");
            AuthError::Unavailable {
                reason: "membership_store_unavailable",
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_the_token_must_be_one_word() {
        assert_eq!(bearer_token("Bearer abc"), Ok("abc"));
        assert_eq!(bearer_token("bearer  abc "), Ok("abc"));
        assert_eq!(bearer_token("BEARER abc"), Ok("abc"));
        for (raw, reason) in [
            ("Basic dXNlcjpwYXNz", "unsupported_scheme"),
            ("abc", "unsupported_scheme"),
            ("Bearer", "malformed_token"),
            ("Bearer ", "malformed_token"),
            ("Bearer a b", "malformed_token"),
            ("", "unsupported_scheme"),
        ] {
            assert_eq!(
                bearer_token(raw),
                Err(AuthError::Invalid { reason }),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn failures_map_to_statuses_and_challenges() {
        assert_eq!(AuthError::Missing.http_status(), 401);
        assert_eq!(
            AuthError::Missing.www_authenticate().as_deref(),
            Some(r#"Bearer realm="tollgate""#)
        );
        let expired = AuthError::Invalid {
            reason: "token_expired",
        };
        assert_eq!(expired.http_status(), 401);
        assert_eq!(expired.reason(), "token_expired");
        assert_eq!(
            expired.www_authenticate().as_deref(),
            Some(
                r#"Bearer realm="tollgate", error="invalid_token", error_description="token_expired""#
            )
        );
        let no_role = AuthError::NoRole {
            subject: "oidc:t:o".into(),
            reason: "no_role",
        };
        assert_eq!(no_role.failure(), AuthFailure::Forbidden);
        assert_eq!(no_role.http_status(), 403);
        let down = AuthError::Unavailable {
            reason: "jwks_unavailable",
        };
        assert_eq!(down.http_status(), 503);
        assert_eq!(down.www_authenticate(), None);
    }
}
