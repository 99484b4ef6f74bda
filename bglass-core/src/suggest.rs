//! "Did you mean …?": the names closest to a mistyped one (a service name at 3 a.m.), by
//! edit distance with transpositions, so that `grafna` points at `grafana` and nothing
//! points far away.

/// The edit distance between `a` and `b`, counting an adjacent transposition as one edit
/// (optimal string alignment), over characters.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for transpositions), one back, and the current one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The candidates close enough to `input` to be what was meant, best first (at most three,
/// in the candidates' order among equals): within a third of the input's length in edits
/// (at least one), or starting with an input of three characters or more. Never `input`
/// itself.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let input_lower = input.to_lowercase();
    let limit = (input.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, usize, &'a str)> = candidates
        .into_iter()
        .enumerate()
        .filter(|(_, c)| *c != input)
        .filter_map(|(order, c)| {
            let d = distance(&input_lower, &c.to_lowercase());
            let prefix = input.chars().count() >= 3 && c.starts_with(input_lower.as_str());
            (d <= limit || prefix).then_some((d, order, c))
        })
        .collect();
    scored.sort_unstable();
    scored.into_iter().take(3).map(|(_, _, c)| c).collect()
}

/// `did you mean `a`?` / `did you mean `a` or `b`?`, or nothing when no name is close.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let close = closest(input, candidates);
    let quoted: Vec<String> = close.iter().map(|c| format!("`{c}`")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(format!("did you mean {one}?")),
        [init @ .., last] => Some(format!("did you mean {} or {last}?", init.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOOLS: [&str; 6] = [
        "grafana",
        "argocd",
        "bastion",
        "redis",
        "prom",
        "postgres-control",
    ];

    #[test]
    fn distances_count_edits_and_transpositions() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("grafna", "grafana"), 1);
        assert_eq!(
            distance("garfana", "grafana"),
            1,
            "a transposition is one edit"
        );
        assert_eq!(distance("redis", "redis"), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("ünï", "uni"), 2, "characters, not bytes");
    }

    #[test]
    fn typos_find_the_tool_and_far_names_find_nothing() {
        assert_eq!(closest("grafna", TOOLS), vec!["grafana"]);
        assert_eq!(closest("agrocd", TOOLS), vec!["argocd"]);
        assert_eq!(closest("bastoin", TOOLS), vec!["bastion"]);
        assert_eq!(closest("Redis", TOOLS), vec!["redis"]);
        assert_eq!(
            closest("postgres", TOOLS),
            vec!["postgres-control"],
            "a prefix"
        );
        assert!(closest("kubernetes", TOOLS).is_empty());
        assert!(closest("x", TOOLS).is_empty());
        assert!(
            closest("grafana", TOOLS).is_empty(),
            "never the name itself"
        );
        assert_eq!(
            did_you_mean("grafna", TOOLS).as_deref(),
            Some("did you mean `grafana`?")
        );
        assert_eq!(
            did_you_mean("ab", ["ac", "ad"]).as_deref(),
            Some("did you mean `ac` or `ad`?")
        );
        assert_eq!(did_you_mean("zzzzzz", TOOLS), None);
    }
}
