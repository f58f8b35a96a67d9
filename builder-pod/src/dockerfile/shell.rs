//! Docker's word expansion: the semantics of BuildKit's `frontend/dockerfile/shell/lex.go`
//! (`ShellLex.ProcessWord` / `ProcessWords`), re-implemented so that hostile input can neither
//! panic nor make the work or the memory explode (threats-and-faults §2.8 #46/#47).
//!
//! What a word may contain, exactly as BuildKit reads it:
//! - `$NAME`, `${NAME}`; a name is a Unicode letter or `_` followed by letters, digits and `_`,
//!   or a run of digits (`$12`), or one special parameter (`$@ $* $# $? $- $$ $!`). A `$` that
//!   starts no name stays literal (`$.`, `a$`).
//! - `${NAME-word}`, `${NAME:-word}`, `${NAME+word}`, `${NAME:+word}`, `${NAME?msg}`,
//!   `${NAME:?msg}`: the POSIX forms; the colon makes "set but empty" count as unset. `word` is
//!   itself expanded, so `${a:-${b:-c}}` nests.
//! - `${NAME#pat}`, `${NAME##pat}`, `${NAME%pat}`, `${NAME%%pat}`, `${NAME/pat/repl}`,
//!   `${NAME//pat/repl}` (BuildKit 0.13+, moby/buildkit#4287 and #4427): `*` and `?` wildcards,
//!   no bracket expressions; the second `/` is mandatory. `:#`, `:%`, `:=`, `=` are errors.
//! - `'...'` keeps everything literal; `"..."` expands `$` and lets the escape character escape
//!   only `"`, `$` and itself; outside quotes the escape character escapes anything, and a
//!   trailing escape character is dropped. The escape character is `\` or, after
//!   `# escape=\``, the backtick.
//! - An unterminated `${aaa:-bbb` is an error ("syntax error: missing '}'"): moby/moby#37128 was
//!   fixed by #37134, and BuildKit has rejected it ever since.
//!
//! Deliberate differences from the Go code (none changes a successful expansion of realistic
//! input): errors carry a column and an owned, truncated copy of the word; the output is capped
//! ([`DEFAULT_MAX_OUTPUT`]); `${` nesting is capped at [`MAX_NESTING`] levels instead of growing
//! the stack; `${name` at the end of the word says "missing '}'" where Go prints
//! "unsupported modifier (\u{fffd})"; and in [`ShellLex::expand_words`] a nested `${a:-b}`
//! does not wipe the words collected before it (current lex.go shares one `wordsBuffer` between
//! the outer and the inner word lists, so `ProcessWords("x${a:-b}")` yields `["b"]`; we keep
//! `["xb"]`, what every earlier lex.go returned).

mod lexer;
mod pattern;
#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where the expander reads variable values from. BuildKit compares names exactly on Linux.
pub trait VarLookup {
    /// The value of `name`, or `None` when it is not set (set-but-empty is `Some("")`).
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl VarLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> VarLookup for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// An ordered environment (`KEY=value` pairs as Docker keeps them): the last pair wins, like
/// BuildKit's `EnvsFromSlice` overwriting earlier keys. A slice is unsized, so pass it as
/// `&pairs.as_slice()` (through the `&T` impl) or pass the `Vec` itself.
impl VarLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl VarLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<T: VarLookup + ?Sized> VarLookup for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

/// The longest expansion of one word, in bytes, unless [`ShellLex::with_max_output`] says
/// otherwise. Values are never re-expanded, so one word cannot blow up by itself; the cap stops
/// `${X//?/$Y}`-style multiplication and ARG chains that double at every step (§2.8 #47).
pub const DEFAULT_MAX_OUTPUT: usize = 4 << 20;

/// How deeply `${...}` may nest inside one word. Real Dockerfiles use two or three levels; the
/// cap keeps the recursive descent far from the 2 MiB stack of a worker thread.
pub const MAX_NESTING: usize = 128;

/// How much of the source word an error keeps for its message.
const WORD_IN_ERROR_CHARS: usize = 200;

/// Docker's word expander for one escape character (the `# escape=` directive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellLex {
    escape: char,
    skip_process_quotes: bool,
    max_output: usize,
}

impl ShellLex {
    /// An expander using `escape` (`\` by default, `` ` `` after `# escape=\``).
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            skip_process_quotes: false,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    /// Treat quotes as ordinary characters. BuildKit expands the bodies of `COPY`/`ADD`
    /// heredocs this way (`SkipProcessQuotes`, always with `\` as the escape character): a
    /// heredoc is file content, its quotes are not Dockerfile quoting.
    pub fn skip_process_quotes(self, skip: bool) -> Self {
        Self {
            skip_process_quotes: skip,
            ..self
        }
    }

    /// Cap the length of one expansion at `bytes` (default [`DEFAULT_MAX_OUTPUT`]).
    pub fn with_max_output(self, bytes: usize) -> Self {
        Self {
            max_output: bytes,
            ..self
        }
    }

    /// The escape character this expander honours.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Docker's ProcessWord: expand one word, removing quotes and escapes; no field splitting.
    pub fn expand_word(&self, word: &str, vars: &dyn VarLookup) -> Result<Expansion, ExpandError> {
        let (value, _, used) = lexer::Expander::new(*self, word, vars, false).run()?;
        Ok(Expansion { value, used })
    }

    /// Docker's ProcessWords: expand, then split on unquoted whitespace. Whitespace produced by
    /// a variable splits too (`$X` with `X="a b"` gives two words), quoted whitespace does not;
    /// empty words are dropped.
    pub fn expand_words(
        &self,
        word: &str,
        vars: &dyn VarLookup,
    ) -> Result<Vec<String>, ExpandError> {
        let (_, words, _) = lexer::Expander::new(*self, word, vars, true).run()?;
        Ok(words)
    }
}

/// The result of [`ShellLex::expand_word`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded word.
    pub value: String,
    /// Every variable name the word looked up, set or not (BuildKit's matched ∪ unmatched;
    /// the cache key and the "undefined variable" lint need both).
    pub used: BTreeSet<String>,
}

/// Which quote was left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// `'`
    Single,
    /// `"`
    Double,
}

impl std::fmt::Display for Quote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Quote::Single => "single-quote",
            Quote::Double => "double-quote",
        })
    }
}

/// Why a word could not be expanded. `word` is the source word (truncated to 200 characters),
/// `column` the character offset within it where the problem starts. The messages are
/// BuildKit's, so a user searching for them finds Docker's documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A quote opened at `column` is never closed.
    #[error(
        "failed to process {word:?}: unexpected end of statement while looking for matching {quote}"
    )]
    UnterminatedQuote {
        word: String,
        column: usize,
        quote: Quote,
    },
    /// `${` at `column` is never closed.
    #[error("failed to process {word:?}: syntax error: missing '}}'")]
    MissingBrace { word: String, column: usize },
    /// `${NAME/pattern` at `column` has no second `/`.
    #[error("failed to process {word:?}: syntax error: missing '/' in ${{}}")]
    MissingSlash { word: String, column: usize },
    /// `${}`, `${{`, `${:` at `column`.
    #[error("failed to process {word:?}: syntax error: bad substitution")]
    BadSubstitution { word: String, column: usize },
    /// `${NAME` followed by an operator Docker does not implement (`=`, `:=`, `:#`, a space…).
    #[error("failed to process {word:?}: unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        word: String,
        column: usize,
        modifier: String,
    },
    /// `${NAME?msg}` / `${NAME:?msg}` with `NAME` unset (or empty, with the colon).
    #[error("failed to process {word:?}: {name}: {message}")]
    Required {
        word: String,
        column: usize,
        name: String,
        message: String,
    },
    /// A `#`, `%` or `/` pattern with an escape other than `\*`, `\?`, `\\`, `\}`, `\/`.
    #[error("failed to process {word:?}: invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        word: String,
        column: usize,
        pattern: String,
        reason: String,
    },
    /// The expansion would exceed the output cap.
    #[error(
        "failed to process {word:?}: the expansion is longer than {limit} bytes; check for variables that \
         repeat themselves (ARG A=$A$A) or raise the limit"
    )]
    TooLong {
        word: String,
        column: usize,
        limit: usize,
    },
    /// `${` nests deeper than [`MAX_NESTING`].
    #[error("failed to process {word:?}: ${{...}} nests deeper than {limit} levels")]
    TooDeep {
        word: String,
        column: usize,
        limit: usize,
    },
}

impl ExpandError {
    /// Character offset within the word where the problem starts.
    pub fn column(&self) -> usize {
        match self {
            ExpandError::UnterminatedQuote { column, .. }
            | ExpandError::MissingBrace { column, .. }
            | ExpandError::MissingSlash { column, .. }
            | ExpandError::BadSubstitution { column, .. }
            | ExpandError::UnsupportedModifier { column, .. }
            | ExpandError::Required { column, .. }
            | ExpandError::InvalidPattern { column, .. }
            | ExpandError::TooLong { column, .. }
            | ExpandError::TooDeep { column, .. } => *column,
        }
    }
}

/// The word as an error message quotes it: at most [`WORD_IN_ERROR_CHARS`] characters.
fn word_for_error(word: &str) -> String {
    match word.char_indices().nth(WORD_IN_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &word[..cut]),
        None => word.to_owned(),
    }
}
