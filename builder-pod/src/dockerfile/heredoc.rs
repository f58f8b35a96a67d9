//! Heredoc markers (`<<EOF`, `<<-EOF`, `<<'EOF'`, `3<<"EOF"`) in RUN, COPY and ADD lines, as
//! BuildKit's `heredocsFromLine` / `ParseHeredoc` find them:
//!
//! - the line is split into shell words with quotes, escapes and variables kept raw;
//! - a word is a heredoc marker when it matches `^(\d*)<<(-?)([^<]*)$` with a non-empty rest
//!   that is a single shell word once unquoted;
//! - any quoting in the delimiter (`'EOF'`, `"EOF"`, `E"O"F`) turns expansion of the body off;
//! - `<<-` strips leading tabs from the body lines and from the terminator line.

use serde::Serialize;

/// A heredoc marker found in an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub file_descriptor: u32,
    pub chomp: bool,
    pub expand: bool,
}

/// A heredoc with its body, as attached to RUN, COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word, unquoted (`EOF`).
    pub name: String,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when absent.
    pub file_descriptor: u32,
    /// `<<-`: leading tabs are stripped from every body line.
    pub chomp: bool,
    /// Whether the builder expands variables in the body (COPY/ADD; an unquoted delimiter).
    pub expand: bool,
    /// The body exactly as written, up to (not including) the terminator line, line endings kept.
    pub body: String,
}

impl Heredoc {
    /// The body as the instruction uses it: with leading tabs removed from each line for `<<-`.
    pub fn content(&self) -> String {
        if !self.chomp {
            return self.body.clone();
        }
        let mut out = String::with_capacity(self.body.len());
        for line in self.body.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        out
    }
}

/// Splits `line` into shell words the way BuildKit's lexer does with `RawQuotes`, `RawEscapes`
/// and `SkipUnsetEnv` set: nothing is removed, whitespace outside quotes separates words.
fn raw_words(line: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                words.push(&line[s..i]);
            }
            continue;
        }
        start.get_or_insert(i);
        match c {
            '\\' => {
                chars.next();
            }
            '\'' => {
                for (_, d) in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
            }
            '"' => {
                while let Some((_, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == '"' {
                        break;
                    }
                }
            }
            '$' if chars.peek().map(|&(_, d)| d) == Some('{') => {
                for (_, d) in chars.by_ref() {
                    if d == '}' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push(&line[s..]);
    }
    words
}

/// Removes quotes and backslash escapes from a delimiter word; `None` when it is not exactly
/// one word (unquoted whitespace) or a quote is left open.
fn unquote(word: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = word.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None | Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            (None, _) if c.is_whitespace() => return None,
            _ => out.push(c),
        }
    }
    quote.is_none().then_some(out)
}

/// `ParseHeredoc`: the marker in one word, if it is one.
pub(crate) fn parse_marker(word: &str) -> Option<Marker> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let name = unquote(rest)?;
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    Some(Marker {
        expand: quotes(&name) == quotes(rest),
        name,
        file_descriptor: word[..digits].parse().unwrap_or(0),
        chomp,
    })
}

/// `heredocsFromLine`: every heredoc marker in the line, in order.
pub(crate) fn markers_in_line(line: &str) -> Vec<Marker> {
    if !line.contains("<<") {
        return Vec::new();
    }
    raw_words(line)
        .into_iter()
        .filter_map(parse_marker)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(name: &str, chomp: bool, expand: bool) -> Marker {
        Marker {
            name: name.to_owned(),
            file_descriptor: 0,
            chomp,
            expand,
        }
    }

    #[test]
    fn markers() {
        let cases: &[(&str, Option<Marker>)] = &[
            ("<<EOF", Some(marker("EOF", false, true))),
            ("<<-EOF", Some(marker("EOF", true, true))),
            ("<<'EOF'", Some(marker("EOF", false, false))),
            ("<<\"EOF\"", Some(marker("EOF", false, false))),
            ("<<E\"O\"F", Some(marker("EOF", false, false))),
            ("<<file.txt", Some(marker("file.txt", false, true))),
            ("<<", None),
            ("<<<EOF", None),
            ("a<<EOF", None),
            ("\"<<EOF\"", None),
        ];
        for (word, want) in cases {
            assert_eq!(parse_marker(word), *want, "word {word:?}");
        }
        let fd = parse_marker("3<<EOF").unwrap();
        assert_eq!(fd.file_descriptor, 3);
    }

    #[test]
    fn markers_in_a_line_respect_quotes() {
        let names: Vec<_> = markers_in_line(r#"RUN cat <<A "<<B" '<<C' <<-"D" > x"#)
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["A", "D"]);
    }

    #[test]
    fn chomp_strips_leading_tabs_per_line() {
        let doc = Heredoc {
            name: "EOF".into(),
            file_descriptor: 0,
            chomp: true,
            expand: true,
            body: "\t\ta\n\tb\r\n  c\n".into(),
        };
        assert_eq!(doc.content(), "a\nb\r\n  c\n");
    }
}
