//! Go's `path/filepath` semantics on raw bytes: `Clean` and `Match`.
//!
//! Docker decides what a `.dockerignore` line and a `COPY` wildcard mean with these two Go
//! functions, so Stratum reproduces them exactly rather than approximating them with a glob crate:
//! `globset` treats `[!a]` as negation, lets `*` match `/` unless told otherwise, accepts `[]a]`
//! and has no notion of Go's "the whole pattern must be well-formed even when the match already
//! failed" rule. Linux file names are bytes, not UTF-8, so everything here works on `&[u8]`;
//! where Go decodes a rune (`?`, `[…]`), an invalid byte is one rune U+FFFD, as in Go.

/// Go's `filepath.Clean` for `/`-separated paths: the shortest equivalent path by purely lexical
/// processing (collapse `//`, drop `.`, resolve `x/..`, `/..` at the root is `/`, empty is `.`).
pub fn clean(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return b".".to_vec();
    }
    let rooted = path[0] == b'/';
    let n = path.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let mut r = 0;
    let mut dotdot = 0;
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        let is_sep_or_end = |i: usize| i == n || path[i] == b'/';
        if path[r] == b'/' || (path[r] == b'.' && is_sep_or_end(r + 1)) {
            // An empty or `.` element.
            r += 1;
        } else if path[r] == b'.' && r + 1 < n && path[r + 1] == b'.' && is_sep_or_end(r + 2) {
            r += 2;
            if out.len() > dotdot {
                // Backtrack to the previous separator (never past `dotdot`).
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && path[r] != b'/' {
                out.push(path[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// `filepath.ErrBadPattern`: the pattern is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Go's `filepath.Match(pattern, name)` on Unix: `*` is any run of non-`/` bytes, `?` one
/// non-`/` rune, `[…]`/`[^…]` a rune class with ranges, `\` escapes the next byte. The whole
/// pattern is checked for syntax even after the match has failed (Go ≥ 1.16), so
/// `match_pattern(p, ".")` is the validity test Docker runs on every `.dockerignore` line.
pub fn match_pattern(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, BadPattern> {
    'pattern: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it holds a `/`.
            return Ok(!name.contains(&b'/'));
        }
        let attempt = match_chunk(chunk, name);
        if let Ok(Some(t)) = attempt
            && (t.is_empty() || !pattern.is_empty())
        {
            name = t;
            continue;
        }
        attempt?;
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(t) = match_chunk(chunk, &name[i + 1..])? {
                    // The last chunk must consume the whole name.
                    if !pattern.is_empty() || t.is_empty() {
                        name = t;
                        continue 'pattern;
                    }
                }
                i += 1;
            }
        }
        // Failing without error: first check the rest of the pattern is well-formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// True when `name` holds a byte that makes it a `COPY` wildcard (`*`, `?`, `[`), skipping
/// backslash-escaped bytes (fsutil's `containsWildcards`).
pub fn contains_wildcards(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Splits off leading stars and the next chunk (up to the next unbracketed `*`).
fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while let [b'*', rest @ ..] = pattern {
        pattern = rest;
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches `chunk` (no unbracketed `*`) at the start of `s`; `Some(rest)` on success. After a
/// mismatch it keeps parsing the chunk so that syntax errors are always reported.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> Result<Option<&'a [u8]>, BadPattern> {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    let (c, n) = decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let (class, rest) = parse_class(chunk)?;
                chunk = rest;
                if class.matches(r) == class.negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_rune(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let literal = if c == b'\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        Some(&b) => b,
                        None => return Err(BadPattern),
                    }
                } else {
                    c
                };
                if !failed {
                    if literal != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// A parsed `[…]` class: the ranges between the brackets and whether it began with `^`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuneClass {
    pub negated: bool,
    pub ranges: Vec<(char, char)>,
}

impl RuneClass {
    /// Whether `r` falls in one of the ranges (negation is the caller's business, as in Go).
    pub fn matches(&self, r: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= r && r <= hi)
    }
}

/// Parses the class body after `[` up to and including its closing `]`, with Go's rules: at
/// least one range, `]` closes only after one, `-` and `]` cannot start a range, `\` escapes.
pub fn parse_class(mut chunk: &[u8]) -> Result<(RuneClass, &[u8]), BadPattern> {
    let mut negated = false;
    if let [b'^', rest @ ..] = chunk {
        negated = true;
        chunk = rest;
    }
    let mut ranges = Vec::new();
    loop {
        if let [b']', rest @ ..] = chunk
            && !ranges.is_empty()
        {
            chunk = rest;
            break;
        }
        let (lo, rest) = get_esc(chunk)?;
        chunk = rest;
        let mut hi = lo;
        if chunk[0] == b'-' {
            let (h, rest) = get_esc(&chunk[1..])?;
            hi = h;
            chunk = rest;
        }
        ranges.push((lo, hi));
    }
    Ok((RuneClass { negated, ranges }, chunk))
}

/// One possibly escaped rune of a class; the class must continue after it.
fn get_esc(mut chunk: &[u8]) -> Result<(char, &[u8]), BadPattern> {
    if chunk.is_empty() || chunk[0] == b'-' || chunk[0] == b']' {
        return Err(BadPattern);
    }
    if chunk[0] == b'\\' {
        chunk = &chunk[1..];
        if chunk.is_empty() {
            return Err(BadPattern);
        }
    }
    let (r, n) = decode_rune(chunk);
    if r == char::REPLACEMENT_CHARACTER && n == 1 {
        return Err(BadPattern);
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((r, rest))
}

/// Go's `utf8.DecodeRune`: the first rune of `s` and its width; an invalid or truncated sequence
/// is U+FFFD of width 1. `s` must not be empty.
pub fn decode_rune(s: &[u8]) -> (char, usize) {
    let width = match s[0] {
        0x00..=0x7f => return (char::from(s[0]), 1),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (char::REPLACEMENT_CHARACTER, 1),
    };
    match s.get(..width).map(std::str::from_utf8) {
        Some(Ok(text)) => (text.chars().next().unwrap_or('\u{fffd}'), width),
        _ => (char::REPLACEMENT_CHARACTER, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        // From Go's path/filepath cleantests.
        let table: &[(&str, &str)] = &[
            ("", "."),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("abc//", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("/../abc", "/abc"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
        ];
        for (input, want) in table {
            let got = clean(input.as_bytes());
            assert_eq!(String::from_utf8_lossy(&got), *want, "clean({input:?})");
        }
    }

    #[test]
    fn match_matches_go() {
        // Go's path/filepath matchTests; `None` is ErrBadPattern.
        let table: &[(&str, &str, Option<bool>)] = &[
            ("abc", "abc", Some(true)),
            ("*", "abc", Some(true)),
            ("*c", "abc", Some(true)),
            ("a*", "a", Some(true)),
            ("a*", "abc", Some(true)),
            ("a*", "ab/c", Some(false)),
            ("a*/b", "abc/b", Some(true)),
            ("a*/b", "a/c/b", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
            ("ab[c]", "abc", Some(true)),
            ("ab[b-d]", "abc", Some(true)),
            ("ab[e-g]", "abc", Some(false)),
            ("ab[^c]", "abc", Some(false)),
            ("ab[^b-d]", "abc", Some(false)),
            ("ab[^e-g]", "abc", Some(true)),
            ("a\\*b", "a*b", Some(true)),
            ("a\\*b", "ab", Some(false)),
            ("a?b", "a☺b", Some(true)),
            ("a[^a]b", "a☺b", Some(true)),
            ("a???b", "a☺b", Some(false)),
            ("a[^a][^a][^a]b", "a☺b", Some(false)),
            ("[a-ζ]*", "α", Some(true)),
            ("*[a-ζ]", "A", Some(false)),
            ("a?b", "a/b", Some(false)),
            ("a*b", "a/b", Some(false)),
            ("[\\]a]", "]", Some(true)),
            ("[\\-]", "-", Some(true)),
            ("[x\\-]", "x", Some(true)),
            ("[x\\-]", "-", Some(true)),
            ("[x\\-]", "z", Some(false)),
            ("[\\-x]", "x", Some(true)),
            ("[\\-x]", "-", Some(true)),
            ("[\\-x]", "a", Some(false)),
            ("[]a]", "]", None),
            ("[-]", "-", None),
            ("[x-]", "x", None),
            ("[x-]", "-", None),
            ("[x-]", "z", None),
            ("[-x]", "x", None),
            ("[-x]", "-", None),
            ("[-x]", "a", None),
            ("\\", "a", None),
            ("[a-b-c]", "a", None),
            ("[", "a", None),
            ("[^", "a", None),
            ("[^bc", "a", None),
            ("a[", "a", None),
            ("a[", "ab", None),
            ("a[", "x", None),
            ("a/b[", "x", None),
            ("*x", "xxx", Some(true)),
        ];
        for (pattern, name, want) in table {
            let got = match_pattern(pattern.as_bytes(), name.as_bytes()).ok();
            assert_eq!(got, *want, "Match({pattern:?}, {name:?})");
        }
    }

    #[test]
    fn invalid_utf8_is_one_replacement_rune() {
        assert_eq!(decode_rune(b"\xff\x41"), (char::REPLACEMENT_CHARACTER, 1));
        assert_eq!(decode_rune("é".as_bytes()), ('é', 2));
        assert_eq!(match_pattern(b"a?b", b"a\xffb"), Ok(true));
        assert_eq!(match_pattern(b"[\xff]", b"x"), Err(BadPattern));
    }

    #[test]
    fn wildcard_detection_skips_escapes() {
        assert!(contains_wildcards(b"*.go"));
        assert!(contains_wildcards(b"a[bc]"));
        assert!(contains_wildcards(b"a?"));
        assert!(!contains_wildcards(b"a\\*b"));
        assert!(!contains_wildcards(b"plain.txt"));
    }
}
