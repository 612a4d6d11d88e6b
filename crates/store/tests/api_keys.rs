//! `ApiKeyStore`: round trips, tenant scoping, activity and the atomic bootstrap insert, on
//! SQLite and on PostgreSQL (see tests/common).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[macro_use]
mod common;

use common::Fixture;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tollgate_domain::TenantId;
use tollgate_store::{StoreError, StoredApiKey};

const NOW: OffsetDateTime = datetime!(2026-03-02 09:30:00 UTC);

fn key(key_id: &str, tenant: &str) -> StoredApiKey {
    StoredApiKey {
        key_id: key_id.to_owned(),
        tenant: TenantId::parse(tenant).unwrap(),
        name: format!("key {key_id}"),
        role: "operator".to_owned(),
        secret_sha256: [7; 32],
        created_at: NOW,
        created_by: "oidc:t:someone".to_owned(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    }
}

async fn keys_round_trip_and_ids_are_unique_across_tenants(fixture: Fixture) {
    let store = &*fixture.store;
    let mut full = key("AAAAAAAAAAA1", "contoso");
    // Sub-second times survive the round trip, to the microsecond (what PostgreSQL keeps).
    full.expires_at = Some(NOW + Duration::milliseconds(1500));
    full.last_used_at = Some(NOW + Duration::microseconds(1));
    store.insert_api_key(&full, &[]).await.unwrap();
    assert_eq!(
        store.api_key("AAAAAAAAAAA1").await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(store.api_key("AAAAAAAAAAA2").await.unwrap(), None);

    let clash = key("AAAAAAAAAAA1", "fabrikam");
    assert!(matches!(
        store.insert_api_key(&clash, &[]).await,
        Err(StoreError::Database(_))
    ));

    let mut second = key("AAAAAAAAAAA3", "contoso");
    second.created_at = NOW + Duration::seconds(1);
    store.insert_api_key(&second, &[]).await.unwrap();
    store
        .insert_api_key(&key("AAAAAAAAAAA4", "fabrikam"), &[])
        .await
        .unwrap();
    let contoso = TenantId::parse("contoso").unwrap();
    let ids: Vec<String> = store
        .api_keys(&contoso)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(ids, ["AAAAAAAAAAA1", "AAAAAAAAAAA3"]);
}

async fn revocation_is_scoped_to_the_tenant_and_keeps_the_first_time(fixture: Fixture) {
    let store = &*fixture.store;
    store
        .insert_api_key(&key("AAAAAAAAAAA1", "contoso"), &[])
        .await
        .unwrap();
    let contoso = TenantId::parse("contoso").unwrap();
    let fabrikam = TenantId::parse("fabrikam").unwrap();

    assert!(
        !store
            .revoke_api_key(&fabrikam, "AAAAAAAAAAA1", NOW, &[])
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .api_key("AAAAAAAAAAA1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert!(
        store
            .revoke_api_key(&contoso, "AAAAAAAAAAA1", NOW, &[])
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_api_key(&contoso, "AAAAAAAAAAA1", NOW + Duration::hours(1), &[])
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .api_key("AAAAAAAAAAA1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(NOW)
    );
    assert!(
        !store
            .revoke_api_key(&contoso, "AAAAAAAAAAA9", NOW, &[])
            .await
            .unwrap()
    );

    store
        .touch_api_key("AAAAAAAAAAA1", NOW + Duration::minutes(3))
        .await
        .unwrap();
    assert_eq!(
        store
            .api_key("AAAAAAAAAAA1")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(NOW + Duration::minutes(3))
    );
}

async fn only_unrevoked_unexpired_keys_are_active(fixture: Fixture) {
    let store = &*fixture.store;
    let mut expiring = key("AAAAAAAAAAA1", "contoso");
    // Lexically "…:00.5Z" < "…:00Z"; the comparison must be by time, not by text.
    expiring.expires_at = Some(NOW + Duration::milliseconds(500));
    store.insert_api_key(&expiring, &[]).await.unwrap();
    let mut revoked = key("AAAAAAAAAAA2", "fabrikam");
    revoked.revoked_at = Some(NOW - Duration::days(1));
    store.insert_api_key(&revoked, &[]).await.unwrap();

    assert_eq!(store.count_active_api_keys(NOW).await.unwrap(), 1);
    assert_eq!(
        store
            .count_active_api_keys(NOW + Duration::milliseconds(500))
            .await
            .unwrap(),
        0
    );

    // The bootstrap insert happens only when nothing is active.
    let bootstrap = key("BBBBBBBBBBB1", "default");
    assert!(
        !store
            .insert_api_key_if_none_active(&bootstrap, NOW, &[])
            .await
            .unwrap()
    );
    assert_eq!(store.api_key("BBBBBBBBBBB1").await.unwrap(), None);
    let later = NOW + Duration::seconds(1);
    assert!(
        store
            .insert_api_key_if_none_active(&bootstrap, later, &[])
            .await
            .unwrap()
    );
    let again = key("BBBBBBBBBBB2", "default");
    assert!(
        !store
            .insert_api_key_if_none_active(&again, later, &[])
            .await
            .unwrap()
    );
    assert_eq!(store.count_active_api_keys(later).await.unwrap(), 1);
}

async fn a_corrupt_row_is_an_error_not_a_key(fixture: Fixture) {
    let store = &*fixture.store;
    store
        .insert_api_key(&key("AAAAAAAAAAA1", "contoso"), &[])
        .await
        .unwrap();
    fixture
        .behind_the_store(
            "contoso",
            "UPDATE api_keys SET secret_sha256 = x'0102' WHERE key_id = 'AAAAAAAAAAA1'",
            "UPDATE api_keys SET secret_sha256 = '\\x0102'::bytea WHERE key_id = 'AAAAAAAAAAA1'",
        )
        .await;
    assert!(matches!(
        store.api_key("AAAAAAAAAAA1").await,
        Err(StoreError::Corrupt(_))
    ));
}

on_both_backends!(
    keys_round_trip_and_ids_are_unique_across_tenants,
    revocation_is_scoped_to_the_tenant_and_keeps_the_first_time,
    only_unrevoked_unexpired_keys_are_active,
    a_corrupt_row_is_an_error_not_a_key,
);
