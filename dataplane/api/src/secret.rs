//! A credential value that serializes on the wire but never shows in logs.

use serde::{Deserialize, Serialize};

/// What [`SecretValue`]'s `Debug` and every redacted view show instead of the value.
pub const REDACTED: &str = "<redacted>";

/// A credential (API key, AWS secret, master key, Redis URL). It serializes as the plain
/// string, because the routing table must carry it to the data plane, but `Debug` prints
/// [`REDACTED`] and there is no `Display`: reading it takes an explicit [`expose`].
///
/// [`expose`]: SecretValue::expose
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The redaction marker in place of the value.
    pub fn redacted() -> Self {
        Self(REDACTED.to_owned())
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretValue::new("sk-live-123");
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&s)), format!("Some({REDACTED})"));
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn serializes_for_real() {
        let s = SecretValue::new("sk-live-123");
        assert_eq!(
            serde_json::to_string(&s).ok().as_deref(),
            Some("\"sk-live-123\"")
        );
    }
}
