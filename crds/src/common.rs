//! Types shared by both resources: status conditions, Secret references and durations.

use std::time::Duration;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest length accepted for a model or alias name.
pub const MAX_MODEL_NAME: usize = 256;
/// Largest length accepted for a Kubernetes object name (DNS subdomain).
pub const MAX_OBJECT_NAME: usize = 253;
/// Largest length accepted for a key inside a Secret.
pub const MAX_SECRET_KEY: usize = 253;
/// Largest length accepted for a URL.
pub const MAX_URL: usize = 2048;
/// Largest length accepted for a duration string such as `1m30s`.
pub const MAX_DURATION: usize = 32;
/// Largest length of `upstream.apiVersion` and `upstream.region`.
pub const MAX_SHORT_TEXT: usize = 64;
/// Most extra headers of one upstream.
pub const MAX_HEADERS: usize = 32;
/// Largest length of a header name.
pub const MAX_HEADER_NAME: usize = 128;
/// Largest length of a header value.
pub const MAX_HEADER_VALUE: usize = 4096;
/// Largest canned answer of the mock provider.
pub const MAX_MOCK_RESPONSE: usize = 65536;
/// Most targets of one alias.
pub const MAX_TARGETS: usize = 16;
/// Most fallbacks of one alias.
pub const MAX_FALLBACKS: usize = 8;

/// CEL rule (and regular expression) every duration string must match.
pub const DURATION_RULE: &str = r"self.matches('^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$')";
/// Message shown when [`DURATION_RULE`] fails.
pub const DURATION_MESSAGE: &str = "must be a duration such as 500ms, 30s, 1m30s or 1h";

/// CEL rule every URL field must match.
pub const URL_RULE: &str = r"self.matches('^https?://[^/?#\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}][^\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}]*$')";
/// Message shown when [`URL_RULE`] fails.
pub const URL_MESSAGE: &str = "must be an http:// or https:// URL without spaces";

/// A standard Kubernetes condition (`metav1.Condition`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition: `Accepted`, `Ready` or `Healthy`.
    #[schemars(length(min = 1, max = 316))]
    pub r#type: String,
    /// Status of the condition: `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable reason for the last transition, in PascalCase.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// Human-readable message with details about the last transition.
    #[serde(default)]
    #[schemars(length(max = 32768))]
    pub message: String,
    /// The last time the condition moved from one status to another (RFC 3339).
    #[schemars(extend("format" = "date-time"), length(max = 64))]
    pub last_transition_time: String,
    /// The `.metadata.generation` this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
}

/// Status of a [`Condition`].
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Whether the condition holds is not known yet.
    #[default]
    Unknown,
}

/// Selects one key of a Secret in the namespace of the object that refers to it.
#[derive(
    Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[x_kube(validation = kube::core::Rule::new("self.size() > 0").message("Secret name must not be empty"))]
    #[schemars(length(max = MAX_OBJECT_NAME))]
    pub name: String,
    /// Key inside the Secret's `data`.
    #[x_kube(validation = kube::core::Rule::new("self.size() > 0").message("Secret key must not be empty"))]
    #[schemars(length(max = MAX_SECRET_KEY))]
    pub key: String,
}

/// Error returned by [`parse_duration`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    /// The text that failed to parse.
    pub input: String,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {DURATION_MESSAGE}", self.input)
    }
}

impl std::error::Error for DurationError {}

/// Parses a duration in the subset of Go's syntax that the CRDs accept: one or more
/// `<number><unit>` parts with units `ms`, `s`, `m` and `h`, and optional decimals
/// (`500ms`, `1.5s`, `1h30m`). The same grammar as [`DURATION_RULE`].
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_owned(),
    };
    if input.is_empty() || input.len() > MAX_DURATION {
        return Err(err());
    }
    let bytes = input.as_bytes();
    let mut total_ms: f64 = 0.0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(err());
        }
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let frac = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == frac {
                return Err(err());
            }
        }
        let number: f64 = input[start..i].parse().map_err(|_| err())?;
        let rest = &input[i..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1.0, 2)
        } else if rest.starts_with('s') {
            (1_000.0, 1)
        } else if rest.starts_with('m') {
            (60_000.0, 1)
        } else if rest.starts_with('h') {
            (3_600_000.0, 1)
        } else {
            return Err(err());
        };
        total_ms += number * unit_ms;
        i += len;
    }
    if !total_ms.is_finite() {
        return Err(err());
    }
    Ok(Duration::from_micros((total_ms * 1_000.0).round() as u64))
}

/// Formats a duration the way [`parse_duration`] reads it back (`90s` becomes `1m30s`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1_000, rest % 1_000);
    let mut out = String::new();
    for (value, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out
}

/// True when `s` is an `http://` or `https://` URL with a host and no whitespace
/// (the Rust twin of [`URL_RULE`]).
pub fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            !s.chars().any(char::is_whitespace)
                && rest
                    .chars()
                    .next()
                    .is_some_and(|c| !matches!(c, '/' | '?' | '#'))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("2m3s4ms"),
            Ok(Duration::from_millis(123_004))
        );
        for bad in ["", "5", "s", "1.s", "-1s", "1d", "1 s", "1sms", ".5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn durations_round_trip() {
        for ms in [1u64, 999, 1_000, 61_001, 3_600_000, 5_400_500] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn urls() {
        assert!(is_http_url("https://api.openai.com/v1"));
        assert!(is_http_url("http://127.0.0.1:8000"));
        for bad in [
            "ftp://x",
            "https://",
            "https:///x",
            "https://a b",
            "api.openai.com",
        ] {
            assert!(!is_http_url(bad), "{bad:?}");
        }
    }
}
