use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A tenant: one ADO organisation with its own data, credentials and audit log.
///
/// A single-organisation install has exactly one tenant, [`TenantId::DEFAULT`].
/// Ids are short, lowercase and URL-safe because they appear in webhook paths.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub const DEFAULT: &'static str = "default";

    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    pub fn parse(raw: &str) -> Result<Self, TenantIdError> {
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if raw.is_empty() || raw.len() > 64 {
            return Err(TenantIdError {
                raw: raw.to_owned(),
            });
        }
        if !raw.chars().all(valid_char) {
            return Err(TenantIdError {
                raw: raw.to_owned(),
            });
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid tenant id {raw:?}: use 1-64 characters of a-z, 0-9, '-' and '_'")]
pub struct TenantIdError {
    raw: String,
}

impl TryFrom<String> for TenantId {
    type Error = TenantIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

impl FromStr for TenantId {
    type Err = TenantIdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One run of `tollgate sync` (full or incremental), as numbered by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncRunId(pub i64);

impl fmt::Display for SyncRunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_lowercase_url_safe_and_bounded() {
        assert!(TenantId::parse("default").is_ok());
        assert!(TenantId::parse("contoso-prod_2").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("Contoso").is_err());
        assert!(TenantId::parse("a/b").is_err());
        assert!(TenantId::parse(&"x".repeat(65)).is_err());
    }
}
