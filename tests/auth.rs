//! Authentication: OIDC bearer tokens against a local issuer (real HTTP), API keys on a real
//! SQLite store, and the authenticator that routes between them. The reference's JWT pitfall
//! table (J1–J22) is the checklist for the refusal cases.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/oidc.rs"]
mod oidc_issuer;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use oidc_issuer::{AUDIENCE, SigningKey, TENANT_ID, TestIssuer, USER_OID, sign, unsigned};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tollgate::auth::api_keys::{ApiKeyError, ApiKeyService};
use tollgate::auth::authenticator::{AuthError, AuthFailure, Authenticator};
use tollgate::auth::jwks_http::HttpKeySource;
use tollgate::auth::oidc::{
    KeySource, KeySourceError, OidcSettings, OidcValidator, SigningAlgorithm,
};
use tollgate::auth::{Credential, Role};
use tollgate_domain::TenantId;
use tollgate_store::{ApiKeyStore, AuditDraft, SqliteStore, StoreError, StoredApiKey};

const NOW: OffsetDateTime = datetime!(2026-03-02 09:30:00 UTC);
const GROUP_OPERATORS: &str = "5a3c1b2d-0000-4000-8000-00000000000a";
const GROUP_ADMINS: &str = "5a3c1b2d-0000-4000-8000-00000000000b";
const GROUP_UNMAPPED: &str = "5a3c1b2d-0000-4000-8000-00000000000c";

fn settings(issuer: &TestIssuer) -> OidcSettings {
    OidcSettings {
        issuer: issuer.issuer().to_owned(),
        audiences: vec![AUDIENCE.to_owned()],
        entra_tenant_id: Some(TENANT_ID.to_owned()),
        group_roles: BTreeMap::from([
            // Upper case on purpose: group ids compare case-insensitively.
            (GROUP_OPERATORS.to_uppercase(), Role::Operator),
            (GROUP_ADMINS.to_owned(), Role::Admin),
        ]),
        ..OidcSettings::default()
    }
}

fn validator_with(settings: OidcSettings) -> OidcValidator {
    let source = HttpKeySource::new(&settings).expect("key source");
    OidcValidator::new(settings, Arc::new(source)).expect("validator")
}

fn validator(issuer: &TestIssuer) -> OidcValidator {
    validator_with(settings(issuer))
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (name, value) in changes.as_object().expect("an object of changes") {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

fn invalid(reason: &'static str) -> Result<Role, AuthError> {
    Err(AuthError::Invalid { reason })
}

async fn role_of(
    validator: &OidcValidator,
    token: &str,
    now: OffsetDateTime,
) -> Result<Role, AuthError> {
    validator
        .validate(token, now)
        .await
        .map(|principal| principal.role)
}

/// The secret part of `tg_{key_id}_{secret}` (the secret itself may contain `_`).
fn secret_of(key: &str) -> &str {
    key.strip_prefix("tg_").unwrap().split_once('_').unwrap().1
}

async fn sqlite() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("auth.db");
    let store = SqliteStore::open(path.to_str().expect("utf-8 path"))
        .await
        .expect("open store");
    store
        .set_leaf_encoder(Arc::new(tollgate::services::audit::RecordEncoder::new(
            "tollgate.test",
        )))
        .expect("encoder");
    (dir, Arc::new(store))
}

#[tokio::test]
async fn a_valid_token_becomes_a_principal_keyed_by_tenant_and_object_id() {
    let issuer = TestIssuer::start().await;
    let validator = validator(&issuer);
    let claims = with(issuer.claims(NOW), json!({"groups": [GROUP_OPERATORS]}));

    let principal = validator
        .validate(&issuer.mint(&claims), NOW)
        .await
        .expect("valid");
    assert_eq!(principal.subject, format!("oidc:{TENANT_ID}:{USER_OID}"));
    assert_eq!(principal.display_name, "Ada Lovelace");
    assert_eq!(principal.role, Role::Operator);
    assert_eq!(principal.tenant, TenantId::default_tenant());
    assert_eq!(principal.credential, Credential::Token);

    // Renamed user, same identity (AUTH-IDENTITY-KEY); the display name follows the token.
    let renamed = with(
        claims.clone(),
        json!({"name": null, "preferred_username": "ada.king@contoso.example"}),
    );
    let principal = validator
        .validate(&issuer.mint(&renamed), NOW)
        .await
        .expect("valid");
    assert_eq!(principal.subject, format!("oidc:{TENANT_ID}:{USER_OID}"));
    assert_eq!(principal.display_name, "ada.king@contoso.example");

    // Without `oid` the subject falls back to `sub`.
    let no_oid = with(claims, json!({"oid": null}));
    let principal = validator
        .validate(&issuer.mint(&no_oid), NOW)
        .await
        .expect("valid");
    assert_eq!(
        principal.subject,
        format!("oidc:{TENANT_ID}:AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ")
    );

    // An `aud` array containing ours is fine; the tenant for OIDC principals is configurable.
    let mut other_tenant = settings(&issuer);
    other_tenant.tenant = TenantId::parse("contoso").unwrap();
    let validator = validator_with(other_tenant);
    let claims = with(
        issuer.claims(NOW),
        json!({"aud": ["api://someone-else", AUDIENCE], "roles": ["viewer"]}),
    );
    let principal = validator
        .validate(&issuer.mint(&claims), NOW)
        .await
        .expect("valid");
    assert_eq!(principal.tenant.as_str(), "contoso");
    assert_eq!(principal.role, Role::Viewer);
}

#[tokio::test]
async fn roles_come_from_groups_and_app_roles_and_the_highest_wins() {
    let issuer = TestIssuer::start().await;
    let validator = validator(&issuer);
    let token = |changes: Value| issuer.mint(&with(issuer.claims(NOW), changes));

    let cases = [
        (json!({"roles": ["developer"]}), Ok(Role::Developer)),
        (json!({"groups": [GROUP_OPERATORS]}), Ok(Role::Operator)),
        (
            json!({"groups": [GROUP_OPERATORS], "roles": ["release_manager"]}),
            Ok(Role::ReleaseManager),
        ),
        (
            json!({"groups": [GROUP_ADMINS], "roles": ["viewer"]}),
            Ok(Role::Admin),
        ),
        (
            json!({"groups": [GROUP_UNMAPPED, GROUP_OPERATORS], "roles": ["Tollgate.Admin", "superuser"]}),
            Ok(Role::Operator),
        ),
    ];
    for (changes, expected) in cases {
        assert_eq!(
            role_of(&validator, &token(changes.clone()), NOW).await,
            expected,
            "{changes}"
        );
    }

    // Unknown app roles and unmapped groups grant nothing (J18): a valid identity without a
    // role is refused as forbidden, not as unauthenticated.
    let refused = validator
        .validate(
            &token(json!({"groups": [GROUP_UNMAPPED], "roles": ["Admin", "superuser"]})),
            NOW,
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused,
        AuthError::NoRole {
            subject: format!("oidc:{TENANT_ID}:{USER_OID}"),
            reason: "no_role"
        }
    );
    assert_eq!(refused.failure(), AuthFailure::Forbidden);

    // Entra's group overage (too many groups for the token) is named as such.
    let overage = json!({"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}}});
    let refused = validator.validate(&token(overage), NOW).await.unwrap_err();
    assert_eq!(refused.reason(), "groups_overage");

    // A default role applies only when nothing maps.
    let mut with_default = settings(&issuer);
    with_default.default_role = Some(Role::Viewer);
    let validator = validator_with(with_default);
    assert_eq!(
        role_of(&validator, &token(json!({})), NOW).await,
        Ok(Role::Viewer)
    );
    assert_eq!(
        role_of(&validator, &token(json!({"roles": ["operator"]})), NOW).await,
        Ok(Role::Operator)
    );
}

#[tokio::test]
async fn forged_and_misdirected_tokens_are_refused_with_their_reason() {
    let issuer = TestIssuer::start().await;
    let validator = validator(&issuer);
    let key = issuer.key();
    let good = with(issuer.claims(NOW), json!({"roles": ["admin"]}));
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": key.kid});
    let valid = issuer.mint(&good);
    assert_eq!(role_of(&validator, &valid, NOW).await, Ok(Role::Admin));
    let fetches_after_warm_up = issuer.jwks_fetches();

    let minted = |changes: Value| issuer.mint(&with(good.clone(), changes));
    let with_header = |changes: Value| {
        let mut header = header.clone();
        for (name, value) in changes.as_object().unwrap() {
            header[name] = value.clone();
        }
        sign(&header, &good, &key.encoding, Algorithm::RS256)
    };
    let (head, rest) = valid.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let other_payload =
        oidc_issuer::segment(&with(good.clone(), json!({"roles": ["admin", "viewer"]})));
    let flipped_signature = {
        let mut bytes = signature.as_bytes().to_vec();
        bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let truncated_signature = {
        let bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        URL_SAFE_NO_PAD.encode(&bytes[..200])
    };
    let attacker = issuer.new_key("attacker");

    let cases: Vec<(&str, String, &'static str)> = vec![
        // J1: alg none, in any spelling, with or without a signature.
        (
            "alg none",
            unsigned(&json!({"alg": "none", "kid": key.kid}), &good),
            "alg_not_allowed",
        ),
        (
            "alg None",
            unsigned(&json!({"alg": "None", "kid": key.kid}), &good),
            "alg_not_allowed",
        ),
        (
            "alg NONE + sig",
            format!(
                "{}{signature}",
                unsigned(&json!({"alg": "NONE", "kid": key.kid}), &good)
            ),
            "alg_not_allowed",
        ),
        // J2: HS256 keyed with the issuer's public key (PEM, raw modulus, JWK JSON).
        (
            "HS256 with the public PEM",
            sign(
                &json!({"alg": "HS256", "kid": key.kid}),
                &good,
                &EncodingKey::from_secret(key.public_pem.as_bytes()),
                Algorithm::HS256,
            ),
            "alg_not_allowed",
        ),
        (
            "HS256 with the modulus",
            sign(
                &json!({"alg": "HS256", "kid": key.kid}),
                &good,
                &EncodingKey::from_secret(&key.modulus),
                Algorithm::HS256,
            ),
            "alg_not_allowed",
        ),
        (
            "HS256 with the JWK",
            sign(
                &json!({"alg": "HS256", "kid": key.kid}),
                &good,
                &EncodingKey::from_secret(key.jwk.to_string().as_bytes()),
                Algorithm::HS256,
            ),
            "alg_not_allowed",
        ),
        // J3: a real signature with an algorithm outside the allow-list.
        (
            "RS384 by the real key",
            issuer.mint_with(&key, Algorithm::RS384, &good),
            "alg_not_allowed",
        ),
        (
            "PS256 by the real key",
            issuer.mint_with(&key, Algorithm::PS256, &good),
            "alg_not_allowed",
        ),
        (
            "alg not a string",
            with_header(json!({"alg": 256})),
            "malformed_token",
        ),
        // J4/J5: unknown and hostile key ids.
        (
            "unknown kid",
            with_header(json!({"kid": "no-such-key"})),
            "unknown_kid",
        ),
        (
            "path kid",
            with_header(json!({"kid": "../../etc/passwd"})),
            "unknown_kid",
        ),
        (
            "SQL kid",
            with_header(json!({"kid": "x' OR '1'='1"})),
            "unknown_kid",
        ),
        (
            "10 kB kid",
            with_header(json!({"kid": "k".repeat(10_000)})),
            "unknown_kid",
        ),
        (
            "no kid",
            sign(
                &json!({"alg": "RS256"}),
                &good,
                &key.encoding,
                Algorithm::RS256,
            ),
            "missing_kid",
        ),
        (
            "numeric kid",
            with_header(json!({"kid": 7})),
            "malformed_token",
        ),
        // J6: keys named in the header are never fetched or trusted.
        (
            "jku/jwk/x5u pointing at the attacker",
            sign(
                &json!({"alg": "RS256", "kid": "attacker", "jku": "http://127.0.0.1:1/keys", "x5u": "http://127.0.0.1:1/cert", "jwk": attacker.jwk}),
                &good,
                &attacker.encoding,
                Algorithm::RS256,
            ),
            "unknown_kid",
        ),
        (
            "attacker key under the issuer's kid",
            sign(&header, &good, &attacker.encoding, Algorithm::RS256),
            "bad_signature",
        ),
        (
            "crit header",
            with_header(json!({"crit": ["exp"]})),
            "unsupported_crit",
        ),
        // J10–J13: claims.
        (
            "wrong issuer",
            minted(json!({"iss": "https://login.microsoftonline.com/other/v2.0"})),
            "wrong_issuer",
        ),
        (
            "v1 issuer form",
            minted(json!({"iss": format!("https://sts.windows.net/{TENANT_ID}/")})),
            "wrong_issuer",
        ),
        (
            "missing issuer",
            minted(json!({"iss": null})),
            "missing_iss",
        ),
        (
            "Graph audience",
            minted(json!({"aud": "00000003-0000-0000-c000-000000000000"})),
            "wrong_audience",
        ),
        (
            "audience array without ours",
            minted(json!({"aud": ["api://a", "api://b"]})),
            "wrong_audience",
        ),
        (
            "missing audience",
            minted(json!({"aud": null})),
            "missing_aud",
        ),
        (
            "wrong tenant",
            minted(json!({"tid": "72f988bf-86f1-41af-91ab-2d7cd011db47"})),
            "wrong_tenant",
        ),
        (
            "tenant 'common'",
            minted(json!({"tid": "common"})),
            "wrong_tenant",
        ),
        (
            "tenant injection",
            minted(json!({"tid": "x:y"})),
            "malformed_tid",
        ),
        ("numeric tenant", minted(json!({"tid": 5})), "malformed_tid"),
        (
            "missing tenant",
            minted(json!({"tid": null})),
            "missing_tid",
        ),
        (
            "no subject",
            minted(json!({"oid": null, "sub": null})),
            "missing_subject",
        ),
        // J7–J9: times, strictly typed (CVE-2026-25537).
        (
            "expired",
            minted(json!({"exp": NOW.unix_timestamp() - 61})),
            "token_expired",
        ),
        (
            "not yet valid",
            minted(json!({"nbf": NOW.unix_timestamp() + 61})),
            "token_not_yet_valid",
        ),
        ("missing exp", minted(json!({"exp": null})), "missing_exp"),
        (
            "exp as a string",
            minted(json!({"exp": "never"})),
            "malformed_exp",
        ),
        (
            "exp as a numeric string",
            minted(json!({"exp": (NOW.unix_timestamp() + 60).to_string()})),
            "malformed_exp",
        ),
        // jsonwebtoken's own claim reader already refuses a non-scalar `exp`.
        (
            "exp as an array",
            minted(json!({"exp": [1]})),
            "malformed_token",
        ),
        (
            "nbf as a string",
            minted(json!({"nbf": "x"})),
            "malformed_nbf",
        ),
        // J20: tampering and shape games.
        (
            "tampered payload",
            format!("{head}.{other_payload}.{signature}"),
            "bad_signature",
        ),
        (
            "flipped signature",
            format!("{head}.{payload}.{flipped_signature}"),
            "bad_signature",
        ),
        (
            "truncated signature",
            format!("{head}.{payload}.{truncated_signature}"),
            "bad_signature",
        ),
        (
            "empty signature",
            format!("{head}.{payload}."),
            "bad_signature",
        ),
        (
            "padded header",
            format!("{head}=.{payload}.{signature}"),
            "malformed_token",
        ),
        (
            "extra segment",
            format!("{valid}.{signature}"),
            "malformed_token",
        ),
        (
            "two segments",
            format!("{head}.{payload}"),
            "malformed_token",
        ),
        (
            "garbage",
            "this is not a token".to_owned(),
            "malformed_token",
        ),
        ("dots only", "..".to_owned(), "malformed_token"),
        (
            "header not JSON",
            format!(
                "{}.{payload}.{signature}",
                oidc_issuer::segment(&json!("alg"))
            ),
            "malformed_token",
        ),
        // J21: oversized.
        (
            "100 kB token",
            format!("{head}.{}.{signature}", "A".repeat(100_000)),
            "token_too_large",
        ),
    ];
    for (name, token, reason) in cases {
        assert_eq!(
            role_of(&validator, &token, NOW).await,
            invalid(reason),
            "{name}"
        );
    }
    // All unknown kids above shared the warm-up fetch's rate-limit window.
    assert_eq!(
        issuer.jwks_fetches(),
        fetches_after_warm_up,
        "no refetch inside the interval"
    );
}

#[tokio::test]
async fn time_claims_honour_the_leeway_at_the_boundary() {
    let issuer = TestIssuer::start().await;
    let validator = validator(&issuer);
    let now = NOW.unix_timestamp();
    let token = |changes: Value| {
        issuer.mint(&with(
            issuer.claims(NOW),
            with(json!({"roles": ["viewer"]}), changes),
        ))
    };
    let viewer = Ok(Role::Viewer);
    for (changes, expected) in [
        (json!({"exp": now - 59}), viewer.clone()),
        (json!({"exp": now - 60}), viewer.clone()),
        (json!({"exp": now - 61}), invalid("token_expired")),
        (json!({"exp": now - 60 + 1}), viewer.clone()),
        (json!({"exp": (now as f64) + 0.5}), viewer.clone()),
        (json!({"exp": u64::MAX}), viewer.clone()),
        (json!({"nbf": now + 60}), viewer.clone()),
        (json!({"nbf": now + 61}), invalid("token_not_yet_valid")),
        (json!({"nbf": null}), viewer.clone()),
    ] {
        assert_eq!(
            role_of(&validator, &token(changes.clone()), NOW).await,
            expected,
            "{changes}"
        );
    }

    let mut strict = settings(&issuer);
    strict.leeway_secs = 0;
    let strict = validator_with(strict);
    assert_eq!(
        role_of(&strict, &token(json!({"exp": now - 1})), NOW).await,
        invalid("token_expired")
    );
    assert_eq!(
        role_of(&strict, &token(json!({"exp": now})), NOW).await,
        viewer
    );
}

#[tokio::test]
async fn the_jwk_must_suit_the_header_algorithm() {
    let issuer = TestIssuer::start().await;
    let claims = with(issuer.claims(NOW), json!({"roles": ["viewer"]}));
    // A key published with `alg: RS256`; RS384 is allowed by configuration but not by the key.
    let pinned = issuer.new_key("pinned-rs256");
    issuer.publish_jwk(pinned.with_jwk_alg("RS256"));
    // An EC key (P-256 coordinates; never used to verify successfully) and a symmetric key.
    issuer.publish_jwk(json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "kid": "ec-key",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    }));
    issuer.publish_jwk(json!({"kty": "oct", "kid": "hmac-key", "k": "c2VjcmV0"}));
    // A key marked for encryption only.
    let encryption = issuer.new_key("enc-key");
    let mut enc_jwk = encryption.jwk.clone();
    enc_jwk["use"] = json!("enc");
    issuer.publish_jwk(enc_jwk);

    let mut settings = settings(&issuer);
    settings.algorithms = vec![
        SigningAlgorithm::RS256,
        SigningAlgorithm::RS384,
        SigningAlgorithm::ES256,
    ];
    let validator = validator_with(settings);

    assert_eq!(
        role_of(
            &validator,
            &issuer.mint_with(&pinned, Algorithm::RS256, &claims),
            NOW
        )
        .await,
        Ok(Role::Viewer)
    );
    assert_eq!(
        role_of(
            &validator,
            &issuer.mint_with(&pinned, Algorithm::RS384, &claims),
            NOW
        )
        .await,
        invalid("alg_key_mismatch")
    );
    // The unpinned key accepts both allowed RSA algorithms.
    let key = issuer.key();
    assert_eq!(
        role_of(
            &validator,
            &issuer.mint_with(&key, Algorithm::RS384, &claims),
            NOW
        )
        .await,
        Ok(Role::Viewer)
    );
    // RSA header, EC key; EC header, RSA key.
    let rs256_on_ec = sign(
        &json!({"alg": "RS256", "kid": "ec-key"}),
        &claims,
        &key.encoding,
        Algorithm::RS256,
    );
    assert_eq!(
        role_of(&validator, &rs256_on_ec, NOW).await,
        invalid("alg_key_mismatch")
    );
    let es256_on_rsa = format!(
        "{}.{}.c2lnbmF0dXJl",
        oidc_issuer::segment(&json!({"alg": "ES256", "kid": key.kid})),
        oidc_issuer::segment(&claims)
    );
    assert_eq!(
        role_of(&validator, &es256_on_rsa, NOW).await,
        invalid("alg_key_mismatch")
    );
    // Symmetric and encryption keys in the set are never used for verification.
    let on_hmac_key = sign(
        &json!({"alg": "RS256", "kid": "hmac-key"}),
        &claims,
        &key.encoding,
        Algorithm::RS256,
    );
    assert_eq!(
        role_of(&validator, &on_hmac_key, NOW).await,
        invalid("unknown_kid")
    );
    assert_eq!(
        role_of(
            &validator,
            &issuer.mint_with(&encryption, Algorithm::RS256, &claims),
            NOW
        )
        .await,
        invalid("unknown_kid")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_kid_refetches_at_most_once_per_interval_even_under_concurrency() {
    let issuer = TestIssuer::start().await;
    let validator = Arc::new(validator(&issuer));
    let claims = with(issuer.claims(NOW), json!({"roles": ["viewer"]}));
    let key = issuer.key();
    assert_eq!(
        role_of(&validator, &issuer.mint(&claims), NOW).await,
        Ok(Role::Viewer)
    );
    assert_eq!(issuer.jwks_fetches(), 1);

    let flood = |at: OffsetDateTime, count: usize| {
        let tasks: Vec<_> = (0..count)
            .map(|n| {
                let validator = validator.clone();
                let token = sign(
                    &json!({"alg": "RS256", "kid": format!("random-{n}-{}", at.unix_timestamp())}),
                    &claims,
                    &key.encoding,
                    Algorithm::RS256,
                );
                tokio::spawn(async move { validator.validate(&token, at).await })
            })
            .collect();
        async move {
            for task in tasks {
                assert_eq!(task.await.unwrap().map(|p| p.role), invalid("unknown_kid"));
            }
        }
    };
    // Inside the interval since the warm-up fetch: no fetch at all.
    flood(NOW + Duration::seconds(30), 50).await;
    assert_eq!(issuer.jwks_fetches(), 1);
    // After the interval: 200 concurrent unknown kids share one refetch.
    flood(NOW + Duration::seconds(61), 200).await;
    assert_eq!(issuer.jwks_fetches(), 2);
    // A request whose clock lags slightly behind must not count as "long ago".
    flood(NOW + Duration::seconds(60), 20).await;
    assert_eq!(issuer.jwks_fetches(), 2);
    flood(NOW + Duration::seconds(121), 20).await;
    assert_eq!(issuer.jwks_fetches(), 3);
    // Known kids never wait for the key set while it is fresh.
    assert_eq!(
        role_of(
            &validator,
            &issuer.mint(&claims),
            NOW + Duration::seconds(122)
        )
        .await,
        Ok(Role::Viewer)
    );
    assert_eq!(issuer.jwks_fetches(), 3);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_through_the_unknown_kid_refetch() {
    let issuer = TestIssuer::start().await;
    let validator = validator(&issuer);
    let claims = with(issuer.claims(NOW), json!({"roles": ["operator"]}));
    let old_token = issuer.mint(&claims);
    assert_eq!(
        role_of(&validator, &old_token, NOW).await,
        Ok(Role::Operator)
    );

    issuer.rotate("key-1");
    let new_token = issuer.mint(&claims);
    // Within the interval the new kid is not fetched yet.
    assert_eq!(
        role_of(&validator, &new_token, NOW + Duration::seconds(10)).await,
        invalid("unknown_kid")
    );
    assert_eq!(issuer.jwks_fetches(), 1);
    let later = NOW + Duration::seconds(61);
    assert_eq!(
        role_of(&validator, &new_token, later).await,
        Ok(Role::Operator)
    );
    assert_eq!(issuer.jwks_fetches(), 2);
    // The retired key left the set, so its tokens stop working.
    assert_eq!(
        role_of(&validator, &old_token, later).await,
        invalid("unknown_kid")
    );
}

#[tokio::test]
async fn known_keys_survive_a_jwks_outage_and_a_cold_start_fails_closed() {
    let issuer = TestIssuer::start().await;
    let validator = validator(&issuer);
    let claims = with(issuer.claims(NOW), json!({"roles": ["operator"]}));
    let token = issuer.mint(&claims);
    assert_eq!(role_of(&validator, &token, NOW).await, Ok(Role::Operator));

    issuer.set_jwks_failing(true);
    // The cache (3600 s) is stale: a refresh is tried, fails, and the known key still works.
    let stale = NOW + Duration::seconds(3601);
    assert_eq!(role_of(&validator, &token, stale).await, Ok(Role::Operator));
    assert_eq!(issuer.jwks_fetches(), 2);
    // Within the interval no further refresh is tried.
    assert_eq!(
        role_of(&validator, &token, stale + Duration::seconds(5)).await,
        Ok(Role::Operator)
    );
    assert_eq!(issuer.jwks_fetches(), 2);
    let unknown = sign(
        &json!({"alg": "RS256", "kid": "new"}),
        &claims,
        &issuer.key().encoding,
        Algorithm::RS256,
    );
    assert_eq!(
        role_of(&validator, &unknown, stale + Duration::seconds(61)).await,
        invalid("unknown_kid")
    );
    assert_eq!(issuer.jwks_fetches(), 3);

    // A validator that never had keys refuses as "unavailable" (503), not as a bad token,
    // and does not hammer the issuer.
    let cold = validator_with(settings(&issuer));
    let refused = cold.validate(&token, NOW).await.unwrap_err();
    assert_eq!(
        refused,
        AuthError::Unavailable {
            reason: "jwks_unavailable"
        }
    );
    assert_eq!(refused.failure(), AuthFailure::Unavailable);
    assert_eq!(
        cold.validate(&token, NOW + Duration::seconds(1))
            .await
            .unwrap_err(),
        refused
    );
    assert_eq!(issuer.jwks_fetches(), 4);
    // A start-up warm-up reports why.
    assert!(matches!(
        cold.warm_up(NOW + Duration::seconds(2)).await,
        Err(KeySourceError::Status { status: 500, .. })
    ));
    assert_eq!(issuer.jwks_fetches(), 5);
    // Once the issuer recovers (and the interval passed), it works.
    issuer.set_jwks_failing(false);
    assert_eq!(
        role_of(&cold, &token, NOW + Duration::seconds(62)).await,
        Ok(Role::Operator)
    );
    assert_eq!(validator_with(settings(&issuer)).warm_up(NOW).await, Ok(1));
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer_and_a_configured_jwks_url_skips_it() {
    let issuer = TestIssuer::start().await;
    let claims = with(issuer.claims(NOW), json!({"roles": ["viewer"]}));
    let token = issuer.mint(&claims);

    issuer.advertise_issuer("https://evil.example/tenant/v2.0");
    let validator = validator(&issuer);
    assert_eq!(
        validator.validate(&token, NOW).await.unwrap_err(),
        AuthError::Unavailable {
            reason: "jwks_unavailable"
        }
    );
    assert_eq!(issuer.discovery_fetches(), 1);
    assert_eq!(
        issuer.jwks_fetches(),
        0,
        "keys are not read from an unverified discovery document"
    );

    let mut direct = settings(&issuer);
    direct.jwks_url = Some(issuer.jwks_url().to_owned());
    let validator = validator_with(direct);
    assert_eq!(role_of(&validator, &token, NOW).await, Ok(Role::Viewer));
    assert_eq!(issuer.discovery_fetches(), 1);
    assert_eq!(issuer.jwks_fetches(), 1);
}

#[tokio::test]
async fn oidc_settings_parse_with_defaults_and_refuse_unsafe_algorithms() {
    let parsed: OidcSettings = toml::from_str(
        r#"
        issuer = "https://login.microsoftonline.com/8eaef023-2b34-4da1-9baa-8bc8c9d6a490/v2.0"
        audiences = ["api://tollgate"]
        [group_roles]
        "5a3c1b2d-0000-4000-8000-00000000000a" = "release_manager"
        "#,
    )
    .expect("valid settings");
    assert_eq!(parsed.algorithms, vec![SigningAlgorithm::RS256]);
    assert_eq!(parsed.leeway_secs, 60);
    assert_eq!(parsed.jwks_refetch_min_interval_secs, 60);
    assert_eq!(parsed.jwks_cache_secs, 3600);
    assert_eq!(parsed.tenant, TenantId::default_tenant());
    assert_eq!(parsed.default_role, None);
    assert_eq!(
        parsed
            .group_roles
            .get("5a3c1b2d-0000-4000-8000-00000000000a"),
        Some(&Role::ReleaseManager)
    );
    assert_eq!(parsed.validate(), Ok(()));

    for bad in [
        r#"algorithms = ["none"]"#,
        r#"algorithms = ["HS256"]"#,
        r#"audience = "api://typo""#,
        r#"default_role = "root""#,
        r#"tenant = "Not A Tenant""#,
    ] {
        let text = format!("issuer = \"https://issuer.example\"\naudiences = [\"a\"]\n{bad}");
        assert!(toml::from_str::<OidcSettings>(&text).is_err(), "{bad}");
    }
    // A plain-HTTP issuer is refused unless it is on loopback.
    let mut remote_http = parsed.clone();
    remote_http.issuer = "http://login.example.com/t/v2.0".into();
    assert!(HttpKeySource::new(&remote_http).is_err());
}

#[tokio::test]
async fn api_keys_work_until_revoked_or_expired_and_only_in_their_tenant() {
    let (_dir, store) = sqlite().await;
    let service = ApiKeyService::new(store.clone());
    let contoso = TenantId::parse("contoso").unwrap();
    let fabrikam = TenantId::parse("fabrikam").unwrap();
    let expiry = NOW + Duration::hours(1);

    let (record, key) = service
        .create(
            &contoso,
            "ci pipeline",
            Role::Operator,
            Some(expiry),
            "oidc:t:admin",
            NOW,
        )
        .await
        .expect("create");
    let key = key.expose().to_owned();
    assert!(key.starts_with(&format!("tg_{}_", record.key_id)), "{key}");
    assert_eq!(record.role, Role::Operator);
    assert_eq!(record.created_by, "oidc:t:admin");
    assert!(record.is_active(NOW));

    let principal = service.verify(&key, NOW).await.expect("valid key");
    assert_eq!(principal.subject, format!("apikey:{}", record.key_id));
    assert_eq!(principal.display_name, "ci pipeline");
    assert_eq!(principal.tenant, contoso);
    assert_eq!(principal.role, Role::Operator);
    assert_eq!(
        principal.credential,
        Credential::ApiKey {
            key_id: record.key_id.clone()
        }
    );

    // Both headers carry keys.
    let authenticator = Authenticator::new(None, service.clone());
    for (authorization, x_api_key) in [
        (Some(format!("Bearer {key}")), None),
        (None, Some(key.clone())),
    ] {
        let principal = authenticator
            .authenticate(authorization.as_deref(), x_api_key.as_deref(), NOW)
            .await
            .expect("authenticated");
        assert_eq!(principal.role, Role::Operator);
    }

    assert_eq!(
        service
            .verify(&key, expiry - Duration::seconds(1))
            .await
            .map(|p| p.role),
        Ok(Role::Operator)
    );
    assert_eq!(
        service.verify(&key, expiry).await.map(|p| p.role),
        invalid("api_key_expired")
    );

    // Another tenant cannot revoke it.
    assert!(
        !service
            .revoke(
                &fabrikam,
                &record.key_id,
                NOW,
                &tollgate::services::audit_events::Actor::system()
            )
            .await
            .unwrap()
    );
    assert!(service.verify(&key, NOW).await.is_ok());
    assert!(
        service
            .revoke(
                &contoso,
                &record.key_id,
                NOW,
                &tollgate::services::audit_events::Actor::system()
            )
            .await
            .unwrap()
    );
    assert_eq!(
        service.verify(&key, NOW).await.map(|p| p.role),
        invalid("api_key_revoked")
    );
    // Revoking twice keeps the first time.
    assert!(
        service
            .revoke(
                &contoso,
                &record.key_id,
                NOW + Duration::hours(2),
                &tollgate::services::audit_events::Actor::system()
            )
            .await
            .unwrap()
    );
    let listed = service.list(&contoso).await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(NOW));
    assert!(service.list(&fabrikam).await.unwrap().is_empty());

    // Bad requests are refused before anything is written.
    assert!(matches!(
        service
            .create(&contoso, "  ", Role::Viewer, None, "x", NOW)
            .await,
        Err(ApiKeyError::InvalidName(_))
    ));
    assert!(matches!(
        service
            .create(&contoso, "a\nb", Role::Viewer, None, "x", NOW)
            .await,
        Err(ApiKeyError::InvalidName(_))
    ));
    assert!(matches!(
        service
            .create(&contoso, "old", Role::Viewer, Some(NOW), "x", NOW)
            .await,
        Err(ApiKeyError::ExpiryNotInFuture(_))
    ));
    assert_eq!(service.list(&contoso).await.unwrap().len(), 1);
}

#[tokio::test]
async fn listing_never_reveals_a_secret_or_its_hash() {
    let (_dir, store) = sqlite().await;
    let service = ApiKeyService::new(store.clone());
    let tenant = TenantId::default_tenant();
    let (record, key) = service
        .create(&tenant, "deploy", Role::ReleaseManager, None, "me", NOW)
        .await
        .unwrap();
    let secret = secret_of(key.expose()).to_owned();
    let stored = store.api_key(&record.key_id).await.unwrap().unwrap();
    let hash_hex: String = stored
        .secret_sha256
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let listed = service.list(&tenant).await.unwrap();
    assert_eq!(listed, vec![record]);
    let json = serde_json::to_string(&listed).unwrap();
    let debug = format!("{listed:?} {stored:?} {key:?}");
    for text in [&json, &debug] {
        assert!(!text.contains(&secret), "{text}");
        assert!(!text.contains(&hash_hex), "{text}");
    }
    assert!(json.contains("\"role\":\"release_manager\""), "{json}");
}

#[tokio::test]
async fn wrong_unknown_and_malformed_api_keys_are_refused() {
    let (_dir, store) = sqlite().await;
    let service = ApiKeyService::new(store);
    let (record, key) = service
        .create(
            &TenantId::default_tenant(),
            "k",
            Role::Viewer,
            None,
            "me",
            NOW,
        )
        .await
        .unwrap();
    let key = key.expose().to_owned();
    let (_, other_key) = service
        .create(
            &TenantId::default_tenant(),
            "other",
            Role::Admin,
            None,
            "me",
            NOW,
        )
        .await
        .unwrap();
    let other_secret = secret_of(other_key.expose());

    let cases = [
        (
            format!("tg_{}_{other_secret}", record.key_id),
            "wrong_api_key_secret",
        ),
        (format!("tg_AAAAAAAAAAAA_{other_secret}"), "unknown_api_key"),
        (key[..key.len() - 1].to_owned(), "malformed_api_key"),
        (format!("{key}x"), "malformed_api_key"),
        (key.replacen("tg_", "TG_", 1), "malformed_api_key"),
        ("tg_".to_owned(), "malformed_api_key"),
        ("tg_x_y".to_owned(), "malformed_api_key"),
        (format!("tg_{}", record.key_id), "malformed_api_key"),
    ];
    for (presented, reason) in cases {
        assert_eq!(
            service.verify(&presented, NOW).await.map(|p| p.role),
            invalid(reason),
            "{presented}"
        );
    }
    assert_eq!(
        service.verify(&key, NOW).await.map(|p| p.role),
        Ok(Role::Viewer)
    );
}

#[tokio::test]
async fn last_use_is_recorded_at_most_once_a_minute() {
    let (_dir, store) = sqlite().await;
    let service = ApiKeyService::new(store.clone());
    let (record, key) = service
        .create(
            &TenantId::default_tenant(),
            "k",
            Role::Viewer,
            None,
            "me",
            NOW,
        )
        .await
        .unwrap();
    let last_used = || async {
        store
            .api_key(&record.key_id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
    };
    assert_eq!(last_used().await, None);
    service.verify(key.expose(), NOW).await.unwrap();
    assert_eq!(last_used().await, Some(NOW));
    service
        .verify(key.expose(), NOW + Duration::seconds(59))
        .await
        .unwrap();
    assert_eq!(last_used().await, Some(NOW));
    service
        .verify(key.expose(), NOW + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(last_used().await, Some(NOW + Duration::seconds(60)));
}

#[tokio::test]
async fn bootstrap_creates_one_admin_key_only_when_there_is_no_other_way_in() {
    let (_dir, store) = sqlite().await;
    let service = ApiKeyService::new(store.clone());

    assert_eq!(
        service.bootstrap_admin(true, NOW).await.unwrap(),
        None,
        "an identity provider is a way in"
    );
    assert_eq!(store.count_active_api_keys(NOW).await.unwrap(), 0);

    let key = service
        .bootstrap_admin(false, NOW)
        .await
        .unwrap()
        .expect("a bootstrap key");
    let principal = service.verify(key.expose(), NOW).await.unwrap();
    assert_eq!(principal.role, Role::Admin);
    assert_eq!(principal.tenant, TenantId::default_tenant());
    assert_eq!(principal.display_name, "bootstrap");
    assert_eq!(service.bootstrap_admin(false, NOW).await.unwrap(), None);
    assert_eq!(
        service
            .bootstrap_admin(false, NOW + Duration::days(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.count_active_api_keys(NOW).await.unwrap(), 1);

    // Any active key in any tenant counts; only when none is left does bootstrap run again.
    let contoso = TenantId::parse("contoso").unwrap();
    service
        .create(
            &contoso,
            "c",
            Role::Viewer,
            Some(NOW + Duration::hours(1)),
            "me",
            NOW,
        )
        .await
        .unwrap();
    let key_id = principal.subject.strip_prefix("apikey:").unwrap();
    assert!(
        service
            .revoke(
                &TenantId::default_tenant(),
                key_id,
                NOW,
                &tollgate::services::audit_events::Actor::system()
            )
            .await
            .unwrap()
    );
    assert_eq!(service.bootstrap_admin(false, NOW).await.unwrap(), None);
    let after_expiry = NOW + Duration::hours(1);
    assert!(
        service
            .bootstrap_admin(false, after_expiry)
            .await
            .unwrap()
            .is_some()
    );
}

/// A store that is down.
struct BrokenStore;

#[async_trait]
impl ApiKeyStore for BrokenStore {
    async fn insert_api_key(&self, _: &StoredApiKey, _: &[AuditDraft]) -> Result<(), StoreError> {
        Err(StoreError::Corrupt("down".into()))
    }
    async fn insert_api_key_if_none_active(
        &self,
        _: &StoredApiKey,
        _: OffsetDateTime,
        _: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        Err(StoreError::Corrupt("down".into()))
    }
    async fn api_key(&self, _: &str) -> Result<Option<StoredApiKey>, StoreError> {
        Err(StoreError::Corrupt("down".into()))
    }
    async fn api_keys(&self, _: &TenantId) -> Result<Vec<StoredApiKey>, StoreError> {
        Err(StoreError::Corrupt("down".into()))
    }
    async fn revoke_api_key(
        &self,
        _: &TenantId,
        _: &str,
        _: OffsetDateTime,
        _: &[AuditDraft],
    ) -> Result<bool, StoreError> {
        Err(StoreError::Corrupt("down".into()))
    }
    async fn touch_api_key(&self, _: &str, _: OffsetDateTime) -> Result<(), StoreError> {
        Err(StoreError::Corrupt("down".into()))
    }
    async fn count_active_api_keys(&self, _: OffsetDateTime) -> Result<u64, StoreError> {
        Err(StoreError::Corrupt("down".into()))
    }
}

#[tokio::test]
async fn a_key_store_outage_is_unavailable_not_unauthorized() {
    let (_dir, store) = sqlite().await;
    let (_, key) = ApiKeyService::new(store)
        .create(
            &TenantId::default_tenant(),
            "k",
            Role::Viewer,
            None,
            "me",
            NOW,
        )
        .await
        .unwrap();
    let broken = ApiKeyService::new(Arc::new(BrokenStore));
    let refused = broken.verify(key.expose(), NOW).await.unwrap_err();
    assert_eq!(
        refused,
        AuthError::Unavailable {
            reason: "key_store_unavailable"
        }
    );
    assert_eq!(refused.http_status(), 503);
    assert!(matches!(
        broken.bootstrap_admin(false, NOW).await,
        Err(ApiKeyError::Store(_))
    ));
}

#[tokio::test]
async fn the_authenticator_routes_each_credential_to_its_checker() {
    let issuer = TestIssuer::start().await;
    let (_dir, store) = sqlite().await;
    let api_keys = ApiKeyService::new(store);
    let (_, key) = api_keys
        .create(
            &TenantId::default_tenant(),
            "k",
            Role::Developer,
            None,
            "me",
            NOW,
        )
        .await
        .unwrap();
    let key = key.expose().to_owned();
    let token = issuer.mint(&with(issuer.claims(NOW), json!({"roles": ["admin"]})));
    let with_oidc = Authenticator::new(Some(validator(&issuer)), api_keys.clone());
    let without_oidc = Authenticator::new(None, api_keys);
    let bearer = |credential: &str| format!("Bearer {credential}");

    let role = |result: Result<tollgate::auth::Principal, AuthError>| result.map(|p| p.role);
    assert_eq!(
        role(
            with_oidc
                .authenticate(Some(&bearer(&token)), None, NOW)
                .await
        ),
        Ok(Role::Admin)
    );
    assert_eq!(
        role(with_oidc.authenticate(Some(&bearer(&key)), None, NOW).await),
        Ok(Role::Developer)
    );
    assert_eq!(
        role(with_oidc.authenticate(None, Some(&key), NOW).await),
        Ok(Role::Developer)
    );
    assert_eq!(
        role(
            without_oidc
                .authenticate(Some(&bearer(&token)), None, NOW)
                .await
        ),
        invalid("oidc_not_configured")
    );
    assert_eq!(
        role(with_oidc.authenticate(None, None, NOW).await),
        Err(AuthError::Missing)
    );
    assert_eq!(
        role(
            with_oidc
                .authenticate(Some(&bearer(&token)), Some(&key), NOW)
                .await
        ),
        invalid("multiple_credentials")
    );
    assert_eq!(
        role(
            with_oidc
                .authenticate(Some("Basic dXNlcjpwYXNz"), None, NOW)
                .await
        ),
        invalid("unsupported_scheme")
    );
    assert_eq!(
        role(with_oidc.authenticate(None, Some(&token), NOW).await),
        invalid("malformed_api_key")
    );
    assert_eq!(
        role(
            with_oidc
                .authenticate(Some(&bearer(&"x".repeat(70_000))), None, NOW)
                .await
        ),
        invalid("token_too_large")
    );
}

#[tokio::test]
async fn garbage_never_panics_and_never_authenticates() {
    let issuer = TestIssuer::start().await;
    let (_dir, store) = sqlite().await;
    let api_keys = ApiKeyService::new(store);
    let (_, key) = api_keys
        .create(
            &TenantId::default_tenant(),
            "k",
            Role::Viewer,
            None,
            "me",
            NOW,
        )
        .await
        .unwrap();
    let token = issuer.mint(&with(issuer.claims(NOW), json!({"roles": ["viewer"]})));
    let authenticator = Authenticator::new(Some(validator(&issuer)), api_keys);
    assert!(
        authenticator
            .authenticate(Some(&format!("Bearer {token}")), None, NOW)
            .await
            .is_ok()
    );

    // Seeded, so a failure reproduces.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7011_6a7e);
    let alphabets: [&[u8]; 4] = [
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        b"ABCabc012-_.=+/ \t",
        b"tg_.",
        b"{}\":,[]eyJ0._",
    ];
    let mut inputs: Vec<String> = Vec::new();
    for _ in 0..600 {
        let alphabet = alphabets[rng.gen_range(0..alphabets.len())];
        let len = rng.gen_range(0..400);
        inputs.push(
            (0..len)
                .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
                .collect(),
        );
    }
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..rng.gen_range(0..200)).map(|_| rng.r#gen()).collect();
        inputs.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    // Valid credentials with one character changed, or cut short.
    for original in [token.as_str(), key.expose()] {
        for _ in 0..150 {
            let mut bytes = original.as_bytes().to_vec();
            let at = rng.gen_range(0..bytes.len());
            let replacement = loop {
                let candidate = alphabets[0][rng.gen_range(0..alphabets[0].len())];
                if candidate != bytes[at] {
                    break candidate;
                }
            };
            bytes[at] = replacement;
            inputs.push(String::from_utf8(bytes).unwrap());
            inputs.push(original[..rng.gen_range(0..original.len())].to_owned());
        }
    }
    for input in &inputs {
        let as_bearer = format!("Bearer {input}");
        for (authorization, x_api_key) in [
            (Some(as_bearer.as_str()), None),
            (None, Some(input.as_str())),
            (Some(input.as_str()), None),
        ] {
            let outcome = authenticator
                .authenticate(authorization, x_api_key, NOW)
                .await;
            match outcome {
                Err(AuthError::Invalid { .. } | AuthError::Missing) => {}
                other => panic!("{input:?} gave {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_fake_key_source_drives_the_validator_without_http() {
    // The trait seam: a key source that serves a fixed set, counted.
    struct Fixed(Value, std::sync::atomic::AtomicUsize);
    #[async_trait]
    impl KeySource for Fixed {
        async fn fetch_keys(&self) -> Result<jsonwebtoken::jwk::JwkSet, KeySourceError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(serde_json::from_value(self.0.clone()).unwrap())
        }
    }
    let key = SigningKey::rsa(0, "fixed");
    let source = Arc::new(Fixed(json!({"keys": [key.jwk]}), Default::default()));
    let settings = OidcSettings {
        issuer: "https://issuer.example/".into(),
        audiences: vec![AUDIENCE.into()],
        default_role: Some(Role::Viewer),
        ..OidcSettings::default()
    };
    let validator = OidcValidator::new(settings, source.clone()).unwrap();
    let claims = json!({"iss": "https://issuer.example/", "aud": AUDIENCE, "sub": "user-1", "exp": NOW.unix_timestamp() + 60});
    let token = sign(
        &json!({"alg": "RS256", "kid": "fixed"}),
        &claims,
        &key.encoding,
        Algorithm::RS256,
    );
    let principal = validator.validate(&token, NOW).await.unwrap();
    // No `tid`: a generic issuer's subjects carry `-` for the tenant.
    assert_eq!(principal.subject, "oidc:-:user-1");
    assert_eq!(principal.display_name, "oidc:-:user-1");
    assert_eq!(principal.role, Role::Viewer);
    assert_eq!(source.1.load(std::sync::atomic::Ordering::SeqCst), 1);
}
