//! Physical lines → logical instruction lines, following BuildKit's `parser.Parse`:
//!
//! - a UTF-8 BOM on the first line is dropped; `\r\n` and `\n` both end a line;
//! - parser directives (`# syntax=`, `# escape=`, `# check=`) are only recognised in the
//!   leading run of `#` lines; the first line that is not a directive (even a blank one or an
//!   unknown `# foo=bar`) ends the run;
//! - a line ending in the escape character (optionally followed by spaces/tabs) continues on the
//!   next line, unless the escape character is itself escaped; comment lines inside a
//!   continuation are skipped, and so are whitespace-only lines (with a warning, as BuildKit);
//! - leading whitespace is stripped from the first line of an instruction but kept on
//!   continuation lines.
//!
//! Heredoc bodies are read on request by [`Lexer::read_heredoc`], because only the instruction
//! parser knows whether a line may carry heredocs.

use super::error::{DockerfileError, ErrorKind};
use super::words::is_go_space;
use super::{Limits, Located};

/// Maps byte offsets in a logical line back to physical lines and columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locator {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// Byte offset in the logical line where this physical line's text starts.
    logical: usize,
    /// 1-based physical line number.
    line: usize,
    /// 1-based character column of that first byte in the physical line.
    column: usize,
}

impl Locator {
    /// The physical line and 1-based character column of byte `offset` of `text`.
    pub(crate) fn locate(&self, text: &str, offset: usize) -> (usize, usize) {
        let idx = self
            .segments
            .partition_point(|s| s.logical <= offset)
            .saturating_sub(1);
        match self.segments.get(idx) {
            Some(seg) => {
                let from = seg.logical.min(text.len());
                let to = offset.clamp(from, text.len());
                let chars = text.get(from..to).map_or(0, |s| s.chars().count());
                (seg.line, seg.column + chars)
            }
            None => (1, 1),
        }
    }
}

/// One instruction's text with continuations folded, before heredoc bodies.
#[derive(Debug, Clone)]
pub(crate) struct LogicalLine {
    pub text: String,
    pub start_line: usize,
    pub end_line: usize,
    pub locator: Locator,
    pub empty_continuation: bool,
}

/// A parser directive found at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Directive {
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Directives {
    pub syntax: Option<Directive>,
    pub check: Option<Directive>,
    pub escape: Option<Directive>,
    done: bool,
}

impl Directives {
    /// BuildKit's `DirectiveParser.ParseLine`: `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
    fn parse_line(&mut self, line: &str, line_no: usize) -> Result<(), ErrorKind> {
        if self.done {
            return Ok(());
        }
        let Some(body) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(());
        };
        let Some((name, value)) = match_directive(body.trim_start_matches(is_go_space)) else {
            self.done = true;
            return Ok(());
        };
        let key = name.to_ascii_lowercase();
        let slot = match key.as_str() {
            "syntax" => &mut self.syntax,
            "escape" => &mut self.escape,
            "check" => &mut self.check,
            _ => {
                self.done = true;
                return Ok(());
            }
        };
        if slot.is_some() {
            return Err(ErrorKind::DuplicateDirective(key));
        }
        *slot = Some(Directive {
            value: value.to_owned(),
            line: line_no,
        });
        Ok(())
    }
}

/// Go RE2's `\s`: `[\t\n\f\r ]`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0C}' | '\r' | ' ')
}

/// The name and value of `name = value`, with the regex's backtracking quirk: a value made only
/// of whitespace matches as its last whitespace character (`#check= ` has the value `" "`).
fn match_directive(s: &str) -> Option<(&str, &str)> {
    let first = s.chars().next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let name_len = s
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    let (name, rest) = s.split_at(name_len);
    let after_eq = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = after_eq.trim_start_matches(is_re_space);
    if !value.is_empty() {
        return Some((name, value.trim_end_matches(is_re_space)));
    }
    let last = after_eq.chars().next_back()?;
    Some((name, &after_eq[after_eq.len() - last.len_utf8()..]))
}

/// Splits the source into physical lines, each with its line ending.
struct PhysicalLines<'a> {
    rest: &'a str,
    line_no: usize,
}

impl<'a> Iterator for PhysicalLines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self.rest.find('\n').map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        self.line_no += 1;
        Some((self.line_no, line))
    }
}

/// `trimNewline`: drops every trailing `\r` and `\n`.
fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

pub(crate) struct Lexer<'a> {
    file: &'a str,
    lines: PhysicalLines<'a>,
    limits: &'a Limits,
    pub escape: char,
    pub directives: Directives,
}

impl<'a> Lexer<'a> {
    pub fn new(file: &'a str, source: &'a str, limits: &'a Limits) -> Self {
        let source = source.strip_prefix('\u{FEFF}').unwrap_or(source);
        Self {
            file,
            lines: PhysicalLines {
                rest: source,
                line_no: 0,
            },
            limits,
            escape: '\\',
            directives: Directives::default(),
        }
    }

    fn error(&self, kind: ErrorKind, line: usize) -> DockerfileError {
        DockerfileError::new(self.file, kind).at(line, None)
    }

    fn next_physical(&mut self) -> Result<Option<(usize, &'a str)>, DockerfileError> {
        let Some((no, line)) = self.lines.next() else {
            return Ok(None);
        };
        if line.len() > self.limits.max_line_bytes {
            let kind = ErrorKind::LineTooLong {
                size: line.len(),
                limit: self.limits.max_line_bytes,
            };
            return Err(self.error(kind, no));
        }
        Ok(Some((no, line)))
    }

    /// `processLine` for the directive side effect; returns the line without its newline.
    fn directive_pass(&mut self, token: &str, no: usize) -> Result<(), DockerfileError> {
        self.directives
            .parse_line(token, no)
            .map_err(|kind| self.error(kind, no))?;
        if let Some(d) = &self.directives.escape {
            let escape = match d.value.as_str() {
                "`" => '`',
                "\\" => '\\',
                other => {
                    let kind = ErrorKind::InvalidEscapeToken(other.to_owned());
                    return Err(self.error(kind, d.line));
                }
            };
            self.escape = escape;
        }
        Ok(())
    }

    /// The next logical line, or `None` at the end of the file.
    pub fn next_logical(&mut self) -> Result<Option<LogicalLine>, DockerfileError> {
        loop {
            let Some((no, raw)) = self.next_physical()? else {
                return Ok(None);
            };
            let without_newline = trim_newline(raw);
            let token = without_newline.trim_start_matches(is_go_space);
            self.directive_pass(token, no)?;
            let token = if token.starts_with('#') { "" } else { token };
            let (first, mut end_of_line) = trim_continuation(token, self.escape);
            if end_of_line && first.is_empty() {
                continue;
            }
            let column = without_newline[..without_newline.len() - token.len()]
                .chars()
                .count()
                + 1;
            let mut line = LogicalLine {
                text: first.to_owned(),
                start_line: no,
                end_line: no,
                locator: Locator {
                    segments: vec![Segment {
                        logical: 0,
                        line: no,
                        column,
                    }],
                },
                empty_continuation: false,
            };
            while !end_of_line {
                let Some((no, raw)) = self.next_physical()? else {
                    break;
                };
                let token = trim_newline(raw);
                self.directive_pass(token, no)?;
                line.end_line = no;
                let left_trimmed = token.trim_start_matches(is_go_space);
                if left_trimmed.starts_with('#') {
                    continue;
                }
                if left_trimmed.is_empty() {
                    line.empty_continuation = true;
                    continue;
                }
                let (piece, end) = trim_continuation(token, self.escape);
                end_of_line = end;
                line.locator.segments.push(Segment {
                    logical: line.text.len(),
                    line: no,
                    column: 1,
                });
                line.text.push_str(piece);
                if line.text.len() > self.limits.max_logical_line_bytes {
                    let kind = ErrorKind::LineTooLong {
                        size: line.text.len(),
                        limit: self.limits.max_logical_line_bytes,
                    };
                    return Err(self.error(kind, line.start_line));
                }
            }
            return Ok(Some(line));
        }
    }

    /// Reads one heredoc body up to its terminator line. Returns the body (with the original
    /// line endings, as BuildKit keeps them) and the terminator's line number.
    pub fn read_heredoc(
        &mut self,
        name: &str,
        chomp: bool,
        start_line: usize,
    ) -> Result<Located<String>, DockerfileError> {
        let mut body = String::new();
        let mut last = start_line;
        while let Some((no, raw)) = self.next_physical()? {
            last = no;
            let candidate = trim_newline(raw);
            let candidate = if chomp {
                candidate.trim_start_matches('\t')
            } else {
                candidate
            };
            if candidate == name {
                return Ok(Located {
                    value: body,
                    line: no,
                });
            }
            body.push_str(raw);
            if body.len() > self.limits.max_heredoc_bytes {
                let kind = ErrorKind::HeredocTooLarge {
                    name: name.to_owned(),
                    limit: self.limits.max_heredoc_bytes,
                };
                return Err(self.error(kind, start_line));
            }
        }
        let err = self.error(ErrorKind::UnterminatedHeredoc(name.to_owned()), start_line);
        let hint = format!("no line {name:?} closes it before the end of the file (line {last})");
        Err(err.with_text(name).with_hint(hint))
    }
}

/// `trimContinuationCharacter`: strips a trailing unescaped escape character (and the spaces
/// or tabs after it); the flag says whether the instruction ends on this line.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    let Some(before) = trimmed.strip_suffix(escape) else {
        return (line, true);
    };
    if before.is_empty() || !before.ends_with(escape) {
        (before, false)
    } else {
        (line, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logical(source: &str) -> Vec<(String, usize, usize)> {
        let limits = Limits::default();
        let mut lexer = Lexer::new("Dockerfile", source, &limits);
        let mut out = Vec::new();
        while let Some(l) = lexer.next_logical().unwrap() {
            out.push((l.text, l.start_line, l.end_line));
        }
        out
    }

    #[test]
    fn continuation_rules() {
        type Case<'a> = (&'a str, &'a [(&'a str, usize, usize)]);
        let cases: &[Case<'_>] = &[
            ("RUN a \\\n  b\n", &[("RUN a   b", 1, 2)]),
            ("RUN a \\  \t\nb", &[("RUN a b", 1, 2)]),
            (
                "RUN a \\\\\nRUN b",
                &[("RUN a \\\\", 1, 1), ("RUN b", 2, 2)],
            ),
            ("RUN a \\\n# c\n  # d\n\n b", &[("RUN a  b", 1, 5)]),
            ("\r\n  RUN a \\\r\nb\r\n", &[("RUN a b", 2, 3)]),
            ("COPY \\ ", &[("COPY ", 1, 1)]),
            ("\\\nRUN x", &[("RUN x", 1, 2)]),
        ];
        for (src, want) in cases {
            let want: Vec<_> = want
                .iter()
                .map(|(t, s, e)| (t.to_string(), *s, *e))
                .collect();
            assert_eq!(logical(src), want, "source {src:?}");
        }
    }

    #[test]
    fn directive_matching_follows_the_regex() {
        assert_eq!(match_directive("escape=`"), Some(("escape", "`")));
        assert_eq!(
            match_directive("syntax = docker/dockerfile:1 "),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(match_directive("check= "), Some(("check", " ")));
        assert_eq!(match_directive("check=   "), Some(("check", " ")));
        assert_eq!(match_directive("check="), None);
        assert_eq!(match_directive("1x=y"), None);
        assert_eq!(match_directive("just a comment"), None);
    }

    #[test]
    fn escape_directive_changes_continuation() {
        assert_eq!(
            logical("# escape=`\nRUN a `\n b \\\nRUN c"),
            [
                ("RUN a  b \\".to_string(), 2, 3),
                ("RUN c".to_string(), 4, 4)
            ]
        );
    }

    #[test]
    fn locator_maps_offsets_to_physical_columns() {
        let limits = Limits::default();
        let mut lexer = Lexer::new("Dockerfile", "  RUN a \\\n   bcd", &limits);
        let line = lexer.next_logical().unwrap().unwrap();
        assert_eq!(line.text, "RUN a    bcd");
        assert_eq!(line.locator.locate(&line.text, 0), (1, 3));
        assert_eq!(line.locator.locate(&line.text, 9), (2, 4));
    }
}
