//! Entra ID / OIDC bearer tokens against the real server: the token pitfalls all get 401
//! over HTTP, a valid token gets the role its groups map to, a role-less identity gets 403.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[path = "support/oidc.rs"]
mod oidc_issuer;
#[path = "support/server.rs"]
mod server;

use jsonwebtoken::{Algorithm, EncodingKey};
use oidc_issuer::{AUDIENCE, SigningKey, TENANT_ID, TestIssuer, sign, unsigned};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use server::Server;
use time::OffsetDateTime;

const OPERATORS: &str = "7f1c1c3a-3b0e-4f57-9d1d-1b8c0e6a0a01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_checked_over_http_and_every_pitfall_is_refused() {
    let issuer = TestIssuer::start().await;
    let server = Server::start(&format!(
        "[auth.oidc]\nissuer = \"{}\"\naudiences = [\"{AUDIENCE}\"]\nentra_tenant_id = \"{TENANT_ID}\"\n[auth.oidc.group_roles]\n\"{OPERATORS}\" = \"operator\"\n",
        issuer.issuer()
    ))
    .await;
    assert!(
        server.bootstrap_key.is_none(),
        "an identity provider is configured: no bootstrap key"
    );
    let client = Client::new();
    let me = |token: String| {
        client
            .get(server.url("/api/v1/me"))
            .bearer_auth(token)
            .send()
    };

    let now = OffsetDateTime::now_utc();
    let mut good = issuer.claims(now);
    good["groups"] = json!([OPERATORS]);
    let response = me(issuer.mint(&good)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["role"], "operator");
    assert_eq!(
        body["subject"],
        format!("oidc:{TENANT_ID}:{}", oidc_issuer::USER_OID)
    );

    // An operator may read events, not manage API keys.
    let token = issuer.mint(&good);
    assert_eq!(
        client
            .get(server.url("/api/v1/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(server.url("/api/v1/api-keys"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // Authenticated but mapped to no role: 403, not 401.
    let role_less = issuer.claims(now);
    assert_eq!(
        me(issuer.mint(&role_less)).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    let key = issuer.key();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good.clone();
        change(&mut claims);
        issuer.mint(&claims)
    };
    let stranger = SigningKey::rsa(3, "not-published");
    let valid = issuer.mint(&good);
    let mut tampered = valid.clone();
    tampered.truncate(tampered.len() - 4);
    tampered.push_str("AAAA");
    let pitfalls: Vec<(&str, String)> = vec![
        (
            "alg none",
            unsigned(&json!({"alg": "none", "kid": key.kid}), &good),
        ),
        (
            "alg confusion: HS256 keyed with the public key",
            sign(
                &json!({"alg": "HS256", "kid": key.kid}),
                &good,
                &EncodingKey::from_secret(key.public_pem.as_bytes()),
                Algorithm::HS256,
            ),
        ),
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://login.example/evil/v2.0")),
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("api://someone-else")),
        ),
        (
            "wrong tenant",
            with(&|c| c["tid"] = json!("00000000-0000-0000-0000-000000000001")),
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(now.unix_timestamp() - 3600)),
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now.unix_timestamp() + 3600)),
        ),
        (
            "unknown kid",
            issuer.mint_with(&stranger, Algorithm::RS256, &good),
        ),
        ("tampered signature", tampered),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (name, token) in pitfalls {
        let response = me(token).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token"),
            "{name}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{name}");
    }
    server.stop().await;
}
