//! Reading LiteLLM's loosely typed YAML: LiteLLM is Python and takes `"600"` for 600,
//! `os.environ/NAME` for almost any value, and seconds as plain numbers.
//!
//! Every reader warns (naming the field) and returns `None` for a value it cannot use, so
//! a bad value costs one field, never the import.

use std::time::Duration;

use modelgate_crds::{format_duration, parse_duration};
use serde_yaml::Value;

use super::Ctx;

/// Prefix LiteLLM uses to read a value from its environment.
pub(super) const ENV_PREFIX: &str = "os.environ/";

/// A short description of a value's type, for messages.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Text of a scalar: strings as they are, numbers and booleans printed as YAML would.
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A mapping key as text (keys are strings in every LiteLLM config; others are printed).
pub(super) fn key_text(k: &Value) -> String {
    match scalar_text(k) {
        Some(s) => s,
        None => format!("<{}>", type_name(k)),
    }
}

/// The variable name of an `os.environ/NAME` reference.
pub(super) fn env_ref(s: &str) -> Option<&str> {
    s.trim().strip_prefix(ENV_PREFIX).map(str::trim)
}

/// True for a name usable as an environment variable, a Secret key, and in `"$NAME"`.
pub(super) fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Seconds as a duration string (`600` → `10m`, `0.5` → `500ms`); `None` when not
/// positive or shorter than a millisecond.
pub(super) fn seconds_to_duration(secs: f64) -> Option<String> {
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return None;
    }
    let d = Duration::from_secs_f64(secs);
    (d.as_millis() > 0).then(|| format_duration(d))
}

impl Ctx<'_> {
    /// True when `NAME` has a value in the config's `environment_variables` or the
    /// environment of the import.
    pub(super) fn env_is_set(&self, name: &str) -> bool {
        self.config_env.contains_key(name) || self.opts.env.contains_key(name)
    }

    /// Looks up `NAME` for a field that is not secret: the config's own
    /// `environment_variables` first (LiteLLM exports them at startup), then the
    /// environment of the import.
    pub(super) fn plain_env(&mut self, name: &str, at: &str) -> Option<String> {
        if let Some(v) = self.config_env.get(name).cloned() {
            self.used_config_env.insert(name.to_owned());
            self.warn(format!(
                "{at}: os.environ/{name} taken from the config's environment_variables ({v:?})"
            ));
            return Some(v);
        }
        if let Some(v) = self.opts.env.get(name).cloned() {
            self.warn(format!(
                "{at}: os.environ/{name} taken from the environment of the import ({v:?}); check it holds in the cluster too"
            ));
            return Some(v);
        }
        self.warn(format!(
            "{at}: os.environ/{name} is not set where the import runs; not translated, set the value by hand"
        ));
        None
    }

    /// A value that is not secret, as text; `os.environ/NAME` is resolved by [`Self::plain_env`].
    pub(super) fn text(&mut self, v: &Value, at: &str) -> Option<String> {
        let Some(s) = scalar_text(v) else {
            if !v.is_null() {
                self.warn(format!(
                    "{at} must be text, found {}; not translated",
                    type_name(v)
                ));
            }
            return None;
        };
        match env_ref(&s) {
            Some(name) => self.plain_env(name, at),
            None => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        }
    }

    /// A number; numeric strings count.
    pub(super) fn number(&mut self, v: &Value, at: &str) -> Option<f64> {
        let parsed = match v {
            Value::Number(n) => n.as_f64(),
            Value::Bool(_) => None,
            _ => {
                let s = self.text(v, at)?;
                s.parse::<f64>().ok()
            }
        };
        match parsed.filter(|n| n.is_finite()) {
            Some(n) => Some(n),
            None => {
                self.warn(format!(
                    "{at} must be a number, found {}; not translated",
                    describe(v)
                ));
                None
            }
        }
    }

    /// A whole number of at least `min`.
    pub(super) fn integer(&mut self, v: &Value, at: &str, min: i64) -> Option<i64> {
        let n = self.number(v, at)?;
        if n.fract() != 0.0 || n < min as f64 || n > i64::MAX as f64 {
            self.warn(format!(
                "{at} must be a whole number >= {min}, found {n}; not translated"
            ));
            return None;
        }
        Some(n as i64)
    }

    /// Seconds (LiteLLM's unit for every timeout) as a duration string.
    pub(super) fn duration(&mut self, v: &Value, at: &str) -> Option<String> {
        if let Value::String(s) = v
            && parse_duration(s.trim()).is_ok()
        {
            return Some(s.trim().to_owned());
        }
        let secs = self.number(v, at)?;
        let d = seconds_to_duration(secs);
        if d.is_none() {
            self.warn(format!(
                "{at} must be a positive number of seconds (at least 0.001), found {secs}; not translated"
            ));
        }
        d
    }

    /// A boolean; `"true"`/`"false"` in any case count.
    pub(super) fn boolean(&mut self, v: &Value, at: &str) -> Option<bool> {
        if let Value::Bool(b) = v {
            return Some(*b);
        }
        let s = self.text(v, at)?;
        match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => {
                self.warn(format!(
                    "{at} must be true or false, found {s:?}; not translated"
                ));
                None
            }
        }
    }
}

/// A value for a message: scalars as text, others by type.
fn describe(v: &Value) -> String {
    match scalar_text(v) {
        Some(s) => format!("{s:?}"),
        None => type_name(v).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_become_durations() {
        assert_eq!(seconds_to_duration(600.0).as_deref(), Some("10m"));
        assert_eq!(seconds_to_duration(30.0).as_deref(), Some("30s"));
        assert_eq!(seconds_to_duration(0.5).as_deref(), Some("500ms"));
        assert_eq!(seconds_to_duration(90.0).as_deref(), Some("1m30s"));
        assert_eq!(seconds_to_duration(0.0), None);
        assert_eq!(seconds_to_duration(-3.0), None);
        assert_eq!(seconds_to_duration(0.0001), None);
    }

    #[test]
    fn env_names() {
        assert_eq!(env_ref("os.environ/OPENAI_API_KEY"), Some("OPENAI_API_KEY"));
        assert_eq!(env_ref("sk-123"), None);
        assert!(is_env_name("AZURE_API_KEY_EU"));
        assert!(is_env_name("_X1"));
        for bad in ["", "1X", "A-B", "A B", "A$B"] {
            assert!(!is_env_name(bad), "{bad:?}");
        }
    }
}
