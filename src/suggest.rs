//! "Did you mean …?" for every mistyped name: models, prompt ids, variables, commands, keys.

/// Up to three candidates closest to `typed`, best first (ties in candidate order).
///
/// Scored with `strsim`'s Jaro–Winkler similarity, case-insensitively, against the whole candidate
/// and against its last `/` segment (so `swat` finds `market/swot`); a candidate that contains the
/// typed text (3+ characters) or is contained in it counts as close. Candidates scoring below 0.8
/// are not offered.
pub fn did_you_mean<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let needle = typed.to_lowercase();
    if needle.is_empty() {
        return Vec::new();
    }
    let mut scored: Vec<(f64, usize, &str)> = Vec::new();
    for (i, cand) in candidates.into_iter().enumerate() {
        if scored.iter().any(|(_, _, c)| *c == cand) {
            continue;
        }
        let lower = cand.to_lowercase();
        let last = lower.rsplit('/').next().unwrap_or(&lower);
        let mut s = strsim::jaro_winkler(&needle, &lower).max(strsim::jaro_winkler(&needle, last));
        if needle.chars().count() >= 3 && (lower.contains(&needle) || needle.contains(last)) {
            s = s.max(0.9);
        }
        if s >= 0.8 {
            scored.push((s, i, cand));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(3).map(|(_, _, c)| c).collect()
}

/// `" (did you mean `a` or `b`?)"`, or nothing when there is no close candidate.
pub fn hint<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let close = did_you_mean(typed, candidates);
    if close.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = close.iter().map(|c| format!("`{c}`")).collect();
    format!(" (did you mean {}?)", quoted.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_prefixes_and_segments() {
        let ids = ["market/swot", "market/moat", "scripts/competitive-brief"];
        assert_eq!(did_you_mean("swat", ids)[0], "market/swot");
        assert_eq!(did_you_mean("competitive", ids), vec!["scripts/competitive-brief"]);
        assert_eq!(did_you_mean("SMOLLM", ["smollm2-135m", "gemma3-270m"]), vec!["smollm2-135m"]);
        assert_eq!(did_you_mean("temprature", ["temp", "top_k", "temperature"])[0], "temperature");
        assert!(did_you_mean("zzzz", ids).is_empty());
        assert!(did_you_mean("", ids).is_empty());
        assert_eq!(hint("swat", ["market/swot"]), " (did you mean `market/swot`?)");
        assert_eq!(hint("qqq", ["market/swot"]), "");
    }
}
