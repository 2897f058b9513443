//! Kubernetes object names for imported resources: DNS-1123 labels made from model names,
//! unique within a kind, and stable for a given config (`gpt-4o`, or `gpt-4o-1`, `gpt-4o-2`
//! when several entries share the name).

use std::collections::{BTreeMap, BTreeSet};

/// Longest base name; leaves room for `-NN` suffixes within a 63-character label.
const MAX_BASE: usize = 56;

/// A DNS-1123 label made from `s`: lowercase letters and digits, every other run of
/// characters one `-`, `*` spelled `wildcard` (`openai/*` → `openai-wildcard`).
pub(super) fn label(s: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in s.chars() {
        let piece = if c == '*' {
            Some("wildcard".to_owned())
        } else if c.is_ascii_alphanumeric() {
            Some(c.to_ascii_lowercase().to_string())
        } else {
            None
        };
        match piece {
            Some(p) => {
                if dash && !out.is_empty() {
                    out.push('-');
                }
                dash = false;
                out.push_str(&p);
            }
            None => dash = true,
        }
    }
    if out.len() > MAX_BASE {
        out.truncate(MAX_BASE);
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "model".to_owned()
    } else {
        out
    }
}

/// Names for objects of one kind, one per base in order: the base itself when it occurs
/// once, `base-1`, `base-2`, … when it occurs several times; a further `-2`, `-3`, … only
/// when that is already taken.
pub(super) fn assign(bases: &[String]) -> Vec<String> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for b in bases {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(bases.len());
    for b in bases {
        let k = seen.entry(b.as_str()).or_default();
        *k += 1;
        let first = if counts.get(b.as_str()).copied().unwrap_or(1) > 1 {
            format!("{b}-{k}")
        } else {
            b.clone()
        };
        let mut name = first.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{first}-{n}");
            n += 1;
        }
        taken.insert(name.clone());
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label("gpt-3.5-turbo"), "gpt-3-5-turbo");
        assert_eq!(label("openai/*"), "openai-wildcard");
        assert_eq!(label("Claude 3 Opus!"), "claude-3-opus");
        assert_eq!(label("--"), "model");
        assert_eq!(label(&"x".repeat(100)).len(), MAX_BASE);
    }

    #[test]
    fn unique_and_stable() {
        let bases: Vec<String> = ["gpt-4o", "a", "gpt-4o", "gpt-4o-1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(assign(&bases), ["gpt-4o-1", "a", "gpt-4o-2", "gpt-4o-1-2"]);
    }
}
