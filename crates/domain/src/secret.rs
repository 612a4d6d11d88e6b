use std::fmt;

/// A secret (PAT, client secret, webhook secret, job token) that never appears in logs, errors
/// or Debug output, and is wiped from memory when dropped.
///
/// The only way to read it is [`SecretString::expose`], which makes every use greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl Drop for SecretString {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(\"[redacted]\")")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// Serializing writes the redaction marker, never the value: a config dump must not leak.
impl serde::Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_serialize_never_show_the_value() {
        let secret = SecretString::new("hunter2-pat");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{secret}").contains("hunter2"));
        let json = serde_json::to_string(&secret).unwrap_or_default();
        assert!(!json.contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2-pat");
    }
}
