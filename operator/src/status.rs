//! Pieces of resource status derived from the compiler's output.

use modelgate_dataplane_api::Alias;

/// Longest target summary written into `status.targetSummary`.
pub const MAX_TARGET_SUMMARY: usize = 1024;

/// One line naming the groups an alias resolves to, largest share first:
/// `small-chat 90%, large-chat 10%`. A target reached through a wildcard group shows the
/// concrete model (`openai/gpt-4o`). Cut to [`MAX_TARGET_SUMMARY`] bytes with `…`.
pub fn target_summary(alias: &Alias) -> String {
    let mut targets: Vec<_> = alias.targets.iter().collect();
    targets.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.model.cmp(&b.model))
    });
    let mut out = String::new();
    for (i, t) in targets.iter().enumerate() {
        let part = format!(
            "{}{} {}",
            if i == 0 { "" } else { ", " },
            t.model,
            percent(t.share)
        );
        if out.len() + part.len() > MAX_TARGET_SUMMARY - '…'.len_utf8() {
            out.push('…');
            break;
        }
        out.push_str(&part);
    }
    out
}

/// A share from 0 to 1 as a percentage: whole numbers plainly, others with one decimal.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if (p - p.round()).abs() < 0.05 {
        format!("{}%", p.round())
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_dataplane_api::AliasTarget;

    fn alias(targets: &[(&str, f64)]) -> Alias {
        Alias {
            fallbacks: Vec::new(),
            generation: 1,
            hidden: false,
            id: "ns/a".to_owned(),
            name: "a".to_owned(),
            targets: targets
                .iter()
                .map(|(m, s)| AliasTarget {
                    group: (*m).to_owned(),
                    model: (*m).to_owned(),
                    share: *s,
                })
                .collect(),
        }
    }

    #[test]
    fn largest_share_first() {
        let a = alias(&[("large-chat", 0.1), ("small-chat", 0.9)]);
        assert_eq!(target_summary(&a), "small-chat 90%, large-chat 10%");
        let thirds = alias(&[("b", 1.0 / 3.0), ("a", 1.0 / 3.0), ("c", 1.0 / 3.0)]);
        assert_eq!(target_summary(&thirds), "a 33.3%, b 33.3%, c 33.3%");
        assert_eq!(
            target_summary(&alias(&[("x", 0.0), ("y", 1.0)])),
            "y 100%, x 0%"
        );
    }

    #[test]
    fn long_summaries_are_cut() {
        let name = "m".repeat(200);
        let targets: Vec<(String, f64)> = (0..16)
            .map(|i| (format!("{name}{i}"), 1.0 / 16.0))
            .collect();
        let refs: Vec<(&str, f64)> = targets.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let s = target_summary(&alias(&refs));
        assert!(
            s.len() <= MAX_TARGET_SUMMARY && s.ends_with('…'),
            "{}",
            s.len()
        );
    }
}
