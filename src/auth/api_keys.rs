//! API keys: `tg_{key_id}_{secret}`.
//!
//! The key id (12 letters and digits) is public: it names the key in listings, logs and audit
//! records, and finds its row. The secret is 32 bytes from the operating system's RNG,
//! base64url without padding (43 characters); it is shown once at creation and only its
//! SHA-256 is stored.
//!
//! Why a fast hash is right here: slow password hashes (Argon2, bcrypt) exist because
//! passwords have little entropy and can be guessed. A 256-bit random secret cannot be
//! guessed at any hash speed, so a slow hash would add no protection for a stolen database
//! and would cost tens of milliseconds of CPU on every request (a denial-of-service lever).

use crate::services::audit_events::{Actor, AuditEvent, Record, Target};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tollgate_domain::{SecretString, TenantId};
use tollgate_store::{ApiKeyStore, StoreError, StoredApiKey};

use super::authenticator::AuthError;
use super::{Credential, Principal, Role};

/// Every API key starts with this; bearer tokens that do are API keys, not JWTs.
pub const API_KEY_PREFIX: &str = "tg_";
/// Letters and digits only, so the `_` after it separates unambiguously from the secret
/// (whose base64url alphabet contains `_`).
pub const KEY_ID_LEN: usize = 12;
const SECRET_BYTES: usize = 32;
const SECRET_CHARS: usize = 43;
const KEY_ID_ALPHABET: &[u8; 62] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// `last_used_at` is written at most this often per key: a busy key must not turn every
/// request into a database write.
pub const LAST_USED_GRANULARITY: Duration = Duration::from_secs(60);
const MAX_NAME_CHARS: usize = 100;
/// The name and creator of the key [`ApiKeyService::bootstrap_admin`] creates.
pub const BOOTSTRAP: &str = "bootstrap";

/// An API key as shown to administrators: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub tenant: TenantId,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
}

impl ApiKeyRecord {
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| expiry > now)
    }
}

/// Why an API key could not be created, listed or revoked.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the key name {0:?} is not allowed: use 1-100 characters without control characters")]
    InvalidName(String),
    #[error("the expiry {0} is not in the future")]
    ExpiryNotInFuture(OffsetDateTime),
    #[error("the operating system's random number generator failed: {0}")]
    Randomness(String),
    #[error("API key {key_id} has the unknown role {role:?} in the database")]
    UnknownRole { key_id: String, role: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates, lists, revokes and verifies API keys.
#[derive(Clone)]
pub struct ApiKeyService {
    store: Arc<dyn ApiKeyStore>,
}

impl std::fmt::Debug for ApiKeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyService").finish_non_exhaustive()
    }
}

/// A key id and secret from the OS RNG.
fn generate() -> Result<(String, [u8; SECRET_BYTES]), ApiKeyError> {
    let randomness = |error: rand::Error| ApiKeyError::Randomness(error.to_string());
    let mut key_id = String::with_capacity(KEY_ID_LEN);
    let mut buffer = [0u8; 32];
    while key_id.len() < KEY_ID_LEN {
        OsRng.try_fill_bytes(&mut buffer).map_err(randomness)?;
        // Rejection sampling: 248 = 4 × 62, so accepted bytes map uniformly onto the alphabet.
        for byte in buffer.iter().filter(|byte| **byte < 248) {
            if key_id.len() == KEY_ID_LEN {
                break;
            }
            key_id.push(char::from(KEY_ID_ALPHABET[usize::from(*byte) % 62]));
        }
    }
    let mut secret = [0u8; SECRET_BYTES];
    OsRng.try_fill_bytes(&mut secret).map_err(randomness)?;
    Ok((key_id, secret))
}

fn full_key(key_id: &str, secret: &[u8; SECRET_BYTES]) -> SecretString {
    SecretString::new(format!(
        "{API_KEY_PREFIX}{key_id}_{}",
        URL_SAFE_NO_PAD.encode(secret)
    ))
}

/// The key id and the secret's bytes of a presented key, if it has the right shape.
fn parse(presented: &str) -> Option<(&str, [u8; SECRET_BYTES])> {
    let rest = presented.strip_prefix(API_KEY_PREFIX)?;
    let (key_id, secret) = rest.split_once('_')?;
    if key_id.len() != KEY_ID_LEN || !key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    if secret.len() != SECRET_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(secret).ok()?;
    Some((key_id, bytes.try_into().ok()?))
}

fn hash(secret: &[u8; SECRET_BYTES]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

fn record_from(stored: StoredApiKey) -> Result<ApiKeyRecord, ApiKeyError> {
    let role = stored
        .role
        .parse::<Role>()
        .map_err(|_| ApiKeyError::UnknownRole {
            key_id: stored.key_id.clone(),
            role: stored.role.clone(),
        })?;
    Ok(ApiKeyRecord {
        key_id: stored.key_id,
        tenant: stored.tenant,
        name: stored.name,
        role,
        created_at: stored.created_at,
        created_by: stored.created_by,
        expires_at: stored.expires_at,
        revoked_at: stored.revoked_at,
        last_used_at: stored.last_used_at,
    })
}

fn store_unavailable(error: &StoreError) -> AuthError {
    tracing::warn!(%error, "API key lookup failed");
    AuthError::Unavailable {
        reason: "key_store_unavailable",
    }
}

impl ApiKeyService {
    pub fn new(store: Arc<dyn ApiKeyStore>) -> Self {
        Self { store }
    }

    fn new_key(
        tenant: &TenantId,
        name: &str,
        role: Role,
        expires_at: Option<OffsetDateTime>,
        created_by: &str,
        now: OffsetDateTime,
    ) -> Result<(StoredApiKey, SecretString), ApiKeyError> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(ApiKeyError::InvalidName(name.to_owned()));
        }
        if let Some(expiry) = expires_at
            && expiry <= now
        {
            return Err(ApiKeyError::ExpiryNotInFuture(expiry));
        }
        let (key_id, secret) = generate()?;
        let stored = StoredApiKey {
            secret_sha256: hash(&secret),
            tenant: tenant.clone(),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            created_at: now,
            created_by: created_by.to_owned(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
            key_id,
        };
        let key = full_key(&stored.key_id, &secret);
        Ok((stored, key))
    }

    /// Create a key. The returned secret is the full key (`tg_…`), shown once and never again.
    pub async fn create(
        &self,
        tenant: &TenantId,
        name: &str,
        role: Role,
        expires_at: Option<OffsetDateTime>,
        created_by: &str,
        now: OffsetDateTime,
    ) -> Result<(ApiKeyRecord, SecretString), ApiKeyError> {
        let (stored, key) = Self::new_key(tenant, name, role, expires_at, created_by, now)?;
        let record = key_record(AuditEvent::ApiKeyCreated, &stored, created_by, now);
        self.store.insert_api_key(&stored, &[record]).await?;
        Ok((record_from(stored)?, key))
    }

    /// A tenant's keys, revoked and expired ones included, oldest first. Never secrets.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>, ApiKeyError> {
        self.store
            .api_keys(tenant)
            .await?
            .into_iter()
            .map(record_from)
            .collect()
    }

    /// Revoke a tenant's key. Returns whether the tenant has a key with this id (revoking a
    /// revoked key again succeeds and keeps the first revocation time).
    pub async fn revoke(
        &self,
        tenant: &TenantId,
        key_id: &str,
        now: OffsetDateTime,
        revoked_by: &Actor,
    ) -> Result<bool, ApiKeyError> {
        let record = Record::new(AuditEvent::ApiKeyRevoked, revoked_by, now)
            .target(Target::new("api_key", key_id))
            .draft();
        Ok(self
            .store
            .revoke_api_key(tenant, key_id, now, &[record])
            .await?)
    }

    /// The principal a presented key (`tg_…`) proves at `now`.
    pub async fn verify(
        &self,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<Principal, AuthError> {
        let (key_id, secret) = parse(presented).ok_or(AuthError::Invalid {
            reason: "malformed_api_key",
        })?;
        let presented_hash = hash(&secret);
        let stored = self
            .store
            .api_key(key_id)
            .await
            .map_err(|error| store_unavailable(&error))?;
        let Some(stored) = stored else {
            // Compare anyway, so an unknown id costs what a wrong secret costs.
            let _ = presented_hash.ct_eq(&[0u8; 32]);
            return Err(AuthError::Invalid {
                reason: "unknown_api_key",
            });
        };
        if !bool::from(presented_hash.ct_eq(&stored.secret_sha256)) {
            return Err(AuthError::Invalid {
                reason: "wrong_api_key_secret",
            });
        }
        // Only a holder of the secret learns that the key was revoked or expired.
        if stored.revoked_at.is_some() {
            return Err(AuthError::Invalid {
                reason: "api_key_revoked",
            });
        }
        if stored.expires_at.is_some_and(|expiry| expiry <= now) {
            return Err(AuthError::Invalid {
                reason: "api_key_expired",
            });
        }
        let Ok(role) = stored.role.parse::<Role>() else {
            tracing::error!(key_id, role = %stored.role, "API key has an unknown role; refusing it");
            return Err(AuthError::Invalid {
                reason: "api_key_role_unknown",
            });
        };
        let touch_due = stored
            .last_used_at
            .is_none_or(|used| (now - used).unsigned_abs() >= LAST_USED_GRANULARITY);
        if touch_due && let Err(error) = self.store.touch_api_key(key_id, now).await {
            // Bookkeeping only: the key is valid whether or not the write lands.
            tracing::warn!(key_id, %error, "recording an API key's last use failed");
        }
        Ok(Principal {
            subject: format!("apikey:{key_id}"),
            display_name: stored.name,
            tenant: stored.tenant,
            role,
            credential: Credential::ApiKey {
                key_id: key_id.to_owned(),
            },
        })
    }

    /// First start without any way in: when no identity provider is configured and no key of
    /// any tenant is active, create an admin key named `bootstrap` in the default tenant and
    /// return it (full key, for printing once). Otherwise, and on every later call, `None`.
    pub async fn bootstrap_admin(
        &self,
        identity_provider_configured: bool,
        now: OffsetDateTime,
    ) -> Result<Option<SecretString>, ApiKeyError> {
        if identity_provider_configured {
            return Ok(None);
        }
        let (stored, key) = Self::new_key(
            &TenantId::default_tenant(),
            BOOTSTRAP,
            Role::Admin,
            None,
            BOOTSTRAP,
            now,
        )?;
        let record = key_record(AuditEvent::BootstrapKeyIssued, &stored, BOOTSTRAP, now);
        let created = self
            .store
            .insert_api_key_if_none_active(&stored, now, &[record])
            .await?;
        Ok(created.then_some(key))
    }
}

/// A key's audit record: who made it, its name, role and expiry — never the secret.
fn key_record(
    event: AuditEvent,
    stored: &StoredApiKey,
    created_by: &str,
    now: OffsetDateTime,
) -> tollgate_store::AuditDraft {
    let actor = Actor {
        kind: if created_by == BOOTSTRAP {
            "system"
        } else {
            "user"
        },
        id: created_by.to_owned(),
        name: None,
        auth: None,
        ip: None,
    };
    Record::new(event, &actor, now)
        .target(Target {
            kind: "api_key".to_owned(),
            id: stored.key_id.clone(),
            name: Some(stored.name.clone()),
            project: None,
        })
        .detail(
            "after",
            serde_json::json!({
                "role": stored.role,
                "expires_at": stored.expires_at.map(crate::services::audit_events::rfc3339),
            }),
        )
        .draft()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_and_differ() {
        let (id_a, secret_a) = generate().unwrap_or_else(|e| panic!("{e}"));
        let (id_b, secret_b) = generate().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(id_a, id_b);
        assert_ne!(secret_a, secret_b);
        let key = full_key(&id_a, &secret_a);
        assert_eq!(key.expose().len(), 3 + KEY_ID_LEN + 1 + SECRET_CHARS);
        assert_eq!(parse(key.expose()), Some((id_a.as_str(), secret_a)));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let (id, secret) = generate().unwrap_or_else(|e| panic!("{e}"));
        let good = full_key(&id, &secret).expose().to_owned();
        let cases = [
            String::new(),
            "tg_".to_owned(),
            "tg__".to_owned(),
            good.replacen("tg_", "tk_", 1),
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            format!("{good}="),
            good.replacen(&id, &id[..11], 1),
            good.replacen(&id, &format!("{}-", &id[..11]), 1),
            format!("tg_{id}"),
            format!("tg_{id}_{}", "!".repeat(SECRET_CHARS)),
            format!("tg_{id}_{}", "é".repeat(SECRET_CHARS)),
        ];
        for case in cases {
            assert_eq!(parse(&case), None, "{case:?}");
        }
    }
}
