//! One `.dockerignore` pattern, matched the way moby/patternmatcher matches it.
//!
//! patternmatcher does not call `filepath.Match`: it translates each pattern into a regular
//! expression over the *whole* slash-separated path (`*` → `[^/]*`, `?` → `[^/]`, `**` →
//! `(.*/)?`, or `.*` at the end) and short-cuts three shapes: a pattern without wildcards is an
//! exact comparison, `prefix/**` a prefix test and `**…` (a leading `**` followed only by plain
//! characters) a suffix test. Those short cuts are observable (`a**` matches `abc/d`, `**foo`
//! matches `xfoo`), so this module reproduces the classification token for token and matches the
//! token list with a small memoised matcher instead of building a regex.
//!
//! Known, deliberate differences from the Go regex translation, all in patterns no real
//! `.dockerignore` uses: inside `[…]` a `*` or `?` is a literal (moby splices `[^/]*` into the
//! class), `[[:alpha:]]` is Go's class of `[`, `:`, `a`… (RE2 would read a POSIX class), a
//! backslash always escapes the next character literally (RE2 would read `\d` as a digit class)
//! and `^` outside a class is a literal (RE2 would read an anchor).

use super::gopath::{self, RuneClass, decode_rune};

/// How a compiled pattern is matched (patternmatcher's `matchType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Byte-for-byte equality with the cleaned pattern.
    Exact,
    /// `path.starts_with(pattern minus its trailing "**")`.
    Prefix,
    /// `path.ends_with(pattern minus its leading "**")`, or `**/x` matching `x`.
    Suffix,
    /// The token list must match the whole path.
    Tokens,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    /// `[^/]*`
    Star,
    /// `[^/]`
    AnyRune,
    /// `[…]` / `[^…]`, one rune.
    Class(RuneClass),
    /// `(.*/)?`: nothing, or anything ending in `/` (`.` does not match a newline).
    AnyDirs,
    /// `.*` (a trailing `**` after a wildcard).
    AnyTail,
}

/// A compiled, validated pattern (without its `!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    cleaned: Vec<u8>,
    kind: Kind,
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles an already cleaned pattern. Syntax is checked with Go's `filepath.Match(p, ".")`,
    /// exactly as patternmatcher does.
    pub fn compile(cleaned: &[u8]) -> Result<Self, gopath::BadPattern> {
        gopath::match_pattern(cleaned, b".")?;
        let mut kind = Kind::Exact;
        let mut tokens: Vec<Token> = Vec::new();
        let literal = |tokens: &mut Vec<Token>, bytes: &[u8]| match tokens.last_mut() {
            Some(Token::Literal(l)) => l.extend_from_slice(bytes),
            _ => tokens.push(Token::Literal(bytes.to_vec())),
        };
        let mut i = 0;
        let mut step = 0;
        while i < cleaned.len() {
            let c = cleaned[i];
            i += 1;
            match c {
                b'*' if cleaned.get(i) == Some(&b'*') => {
                    i += 1;
                    // `**/` is treated as `**`.
                    if cleaned.get(i) == Some(&b'/') {
                        i += 1;
                    }
                    if i == cleaned.len() {
                        // A trailing `**` accepts everything below, as in .gitignore.
                        if kind == Kind::Exact {
                            kind = Kind::Prefix;
                        } else {
                            tokens.push(Token::AnyTail);
                            kind = Kind::Tokens;
                        }
                    } else {
                        tokens.push(Token::AnyDirs);
                        kind = Kind::Tokens;
                    }
                    if step == 0 {
                        kind = Kind::Suffix;
                    }
                }
                b'*' => {
                    tokens.push(Token::Star);
                    kind = Kind::Tokens;
                }
                b'?' => {
                    tokens.push(Token::AnyRune);
                    kind = Kind::Tokens;
                }
                b'\\' => {
                    // Validation rejected a trailing backslash, so a byte follows.
                    if let Some(&next) = cleaned.get(i) {
                        i += 1;
                        literal(&mut tokens, &[next]);
                        kind = Kind::Tokens;
                    }
                }
                b'[' => {
                    let (class, rest) = gopath::parse_class(&cleaned[i..])?;
                    i = cleaned.len() - rest.len();
                    tokens.push(Token::Class(class));
                    kind = Kind::Tokens;
                }
                b']' => {
                    literal(&mut tokens, b"]");
                    kind = Kind::Tokens;
                }
                _ => literal(&mut tokens, &[c]),
            }
            step += 1;
        }
        Ok(Self {
            cleaned: cleaned.to_vec(),
            kind,
            tokens,
        })
    }

    /// The cleaned pattern text (without `!`).
    pub fn as_bytes(&self) -> &[u8] {
        &self.cleaned
    }

    /// Whether the pattern matches `path` (relative, slash-separated, no leading `/`).
    pub fn matches(&self, path: &[u8]) -> bool {
        match self.kind {
            Kind::Exact => path == self.cleaned.as_slice(),
            Kind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || (suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            Kind::Tokens => TokenMatcher::new(&self.tokens, path).run(),
        }
    }
}

/// Memoised matcher over (token index, byte position): a pattern of n wildcards cannot go
/// exponential on a long path.
struct TokenMatcher<'a> {
    tokens: &'a [Token],
    path: &'a [u8],
    memo: Vec<Option<bool>>,
}

impl<'a> TokenMatcher<'a> {
    fn new(tokens: &'a [Token], path: &'a [u8]) -> Self {
        Self {
            tokens,
            path,
            memo: vec![None; (tokens.len() + 1) * (path.len() + 1)],
        }
    }

    fn run(&mut self) -> bool {
        self.at(0, 0)
    }

    fn at(&mut self, t: usize, pos: usize) -> bool {
        let slot = t * (self.path.len() + 1) + pos;
        if let Some(known) = self.memo[slot] {
            return known;
        }
        let result = self.compute(t, pos);
        self.memo[slot] = Some(result);
        result
    }

    fn compute(&mut self, t: usize, pos: usize) -> bool {
        let path = self.path;
        let Some(token) = self.tokens.get(t) else {
            return pos == path.len();
        };
        let rest = &path[pos..];
        match token {
            Token::Literal(l) => rest.starts_with(l) && self.at(t + 1, pos + l.len()),
            Token::AnyRune | Token::Class(_) => {
                if rest.is_empty() {
                    return false;
                }
                let (r, n) = decode_rune(rest);
                let ok = match token {
                    Token::Class(class) => class.matches(r) != class.negated,
                    _ => r != '/',
                };
                ok && self.at(t + 1, pos + n)
            }
            Token::Star | Token::AnyTail => {
                // `[^/]*` stops at `/`; `.*` stops at a newline.
                let stop = if *token == Token::Star { '/' } else { '\n' };
                let mut p = pos;
                loop {
                    if self.at(t + 1, p) {
                        return true;
                    }
                    if p == path.len() {
                        return false;
                    }
                    let (r, n) = decode_rune(&path[p..]);
                    if r == stop {
                        return false;
                    }
                    p += n;
                }
            }
            Token::AnyDirs => {
                if self.at(t + 1, pos) {
                    return true;
                }
                let mut p = pos;
                while p < path.len() {
                    let (r, n) = decode_rune(&path[p..]);
                    if r == '\n' {
                        return false;
                    }
                    p += n;
                    if r == '/' && self.at(t + 1, p) {
                        return true;
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(p: &str) -> Kind {
        Pattern::compile(p.as_bytes()).unwrap().kind
    }

    #[test]
    fn classification_follows_patternmatcher_compile() {
        // patternmatcher_test.go compileTests.
        assert_eq!(kind_of("*"), Kind::Tokens);
        assert_eq!(kind_of("file*"), Kind::Tokens);
        assert_eq!(kind_of("**"), Kind::Suffix);
        assert_eq!(kind_of("**/**"), Kind::Tokens);
        assert_eq!(kind_of("dir/**"), Kind::Prefix);
        assert_eq!(kind_of("**/dir"), Kind::Suffix);
        assert_eq!(kind_of("**/dir2/*"), Kind::Tokens);
        assert_eq!(kind_of("**file"), Kind::Suffix);
        assert_eq!(kind_of("a[b-d]e"), Kind::Tokens);
        assert_eq!(kind_of(".*"), Kind::Tokens);
        assert_eq!(kind_of("abc.def"), Kind::Exact);
        assert_eq!(kind_of("a(b)c/def"), Kind::Exact);
        assert_eq!(kind_of("a\\*b"), Kind::Tokens);
    }

    #[test]
    fn star_star_in_the_middle_is_any_number_of_directories() {
        let p = Pattern::compile(b"a/**/b").unwrap();
        assert!(p.matches(b"a/b"));
        assert!(p.matches(b"a/x/b"));
        assert!(p.matches(b"a/x/y/z/b"));
        assert!(!p.matches(b"a/xb"));
        // `(.*/)?` never crosses a newline, like RE2's `.`.
        assert!(!p.matches(b"a/x\ny/b"));
    }

    #[test]
    fn many_stars_stay_fast() {
        let p = Pattern::compile(b"*a*a*a*a*a*a*a*a*a*a*b").unwrap();
        let long = vec![b'a'; 4000];
        assert!(!p.matches(&long));
    }
}
