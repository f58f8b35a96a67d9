//! The expander proper: a recursive descent over one word that mirrors the control flow of
//! BuildKit's `shellWord` (processStopOn / processSingleQuote / processDoubleQuote /
//! processDollar / processName) so that every corner behaves the same.
//!
//! One difference in mechanics, not in results: Go returns each nested `${...}` word as a new
//! string and copies it into its parent, so `${a:-${b:-...}}` nested d deep copies the innermost
//! text d times. Here every level appends to one shared output buffer and a level that discards
//! its word truncates back to a mark, which keeps the work linear in the word plus the values
//! looked up and the memory within the output cap.

use std::collections::BTreeSet;

use super::pattern;
use super::{ExpandError, MAX_NESTING, Quote, ShellLex, VarLookup, word_for_error};

/// Errors raised below the top level carry no word yet; [`Expander::run`] fills it in.
type Step<T = ()> = Result<T, ExpandError>;

pub(super) struct Expander<'w, 'v> {
    lex: ShellLex,
    src: &'w str,
    /// Byte offset of the next character.
    pos: usize,
    /// Character offset of the next character (the column errors report).
    col: usize,
    vars: &'v dyn VarLookup,
    out: String,
    used: BTreeSet<String>,
    /// `Some` for ProcessWords: the words of the top level only (nested words are never split).
    fields: Option<Fields>,
}

impl<'w, 'v> Expander<'w, 'v> {
    pub(super) fn new(lex: ShellLex, src: &'w str, vars: &'v dyn VarLookup, split: bool) -> Self {
        let mut expander = Self {
            lex,
            src,
            pos: 0,
            col: 0,
            vars,
            out: String::new(),
            used: BTreeSet::new(),
            fields: split.then(Fields::default),
        };
        // Go's text/scanner silently skips a byte-order mark at the very start of its input.
        if src.starts_with('\u{feff}') {
            expander.bump();
        }
        expander
    }

    /// Expand the whole word: (value, words, names looked up).
    pub(super) fn run(mut self) -> Result<(String, Vec<String>, BTreeSet<String>), ExpandError> {
        match self.top_level() {
            Ok(()) => {
                let words = self.fields.take().map(Fields::finish).unwrap_or_default();
                Ok((self.out, words, self.used))
            }
            Err(mut err) => {
                set_word(&mut err, word_for_error(self.src));
                Err(err)
            }
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        self.col += 1;
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn push_str(&mut self, s: &str) -> Step {
        if self.out.len() + s.len() > self.lex.max_output {
            return Err(too_long(self.col, self.lex.max_output));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn push(&mut self, c: char) -> Step {
        let mut buf = [0u8; 4];
        self.push_str(c.encode_utf8(&mut buf))
    }

    /// Look `name` up and remember that the word used it.
    fn get(&mut self, name: &str) -> Option<&'v str> {
        if !self.used.contains(name) {
            self.used.insert(name.to_owned());
        }
        self.vars.lookup(name)
    }

    /// The top level of the word: processStopOn(EOF), also feeding the word splitter.
    fn top_level(&mut self) -> Step {
        while let Some(ch) = self.peek() {
            let mark = self.out.len();
            if ch == '$' {
                self.dollar(0)?;
                self.feed(mark, Fields::add_split);
            } else if !self.lex.skip_process_quotes && ch == '\'' {
                self.single_quote()?;
                self.feed(mark, Fields::add_raw);
            } else if !self.lex.skip_process_quotes && ch == '"' {
                self.double_quote(0, false)?;
                self.feed(mark, Fields::add_raw);
            } else {
                self.bump();
                if ch == self.lex.escape {
                    // An escaped character is never a separator; a trailing escape vanishes.
                    let Some(escaped) = self.bump() else { break };
                    self.push(escaped)?;
                    self.feed(mark, Fields::add_raw);
                } else {
                    self.push(ch)?;
                    self.feed(mark, Fields::add_split);
                }
            }
        }
        Ok(())
    }

    /// Hand what the last step appended to the word splitter, if there is one.
    fn feed(&mut self, mark: usize, add: fn(&mut Fields, &str)) {
        if let Some(fields) = self.fields.as_mut() {
            add(fields, &self.out[mark..]);
        }
    }

    /// processStopOn(stop) below the top level: expand up to and including `stop`. With
    /// `raw_escapes` (pattern and replacement text) the escape character is kept in the output.
    /// Reaching the end of the word is an error the caller rewords.
    fn stop_on(&mut self, stop: char, raw_escapes: bool, depth: usize) -> Step {
        while let Some(ch) = self.peek() {
            if ch == stop {
                self.bump();
                return Ok(());
            }
            if ch == '$' {
                self.dollar(depth)?;
            } else if !self.lex.skip_process_quotes && ch == '\'' {
                self.single_quote()?;
            } else if !self.lex.skip_process_quotes && ch == '"' {
                self.double_quote(depth, raw_escapes)?;
            } else {
                self.bump();
                if ch == self.lex.escape {
                    if raw_escapes {
                        self.push(ch)?;
                    }
                    let Some(escaped) = self.bump() else { break };
                    self.push(escaped)?;
                } else {
                    self.push(ch)?;
                }
            }
        }
        // Only ever seen at the end of the word; every caller turns it into "missing '}'" or
        // "missing '/'", exactly as processDollar does.
        Err(ExpandError::MissingBrace {
            word: String::new(),
            column: self.col,
        })
    }

    /// `'...'`: everything literal, no escapes.
    fn single_quote(&mut self) -> Step {
        let column = self.col;
        self.bump();
        loop {
            match self.bump() {
                None => return Err(unterminated(column, Quote::Single)),
                Some('\'') => return Ok(()),
                Some(c) => self.push(c)?,
            }
        }
    }

    /// `"..."`: `$` expands; the escape character escapes only `"`, `$` and itself and is kept
    /// before anything else. With raw escapes (inside a pattern) Go writes the escape character
    /// once more, which doubles it before an ordinary character; kept for fidelity.
    fn double_quote(&mut self, depth: usize, raw_escapes: bool) -> Step {
        let column = self.col;
        self.bump();
        loop {
            match self.peek() {
                None => return Err(unterminated(column, Quote::Double)),
                Some('"') => {
                    self.bump();
                    return Ok(());
                }
                Some('$') => self.dollar(depth)?,
                Some(_) => {
                    let mut ch = self.bump().unwrap_or_default();
                    if ch == self.lex.escape {
                        if raw_escapes {
                            self.push(ch)?;
                        }
                        match self.peek() {
                            // A lone escape before the end: dropped, and the loop reports the
                            // open quote.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.lex.escape => {
                                ch = next;
                                self.bump();
                            }
                            Some(_) => {}
                        }
                    }
                    self.push(ch)?;
                }
            }
        }
    }

    /// processName: a run of digits, one special parameter, or a letter/`_` and what follows.
    fn name(&mut self) -> &'w str {
        let start = self.pos;
        match self.peek() {
            Some(c) if is_go_digit(c) => {
                while self.peek().is_some_and(is_go_digit) {
                    self.bump();
                }
            }
            Some(c) if is_special_param(c) => {
                self.bump();
            }
            _ => {
                while self
                    .peek()
                    .is_some_and(|c| is_go_letter(c) || is_go_digit(c) || c == '_')
                {
                    self.bump();
                }
            }
        }
        &self.src[start..self.pos]
    }

    /// processDollar, entered with the scanner on `$`; `depth` counts the enclosing `${`.
    fn dollar(&mut self, depth: usize) -> Step {
        let column = self.col;
        self.bump();
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return self.push('$');
            }
            let value = self.get(name).unwrap_or_default();
            return self.push_str(value);
        }
        self.bump();
        match self.peek() {
            None => return Err(missing_brace(column)),
            Some('{' | '}' | ':') => return Err(bad_substitution(column)),
            Some(_) => {}
        }
        if depth >= MAX_NESTING {
            return Err(ExpandError::TooDeep {
                word: String::new(),
                column,
                limit: MAX_NESTING,
            });
        }
        let name = self.name();
        let op_column = self.col;
        match self.bump() {
            Some('}') => {
                let value = self.get(name).unwrap_or_default();
                self.push_str(value)
            }
            Some(':') => {
                // Go takes whatever follows the colon as the operator, even `}` or the end.
                let op = self.bump();
                let mut shown = String::from(":");
                shown.push(op.unwrap_or('\u{fffd}'));
                let subst = Subst {
                    name,
                    column,
                    op_column,
                    depth,
                };
                self.modifier(&subst, true, op, shown)
            }
            Some(op @ ('+' | '-' | '?' | '#' | '%')) => {
                let subst = Subst {
                    name,
                    column,
                    op_column,
                    depth,
                };
                self.modifier(&subst, false, Some(op), op.to_string())
            }
            Some('/') => self.replace(name, column, depth),
            Some(other) => Err(unsupported(op_column, other.to_string())),
            None => Err(missing_brace(column)),
        }
    }

    /// The `-`, `+`, `?`, `#`, `%` forms (with `colon`: `:-`, `:+`, `:?`); `shown` is the
    /// operator as an error names it.
    fn modifier(
        &mut self,
        subst: &Subst<'w>,
        colon: bool,
        op: Option<char>,
        shown: String,
    ) -> Step {
        let Subst {
            name,
            column,
            op_column,
            depth,
        } = *subst;
        let is_pattern = matches!(op, Some('#' | '%'));
        if colon && is_pattern {
            return Err(unsupported(op_column, shown));
        }
        let mark = self.out.len();
        self.nested(
            mark,
            |lex| lex.stop_on('}', is_pattern, depth + 1),
            || missing_brace(column),
        )?;
        let value = self.get(name);
        let null_is_unset = |v: Option<&str>| v.is_none() || (colon && v == Some(""));
        match op {
            Some('-') => {
                if !null_is_unset(value) {
                    self.out.truncate(mark);
                    self.push_str(value.unwrap_or_default())?;
                }
                Ok(())
            }
            Some('+') => {
                if null_is_unset(value) {
                    self.out.truncate(mark);
                }
                Ok(())
            }
            Some('?') => {
                let default = match value {
                    None => Some("is not allowed to be unset"),
                    Some("") if colon => Some("is not allowed to be empty"),
                    Some(_) => None,
                };
                if let Some(default) = default {
                    let word = &self.out[mark..];
                    let message = if word.is_empty() { default } else { word };
                    return Err(ExpandError::Required {
                        word: String::new(),
                        column,
                        name: name.to_owned(),
                        message: message.to_owned(),
                    });
                }
                self.out.truncate(mark);
                self.push_str(value.unwrap_or_default())
            }
            Some(op @ ('#' | '%')) => {
                let mut pat = &self.out[mark..];
                // `##` / `%%`: the longest match; Go compares the first byte of the expanded word.
                let greedy = pat.starts_with(op);
                if greedy {
                    pat = &pat[op.len_utf8()..];
                }
                let pat = pat.to_owned();
                self.out.truncate(mark);
                let value = value.unwrap_or_default();
                let trimmed = if op == '#' {
                    pattern::trim_prefix(&pat, value, greedy)
                } else {
                    pattern::trim_suffix(&pat, value, greedy)
                }
                .map_err(|reason| invalid_pattern(column, pat.clone(), reason))?;
                self.push_str(&trimmed)
            }
            _ => Err(unsupported(op_column, shown)),
        }
    }

    /// `${NAME/pattern/replacement}` and `${NAME//pattern/replacement}`.
    fn replace(&mut self, name: &'w str, column: usize, depth: usize) -> Step {
        let all = self.peek() == Some('/');
        if all {
            self.bump();
        }
        let mark = self.out.len();
        self.nested(
            mark,
            |lex| lex.stop_on('/', true, depth + 1),
            || missing_slash(column),
        )?;
        let split = self.out.len();
        self.nested(
            mark,
            |lex| lex.stop_on('}', true, depth + 1),
            || missing_brace(column),
        )?;
        let pat = self.out[mark..split].to_owned();
        let replacement = self.out[split..].to_owned();
        self.out.truncate(mark);
        let value = self.get(name).unwrap_or_default();
        let limit = self.lex.max_output.saturating_sub(self.out.len());
        let replaced =
            pattern::replace(&pat, value, &replacement, all, limit).map_err(|err| match err {
                pattern::ReplaceError::Pattern(reason) => {
                    invalid_pattern(column, pat.clone(), reason)
                }
                pattern::ReplaceError::TooLong => too_long(self.col, self.lex.max_output),
            })?;
        self.push_str(&replaced)
    }

    /// Run one nested `processStopOn` for `${...}`. Go rewords any failure that leaves the
    /// scanner at the end of the word (an open quote inside the braces included) as the missing
    /// delimiter; failures that stop earlier pass through unchanged.
    fn nested(
        &mut self,
        mark: usize,
        inner: impl FnOnce(&mut Self) -> Step,
        at_end: impl FnOnce() -> ExpandError,
    ) -> Step {
        debug_assert!(mark <= self.out.len());
        match inner(self) {
            Ok(()) => Ok(()),
            Err(err @ (ExpandError::TooLong { .. } | ExpandError::TooDeep { .. })) => Err(err),
            Err(_) if self.at_end() => Err(at_end()),
            Err(err) => Err(err),
        }
    }
}

/// One `${name<op>...}` being expanded: where it starts and where its operator sits.
#[derive(Clone, Copy)]
struct Subst<'w> {
    name: &'w str,
    /// Column of the `$`.
    column: usize,
    /// Column of the operator character.
    op_column: usize,
    /// How many `${` enclose this one.
    depth: usize,
}

/// The word splitter of ProcessWords (BuildKit's `wordsStruct`).
#[derive(Default)]
struct Fields {
    words: Vec<String>,
    word: String,
}

impl Fields {
    /// Text from a variable or an unquoted literal: whitespace separates words.
    fn add_split(&mut self, text: &str) {
        for c in text.chars() {
            if c.is_whitespace() {
                if !self.word.is_empty() {
                    self.words.push(std::mem::take(&mut self.word));
                }
            } else {
                self.word.push(c);
            }
        }
    }

    /// Quoted or escaped text: kept whole, whitespace included.
    fn add_raw(&mut self, text: &str) {
        self.word.push_str(text);
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

/// isSpecialParam: POSIX special parameters (XCU 2.5.2). `0` is read as a digit run first.
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// Go's `unicode.IsLetter`: general category L.
fn is_go_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    pattern::is_unicode_letter(c)
}

/// Go's `unicode.IsDigit`: general category Nd.
fn is_go_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    pattern::is_unicode_decimal_digit(c)
}

fn set_word(err: &mut ExpandError, source: String) {
    match err {
        ExpandError::UnterminatedQuote { word, .. }
        | ExpandError::MissingBrace { word, .. }
        | ExpandError::MissingSlash { word, .. }
        | ExpandError::BadSubstitution { word, .. }
        | ExpandError::UnsupportedModifier { word, .. }
        | ExpandError::Required { word, .. }
        | ExpandError::InvalidPattern { word, .. }
        | ExpandError::TooLong { word, .. }
        | ExpandError::TooDeep { word, .. } => *word = source,
    }
}

fn unterminated(column: usize, quote: Quote) -> ExpandError {
    ExpandError::UnterminatedQuote {
        word: String::new(),
        column,
        quote,
    }
}

fn missing_brace(column: usize) -> ExpandError {
    ExpandError::MissingBrace {
        word: String::new(),
        column,
    }
}

fn missing_slash(column: usize) -> ExpandError {
    ExpandError::MissingSlash {
        word: String::new(),
        column,
    }
}

fn bad_substitution(column: usize) -> ExpandError {
    ExpandError::BadSubstitution {
        word: String::new(),
        column,
    }
}

fn unsupported(column: usize, modifier: String) -> ExpandError {
    ExpandError::UnsupportedModifier {
        word: String::new(),
        column,
        modifier,
    }
}

fn invalid_pattern(column: usize, pattern: String, reason: String) -> ExpandError {
    ExpandError::InvalidPattern {
        word: String::new(),
        column,
        pattern,
        reason,
    }
}

fn too_long(column: usize, limit: usize) -> ExpandError {
    ExpandError::TooLong {
        word: String::new(),
        column,
        limit,
    }
}
