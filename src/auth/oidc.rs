//! Bearer tokens from an OpenID Connect issuer (Entra ID, or any issuer publishing a JWKS).
//!
//! Validation order: the header is read first (size, shape, `alg` against the pinned
//! allow-list, `kid`), the key is found by `kid` in the issuer's key set (fetched lazily,
//! cached, refetched at most once per interval for an unknown `kid`), the key must suit the
//! algorithm, then jsonwebtoken checks the signature, `iss` and `aud`. Times (`exp` required,
//! `nbf`) are checked here against the caller's clock, strictly typed (CVE-2026-25537 was a
//! string `exp` treated as absent), and so are `tid`, the subject and the role.
//!
//! Headers that point at keys (`jku`, `x5u`, `jwk`) are never followed: keys come only from
//! the configured issuer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tollgate_domain::TenantId;

use super::authenticator::AuthError;
use super::{Credential, Principal, Role};

/// Longest bearer token read at all. Entra access tokens are 1–3 kB; 16 KiB leaves room for
/// large group lists while keeping garbage cheap to refuse.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// RSA keys shorter than this are ignored (RFC 8725 §3.5 and NIST: at least 2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Select the jsonwebtoken crypto backend for the process.
///
/// jsonwebtoken 10+ verifies through a process-wide `CryptoProvider`. With exactly one backend
/// feature enabled (ours: `rust_crypto`) it infers the provider, but Cargo unifies features:
/// should any other crate in the graph enable `aws_lc_rs` too, the inferred provider is one
/// that panics at the first signature check. Installing ours explicitly removes that trap.
/// Idempotent; an already installed provider (ours or the application's) stays.
pub fn install_crypto_provider() {
    let _already_installed = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

/// The asymmetric algorithms a token may be signed with. Symmetric (`HS*`) algorithms and
/// `none` are deliberately absent: a key set from an issuer holds public keys, and accepting
/// HMAC would let anyone who has the public key forge tokens (algorithm confusion).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
}

impl SigningAlgorithm {
    pub const ALL: [SigningAlgorithm; 8] = [
        SigningAlgorithm::RS256,
        SigningAlgorithm::RS384,
        SigningAlgorithm::RS512,
        SigningAlgorithm::PS256,
        SigningAlgorithm::PS384,
        SigningAlgorithm::PS512,
        SigningAlgorithm::ES256,
        SigningAlgorithm::ES384,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::RS384 => "RS384",
            SigningAlgorithm::RS512 => "RS512",
            SigningAlgorithm::PS256 => "PS256",
            SigningAlgorithm::PS384 => "PS384",
            SigningAlgorithm::PS512 => "PS512",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::ES384 => "ES384",
        }
    }

    /// The algorithm a token header names, if it is one of ours (exact, case-sensitive, as
    /// RFC 7518 registers the names).
    pub fn from_header(alg: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|known| known.as_str() == alg)
    }

    fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::RS256 => Algorithm::RS256,
            SigningAlgorithm::RS384 => Algorithm::RS384,
            SigningAlgorithm::RS512 => Algorithm::RS512,
            SigningAlgorithm::PS256 => Algorithm::PS256,
            SigningAlgorithm::PS384 => Algorithm::PS384,
            SigningAlgorithm::PS512 => Algorithm::PS512,
            SigningAlgorithm::ES256 => Algorithm::ES256,
            SigningAlgorithm::ES384 => Algorithm::ES384,
        }
    }

    /// The elliptic curve an EC key must be on for this algorithm.
    fn curve(self) -> Option<EllipticCurve> {
        match self {
            SigningAlgorithm::ES256 => Some(EllipticCurve::P256),
            SigningAlgorithm::ES384 => Some(EllipticCurve::P384),
            _ => None,
        }
    }
}

/// `[auth.oidc]`: the one identity provider whose bearer tokens are accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSettings {
    /// Compared exactly with the token's `iss`, e.g. `https://login.microsoftonline.com/{tid}/v2.0`
    /// (v2 tokens) or `https://sts.windows.net/{tid}/` (v1 tokens).
    pub issuer: String,
    /// The token's `aud` must contain one of these: for Entra v2 the API's client id, for v1
    /// its App ID URI (`api://…`).
    pub audiences: Vec<String>,
    /// When set, the token's `tid` must equal it (a single-tenant Entra app registration).
    pub entra_tenant_id: Option<String>,
    /// The key set; when absent, found through `{issuer}/.well-known/openid-configuration`.
    pub jwks_url: Option<String>,
    /// The pinned algorithm allow-list.
    pub algorithms: Vec<SigningAlgorithm>,
    /// Entra group object id → role, for tokens carrying a `groups` claim.
    pub group_roles: BTreeMap<String, Role>,
    /// The role of a valid token that maps to none; `None` refuses such tokens (403).
    pub default_role: Option<Role>,
    /// The tollgate tenant OIDC principals act in.
    pub tenant: TenantId,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// An unknown `kid` refetches the key set at most this often.
    pub jwks_refetch_min_interval_secs: u64,
    /// Cached keys are refreshed after this long (and kept while the refresh fails).
    pub jwks_cache_secs: u64,
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audiences: Vec::new(),
            entra_tenant_id: None,
            jwks_url: None,
            algorithms: vec![SigningAlgorithm::RS256],
            group_roles: BTreeMap::new(),
            default_role: None,
            tenant: TenantId::default_tenant(),
            leeway_secs: 60,
            jwks_refetch_min_interval_secs: 60,
            jwks_cache_secs: 3600,
        }
    }
}

/// A setting that makes token validation unsafe or impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("auth.oidc.{key}: {problem}")]
pub struct OidcConfigError {
    pub key: &'static str,
    pub problem: String,
}

fn config_error(key: &'static str, problem: impl Into<String>) -> OidcConfigError {
    OidcConfigError {
        key,
        problem: problem.into(),
    }
}

/// `8-4-4-4-12` hexadecimal digits, as Entra writes tenant ids.
fn is_guid(raw: &str) -> bool {
    let groups: Vec<&str> = raw.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

impl OidcSettings {
    /// Refuse settings under which validation would be unsafe or could never succeed.
    pub fn validate(&self) -> Result<(), OidcConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(config_error("issuer", "is empty; set the issuer URL"));
        }
        if self.issuer.chars().any(char::is_whitespace) {
            return Err(config_error("issuer", "contains whitespace"));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(config_error(
                "audiences",
                "list at least one audience (the API's client id or App ID URI); empty entries are not allowed",
            ));
        }
        if self.algorithms.is_empty() {
            return Err(config_error(
                "algorithms",
                "is empty; Entra ID signs with RS256",
            ));
        }
        if let Some(tid) = &self.entra_tenant_id
            && !is_guid(tid)
        {
            return Err(config_error(
                "entra_tenant_id",
                format!(
                    "{tid:?} is not a tenant id (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47)"
                ),
            ));
        }
        if self.leeway_secs > 300 {
            return Err(config_error(
                "leeway_secs",
                "is over 300; clock skew beyond five minutes means a broken clock",
            ));
        }
        if self.jwks_cache_secs == 0 {
            return Err(config_error("jwks_cache_secs", "must be at least 1"));
        }
        Ok(())
    }

    /// Where OpenID discovery finds the key set's address.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }
}

/// Why the issuer's key set could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySourceError {
    #[error("requesting {url} failed: {message}")]
    Request { url: String, message: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent more than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{url} sent an unusable document: {message}")]
    Invalid { url: String, message: String },
    #[error("{0}")]
    Config(String),
}

/// Where the issuer's signing keys come from (HTTP in production, anything in tests).
#[async_trait]
pub trait KeySource: Send + Sync {
    async fn fetch_keys(&self) -> Result<JwkSet, KeySourceError>;
}

/// Parse a JWKS document, skipping keys this library cannot represent rather than failing
/// the whole set (issuers add key types over time).
pub fn parse_jwks(body: &[u8], url: &str) -> Result<JwkSet, KeySourceError> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let raw: RawSet = serde_json::from_slice(body).map_err(|error| KeySourceError::Invalid {
        url: url.to_owned(),
        message: format!("not a JWKS document: {error}"),
    })?;
    let keys = raw
        .keys
        .into_iter()
        .filter_map(|key| match serde_json::from_value::<Jwk>(key) {
            Ok(jwk) => Some(jwk),
            Err(error) => {
                tracing::debug!(%url, %error, "skipping a key the JWKS library cannot read");
                None
            }
        })
        .collect();
    Ok(JwkSet { keys })
}

/// A key from the set, ready to verify with.
#[derive(Clone)]
struct VerificationKey {
    key: DecodingKey,
    family: AlgorithmFamily,
    curve: Option<EllipticCurve>,
    /// The JWK's own `alg`, when it names one: the header must then match it exactly.
    alg: Option<KeyAlgorithm>,
}

impl VerificationKey {
    /// A signing key from the set, or why it is not one we accept.
    fn from_jwk(jwk: &Jwk) -> Result<(String, Self), &'static str> {
        let kid = jwk.common.key_id.clone().ok_or("no kid")?;
        if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
            return Err("not a signature key (use)");
        }
        if matches!(&jwk.common.key_operations, Some(ops) if !ops.contains(&KeyOperations::Verify))
        {
            return Err("not a verification key (key_ops)");
        }
        let (family, curve) = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => (AlgorithmFamily::Rsa, None),
            AlgorithmParameters::EllipticCurve(params) => {
                (AlgorithmFamily::Ec, Some(params.curve.clone()))
            }
            // A symmetric key in a public key set is a misconfiguration or an attack.
            _ => return Err("unsupported key type"),
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|_| "unreadable key material")?;
        if let DecodingKeyKind::RsaModulusExponent { n, .. } = key.kind() {
            let significant = n.iter().skip_while(|byte| **byte == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err("RSA key shorter than 2048 bits");
            }
        }
        Ok((
            kid,
            Self {
                key,
                family,
                curve,
                alg: jwk.common.key_algorithm,
            },
        ))
    }

    /// Whether a token signed with `alg` may be verified with this key: same family, same
    /// curve, and the JWK's `alg` (if any) equal to the header's.
    fn suits(&self, alg: SigningAlgorithm) -> bool {
        let jwt = alg.jwt();
        jwt.family() == self.family
            && (alg.curve().is_none() || alg.curve() == self.curve)
            && self
                .alg
                .is_none_or(|key_alg| key_alg == KeyAlgorithm::from(jwt))
    }
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, VerificationKey>,
    /// When the keys above were fetched; `None` until the first successful fetch.
    fetched_at: Option<OffsetDateTime>,
    /// When a fetch was last started, whatever its outcome: the refetch rate limit.
    attempted_at: Option<OffsetDateTime>,
}

/// A validated token's identity, before tenants are considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcIdentity {
    /// `oidc:{tid}:{oid}`.
    pub subject: String,
    pub display_name: String,
    /// The role the configured groups, app roles or default role give, in the configured tenant.
    pub role: Option<Role>,
    /// Why `role` is `None`: `no_role`, or `groups_overage` (too many groups for the token).
    pub no_role_reason: &'static str,
}

/// Validates bearer JWTs from the configured issuer and turns them into principals.
pub struct OidcValidator {
    settings: OidcSettings,
    /// Group ids lower-cased: Entra writes GUIDs in lower case, configuration may not.
    group_roles: HashMap<String, Role>,
    source: Arc<dyn KeySource>,
    cache: RwLock<KeyCache>,
    /// Held while fetching, so concurrent requests share one fetch.
    refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OidcValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcValidator")
            .field("issuer", &self.settings.issuer)
            .field("audiences", &self.settings.audiences)
            .finish_non_exhaustive()
    }
}

fn invalid(reason: &'static str) -> AuthError {
    AuthError::Invalid { reason }
}

/// The parts of a token header read before any key is chosen.
#[derive(Deserialize)]
struct TokenHeader {
    alg: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

fn read_header(token: &str) -> Result<TokenHeader, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(invalid("token_too_large"));
    }
    let mut segments = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(invalid("malformed_token"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| invalid("malformed_token"))?;
    serde_json::from_slice(&bytes).map_err(|_| invalid("malformed_token"))
}

/// A NumericDate claim (RFC 7519 §2): a JSON number of seconds. Anything else is malformed,
/// never "absent".
fn numeric_date(value: &Value) -> Option<i64> {
    let Value::Number(number) = value else {
        return None;
    };
    if let Some(seconds) = number.as_i64() {
        return Some(seconds);
    }
    if number.as_u64().is_some() {
        return Some(i64::MAX);
    }
    number
        .as_f64()
        .filter(|seconds| seconds.is_finite())
        // Saturating: float-to-int `as` clamps out-of-range values.
        .map(|seconds| seconds.floor() as i64)
}

/// A claim that may be one string or an array of strings; other values yield nothing.
fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn is_clean(text: &str, max_len: usize) -> bool {
    !text.is_empty() && text.len() <= max_len && !text.chars().any(char::is_control)
}

fn jwt_error_reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "bad_signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "alg_not_allowed",
        ErrorKind::InvalidIssuer => "wrong_issuer",
        ErrorKind::InvalidAudience => "wrong_audience",
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => "missing_iss",
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => "missing_aud",
        ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => "unusable_key",
        _ => "malformed_token",
    }
}

impl OidcValidator {
    pub fn new(
        settings: OidcSettings,
        source: Arc<dyn KeySource>,
    ) -> Result<Self, OidcConfigError> {
        settings.validate()?;
        install_crypto_provider();
        let group_roles = settings
            .group_roles
            .iter()
            .map(|(group, role)| (group.to_ascii_lowercase(), *role))
            .collect();
        Ok(Self {
            settings,
            group_roles,
            source,
            cache: RwLock::new(KeyCache::default()),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Validate a bearer token (without the `Bearer ` prefix) at `now`: a principal acting in
    /// the configured tenant with the mapped role, or [`AuthError::NoRole`] when none maps.
    pub async fn validate(&self, token: &str, now: OffsetDateTime) -> Result<Principal, AuthError> {
        let identity = self.identify(token, now).await?;
        match identity.role {
            Some(role) => Ok(Principal {
                subject: identity.subject,
                display_name: identity.display_name,
                tenant: self.settings.tenant.clone(),
                role,
                credential: Credential::Token,
            }),
            None => Err(AuthError::NoRole {
                subject: identity.subject,
                reason: identity.no_role_reason,
            }),
        }
    }

    /// The tenant a mapped role applies in (`tenant` in `[auth.oidc]`).
    pub fn tenant(&self) -> &TenantId {
        &self.settings.tenant
    }

    /// Who a valid bearer token proves, and the role the configured mapping gives it (if
    /// any): memberships may grant roles the mapping does not (see `auth::tenancy`).
    pub async fn identify(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<OidcIdentity, AuthError> {
        let header = read_header(token)?;
        let alg = match header.alg {
            Some(Value::String(alg)) => SigningAlgorithm::from_header(&alg)
                .filter(|alg| self.settings.algorithms.contains(alg))
                .ok_or(invalid("alg_not_allowed"))?,
            _ => return Err(invalid("malformed_token")),
        };
        // RFC 7515 §4.1.11: a critical extension we do not understand makes the token invalid.
        if header.crit.is_some() {
            return Err(invalid("unsupported_crit"));
        }
        let kid = match header.kid {
            Some(Value::String(kid)) if !kid.is_empty() => kid,
            None => return Err(invalid("missing_kid")),
            Some(_) => return Err(invalid("malformed_token")),
        };
        let key = self.key_for(&kid, now).await?;
        if !key.suits(alg) {
            return Err(invalid("alg_key_mismatch"));
        }
        let claims = self.verified_claims(token, alg, &key)?;
        self.check_times(&claims, now)?;
        let tid = self.check_tenant(&claims)?;
        let id = ["oid", "sub"]
            .iter()
            .find_map(|name| claims.get(*name).and_then(Value::as_str))
            .ok_or(invalid("missing_subject"))?;
        if !is_clean(id, 256) {
            return Err(invalid("malformed_subject"));
        }
        let subject = format!("oidc:{tid}:{id}");
        let display_name = ["name", "preferred_username", "upn"]
            .iter()
            .filter_map(|name| claims.get(*name).and_then(Value::as_str))
            .map(|name| {
                name.chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect::<String>()
            })
            .find(|name| !name.trim().is_empty())
            .unwrap_or_else(|| subject.clone());
        // Entra replaces `groups` by a pointer when a user is in too many groups.
        let overage = claims
            .get("_claim_names")
            .and_then(|names| names.get("groups"))
            .is_some();
        Ok(OidcIdentity {
            subject,
            display_name,
            role: self.role_for(&claims),
            no_role_reason: if overage { "groups_overage" } else { "no_role" },
        })
    }

    /// Signature, `iss` and `aud`, by jsonwebtoken; the claims as a JSON object.
    fn verified_claims(
        &self,
        token: &str,
        alg: SigningAlgorithm,
        key: &VerificationKey,
    ) -> Result<Map<String, Value>, AuthError> {
        let mut validation = Validation::new(alg.jwt());
        validation.set_issuer(&[self.settings.issuer.as_str()]);
        validation.set_audience(&self.settings.audiences);
        validation.set_required_spec_claims(&["iss", "aud"]);
        // Times are checked by `check_times` against the caller's clock, strictly typed.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|error| invalid(jwt_error_reason(error.kind())))?;
        match data.claims {
            Value::Object(claims) => Ok(claims),
            _ => Err(invalid("malformed_token")),
        }
    }

    fn check_times(
        &self,
        claims: &Map<String, Value>,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let now = now.unix_timestamp();
        let leeway = i64::try_from(self.settings.leeway_secs).unwrap_or(i64::MAX);
        let exp = claims.get("exp").ok_or(invalid("missing_exp"))?;
        let exp = numeric_date(exp).ok_or(invalid("malformed_exp"))?;
        if now > exp.saturating_add(leeway) {
            return Err(invalid("token_expired"));
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = numeric_date(nbf).ok_or(invalid("malformed_nbf"))?;
            if nbf > now.saturating_add(leeway) {
                return Err(invalid("token_not_yet_valid"));
            }
        }
        Ok(())
    }

    /// The tenant part of the subject: the `tid` claim (required and pinned when
    /// `entra_tenant_id` is set), or `-` for an issuer without tenants.
    fn check_tenant(&self, claims: &Map<String, Value>) -> Result<String, AuthError> {
        let tid = match claims.get("tid") {
            None => None,
            Some(Value::String(tid)) => Some(tid.as_str()),
            Some(_) => return Err(invalid("malformed_tid")),
        };
        if let Some(tid) = tid
            && (tid.is_empty()
                || tid.len() > 64
                || !tid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
        {
            return Err(invalid("malformed_tid"));
        }
        if let Some(expected) = &self.settings.entra_tenant_id {
            match tid {
                None => return Err(invalid("missing_tid")),
                Some(tid) if !tid.eq_ignore_ascii_case(expected) => {
                    return Err(invalid("wrong_tenant"));
                }
                Some(_) => {}
            }
        }
        Ok(tid.map_or_else(|| "-".to_owned(), str::to_ascii_lowercase))
    }

    /// The highest role granted by a mapped group or an app role; else the default role.
    fn role_for(&self, claims: &Map<String, Value>) -> Option<Role> {
        let from_groups = strings(claims.get("groups"))
            .into_iter()
            .filter_map(|group| self.group_roles.get(&group.to_ascii_lowercase()).copied());
        let from_app_roles = strings(claims.get("roles"))
            .into_iter()
            .filter_map(|role| role.parse::<Role>().ok());
        from_groups
            .chain(from_app_roles)
            .max()
            .or(self.settings.default_role)
    }

    fn cache_read(&self) -> std::sync::RwLockReadGuard<'_, KeyCache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache_write(&self) -> std::sync::RwLockWriteGuard<'_, KeyCache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_stale(&self, cache: &KeyCache, now: OffsetDateTime) -> bool {
        let max_age = Duration::from_secs(self.settings.jwks_cache_secs);
        cache
            .fetched_at
            .is_none_or(|fetched| (now - fetched).unsigned_abs() >= max_age)
    }

    /// Whether the rate limit allows a fetch now. Distance, not signed difference: requests
    /// carry slightly different clocks, and an earlier `now` must not count as "long ago".
    fn may_fetch(&self, cache: &KeyCache, now: OffsetDateTime) -> bool {
        let interval = Duration::from_secs(self.settings.jwks_refetch_min_interval_secs);
        cache
            .attempted_at
            .is_none_or(|attempted| (now - attempted).unsigned_abs() >= interval)
    }

    /// The key for `kid`: from the cache, or after at most one fetch per interval.
    async fn key_for(&self, kid: &str, now: OffsetDateTime) -> Result<VerificationKey, AuthError> {
        let known = {
            let cache = self.cache_read();
            let known = cache.keys.get(kid).cloned();
            match known {
                Some(key) if !self.is_stale(&cache, now) => return Ok(key),
                other => other,
            }
        };
        // A known key in a stale set: if a refresh is already running, use the key rather
        // than wait for it.
        let _flight = match (&known, self.refresh.try_lock()) {
            (_, Ok(guard)) => guard,
            (Some(key), Err(_)) => return Ok(key.clone()),
            (None, Err(_)) => self.refresh.lock().await,
        };
        let may_fetch = {
            let cache = self.cache_read();
            // Another request may have refreshed while this one waited.
            if let Some(key) = cache.keys.get(kid)
                && !self.is_stale(&cache, now)
            {
                return Ok(key.clone());
            }
            self.may_fetch(&cache, now)
        };
        if may_fetch {
            // A failure is logged there; the cache decides below what still works.
            let _ = self.refresh_keys(now).await;
        }
        let cache = self.cache_read();
        if let Some(key) = cache.keys.get(kid) {
            return Ok(key.clone());
        }
        if cache.fetched_at.is_none() {
            // Never had a key set: fail closed, but as "unavailable", not as a bad token.
            return Err(AuthError::Unavailable {
                reason: "jwks_unavailable",
            });
        }
        Err(invalid("unknown_kid"))
    }

    /// Fetch the key set now (at start-up, to show a misconfigured issuer early) and return
    /// how many usable signing keys it holds. Counts against the refetch rate limit.
    pub async fn warm_up(&self, now: OffsetDateTime) -> Result<usize, KeySourceError> {
        let _flight = self.refresh.lock().await;
        self.refresh_keys(now).await
    }

    /// Fetch the key set and replace the cache; on failure keep the old keys (served while
    /// stale) and log why. Callers hold `refresh`.
    async fn refresh_keys(&self, now: OffsetDateTime) -> Result<usize, KeySourceError> {
        self.cache_write().attempted_at = Some(now);
        let set = self.source.fetch_keys().await.inspect_err(|error| {
            tracing::warn!(issuer = %self.settings.issuer, %error, "fetching the issuer's signing keys failed");
        })?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            match VerificationKey::from_jwk(jwk) {
                Ok((kid, key)) => {
                    keys.insert(kid, key);
                }
                Err(why) => {
                    tracing::debug!(kid = ?jwk.common.key_id, why, "ignoring a key in the issuer's key set");
                }
            }
        }
        if keys.is_empty() {
            tracing::warn!(
                issuer = %self.settings.issuer,
                "the issuer's key set holds no usable signing key; every token will be refused"
            );
        }
        let usable = keys.len();
        let mut cache = self.cache_write();
        cache.keys = keys;
        cache.fetched_at = Some(now);
        Ok(usable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(!is_guid("common"));
        assert!(!is_guid("72f988bf-86f1-41af-91ab-2d7cd011db4"));
        assert!(!is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47-00"));
        assert!(!is_guid("zzf988bf-86f1-41af-91ab-2d7cd011db47"));
    }

    #[test]
    fn numeric_dates_are_numbers_only() {
        assert_eq!(numeric_date(&serde_json::json!(10)), Some(10));
        assert_eq!(numeric_date(&serde_json::json!(-5)), Some(-5));
        assert_eq!(numeric_date(&serde_json::json!(10.9)), Some(10));
        assert_eq!(numeric_date(&serde_json::json!(u64::MAX)), Some(i64::MAX));
        assert_eq!(numeric_date(&serde_json::json!(1e300)), Some(i64::MAX));
        assert_eq!(numeric_date(&serde_json::json!("never")), None);
        assert_eq!(numeric_date(&serde_json::json!(null)), None);
        assert_eq!(numeric_date(&serde_json::json!([1])), None);
    }

    #[test]
    fn settings_refuse_unsafe_or_impossible_values() {
        let good = OidcSettings {
            issuer: "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
                .into(),
            audiences: vec!["api://tollgate".into()],
            ..OidcSettings::default()
        };
        assert_eq!(good.validate(), Ok(()));
        let cases: [(&str, OidcSettings); 5] = [
            (
                "issuer",
                OidcSettings {
                    issuer: String::new(),
                    ..good.clone()
                },
            ),
            (
                "audiences",
                OidcSettings {
                    audiences: vec![],
                    ..good.clone()
                },
            ),
            (
                "algorithms",
                OidcSettings {
                    algorithms: vec![],
                    ..good.clone()
                },
            ),
            (
                "entra_tenant_id",
                OidcSettings {
                    entra_tenant_id: Some("common".into()),
                    ..good.clone()
                },
            ),
            (
                "leeway_secs",
                OidcSettings {
                    leeway_secs: 3600,
                    ..good.clone()
                },
            ),
        ];
        for (key, settings) in cases {
            assert_eq!(settings.validate().map_err(|e| e.key), Err(key));
        }
    }

    #[test]
    fn algorithms_outside_the_asymmetric_set_do_not_parse() {
        for bad in ["none", "HS256", "HS512", "rs256", "EdDSA", ""] {
            assert!(SigningAlgorithm::from_header(bad).is_none(), "{bad}");
            let parsed: Result<SigningAlgorithm, _> =
                serde_json::from_value(serde_json::json!(bad));
            assert!(parsed.is_err(), "{bad}");
        }
        assert_eq!(
            SigningAlgorithm::from_header("RS256"),
            Some(SigningAlgorithm::RS256)
        );
    }

    #[test]
    fn headers_that_are_not_three_segments_are_malformed() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        for token in [
            String::new(),
            "a.b".to_owned(),
            format!("{header}.e30"),
            format!("{header}.e30.sig.extra"),
            format!("{header}=.e30.sig"),
            "!!!.e30.sig".to_owned(),
        ] {
            assert!(
                matches!(
                    read_header(&token),
                    Err(AuthError::Invalid {
                        reason: "malformed_token"
                    })
                ),
                "{token}"
            );
        }
        assert!(read_header(&format!("{header}.e30.sig")).is_ok());
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            read_header(&huge),
            Err(AuthError::Invalid {
                reason: "token_too_large"
            })
        ));
    }
}
