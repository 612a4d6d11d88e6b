//! The tamper-evident audit log (docs/adr/0009-audit-log.md): RFC 6962/9162 Merkle trees
//! and proofs, records in RFC 8785 canonical form, C2SP signed checkpoints, an offline
//! streaming verifier, and the SIEM encodings.
//!
//! Pure: no database, no network. The store keeps leaves and checkpoints; this crate says
//! what they mean and whether they hold.

/// Lower-case hex, the spelling of every hash and key id in records, bundles and notes.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes` in lower-case hex (digests of bodies, entries, configurations).
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

pub mod bundle;
pub mod canonical;
pub mod checkpoint;
pub mod encode;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod record;
