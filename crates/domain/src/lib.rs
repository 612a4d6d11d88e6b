//! tollgate's domain: the values every other crate speaks in.
//!
//! No I/O and no async here, so everything in this crate is testable in microseconds and
//! usable from the pure crates (policy, audit) as well as the adapters.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// The Azure DevOps REST surface tollgate reads: one endpoint per resource kind.
pub mod ado_api;
/// Identifiers: tenants, sync runs.
pub mod ids;
/// Inventory items: one ADO object as stored, with its raw JSON.
pub mod inventory;
/// JSON in RFC 8785 form, encoded once and shared (audit records, gate decisions).
pub mod json;
/// The kinds of ADO resource the inventory holds.
pub mod kind;
/// Secrets that never print.
pub mod secret;

pub use ids::{SyncRunId, TenantId, TenantIdError};
pub use inventory::InventoryItem;
pub use json::{CanonicalError, CanonicalJson};
pub use kind::{ResourceKind, UnknownKind};
pub use secret::SecretString;
