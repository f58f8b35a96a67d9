//! The pattern forms `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`, `${V//p/r}`.
//!
//! BuildKit turns the shell pattern into a Go regular expression (`convertShellPatternToRegex`:
//! `*` → `.*` or `.*?`, `?` → `.`, everything else literal, no bracket expressions) and lets RE2
//! find the leftmost-first match. The `regex` crate has the same leftmost-first semantics, the
//! same `.` (any character but `\n`) and the same linear-time guarantee, so the translation
//! carries over; suffix removal reverses both pattern and value exactly as Go does, and `//`
//! reproduces Go's `ReplaceAllString`, including its `$0`/`$$` template expansion.

use std::cell::RefCell;
use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};

/// Upper bound on (pattern bytes + 1) × (value bytes + 1) for one match: the worst case of a
/// linear-time matcher is proportional to that product. Realistic patterns are a few dozen
/// bytes, so this only stops crafted inputs (a 100 kB pattern against a megabyte value).
const MAX_MATCH_WORK: usize = 1 << 27;

/// Compiled-program cap handed to the regex crate (its default is 10 MiB).
const REGEX_SIZE_LIMIT: usize = 8 << 20;

#[derive(Debug)]
pub(super) enum ReplaceError {
    /// The pattern is invalid; the text is the reason as BuildKit words it.
    Pattern(String),
    /// The replacement would exceed the output cap.
    TooLong,
}

/// `${V#pat}` (`greedy`: `##`): drop the shortest (longest) prefix matching `pat`.
pub(super) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    check_work(pattern, value)?;
    let matcher = to_regex(pattern, greedy, true)?;
    Ok(match matcher.find_at(value, 0) {
        Some((_, end)) => value[end..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${V%pat}` (`greedy`: `%%`): drop the shortest (longest) suffix matching `pat`. A regex
/// cannot ask for the shortest *rightmost* match, so, like BuildKit, search the reversed value
/// with the reversed pattern.
pub(super) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// `${V/pat/repl}` (first match, `repl` literal) and `${V//pat/repl}` (every match, `repl`
/// expanded like Go's `Regexp.ReplaceAllString`). The result may not exceed `limit` bytes.
pub(super) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
    limit: usize,
) -> Result<String, ReplaceError> {
    check_work(pattern, value).map_err(ReplaceError::Pattern)?;
    let matcher = to_regex(pattern, true, false).map_err(ReplaceError::Pattern)?;
    let mut out = String::new();
    if !all {
        match matcher.find_at(value, 0) {
            Some((start, end)) => {
                let len = value.len() - (end - start) + replacement.len();
                if len > limit {
                    return Err(ReplaceError::TooLong);
                }
                out.push_str(&value[..start]);
                out.push_str(replacement);
                out.push_str(&value[end..]);
            }
            None => out.push_str(value),
        }
        return if out.len() > limit {
            Err(ReplaceError::TooLong)
        } else {
            Ok(out)
        };
    }
    // Go's regexp.replaceAll, step for step: an empty match right after a match is not
    // replaced, and the search always advances by at least one character.
    let mut last_end = 0;
    let mut search = 0;
    while search <= value.len() {
        let Some((start, end)) = matcher.find_at(value, search) else {
            break;
        };
        out.push_str(&value[last_end..start]);
        if end > last_end || start == 0 {
            expand_template(&mut out, replacement, &value[start..end]);
        }
        if out.len() > limit {
            return Err(ReplaceError::TooLong);
        }
        last_end = end;
        let width = value[search..].chars().next().map_or(0, char::len_utf8);
        if search + width > end {
            search += width;
        } else if search + 1 > end {
            search += 1;
        } else {
            search = end;
        }
    }
    out.push_str(&value[last_end..]);
    if out.len() > limit {
        return Err(ReplaceError::TooLong);
    }
    Ok(out)
}

fn check_work(pattern: &str, value: &str) -> Result<(), String> {
    let work = (pattern.len() + 1).saturating_mul(value.len() + 1);
    if work > MAX_MATCH_WORK {
        return Err(format!(
            "a {}-byte pattern against a {}-byte value exceeds the matching work limit",
            pattern.len(),
            value.len()
        ));
    }
    Ok(())
}

/// A compiled shell pattern. Patterns without `*` or `?` (`${V#v}`, `${V/arm64/aarch64}`) are
/// plain substring searches; compiling a regex for them costs more than the rest of planning.
enum Matcher {
    Literal { text: String, anchored: bool },
    Regex(Regex),
}

impl Matcher {
    /// The leftmost-first match starting at or after byte `start` (an anchored matcher only
    /// matches at 0, like `^` with Go's and the regex crate's `find_at`).
    fn find_at(&self, haystack: &str, start: usize) -> Option<(usize, usize)> {
        match self {
            Matcher::Literal {
                text,
                anchored: true,
            } => (start == 0 && haystack.starts_with(text.as_str())).then_some((0, text.len())),
            Matcher::Literal {
                text,
                anchored: false,
            } => haystack[start..]
                .find(text.as_str())
                .map(|at| (start + at, start + at + text.len())),
            Matcher::Regex(re) => re.find_at(haystack, start).map(|m| (m.start(), m.end())),
        }
    }
}

/// convertShellPatternToRegex. The escape inside a pattern is always `\`, whatever the
/// Dockerfile's escape directive says, and only `\*`, `\?`, `\\` are valid; `\}` and `\/`
/// lose their backslash (they were only escaped to get past the `${...}` parser).
fn to_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Matcher, String> {
    match translate(pattern, greedy, anchored)? {
        (_, Some(text)) => Ok(Matcher::Literal { text, anchored }),
        (src, None) => cached_regex(&src).map(Matcher::Regex),
    }
}

/// The regex source for `pattern`, and the literal text when it has no wildcard.
fn translate(
    pattern: &str,
    greedy: bool,
    anchored: bool,
) -> Result<(String, Option<String>), String> {
    let mut src = String::with_capacity(pattern.len() + 8);
    let mut literal = String::with_capacity(pattern.len());
    let mut wildcards = false;
    if anchored {
        src.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    // Go's text/scanner skips a byte-order mark at the start of its input.
    let mut chars = pattern
        .strip_prefix('\u{feff}')
        .unwrap_or(pattern)
        .chars()
        .peekable();
    while let Some(tok) = chars.next() {
        match tok {
            '*' => {
                wildcards = true;
                src.push_str(star);
            }
            '?' => {
                wildcards = true;
                src.push('.');
            }
            '\\' => {
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(escaped @ ('*' | '?' | '\\')) => {
                        src.push('\\');
                        src.push(escaped);
                        literal.push(escaped);
                    }
                    other => {
                        return Err(format!(
                            "invalid escape '\\{}'",
                            other.unwrap_or('\u{fffd}')
                        ));
                    }
                }
            }
            other => {
                push_literal(&mut src, other);
                literal.push(other);
            }
        }
    }
    Ok((src, (!wildcards).then_some(literal)))
}

/// Compiled regexes of recent short patterns, per thread: a Dockerfile with many stages
/// repeats the same `${URL##*/}` in each of them.
fn cached_regex(src: &str) -> Result<Regex, String> {
    const ENTRIES: usize = 32;
    const MAX_CACHED_SOURCE: usize = 256;
    thread_local! {
        static CACHE: RefCell<Vec<(String, Regex)>> = const { RefCell::new(Vec::new()) };
    }
    if let Some(hit) = CACHE.with_borrow(|cache| {
        cache
            .iter()
            .find(|(cached, _)| cached == src)
            .map(|(_, re)| re.clone())
    }) {
        return Ok(hit);
    }
    let re = RegexBuilder::new(src)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|err| match err {
            regex::Error::CompiledTooBig(_) => {
                format!("the pattern is too large ({} bytes)", src.len())
            }
            other => other.to_string(),
        })?;
    if src.len() <= MAX_CACHED_SOURCE {
        CACHE.with_borrow_mut(|cache| {
            if cache.len() == ENTRIES {
                cache.remove(0);
            }
            cache.push((src.to_owned(), re.clone()));
        });
    }
    Ok(re)
}

fn push_literal(src: &mut String, literal: char) {
    let mut buf = [0u8; 4];
    src.push_str(&regex::escape(literal.encode_utf8(&mut buf)));
}

/// reversePattern: reverse the characters but keep each `\x` escape pair in order
/// (`a\*c` → `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = chars.clone();
    let Some(last) = chars.len().checked_sub(1) else {
        return String::new();
    };
    let mut i = 0;
    while i <= last {
        let at = last - i;
        if chars[i] == '\\' && i != last {
            // i < last, so at >= 1.
            out[at - 1] = '\\';
            out[at] = chars[i + 1];
            i += 2;
        } else {
            out[at] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Go's `Regexp.Expand` for a pattern without capture groups: `$$` is `$`, `$0`/`${0}` the
/// whole match, any other well-formed `$name`/`${name}` nothing, a malformed `$` itself.
fn expand_template(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_name(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// Go's `extract`: the name after `$` (letters, digits, `_`; optionally in braces) and the rest.
fn template_name(text: &str) -> Option<(&str, &str)> {
    let (body, braced) = match text.strip_prefix('{') {
        Some(body) => (body, true),
        None => (text, false),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(is_letter(c) || is_decimal_digit(c) || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    if braced {
        let after = body[end..].strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, &body[end..]))
}

fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphabetic()
    } else {
        is_unicode_letter(c)
    }
}

fn is_decimal_digit(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_digit()
    } else {
        is_unicode_decimal_digit(c)
    }
}

/// Go's `unicode.IsLetter` (general category L) for non-ASCII characters.
pub(super) fn is_unicode_letter(c: char) -> bool {
    static LETTER: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\A\p{L}\z").ok());
    matches_one(&LETTER, c)
}

/// Go's `unicode.IsDigit` (general category Nd) for non-ASCII characters.
pub(super) fn is_unicode_decimal_digit(c: char) -> bool {
    static DIGIT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\A\p{Nd}\z").ok());
    matches_one(&DIGIT, c)
}

fn matches_one(class: &LazyLock<Option<Regex>>, c: char) -> bool {
    let mut buf = [0u8; 4];
    class
        .as_ref()
        .is_some_and(|re| re.is_match(c.encode_utf8(&mut buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_patterns_translate_like_buildkit() {
        // TestConvertShellPatternToRegex: these are matched literally, with and without a
        // trailing wildcard (the literal fast path and the regex).
        let literal = to_regex(r"(()[]{\}^$.\*\?|\\", true, true).expect("valid pattern");
        assert!(matches!(literal, Matcher::Literal { .. }));
        let wild = to_regex(r"(()[]{\}^$.\*\?|\\*", true, true).expect("valid pattern");
        assert!(matches!(wild, Matcher::Regex(_)));
        for matcher in [literal, wild] {
            assert_eq!(matcher.find_at(r"(()[]{}^$.*?|\", 0).map(|m| m.0), Some(0));
            assert_eq!(matcher.find_at(r"x(()[]{}^$.*?|\", 0), None);
        }
        for invalid in [r"\", r"\x", r"\\\"] {
            assert!(
                to_regex(invalid, true, true).is_err(),
                "{invalid:?} must be rejected"
            );
        }
    }

    /// The literal fast path finds exactly what the regex BuildKit would compile finds.
    #[test]
    fn literal_fast_path_matches_the_regex() {
        let patterns = ["", "a", "ab", "b", r"\*", "é", "a.b", "$", "\n", "aa"];
        let haystacks = [
            "", "a", "aab", "ba", "*a*", "éaé", "a.b axb", "$$", "x\ny", "aaaa",
        ];
        for pattern in patterns {
            for anchored in [true, false] {
                let (src, literal) = translate(pattern, true, anchored).expect("valid");
                let literal = Matcher::Literal {
                    text: literal.expect("no wildcard"),
                    anchored,
                };
                let regex = Matcher::Regex(Regex::new(&src).expect("compiles"));
                for haystack in haystacks {
                    for start in (0..=haystack.len()).filter(|&i| haystack.is_char_boundary(i)) {
                        assert_eq!(
                            literal.find_at(haystack, start),
                            regex.find_at(haystack, start),
                            "{pattern:?} in {haystack:?} from {start}, anchored {anchored}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn reverse_pattern_keeps_escape_pairs() {
        // TestReversePattern.
        for (pattern, reversed) in [
            (r"a\*c", r"c\*a"),
            (r"\\\ab", r"b\a\\"),
            (r"ab\", r"\ba"),
            ("👽\\🚀🖖", "🖖\\🚀👽"),
            (r"\\b", r"b\\"),
            ("", ""),
        ] {
            assert_eq!(reverse_pattern(pattern), reversed, "{pattern:?}");
        }
    }

    #[test]
    fn replace_all_follows_go_empty_match_rules() {
        assert_eq!(replace("", "ab", "x", true, 100).unwrap(), "xaxbx");
        assert_eq!(replace("*", "ab", "x", true, 100).unwrap(), "x");
        assert_eq!(replace("b*", "abab", "[$0]", true, 100).unwrap(), "a[bab]");
        assert_eq!(
            replace("a", "aa", "$$-${0}-$1-$", true, 100).unwrap(),
            "$-a--$$-a--$"
        );
    }

    #[test]
    fn replace_respects_the_output_limit() {
        assert!(matches!(
            replace("?", "aaaa", "xxxx", true, 10),
            Err(ReplaceError::TooLong)
        ));
        assert!(matches!(
            replace("a", "aaaa", "xxxxxxxxxx", false, 10),
            Err(ReplaceError::TooLong)
        ));
    }

    #[test]
    fn go_letter_and_digit_classes() {
        assert!(is_unicode_letter('한'));
        assert!(is_unicode_letter('é'));
        assert!(!is_unicode_letter('Ⅳ')); // Nl, alphabetic in Rust but not a Go letter
        assert!(is_unicode_decimal_digit('٣'));
        assert!(!is_unicode_decimal_digit('½'));
    }
}
