//! Word expansion for the planner: the shell lexer plus resource limits and error locations.

use std::cell::Cell;
use std::collections::BTreeSet;

use crate::dockerfile::Limits;
use crate::dockerfile::ast::Node;
use crate::dockerfile::error::{DockerfileError, ErrorKind};
use crate::dockerfile::shell::{ExpandError, Expansion, ShellLex, VarLookup};
use crate::dockerfile::words::Word;

/// Hands out variable values until a byte budget is spent. The expansion's output can only
/// exceed the input word by what lookups return, so capping lookups caps the output before it
/// is built (`ARG A=…` `ARG B=$A$A$A…` cannot allocate gigabytes).
struct Capped<'a> {
    inner: &'a dyn VarLookup,
    budget: Cell<usize>,
    exceeded: Cell<bool>,
}

impl VarLookup for Capped<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        let value = self.inner.lookup(name)?;
        match self.budget.get().checked_sub(value.len()) {
            Some(left) => {
                self.budget.set(left);
                Some(value)
            }
            None => {
                self.exceeded.set(true);
                None
            }
        }
    }
}

pub(crate) struct Expander<'a> {
    lex: ShellLex,
    /// BuildKit expands COPY heredoc bodies with a `\` lexer whatever the escape directive.
    heredoc_lex: ShellLex,
    file: &'a str,
    limits: &'a Limits,
    total: usize,
}

impl<'a> Expander<'a> {
    pub fn new(escape: char, file: &'a str, limits: &'a Limits) -> Self {
        Self {
            lex: ShellLex::new(escape),
            heredoc_lex: ShellLex::new('\\').skip_process_quotes(true),
            file,
            limits,
            total: 0,
        }
    }

    fn locate_error(&self, node: &Node, word: &Word, err: &ExpandError) -> DockerfileError {
        let verbatim = node
            .original
            .get(word.offset..word.offset + word.text.len())
            == Some(word.text.as_str());
        let offset = if verbatim {
            let within = word
                .text
                .char_indices()
                .nth(err.column())
                .map_or(word.text.len(), |(i, _)| i);
            word.offset + within
        } else {
            word.offset
        };
        let (line, column) = node.locate(offset);
        DockerfileError::new(self.file, ErrorKind::Expansion(err.to_string()))
            .at(line, Some(column))
            .with_text(word.text.clone())
    }

    fn too_large(&self, node: &Node, word: &Word) -> DockerfileError {
        let shown: String = word.text.chars().take(80).collect();
        let kind = ErrorKind::ExpansionTooLarge {
            word: shown,
            limit: self.limits.max_expanded_bytes,
        };
        let (line, column) = node.locate(word.offset);
        DockerfileError::new(self.file, kind).at(line, Some(column))
    }

    fn account(
        &mut self,
        node: &Node,
        word: &Word,
        produced: usize,
    ) -> Result<(), DockerfileError> {
        self.total += produced;
        if produced > self.limits.max_expanded_bytes
            || self.total > self.limits.max_total_expanded_bytes
        {
            return Err(self.too_large(node, word));
        }
        Ok(())
    }

    /// `ProcessWord`: one word, quotes and escapes removed, no splitting.
    pub fn word(
        &mut self,
        node: &Node,
        word: &Word,
        vars: &dyn VarLookup,
    ) -> Result<Expansion, DockerfileError> {
        self.word_with(false, node, word, vars)
    }

    fn word_with(
        &mut self,
        heredoc: bool,
        node: &Node,
        word: &Word,
        vars: &dyn VarLookup,
    ) -> Result<Expansion, DockerfileError> {
        let capped = Capped {
            inner: vars,
            budget: Cell::new(self.limits.max_expanded_bytes),
            exceeded: Cell::new(false),
        };
        let lex = if heredoc { self.heredoc_lex } else { self.lex };
        let result = lex.expand_word(&word.text, &capped);
        if capped.exceeded.get() {
            return Err(self.too_large(node, word));
        }
        let expansion = result.map_err(|e| self.locate_error(node, word, &e))?;
        self.account(node, word, expansion.value.len())?;
        Ok(expansion)
    }

    /// `ProcessWords`: expanded, then split on unquoted whitespace (EXPOSE).
    pub fn words(
        &mut self,
        node: &Node,
        word: &Word,
        vars: &dyn VarLookup,
        used: &mut BTreeSet<String>,
    ) -> Result<Vec<String>, DockerfileError> {
        // The split form does not report which variables it read; the single-word form over
        // the same text does, and reads the same ones.
        used.extend(self.word(node, word, vars)?.used);
        let capped = Capped {
            inner: vars,
            budget: Cell::new(self.limits.max_expanded_bytes),
            exceeded: Cell::new(false),
        };
        let result = self.lex.expand_words(&word.text, &capped);
        if capped.exceeded.get() {
            return Err(self.too_large(node, word));
        }
        let fields = result.map_err(|e| self.locate_error(node, word, &e))?;
        self.account(node, word, fields.iter().map(String::len).sum())?;
        Ok(fields)
    }

    /// A COPY/ADD heredoc body with an unquoted delimiter: variables are expanded but quotes are
    /// content (BuildKit's `SkipProcessQuotes`). Quotes are escaped before expansion so the
    /// lexer keeps them; escapes already in the body keep their meaning.
    pub fn heredoc_body(
        &mut self,
        node: &Node,
        body: &str,
        vars: &dyn VarLookup,
    ) -> Result<Expansion, DockerfileError> {
        let mut protected = String::with_capacity(body.len() + 16);
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    protected.push(c);
                    if let Some(next) = chars.next() {
                        protected.push(next);
                    }
                }
                '\'' | '"' => {
                    protected.push('\\');
                    protected.push(c);
                }
                _ => protected.push(c),
            }
        }
        let word = Word::new(protected, 0);
        self.word_with(true, node, &word, vars)
    }
}
