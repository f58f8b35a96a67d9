//! Splitting one logical instruction line into its pieces, the way BuildKit's
//! `parser/split_command.go` and `parser/line_parsers.go` do: the instruction name, the
//! `--flag` words, and the arguments as whitespace-separated words, quote-aware words
//! (ENV/LABEL/ARG), one raw string, or a JSON string array.
//!
//! Every piece keeps its byte offset in the logical line so errors can point at a column.

use serde::Serialize;

/// One unexpanded word and where it starts in its logical line (byte offset). Serialises as
/// its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub offset: usize,
}

impl Serialize for Word {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl Word {
    pub(crate) fn new(text: impl Into<String>, offset: usize) -> Self {
        Self {
            text: text.into(),
            offset,
        }
    }
}

/// The whitespace Go's `unicode.IsSpace` accepts (BuildKit trims with it).
pub(crate) fn is_go_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{A0}'
    ) || (c > '\u{FF}' && c.is_whitespace())
}

/// `[\t\v\f\r ]` — BuildKit's `reWhitespace`, used to split whitespace-delimited arguments.
fn is_split_space(c: char) -> bool {
    matches!(c, '\t' | '\u{0B}' | '\u{0C}' | '\r' | ' ')
}

/// Trims Go whitespace at both ends, returning the trimmed slice and how many bytes were cut
/// from the start.
pub(crate) fn trim_go_space(s: &str) -> (&str, usize) {
    let start = s.trim_start_matches(is_go_space);
    let cut = s.len() - start.len();
    (start.trim_end_matches(is_go_space), cut)
}

/// `splitCommand`: the instruction name and the rest of the line.
pub(crate) fn split_command(line: &str) -> (Word, Word) {
    let (trimmed, cut) = trim_go_space(line);
    match trimmed.find(is_split_space) {
        Some(end) => {
            let rest = &trimmed[end..];
            let rest_trimmed = rest.trim_start_matches(is_split_space);
            let rest_offset = cut + end + (rest.len() - rest_trimmed.len());
            (
                Word::new(&trimmed[..end], cut),
                Word::new(rest_trimmed, rest_offset),
            )
        }
        None => (Word::new(trimmed, cut), Word::new("", cut + trimmed.len())),
    }
}

/// `extractBuilderFlags`: the leading `--flag[=value]` words (quotes removed, `\` escapes
/// processed) and the remaining arguments, trimmed.
///
/// BuildKit walks bytes and so mangles non-ASCII flag values; we walk characters.
pub(crate) fn extract_flags(rest: &Word) -> (Vec<Word>, Word) {
    let line = rest.text.as_str();
    let mut flags = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        // Skip spaces looking for the next word.
        while let Some(&(_, c)) = chars.peek() {
            if is_go_space(c) {
                chars.next();
            } else {
                break;
            }
        }
        let Some(&(start, _)) = chars.peek() else {
            return (flags, Word::new("", rest.offset + line.len()));
        };
        if !line[start..].starts_with("--") {
            return (flags, args_from(rest, start));
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut end = line.len();
        while let Some((pos, c)) = chars.next() {
            match quote {
                None if is_go_space(c) => {
                    end = pos;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    } else {
                        quote = None;
                    }
                }
                _ => word.push(c),
            }
        }
        if word == "--" {
            // A bare `--` ends the flags; what follows is the arguments.
            return (flags, args_from(rest, end));
        }
        flags.push(Word::new(word, rest.offset + start));
        if end == line.len() {
            return (flags, Word::new("", rest.offset + line.len()));
        }
    }
}

fn args_from(rest: &Word, start: usize) -> Word {
    let (trimmed, cut) = trim_go_space(&rest.text[start..]);
    Word::new(trimmed, rest.offset + start + cut)
}

/// `parseStringsWhitespaceDelimited`.
pub(crate) fn split_whitespace(args: &Word) -> Vec<Word> {
    let mut out = Vec::new();
    let text = args.text.as_str();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match (is_split_space(c), start) {
            (true, Some(s)) => {
                out.push(Word::new(&text[s..i], args.offset + s));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Word::new(&text[s..], args.offset + s));
    }
    out
}

/// Outcome of trying the JSON exec form.
pub(crate) enum Json {
    /// Not a JSON array at all: use the shell / whitespace form.
    Text,
    /// A JSON array of strings.
    Array(Vec<String>),
    /// A JSON array with a non-string element: an error in Docker.
    NotStrings,
}

/// `parseJSON`: a JSON array of strings, or why not.
pub(crate) fn parse_json(args: &str) -> Json {
    let trimmed = args.trim_start_matches(is_go_space);
    if !trimmed.starts_with('[') {
        return Json::Text;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(trimmed) {
        Err(_) => Json::Text,
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NotStrings,
                }
            }
            Json::Array(out)
        }
    }
}

/// `parseWords`: quote-aware words for ENV, LABEL and ARG. Quotes and escapes stay in the word;
/// expansion removes them later.
pub(crate) fn parse_words(args: &Word, escape: char) -> Vec<Word> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let text = args.text.as_str();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut current = String::new();
    let mut start = 0;
    let mut blank_ok = false;
    let mut chars = text.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        if phase == Phase::Spaces {
            if is_go_space(c) {
                continue;
            }
            phase = Phase::Word;
            start = pos;
        }
        let at_end =
            |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| chars.peek().is_none();
        match phase {
            Phase::Word => {
                if is_go_space(c) {
                    phase = Phase::Spaces;
                    if blank_ok || !current.is_empty() {
                        words.push(Word::new(std::mem::take(&mut current), args.offset + start));
                    }
                    blank_ok = false;
                    continue;
                }
                if c == '\'' || c == '"' {
                    phase = Phase::Quote(c);
                    blank_ok = true;
                }
                if c == escape {
                    if at_end(&mut chars) {
                        continue;
                    }
                    current.push(c);
                    let (_, next) = chars.next().unwrap_or((pos, c));
                    current.push(next);
                    continue;
                }
                current.push(c);
            }
            Phase::Quote(q) => {
                if c == q {
                    phase = Phase::Word;
                }
                if c == escape && q != '\'' {
                    if at_end(&mut chars) {
                        phase = Phase::Word;
                        continue;
                    }
                    current.push(c);
                    let (_, next) = chars.next().unwrap_or((pos, c));
                    current.push(next);
                    continue;
                }
                current.push(c);
            }
            Phase::Spaces => {}
        }
    }
    if phase != Phase::Spaces && (blank_ok || !current.is_empty()) {
        words.push(Word::new(current, args.offset + start));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn split_command_keeps_offsets() {
        let (cmd, rest) = split_command("  RUN \t echo hi ");
        assert_eq!((cmd.text.as_str(), cmd.offset), ("RUN", 2));
        assert_eq!((rest.text.as_str(), rest.offset), ("echo hi", 8));
    }

    #[test]
    fn flags_are_unquoted_and_stop_at_first_argument() {
        let rest = Word::new(r#"--from="build er" --link src dst"#, 5);
        let (flags, args) = extract_flags(&rest);
        assert_eq!(texts(&flags), ["--from=build er", "--link"]);
        assert_eq!(flags[1].offset, 5 + 18);
        assert_eq!((args.text.as_str(), args.offset), ("src dst", 5 + 25));
    }

    #[test]
    fn double_dash_ends_flags() {
        let (flags, args) = extract_flags(&Word::new("--network=none -- --not-a-flag", 0));
        assert_eq!(texts(&flags), ["--network=none"]);
        assert_eq!(args.text, "--not-a-flag");
    }

    #[test]
    fn parse_words_keeps_quotes_and_escapes() {
        let words = parse_words(&Word::new(r#"a="b c" d=e\ f g='h\'"#, 0), '\\');
        assert_eq!(texts(&words), [r#"a="b c""#, r"d=e\ f", r"g='h\'"]);
    }

    #[test]
    fn json_forms() {
        assert!(matches!(parse_json(r#" ["a", "b"] "#), Json::Array(v) if v == ["a", "b"]));
        assert!(matches!(parse_json(r#"["a", 1]"#), Json::NotStrings));
        assert!(matches!(parse_json(r#"["a", "b"] c"#), Json::Text));
        assert!(matches!(parse_json("echo [a]"), Json::Text));
    }

    #[test]
    fn whitespace_split_uses_only_ascii_separators() {
        let words = split_whitespace(&Word::new("a \t b\u{a0}c", 3));
        assert_eq!(texts(&words), ["a", "b\u{a0}c"]);
        assert_eq!(words[1].offset, 3 + 4);
    }
}
