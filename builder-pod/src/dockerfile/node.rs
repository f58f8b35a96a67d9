//! The generic syntax node of one instruction (BuildKit's `parser.Node`): the instruction name,
//! its `--flag` words, its arguments split the way that instruction's line parser splits them,
//! and any heredoc bodies. Errors found here are the ones BuildKit reports while reading the
//! file (before any instruction is typed), so they come first in file order.

use super::error::{DockerfileError, ErrorKind};
use super::heredoc::{self, Heredoc};
use super::lexer::{Lexer, Locator, LogicalLine};
use super::words::{self, Json, Word};

/// How the arguments of an instruction were split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Args {
    /// No arguments at all.
    Empty,
    /// Whitespace-delimited or quote-aware words (FROM, EXPOSE, ARG, COPY/ADD/VOLUME shell form).
    Words(Vec<Word>),
    /// A JSON string array (exec form); the strings are already decoded. The offset is where
    /// the array starts.
    Json(Vec<String>, usize),
    /// The rest of the line as one string (RUN/CMD shell form, USER, WORKDIR, ...).
    Raw(Word),
    /// ENV/LABEL pairs; `legacy` is the `KEY value` form.
    Pairs(Vec<(Word, Word)>, bool),
    /// HEALTHCHECK: the type word and what follows it.
    Health(Word, Box<Args>),
    /// ONBUILD: the trigger instruction.
    Sub(Box<SyntaxNode>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxNode {
    pub command: Word,
    pub flags: Vec<Word>,
    pub args: Args,
    pub heredocs: Vec<Heredoc>,
}

/// One instruction line with its location, continuations folded.
#[derive(Debug, Clone)]
pub(crate) struct LineNode {
    pub node: SyntaxNode,
    pub original: String,
    pub start_line: usize,
    pub end_line: usize,
    pub locator: Locator,
}

/// Reports where a byte offset of the logical line is.
pub(crate) struct Where<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub locator: &'a Locator,
    pub start_line: usize,
}

impl Where<'_> {
    pub fn error_at(&self, kind: ErrorKind, offset: Option<usize>) -> DockerfileError {
        let err = DockerfileError::new(self.file, kind);
        match offset {
            Some(o) => {
                let (line, column) = self.locator.locate(self.text, o);
                err.at(line, Some(column))
            }
            None => err.at(self.start_line, None),
        }
    }
}

fn command_kind(node_command: &str) -> String {
    node_command.to_ascii_lowercase()
}

/// `newNodeFromLine`: splits the line and runs the instruction's line parser.
fn node_from_text(
    text: &Word,
    escape: char,
    at: &Where<'_>,
) -> Result<SyntaxNode, DockerfileError> {
    let (command, rest) = words::split_command(&text.text);
    let command = Word::new(command.text, text.offset + command.offset);
    let rest = Word::new(rest.text, text.offset + rest.offset);
    let (flags, args) = words::extract_flags(&rest);
    let args = match command_kind(&command.text).as_str() {
        "add" | "copy" | "volume" => maybe_json_list(&args, at)?,
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(&args, at)?,
        "env" | "label" => name_values(&args, &command.text, escape, at)?,
        "arg" => non_empty(words::parse_words(&args, escape)),
        "expose" | "from" => non_empty(words::split_whitespace(&args)),
        "maintainer" | "stopsignal" | "user" | "workdir" => raw(args),
        "healthcheck" => health(&args, at)?,
        "onbuild" if !args.text.is_empty() => {
            Args::Sub(Box::new(node_from_text(&args, escape, at)?))
        }
        _ => Args::Empty,
    };
    Ok(SyntaxNode {
        command,
        flags,
        args,
        heredocs: Vec::new(),
    })
}

fn non_empty(words: Vec<Word>) -> Args {
    if words.is_empty() {
        Args::Empty
    } else {
        Args::Words(words)
    }
}

fn raw(args: Word) -> Args {
    if args.text.is_empty() {
        Args::Empty
    } else {
        Args::Raw(args)
    }
}

fn maybe_json(args: &Word, at: &Where<'_>) -> Result<Args, DockerfileError> {
    if args.text.is_empty() {
        return Ok(Args::Empty);
    }
    match words::parse_json(&args.text) {
        Json::Array(items) => Ok(Args::Json(items, args.offset)),
        Json::NotStrings => Err(at.error_at(ErrorKind::JsonNotStrings, Some(args.offset))),
        Json::Text => Ok(Args::Raw(args.clone())),
    }
}

fn maybe_json_list(args: &Word, at: &Where<'_>) -> Result<Args, DockerfileError> {
    match words::parse_json(&args.text) {
        Json::Array(items) => Ok(Args::Json(items, args.offset)),
        Json::NotStrings => Err(at.error_at(ErrorKind::JsonNotStrings, Some(args.offset))),
        Json::Text => Ok(non_empty(words::split_whitespace(args))),
    }
}

/// `parseNameVal`: `KEY value` (legacy, one pair, the value is the rest of the line) or
/// `KEY=value ...` (every word must contain `=`).
fn name_values(
    args: &Word,
    command: &str,
    escape: char,
    at: &Where<'_>,
) -> Result<Args, DockerfileError> {
    let name: &'static str = if command.eq_ignore_ascii_case("env") {
        "ENV"
    } else {
        "LABEL"
    };
    let parsed = words::parse_words(args, escape);
    let Some(first) = parsed.first() else {
        return Ok(Args::Empty);
    };
    if !first.text.contains('=') {
        let legacy = words::split_whitespace(args);
        let mut it = legacy.into_iter();
        let key = it.next().unwrap_or_else(|| first.clone());
        let Some(value_start) = it.next().map(|w| w.offset) else {
            return Err(at.error_at(ErrorKind::TwoArguments(name), Some(key.offset)));
        };
        let value = &args.text[value_start - args.offset..];
        return Ok(Args::Pairs(
            vec![(key, Word::new(value, value_start))],
            true,
        ));
    }
    let mut pairs = Vec::with_capacity(parsed.len());
    for word in parsed {
        let Some((key, value)) = word.text.split_once('=') else {
            let kind = ErrorKind::MissingEquals(word.text.clone());
            return Err(at.error_at(kind, Some(word.offset)).with_text(word.text));
        };
        let value_offset = word.offset + key.len() + 1;
        pairs.push((Word::new(key, word.offset), Word::new(value, value_offset)));
    }
    Ok(Args::Pairs(pairs, false))
}

/// `parseHealthConfig`: the type word, then the command in shell or JSON form.
fn health(args: &Word, at: &Where<'_>) -> Result<Args, DockerfileError> {
    let text = args.text.as_str();
    let sep = text
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(text.len());
    if sep == 0 {
        return Ok(Args::Empty);
    }
    let rest_start = text[sep..]
        .find(|c: char| !c.is_ascii_whitespace())
        .map_or(text.len(), |i| sep + i);
    let typ = Word::new(&text[..sep], args.offset);
    let rest = Word::new(&text[rest_start..], args.offset + rest_start);
    Ok(Args::Health(typ, Box::new(maybe_json(&rest, at)?)))
}

/// Whether this node may carry heredocs (`canContainHeredoc`): RUN, COPY, ADD, or ONBUILD
/// of one of them, in shell (non-JSON) form.
fn can_contain_heredoc(node: &SyntaxNode) -> bool {
    let node = match &node.args {
        Args::Sub(child) if node.command.text.eq_ignore_ascii_case("onbuild") => child,
        _ => node,
    };
    matches!(
        command_kind(&node.command.text).as_str(),
        "run" | "copy" | "add"
    ) && !matches!(node.args, Args::Json(..))
}

/// Reads the next instruction: its logical line, its syntax node and its heredoc bodies.
pub(crate) fn next_node(
    lexer: &mut Lexer<'_>,
    file: &str,
) -> Result<Option<(LineNode, bool)>, DockerfileError> {
    let Some(LogicalLine {
        text,
        start_line,
        end_line,
        locator,
        empty_continuation,
    }) = lexer.next_logical()?
    else {
        return Ok(None);
    };
    let at = Where {
        file,
        text: &text,
        locator: &locator,
        start_line,
    };
    let mut node = node_from_text(&Word::new(text.clone(), 0), lexer.escape, &at)?;
    let mut end = end_line;
    if can_contain_heredoc(&node) {
        for marker in heredoc::markers_in_line(&text) {
            let body = lexer.read_heredoc(&marker.name, marker.chomp, start_line)?;
            end = body.line;
            let doc = Heredoc {
                name: marker.name,
                file_descriptor: marker.file_descriptor,
                chomp: marker.chomp,
                expand: marker.expand,
                body: body.value,
            };
            match &mut node.args {
                Args::Sub(child) => child.heredocs.push(doc),
                _ => node.heredocs.push(doc),
            }
        }
    }
    let original = text.trim().to_owned();
    Ok(Some((
        LineNode {
            node,
            original,
            start_line,
            end_line: end,
            locator,
        },
        empty_continuation,
    )))
}
