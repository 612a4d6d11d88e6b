//! Use cases, independent of how they are invoked (CLI, HTTP, MCP). Services reach storage
//! and Azure DevOps only through the `InventoryStore` and `AdoClient` traits.

pub mod audit;
pub mod audit_events;
pub mod backtest;
pub mod bypass;
pub mod capabilities;
pub mod decision_writer;
pub mod deployments;
pub mod events;
pub mod facts;
pub mod gate;
pub mod inventory;
pub mod job_tokens;
pub mod memo;
pub mod notify;
pub mod scan;
pub mod settings;
pub mod shared_read;
pub mod siem;
pub mod sync;
pub mod tenancy;
pub mod tenant;

/// A failure that trying again cannot fix. A job whose handler fails with it (anywhere in the
/// error's chain) is dead-lettered at once, and audited as such, instead of being retried.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FinalFailure(pub String);
