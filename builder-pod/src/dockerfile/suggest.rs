//! "Did you mean …?" hints, like BuildKit's `util/suggest`: the closest option by Levenshtein
//! distance, offered only when it is close (at most 2 edits, and fewer edits than the word has
//! characters).

/// Levenshtein distance over characters, in O(len(a) * len(b)) time and O(len(b)) space.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest of `options` to `word`, if any is close enough.
pub(crate) fn closest<'a>(
    word: &str,
    options: &[&'a str],
    case_sensitive: bool,
) -> Option<&'a str> {
    // Words this long are not typos worth suggesting for, and the distance is quadratic.
    if word.len() > 64 {
        return None;
    }
    let norm = |s: &str| {
        if case_sensitive {
            s.to_owned()
        } else {
            s.to_lowercase()
        }
    };
    let word = norm(word);
    let mut best: Option<(usize, &'a str)> = None;
    for opt in options {
        let candidate = norm(opt);
        if candidate == word {
            return None;
        }
        let d = distance(&word, &candidate);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, opt));
        }
    }
    let (d, opt) = best?;
    (d <= 2 && d < word.chars().count()).then_some(opt)
}

/// A ready-made hint `did you mean X?`.
pub(crate) fn did_you_mean(word: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    closest(word, options, case_sensitive).map(|m| format!("did you mean {m}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let opts = ["copy", "run", "from", "workdir"];
        assert_eq!(closest("CPY", &opts, false), Some("copy"));
        assert_eq!(closest("wrkdir", &opts, false), Some("workdir"));
        assert_eq!(closest("xyzzy", &opts, false), None);
        assert_eq!(closest("ru", &opts, false), Some("run"));
        assert_eq!(closest("x", &opts, false), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
