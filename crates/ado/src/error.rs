use tollgate_domain::ResourceKind;

/// What went wrong talking to Azure DevOps, in terms a caller can act on.
///
/// Messages never include credentials: URLs carry no secrets (auth is a header) and bodies
/// are summarised, not echoed.
#[derive(Debug, thiserror::Error)]
pub enum AdoError {
    #[error("ADO rejected the credential (401) at {url}; check the PAT or service principal")]
    Unauthorized { url: String },
    #[error("the credential lacks permission (403) at {url}: {message}")]
    Forbidden { url: String, message: String },
    #[error("not found (404) at {url}: {message}")]
    NotFound { url: String, message: String },
    #[error("ADO answered {status} at {url}: {message}")]
    Status {
        status: u16,
        url: String,
        message: String,
    },
    #[error(
        "gave up after {attempts} attempts over {elapsed_ms} ms at {url}; last problem: {last}"
    )]
    RetriesExhausted {
        url: String,
        attempts: u32,
        elapsed_ms: u128,
        last: String,
    },
    #[error("could not decode a {kind} response: {detail}")]
    Decode { kind: ResourceKind, detail: String },
    #[error("token request to {url} failed: {detail}")]
    Token { url: String, detail: String },
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl AdoError {
    /// True when the identity may not read this resource: a sync skips the kind and says so.
    pub fn is_permission_denied(&self) -> bool {
        matches!(
            self,
            AdoError::Forbidden { .. } | AdoError::Unauthorized { .. }
        )
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, AdoError::NotFound { .. })
    }
}
