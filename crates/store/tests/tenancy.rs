//! `TenancyStore`: registrations, memberships and the lookup by subject behave alike on
//! SQLite and PostgreSQL; removing a tenant ends its memberships and keys in one transaction
//! with its audit record. (Isolation between tenants is in isolation.rs.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test reports failure by panicking"
)]

#[macro_use]
mod common;

use std::sync::Arc;

use common::Fixture;
use serde_json::Map;
use time::OffsetDateTime;
use time::macros::datetime;
use tollgate_domain::TenantId;
use tollgate_store::{
    AuditDraft, EncodedLeaf, LeafEncoder, StoredApiKey, StoredMembership, StoredTenant,
};

const AT: OffsetDateTime = datetime!(2026-05-04 12:00 UTC);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

struct Encoder;

impl LeafEncoder for Encoder {
    fn encode(
        &self,
        tenant: &TenantId,
        draft: &AuditDraft,
        seq: u64,
        _logged: OffsetDateTime,
    ) -> Result<EncodedLeaf, String> {
        Ok(EncodedLeaf {
            record_id: format!("{tenant}-{seq}"),
            bytes: draft.event_type.clone().into_bytes(),
            hash: [u8::try_from(seq % 251).unwrap_or(0); 32],
        })
    }
}

fn draft(event_type: &str) -> AuditDraft {
    AuditDraft {
        encoded: Default::default(),
        event_type: event_type.to_owned(),
        time: AT,
        fields: Map::new(),
        dedupe_key: None,
    }
}

fn membership(tenant_id: &str, subject: &str, role: &str, by: &str) -> StoredMembership {
    StoredMembership {
        tenant: tenant(tenant_id),
        subject: subject.to_owned(),
        role: role.to_owned(),
        created_at: AT,
        created_by: by.to_owned(),
    }
}

async fn registrations_are_idempotent_and_audited_once(fixture: Fixture) {
    fixture.store.set_leaf_encoder(Arc::new(Encoder)).unwrap();
    let store = &*fixture.store;
    let contoso = StoredTenant {
        tenant: tenant("contoso"),
        created_at: AT,
        created_by: "oidc:t:ops".into(),
    };
    assert!(
        store
            .register_tenant(&contoso, &[draft("tenant.added")])
            .await
            .unwrap()
    );
    let again = StoredTenant {
        created_by: "someone-else".into(),
        ..contoso.clone()
    };
    assert!(
        !store
            .register_tenant(&again, &[draft("tenant.added")])
            .await
            .unwrap()
    );
    assert_eq!(
        store.registered_tenant(&tenant("contoso")).await.unwrap(),
        Some(contoso.clone())
    );
    assert_eq!(
        store.registered_tenant(&tenant("nope")).await.unwrap(),
        None
    );
    let fabrikam = StoredTenant {
        tenant: tenant("fabrikam"),
        ..contoso.clone()
    };
    store.register_tenant(&fabrikam, &[]).await.unwrap();
    assert_eq!(
        store.registered_tenants().await.unwrap(),
        [contoso, fabrikam]
    );
    assert_eq!(
        fixture.audit_types(&tenant("contoso")).await,
        ["tenant.added"]
    );
}

async fn memberships_change_roles_and_are_found_by_subject(fixture: Fixture) {
    fixture.store.set_leaf_encoder(Arc::new(Encoder)).unwrap();
    let store = &*fixture.store;
    let first = membership("contoso", "oidc:t:alice", "viewer", "oidc:t:ops");
    assert_eq!(
        store
            .put_membership(&first, &[draft("membership.changed")])
            .await
            .unwrap(),
        None
    );
    // A second put changes the role and reports the previous one; the first creation stays.
    let promoted = membership("contoso", "oidc:t:alice", "admin", "oidc:t:boss");
    assert_eq!(
        store
            .put_membership(&promoted, &[draft("membership.changed")])
            .await
            .unwrap()
            .as_deref(),
        Some("viewer")
    );
    store
        .put_membership(
            &membership("fabrikam", "oidc:t:alice", "operator", "x"),
            &[],
        )
        .await
        .unwrap();
    store
        .put_membership(&membership("contoso", "apikey:K1", "viewer", "x"), &[])
        .await
        .unwrap();
    assert_eq!(
        store.memberships(&tenant("contoso")).await.unwrap(),
        [
            membership("contoso", "apikey:K1", "viewer", "x"),
            membership("contoso", "oidc:t:alice", "admin", "oidc:t:ops"),
        ]
    );
    assert_eq!(
        store.memberships_of("oidc:t:alice").await.unwrap(),
        [
            membership("contoso", "oidc:t:alice", "admin", "oidc:t:ops"),
            membership("fabrikam", "oidc:t:alice", "operator", "x"),
        ]
    );
    assert!(
        store
            .memberships_of("oidc:t:nobody")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .remove_membership(
                &tenant("contoso"),
                "oidc:t:alice",
                &[draft("membership.changed")]
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_membership(
                &tenant("contoso"),
                "oidc:t:alice",
                &[draft("membership.changed")]
            )
            .await
            .unwrap()
    );
    assert_eq!(store.memberships_of("oidc:t:alice").await.unwrap().len(), 1);
    assert_eq!(
        fixture.audit_types(&tenant("contoso")).await,
        [
            "membership.changed",
            "membership.changed",
            "membership.changed"
        ],
        "a removal that found nothing is not recorded"
    );
}

async fn removing_a_tenant_ends_its_memberships_and_keys(fixture: Fixture) {
    fixture.store.set_leaf_encoder(Arc::new(Encoder)).unwrap();
    let store = &*fixture.store;
    store
        .register_tenant(
            &StoredTenant {
                tenant: tenant("contoso"),
                created_at: AT,
                created_by: "x".into(),
            },
            &[],
        )
        .await
        .unwrap();
    for subject in ["oidc:t:alice", "oidc:t:bob"] {
        store
            .put_membership(&membership("contoso", subject, "admin", "x"), &[])
            .await
            .unwrap();
    }
    store
        .put_membership(&membership("fabrikam", "oidc:t:alice", "admin", "x"), &[])
        .await
        .unwrap();
    let key = |id: &str, tenant_id: &str, revoked_at: Option<OffsetDateTime>| StoredApiKey {
        key_id: id.to_owned(),
        tenant: tenant(tenant_id),
        name: "k".into(),
        role: "admin".into(),
        secret_sha256: [1; 32],
        created_at: AT,
        created_by: "x".into(),
        expires_at: None,
        revoked_at,
        last_used_at: None,
    };
    let earlier = AT - time::Duration::days(1);
    store
        .insert_api_key(&key("CONTOSOKEY01", "contoso", None), &[])
        .await
        .unwrap();
    store
        .insert_api_key(&key("CONTOSOKEY02", "contoso", Some(earlier)), &[])
        .await
        .unwrap();
    store
        .insert_api_key(&key("FABRIKAMKEY1", "fabrikam", None), &[])
        .await
        .unwrap();

    let removed = store
        .remove_tenant(&tenant("contoso"), AT, &[draft("tenant.removed")])
        .await
        .unwrap();
    assert!(removed.was_registered);
    assert_eq!(removed.memberships_removed, 2);
    assert_eq!(
        removed.api_keys_revoked, 1,
        "the revoked key keeps its time"
    );
    assert!(
        store
            .registered_tenant(&tenant("contoso"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .memberships(&tenant("contoso"))
            .await
            .unwrap()
            .is_empty()
    );
    let keys = store.api_keys(&tenant("contoso")).await.unwrap();
    assert_eq!(keys[0].revoked_at, Some(AT));
    assert_eq!(keys[1].revoked_at, Some(earlier));
    assert_eq!(store.memberships_of("oidc:t:alice").await.unwrap().len(), 1);
    assert_eq!(
        store.api_keys(&tenant("fabrikam")).await.unwrap()[0].revoked_at,
        None
    );
    assert_eq!(
        fixture.audit_types(&tenant("contoso")).await,
        ["tenant.removed"]
    );
}

on_both_backends!(
    registrations_are_idempotent_and_audited_once,
    memberships_change_roles_and_are_found_by_subject,
    removing_a_tenant_ends_its_memberships_and_keys,
);
