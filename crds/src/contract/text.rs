//! Cutting free text (failure messages, instructions) to a byte budget measured *after* JSON
//! escaping, which is what counts against the termination message limit: a quote or newline
//! costs two bytes, another control character six.

/// Appended to a cut text so that a reader sees it was cut.
pub(crate) const ELLIPSIS: &str = "…";

/// The bytes `c` takes inside a JSON string written by serde_json.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The JSON-escaped length of `text`, without the surrounding quotes.
pub(crate) fn escaped_text_len(text: &str) -> usize {
    text.chars().map(escaped_len).sum()
}

/// `text` cut at a character boundary so that its escaped length, [`ELLIPSIS`] included, is at
/// most `budget`. Text that fits is returned unchanged.
pub(crate) fn clip(text: &str, budget: usize) -> String {
    if escaped_text_len(text) <= budget {
        return text.to_owned();
    }
    let room = budget.saturating_sub(ELLIPSIS.len());
    let mut used = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let n = escaped_len(c);
        if used + n > room {
            break;
        }
        used += n;
        end = i + c.len_utf8();
    }
    format!("{}{ELLIPSIS}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_length_matches_serde_json() {
        let samples = [
            "plain",
            "quo\"te",
            "back\\slash",
            "new\nline\ttab",
            "\u{1}\u{1f}ctl",
            "ünï😀",
        ];
        for s in samples {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(escaped_text_len(s), json.len() - 2, "{s:?}");
        }
    }

    #[test]
    fn clips_to_the_escaped_budget() {
        assert_eq!(clip("short", 10), "short");
        let cases = [
            "a".repeat(100),
            "\"".repeat(100),
            "\u{1}".repeat(100),
            "😀".repeat(100),
        ];
        for text in &cases {
            for budget in [0, 1, 3, 7, 10, 50, 99] {
                let cut = clip(text, budget);
                let json = serde_json::to_string(&cut).unwrap();
                assert!(
                    json.len() - 2 <= budget.max(ELLIPSIS.len()),
                    "{text:?} at {budget}: {cut:?}"
                );
                assert!(cut.ends_with(ELLIPSIS));
                assert!(text.starts_with(cut.trim_end_matches(ELLIPSIS)));
            }
        }
    }
}
