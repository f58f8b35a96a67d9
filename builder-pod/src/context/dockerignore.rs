//! `.dockerignore`: reading the file and deciding what the build context leaves out.
//!
//! Reading follows moby/patternmatcher's `ignorefile.ReadAll`: a UTF-8 BOM is dropped from the
//! first line; a line is a comment only when `#` is its *first byte* (`  # x` is the pattern
//! `# x`); lines are trimmed; a leading `!` marks an exception and is trimmed again; the rest goes
//! through Go's `filepath.Clean` and loses one leading `/`. Compiling follows
//! `patternmatcher.New`: a bare `!` is illegal and every pattern must pass `filepath.Match`'s
//! syntax check. Matching follows `MatchesUsingParentResults`, which is what BuildKit's context
//! walker (tonistiigi/fsutil `filterFS`) calls: patterns are anchored at the context root, a
//! pattern matching a directory matches everything below it, and the last matching pattern wins.
//! See `pattern.rs` for how one pattern matches and docs/arch/context-copy.md for the quirks kept.

use std::io;
use std::path::Path;

use super::gopath;
use super::pattern::Pattern;

/// Go's `bufio.Scanner` refuses longer lines (`MaxScanTokenSize`), and so does Docker.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Why a `.dockerignore` was refused. Every variant names the file and the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum DockerignoreError {
    #[error(
        "{file} line {line}: illegal exclusion pattern: \"!\" (an exception needs a path after the `!`)"
    )]
    IllegalExclusion { file: String, line: usize },
    #[error(
        "{file} line {line}: invalid pattern {pattern:?}: syntax error in pattern (check for an unclosed `[`, an empty `[]` or a trailing `\\`)"
    )]
    InvalidPattern {
        file: String,
        line: usize,
        pattern: String,
    },
    #[error(
        "{file} line {line} is longer than {MAX_LINE_BYTES} bytes; Docker refuses such lines too"
    )]
    LineTooLong { file: String, line: usize },
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// One line of the file after `ReadAll`: its 1-based line number and the normalised pattern
/// (with its `!` if it is an exception).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreLine {
    pub line: usize,
    pub pattern: Vec<u8>,
}

/// `ignorefile.ReadAll`: the normalised pattern lines of a `.dockerignore`.
pub fn read_all(file: &str, contents: &[u8]) -> Result<Vec<IgnoreLine>, DockerignoreError> {
    let mut lines = Vec::new();
    let mut rest = contents;
    let mut number = 0;
    while !rest.is_empty() {
        let (mut line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        // bufio.ScanLines drops one trailing carriage return.
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        number += 1;
        if line.len() >= MAX_LINE_BYTES {
            return Err(DockerignoreError::LineTooLong {
                file: file.to_owned(),
                line: number,
            });
        }
        if number == 1 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.first() == Some(&b'#') {
            continue;
        }
        let mut pattern = trim_space(line);
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern[0] == b'!';
        if invert {
            pattern = trim_space(&pattern[1..]);
        }
        let mut normalised = Vec::new();
        if !pattern.is_empty() {
            normalised = gopath::clean(pattern);
            if normalised.len() > 1 && normalised[0] == b'/' {
                normalised.remove(0);
            }
        }
        if invert {
            normalised.insert(0, b'!');
        }
        lines.push(IgnoreLine {
            line: number,
            pattern: normalised,
        });
    }
    Ok(lines)
}

/// Go's `strings.TrimSpace`: Unicode white space at both ends (ASCII only if the line is not
/// valid UTF-8).
fn trim_space(line: &[u8]) -> &[u8] {
    match std::str::from_utf8(line) {
        Ok(text) => text.trim().as_bytes(),
        Err(_) => line.trim_ascii(),
    }
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    exception: bool,
}

/// Per-pattern results for a directory, handed to its children (patternmatcher's `MatchInfo`).
/// The default (empty) value means "no information", as for entries at the context root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo(Vec<bool>);

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Dockerignore {
    rules: Vec<Rule>,
    /// fsutil's `onlyPrefixExcludeExceptions`: every exception is a plain path (optionally
    /// ending in `/*` or `/**`), so an excluded directory needs walking only when an exception
    /// names something below it.
    only_prefix_exceptions: bool,
}

impl Dockerignore {
    /// Nothing is excluded.
    pub fn empty() -> Self {
        Self {
            rules: Vec::new(),
            only_prefix_exceptions: true,
        }
    }

    /// Parses the contents of a file named `.dockerignore`.
    pub fn parse(contents: &[u8]) -> Result<Self, DockerignoreError> {
        Self::parse_named(".dockerignore", contents)
    }

    /// Parses an ignore file, naming it `file` in errors (e.g. `Dockerfile.dockerignore`).
    pub fn parse_named(file: &str, contents: &[u8]) -> Result<Self, DockerignoreError> {
        let lines = read_all(file, contents)?;
        Self::compile(file, lines.iter().map(|l| (l.line, l.pattern.as_slice())))
    }

    /// Compiles patterns that did not come from a file (`patternmatcher.New` alone, as BuildKit
    /// does for exclude lists handed over directly). Errors name the 1-based position.
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Self, DockerignoreError> {
        Self::compile(
            "exclude pattern",
            patterns
                .iter()
                .enumerate()
                .map(|(i, p)| (i + 1, p.as_ref().as_bytes())),
        )
    }

    /// BuildKit's lookup: `<Dockerfile>.dockerignore` beside the Dockerfile wins over the
    /// context's `.dockerignore`; neither present means nothing is excluded.
    pub fn load(context_dir: &Path, dockerfile: Option<&Path>) -> Result<Self, DockerignoreError> {
        let mut candidates = Vec::new();
        if let Some(dockerfile) = dockerfile
            && let Some(name) = dockerfile.file_name()
        {
            let mut own = name.to_os_string();
            own.push(".dockerignore");
            candidates.push(dockerfile.with_file_name(own));
        }
        candidates.push(context_dir.join(".dockerignore"));
        for path in candidates {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    return Self::parse_named(&name, &bytes);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(DockerignoreError::Read {
                        path: path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(Self::empty())
    }

    fn compile<'a>(
        file: &str,
        patterns: impl Iterator<Item = (usize, &'a [u8])>,
    ) -> Result<Self, DockerignoreError> {
        let mut rules = Vec::new();
        for (line, raw) in patterns {
            let trimmed = trim_space(raw);
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = gopath::clean(trimmed);
            let (exception, body) = match cleaned.split_first() {
                Some((b'!', body)) => (true, body),
                _ => (false, cleaned.as_slice()),
            };
            if exception && body.is_empty() {
                return Err(DockerignoreError::IllegalExclusion {
                    file: file.to_owned(),
                    line,
                });
            }
            let pattern =
                Pattern::compile(body).map_err(|_| DockerignoreError::InvalidPattern {
                    file: file.to_owned(),
                    line,
                    pattern: String::from_utf8_lossy(raw).into_owned(),
                })?;
            rules.push(Rule { pattern, exception });
        }
        let only_prefix_exceptions = rules.iter().filter(|r| r.exception).all(|r| {
            !without_trailing_glob(r.pattern.as_bytes())
                .iter()
                .any(|b| b"*[]?^\\".contains(b))
        });
        Ok(Self {
            rules,
            only_prefix_exceptions,
        })
    }

    /// True when no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when some pattern is an exception (`!…`).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// `MatchesUsingParentResults`: whether `path` (relative to the context root, `/`-separated)
    /// is excluded, given its parent directory's result. Pass `MatchInfo::default()` for an
    /// entry at the root or when the parent was never evaluated (parents are then tested by
    /// prefix). Returns the information to hand to `path`'s children.
    pub fn matches(&self, path: &[u8], parent: &MatchInfo) -> (bool, MatchInfo) {
        let mut matched = false;
        let mut info = vec![false; self.rules.len()];
        for (i, rule) in self.rules.iter().enumerate() {
            let mut hit = parent.0.get(i).copied().unwrap_or(false);
            if !hit {
                // An include only matters while the path is not yet excluded, an exception
                // only while it is: skipping is patternmatcher's optimisation, and it also
                // decides which per-pattern bits the children inherit.
                if rule.exception != matched {
                    continue;
                }
                hit = rule.pattern.matches(path);
                if !hit && parent.0.is_empty() {
                    hit = parent_dirs(path).any(|dir| rule.pattern.matches(dir));
                }
            }
            info[i] = hit;
            if hit {
                matched = !rule.exception;
            }
        }
        (matched, MatchInfo(info))
    }

    /// Whether `path` is excluded, evaluating its ancestors first exactly as the context walker
    /// reaches it.
    pub fn is_excluded(&self, path: &[u8]) -> bool {
        self.ancestry(path)
            .last()
            .is_some_and(|(_, excluded, _)| *excluded)
    }

    /// Each prefix of `path` (`a`, `a/b`, `a/b/c`) with its exclusion and match information.
    pub fn ancestry<'p>(&self, path: &'p [u8]) -> Vec<(&'p [u8], bool, MatchInfo)> {
        let mut out: Vec<(&[u8], bool, MatchInfo)> = Vec::new();
        if self.rules.is_empty() {
            return out;
        }
        let mut info = MatchInfo::default();
        for end in component_ends(path) {
            let prefix = &path[..end];
            let (excluded, next) = self.matches(prefix, &info);
            out.push((prefix, excluded, next.clone()));
            info = next;
        }
        out
    }

    /// For an *excluded* directory: must the walker still look inside it because an exception
    /// could re-include something below? (fsutil's pruning rule; pruning never hides an entry
    /// the matcher would keep.)
    pub fn should_descend(&self, dir: &[u8]) -> bool {
        if !self.has_exceptions() {
            return false;
        }
        if !self.only_prefix_exceptions {
            return true;
        }
        let mut dir_slash = dir.to_vec();
        dir_slash.push(b'/');
        self.rules.iter().filter(|r| r.exception).any(|r| {
            let mut p = without_trailing_glob(r.pattern.as_bytes()).to_vec();
            p.push(b'/');
            p.starts_with(&dir_slash)
        })
    }
}

/// fsutil's `patternWithoutTrailingGlob`: drop one trailing `/**`, then one trailing `/*`.
fn without_trailing_glob(p: &[u8]) -> &[u8] {
    let p = p.strip_suffix(b"/**").unwrap_or(p);
    p.strip_suffix(b"/*").unwrap_or(p)
}

/// `a`, `a/b` for `a/b/c`: the strict ancestors of a relative path.
fn parent_dirs(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let parent_len = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
    let parent = &path[..parent_len];
    component_ends(parent).map(move |end| &parent[..end])
}

/// End offsets of each `/`-separated prefix of `path`.
fn component_ends(path: &[u8]) -> impl Iterator<Item = usize> + '_ {
    path.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| i)
        .chain((!path.is_empty()).then_some(path.len()))
}
