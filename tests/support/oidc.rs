//! A local OpenID Connect issuer for tests: a real axum server on 127.0.0.1:0 serving an
//! Entra-shaped discovery document and JWKS, with RSA keys generated in the test. It mints
//! tokens with any header and claims, rotates and retires keys, can make the JWKS endpoint
//! fail, and counts the fetches.
//!
//! Include it with `#[path = "support/oidc.rs"] mod oidc_issuer;`.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the issuer"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support reports failure by panicking"
)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// The Entra tenant the issuer speaks for.
pub const TENANT_ID: &str = "8eaef023-2b34-4da1-9baa-8bc8c9d6a490";
/// The API's audience.
pub const AUDIENCE: &str = "api://tollgate-test";
/// A user's object id.
pub const USER_OID: &str = "0c0e8f0a-1d6b-4c3e-9a59-5b2f1c7e2d11";

/// RSA-2048 private keys, generated once per test binary and shared: key generation is slow
/// in debug builds, and a key's identity in a test is its `kid`, not its bits.
static RSA_KEYS: Mutex<Vec<Arc<RsaPrivateKey>>> = Mutex::new(Vec::new());

fn rsa_key(index: usize) -> Arc<RsaPrivateKey> {
    let mut keys = RSA_KEYS.lock().unwrap();
    while keys.len() <= index {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("generate an RSA key");
        keys.push(Arc::new(key));
    }
    keys[index].clone()
}

/// A signing key of the issuer: the private half to mint with, the public half as a JWK.
pub struct SigningKey {
    pub kid: String,
    pub encoding: EncodingKey,
    /// The public JWK as published (kty, use, kid, n, e; no `alg`, as Entra publishes).
    pub jwk: Value,
    /// The public key as PEM (SubjectPublicKeyInfo): what an attacker would HMAC with.
    pub public_pem: String,
    /// The public modulus, big-endian.
    pub modulus: Vec<u8>,
}

impl SigningKey {
    /// The `index`-th shared RSA key under the name `kid`.
    pub fn rsa(index: usize, kid: &str) -> Arc<Self> {
        let private = rsa_key(index);
        let pem = private.to_pkcs1_pem(LineEnding::LF).expect("PKCS#1 PEM");
        let public = private.to_public_key();
        let modulus = public.n().to_bytes_be();
        Arc::new(Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes())
                .expect("jsonwebtoken reads the PEM"),
            jwk: json!({
                "kty": "RSA",
                "use": "sig",
                "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(&modulus),
                "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }),
            public_pem: public.to_public_key_pem(LineEnding::LF).expect("SPKI PEM"),
            modulus,
        })
    }

    /// The same key, published with an explicit `alg`.
    pub fn with_jwk_alg(&self, alg: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["alg"] = json!(alg);
        jwk
    }
}

struct IssuerState {
    issuer: String,
    /// The `issuer` the discovery document claims (normally the real one).
    advertised_issuer: Mutex<String>,
    jwks_uri: String,
    published: Mutex<Vec<Value>>,
    jwks_failing: AtomicBool,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
}

pub struct TestIssuer {
    state: Arc<IssuerState>,
    current: Mutex<Arc<SigningKey>>,
    next_key: AtomicUsize,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> Json<Value> {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let issuer = state.advertised_issuer.lock().unwrap().clone();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": state.jwks_uri,
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint": format!("{}/oauth2/v2.0/token", state.issuer),
    }))
}

async fn jwks(State(state): State<Arc<IssuerState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.jwks_failing.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "keys unavailable").into_response();
    }
    let keys = state.published.lock().unwrap().clone();
    Json(json!({ "keys": keys })).into_response()
}

impl TestIssuer {
    /// Start an issuer publishing one RSA key (`key-0`), which it signs with.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the issuer");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let discovery_path = format!("/{TENANT_ID}/v2.0/.well-known/openid-configuration");
        let jwks_path = format!("/{TENANT_ID}/discovery/v2.0/keys");
        let issuer = format!("{base}/{TENANT_ID}/v2.0");
        let state = Arc::new(IssuerState {
            advertised_issuer: Mutex::new(issuer.clone()),
            issuer,
            jwks_uri: format!("{base}{jwks_path}"),
            published: Mutex::new(Vec::new()),
            jwks_failing: AtomicBool::new(false),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .route(&discovery_path, get(discovery))
            .route(&jwks_path, get(jwks))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("issuer server");
        });
        let first = SigningKey::rsa(0, "key-0");
        let issuer = Self {
            state,
            current: Mutex::new(first.clone()),
            next_key: AtomicUsize::new(1),
            server,
        };
        issuer.publish(&first);
        issuer
    }

    /// The `iss` of its tokens (Entra v2 shape: `{base}/{tenant}/v2.0`).
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    pub fn jwks_url(&self) -> &str {
        &self.state.jwks_uri
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Make the JWKS endpoint answer 500 (or recover).
    pub fn set_jwks_failing(&self, failing: bool) {
        self.state.jwks_failing.store(failing, Ordering::SeqCst);
    }

    /// Make the discovery document name another issuer.
    pub fn advertise_issuer(&self, issuer: &str) {
        *self.state.advertised_issuer.lock().unwrap() = issuer.to_owned();
    }

    /// The key tokens are signed with by default.
    pub fn key(&self) -> Arc<SigningKey> {
        self.current.lock().unwrap().clone()
    }

    /// A fresh RSA key, not yet published.
    pub fn new_key(&self, kid: &str) -> Arc<SigningKey> {
        SigningKey::rsa(self.next_key.fetch_add(1, Ordering::SeqCst), kid)
    }

    pub fn publish(&self, key: &SigningKey) {
        self.publish_jwk(key.jwk.clone());
    }

    /// Publish any JWK (a key with `alg`, an EC or symmetric key, junk).
    pub fn publish_jwk(&self, jwk: Value) {
        self.state.published.lock().unwrap().push(jwk);
    }

    /// Remove every published key with this `kid`.
    pub fn retire(&self, kid: &str) {
        self.state
            .published
            .lock()
            .unwrap()
            .retain(|jwk| jwk["kid"] != kid);
    }

    /// Publish a new key, retire the current one, and sign with the new one from now on.
    pub fn rotate(&self, kid: &str) -> Arc<SigningKey> {
        let old = self.key();
        let new = self.new_key(kid);
        self.publish(&new);
        self.retire(&old.kid);
        *self.current.lock().unwrap() = new.clone();
        new
    }

    /// Claims of a valid access token for [`USER_OID`] at `now`, valid for an hour.
    pub fn claims(&self, now: OffsetDateTime) -> Value {
        let now = now.unix_timestamp();
        json!({
            "iss": self.issuer(),
            "aud": AUDIENCE,
            "tid": TENANT_ID,
            "oid": USER_OID,
            "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
            "name": "Ada Lovelace",
            "preferred_username": "ada@contoso.example",
            "ver": "2.0",
            "iat": now - 10,
            "nbf": now - 10,
            "exp": now + 3600,
        })
    }

    /// An RS256 token with these claims, signed by the current key.
    pub fn mint(&self, claims: &Value) -> String {
        let key = self.key();
        sign(
            &json!({"typ": "JWT", "alg": "RS256", "kid": key.kid}),
            claims,
            &key.encoding,
            Algorithm::RS256,
        )
    }

    /// A token signed by `key` with `alg`, under `key`'s kid.
    pub fn mint_with(&self, key: &SigningKey, alg: Algorithm, claims: &Value) -> String {
        let name = serde_json::to_value(alg).expect("algorithm name");
        sign(
            &json!({"typ": "JWT", "alg": name, "kid": key.kid}),
            claims,
            &key.encoding,
            alg,
        )
    }
}

/// `base64url(json)` without padding.
pub fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

/// A token with exactly this header (any fields, any `alg` text) signed with `key` by `alg`.
pub fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", segment(header), segment(claims));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("sign");
    format!("{message}.{signature}")
}

/// A token with this header and no signature (`alg: none` style).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", segment(header), segment(claims))
}
