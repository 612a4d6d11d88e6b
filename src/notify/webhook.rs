//! A generic webhook signed per the Standard Webhooks specification (v1, HMAC-SHA256):
//! `webhook-id` (one per notice, the same on every retry, so receivers can deduplicate),
//! `webhook-timestamp` (the attempt's Unix seconds) and `webhook-signature`
//! (`v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}` keyed with the secret's
//! bytes). The body is `{"type", "timestamp", "data"}` with `type` `approval.requested` or
//! `approval.decided`.
//!
//! [`verify`] is the receiving side, for tollgate's own tests and for anyone who wants to
//! check a delivery in Rust.

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::services::notify::{ApprovalNotice, NoticeKind, Notifier};

/// Secrets are `whsec_` followed by base64.
const SECRET_PREFIX: &str = "whsec_";
/// The specification's bounds on a symmetric secret: 24 to 64 random bytes.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;
/// A delivery whose timestamp is further than this from the receiver's clock is refused, so a
/// captured delivery cannot be replayed later (the specification's recommended tolerance).
pub const TOLERANCE: time::Duration = time::Duration::minutes(5);

/// A Standard Webhooks signing secret (the bytes behind `whsec_…`). Never printed.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// Why a secret was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a signing secret starts with whsec_")]
    Prefix,
    #[error("the part after whsec_ is not base64")]
    Base64,
    #[error("the secret is {0} bytes; the Standard Webhooks specification asks for 24 to 64")]
    Length(usize),
}

impl WebhookSecret {
    /// Parse `whsec_<base64>` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Prefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !SECRET_BYTES.contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self { key })
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; the error case cannot happen.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` value: `v1,<base64 HMAC-SHA256>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let signature = self
            .mac(id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", BASE64.encode(signature))
    }
}

/// Why a delivery failed verification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("webhook-timestamp is not an integer")]
    Timestamp,
    #[error("webhook-timestamp is more than 5 minutes from now (a replay, or a skewed clock)")]
    OutsideTolerance,
    #[error("no v1 signature in webhook-signature matches")]
    NoMatch,
}

/// Check a delivery: `id`, `timestamp` and `signatures` are the `webhook-id`,
/// `webhook-timestamp` and `webhook-signature` headers, `body` the raw body as received.
/// Any one matching `v1` signature of the space-separated list suffices (senders rotating
/// secrets sign with both); comparison is constant-time.
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), VerifyError> {
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::Timestamp)?;
    let sent = OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| VerifyError::Timestamp)?;
    if (now - sent).abs() > TOLERANCE {
        return Err(VerifyError::OutsideTolerance);
    }
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, encoded)| BASE64.decode(encoded).ok())
        .any(|candidate| {
            secret
                .mac(id, timestamp.trim(), body)
                .verify_slice(&candidate)
                .is_ok()
        });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

/// The JSON body for a notice that occurred at `at`.
pub fn payload(notice: &ApprovalNotice, at: OffsetDateTime) -> Value {
    let (kind, state, decided_by) = match &notice.kind {
        NoticeKind::Requested => ("approval.requested", "pending", None),
        NoticeKind::Decided { state, by } => ("approval.decided", state.as_str(), by.as_deref()),
    };
    json!({
        "type": kind,
        "timestamp": rfc3339(at),
        "data": {
            "tenant": notice.tenant,
            "approval_id": notice.approval_id,
            "state": state,
            "decided_by": decided_by,
            "environment": notice.environment,
            "pipeline": notice.pipeline,
            "run_id": notice.run_id,
            "project": notice.project,
            "requested_by": notice.requested_by,
            "reasons": notice.reasons,
            "approvers": notice.approvers,
            "quorum": notice.quorum,
            "expires_at": rfc3339(notice.expires_at),
            "link": notice.link,
        }
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

pub struct WebhookNotifier {
    name: String,
    url: String,
    secret: WebhookSecret,
    client: reqwest::Client,
}

impl WebhookNotifier {
    pub fn new(name: &str, url: &str, secret: WebhookSecret) -> Result<Self> {
        Ok(Self {
            name: name.to_owned(),
            url: url.to_owned(),
            secret,
            client: super::http_client()?,
        })
    }
}

#[async_trait::async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn notify(&self, notice: &ApprovalNotice) -> Result<()> {
        let now = OffsetDateTime::now_utc();
        let id = &notice.id;
        let body = serde_json::to_vec(&payload(notice, now)).context("encoding the payload")?;
        super::post_with_retries(&self.name, || {
            // Each attempt carries its own time, so a late retry is not refused as a replay.
            let timestamp = OffsetDateTime::now_utc().unix_timestamp();
            Ok(self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", self.secret.sign(id, timestamp, &body))
                .body(body.clone()))
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "a test reports failure by panicking"
    )]

    use super::*;

    /// The test vector of the Standard Webhooks reference libraries.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn signs_the_specifications_test_vector() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn verifies_the_test_vector_and_refuses_changes() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let stamp = TIMESTAMP.to_string();
        let now = at(TIMESTAMP + 60);
        assert_eq!(verify(&secret, ID, &stamp, SIGNATURE, BODY, now), Ok(()));
        // One good signature among others (secret rotation) suffices.
        let several =
            format!("v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= v1a,xyz {SIGNATURE}");
        assert_eq!(verify(&secret, ID, &stamp, &several, BODY, now), Ok(()));

        let tampered = br#"{"email":"test@example.com","username":"test_usr"}"#;
        assert_eq!(
            verify(&secret, ID, &stamp, SIGNATURE, tampered, now),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&secret, "msg_other", &stamp, SIGNATURE, BODY, now),
            Err(VerifyError::NoMatch)
        );
        let shifted = (TIMESTAMP + 1).to_string();
        assert_eq!(
            verify(&secret, ID, &shifted, SIGNATURE, BODY, now),
            Err(VerifyError::NoMatch)
        );
        let other = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            verify(&other, ID, &stamp, SIGNATURE, BODY, now),
            Err(VerifyError::NoMatch)
        );
        // The signature must carry its version.
        let bare = SIGNATURE.trim_start_matches("v1,");
        assert_eq!(
            verify(&secret, ID, &stamp, bare, BODY, now),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn refuses_timestamps_outside_the_tolerance() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let stamp = TIMESTAMP.to_string();
        for now in [at(TIMESTAMP + 301), at(TIMESTAMP - 301)] {
            assert_eq!(
                verify(&secret, ID, &stamp, SIGNATURE, BODY, now),
                Err(VerifyError::OutsideTolerance)
            );
        }
        assert_eq!(
            verify(&secret, ID, "soon", SIGNATURE, BODY, at(TIMESTAMP)),
            Err(VerifyError::Timestamp)
        );
    }

    #[test]
    fn secrets_are_checked_and_never_printed() {
        assert_eq!(
            WebhookSecret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap_err(),
            SecretError::Prefix
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!").unwrap_err(),
            SecretError::Base64
        );
        assert_eq!(
            WebhookSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::Length(5)
        );
        let secret = WebhookSecret::parse(&format!("  {SECRET}\n")).unwrap();
        assert!(!format!("{secret:?}").contains("C2FV"));
    }
}
