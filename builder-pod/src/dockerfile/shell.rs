//! TEMPORARY word expansion, replaced by the `dockerfile-shell` branch's complete implementation
//! of Docker's shell lexer. It implements the agreed interface with plain `$VAR` / `${VAR}`
//! substitution, quote removal and escapes only, so the parser and planner compile and run.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where expansion looks variables up.
pub trait VarLookup {
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl VarLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl VarLookup for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl VarLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl VarLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

/// Docker's shell-word lexer, parameterised by the Dockerfile's escape character.
#[derive(Debug, Clone, Copy)]
pub struct ShellLex {
    escape: char,
}

/// The result of expanding one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub value: String,
    pub used: BTreeSet<String>,
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("{message}")]
    Syntax { column: usize, message: String },
}

impl ExpandError {
    pub fn column(&self) -> usize {
        match self {
            Self::Syntax { column, .. } => *column,
        }
    }
}

impl ShellLex {
    pub fn new(escape: char) -> Self {
        Self { escape }
    }

    pub fn expand_word(&self, word: &str, vars: &dyn VarLookup) -> Result<Expansion, ExpandError> {
        let fields = self.expand(word, vars, false)?;
        let (mut words, used) = fields;
        Ok(Expansion {
            value: words.pop().unwrap_or_default(),
            used,
        })
    }

    pub fn expand_words(
        &self,
        word: &str,
        vars: &dyn VarLookup,
    ) -> Result<Vec<String>, ExpandError> {
        Ok(self.expand(word, vars, true)?.0)
    }

    fn expand(
        &self,
        word: &str,
        vars: &dyn VarLookup,
        split: bool,
    ) -> Result<(Vec<String>, BTreeSet<String>), ExpandError> {
        let chars: Vec<char> = word.chars().collect();
        let mut used = BTreeSet::new();
        let mut words = Vec::new();
        let mut current = String::new();
        let mut has_word = false;
        let mut quote: Option<char> = None;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match quote {
                Some('\'') => {
                    if c == '\'' {
                        quote = None;
                    } else {
                        current.push(c);
                    }
                    i += 1;
                    continue;
                }
                Some(_) if c == '"' => {
                    quote = None;
                    i += 1;
                    continue;
                }
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    has_word = true;
                    i += 1;
                    continue;
                }
                None if split && c.is_whitespace() => {
                    if has_word || !current.is_empty() {
                        words.push(std::mem::take(&mut current));
                    }
                    has_word = false;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            if c == self.escape {
                if let Some(&next) = chars.get(i + 1) {
                    if quote.is_some() && !matches!(next, '"' | '$') && next != self.escape {
                        current.push(c);
                    }
                    current.push(next);
                }
                i += 2;
                continue;
            }
            if c == '$' {
                let (name, consumed) =
                    read_name(&chars[i + 1..]).ok_or_else(|| ExpandError::Syntax {
                        column: i,
                        message: "missing '}'".to_owned(),
                    })?;
                if name.is_empty() {
                    current.push('$');
                } else {
                    if let Some(v) = vars.lookup(&name) {
                        current.push_str(v);
                    }
                    used.insert(name);
                }
                i += 1 + consumed;
                continue;
            }
            current.push(c);
            i += 1;
        }
        if let Some(q) = quote {
            return Err(ExpandError::Syntax {
                column: chars.len(),
                message: format!("unexpected end of statement while looking for matching {q}"),
            });
        }
        if !split || has_word || !current.is_empty() {
            words.push(current);
        }
        Ok((words, used))
    }
}

fn read_name(rest: &[char]) -> Option<(String, usize)> {
    if rest.first() == Some(&'{') {
        let end = rest.iter().position(|&c| c == '}')?;
        return Some((rest[1..end].iter().collect(), end + 1));
    }
    let len = rest
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .count();
    Some((rest[..len].iter().collect(), len))
}
