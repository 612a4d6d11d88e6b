//! The policy engine: regorus behind a small API of our own, the embedded control catalog,
//! control metadata and the case-file runner. Pure: no I/O, no async; the clock is the
//! `now` field of the input.
//!
//! regorus is pinned to an exact version (it breaks its API often); nothing outside this
//! crate names a regorus type.

pub mod cases;
pub mod docs;
pub mod engine;
pub mod gate;
pub mod metadata;

use std::time::Duration;

pub use engine::{Evaluator, InputParts, Loaded, PolicySet, Source, Violation};
pub use gate::{GateEffect, GateFinding};
pub use metadata::{ControlMeta, GateRuleMeta, Severity};

mod bundle {
    include!(concat!(env!("OUT_DIR"), "/bundle.rs"));
}

/// The longest one evaluation may run before it is stopped.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}:{line}: {message}")]
    Load {
        file: String,
        line: usize,
        message: String,
    },
    #[error("policy evaluation failed: {0}")]
    Evaluation(String),
    #[error("invalid evaluation input: {0}")]
    Input(String),
    #[error("no control {0:?}; `tollgate policy list` shows them all")]
    UnknownControl(String),
    #[error("case file {file}: {message}")]
    Case { file: String, message: String },
}

/// A stable 64-bit digest (FNV-1a, hex) of some bytes, for fingerprints that are stored.
pub fn stable_digest(bytes: &[u8]) -> String {
    let mut hash = engine::Fnv1a::default();
    hash.write(bytes);
    format!("{:016x}", hash.0)
}

/// The built-in bundle's sources.
pub fn builtin_sources() -> Vec<Source> {
    bundle::BUNDLE
        .iter()
        .map(|(name, text)| Source {
            name: (*name).to_owned(),
            text: (*text).to_owned(),
        })
        .collect()
}

/// Load the built-in bundle plus user sources (user files may not reuse built-in ids).
pub fn load(user_sources: &[Source]) -> Loaded {
    let mut sources = builtin_sources();
    sources.extend_from_slice(user_sources);
    PolicySet::load(&sources, DEFAULT_TIME_LIMIT)
}
