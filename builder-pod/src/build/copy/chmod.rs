//! `--chmod`: an octal mode or, since Dockerfile 1.14, a symbolic one like chmod(1)'s.
//!
//! BuildKit accepts octal up to `07777` (which replaces all permission and special bits) and
//! otherwise parses a symbolic mode (`u+x`, `go-w`, `u=rw,g=r,o=r`, `a+X`) that is applied to
//! each copied entry's own mode. A value that looks numeric but is not valid octal keeps
//! Docker's historical message.

use std::fmt;

/// A parsed `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Replaces `mode & 0o7777`.
    Octal(u32),
    /// Clauses applied in order.
    Symbolic(Vec<Clause>),
}

/// One `who op perms` clause of a symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Bits of `u`, `g`, `o` (as 0o4, 0o2, 0o1); none given means all three.
    who: u8,
    actions: Vec<(Op, Perms)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Set,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Perms {
    /// `r`, `w`, `x`, `X`, `s`, `t` as bits 1, 2, 4, 8, 16, 32.
    Letters(u8),
    /// Copy another class's current bits (`g=u`).
    Copy(u8),
}

/// Why a `--chmod` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChmodError {
    #[error("invalid chmod parameter: '{0}'. it should be octal string and between 0 and 07777")]
    Octal(String),
    #[error("invalid chmod parameter: '{0}': not an octal mode or a symbolic mode like u+x,go-w")]
    Symbolic(String),
}

impl Chmod {
    /// Parses a `--chmod` value as BuildKit does.
    pub fn parse(text: &str) -> Result<Self, ChmodError> {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return match u32::from_str_radix(text, 8) {
                Ok(mode) if mode <= 0o7777 => Ok(Self::Octal(mode)),
                _ => Err(ChmodError::Octal(text.to_owned())),
            };
        }
        parse_symbolic(text)
            .map(Self::Symbolic)
            .ok_or_else(|| ChmodError::Symbolic(text.to_owned()))
    }

    /// The new `mode & 0o7777` of an entry whose current mode is `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Self::Octal(m) => *m,
            Self::Symbolic(clauses) => {
                let mut mode = mode & 0o7777;
                for clause in clauses {
                    mode = clause.apply(mode, is_dir);
                }
                mode
            }
        }
    }
}

impl From<u32> for Chmod {
    fn from(mode: u32) -> Self {
        Self::Octal(mode & 0o7777)
    }
}

impl fmt::Display for Chmod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Octal(m) => write!(f, "{m:04o}"),
            Self::Symbolic(clauses) => write!(f, "{} symbolic clause(s)", clauses.len()),
        }
    }
}

fn parse_symbolic(text: &str) -> Option<Vec<Clause>> {
    let mut clauses = Vec::new();
    for part in text.split(',') {
        let bytes = part.as_bytes();
        let mut i = 0;
        let mut who = 0u8;
        while let Some(&c) = bytes.get(i) {
            who |= match c {
                b'u' => 0o4,
                b'g' => 0o2,
                b'o' => 0o1,
                b'a' => 0o7,
                _ => break,
            };
            i += 1;
        }
        let mut actions = Vec::new();
        while let Some(&c) = bytes.get(i) {
            let op = match c {
                b'+' => Op::Add,
                b'-' => Op::Remove,
                b'=' => Op::Set,
                _ => return None,
            };
            i += 1;
            let perms = match bytes.get(i) {
                Some(b'u') => Perms::Copy(0o4),
                Some(b'g') => Perms::Copy(0o2),
                Some(b'o') => Perms::Copy(0o1),
                _ => {
                    let mut letters = 0u8;
                    while let Some(&c) = bytes.get(i) {
                        letters |= match c {
                            b'r' => 1,
                            b'w' => 2,
                            b'x' => 4,
                            b'X' => 8,
                            b's' => 16,
                            b't' => 32,
                            _ => break,
                        };
                        i += 1;
                    }
                    Perms::Letters(letters)
                }
            };
            if matches!(perms, Perms::Copy(_)) {
                i += 1;
            }
            actions.push((op, perms));
        }
        if actions.is_empty() || i != bytes.len() {
            return None;
        }
        clauses.push(Clause { who, actions });
    }
    Some(clauses)
}

impl Clause {
    fn apply(&self, mut mode: u32, is_dir: bool) -> u32 {
        let who = if self.who == 0 { 0o7 } else { self.who };
        // rwx bits of every selected class, as a mask.
        let spread = |rwx: u32| -> u32 {
            let mut out = 0;
            for (class, shift) in [(0o4u8, 6), (0o2, 3), (0o1, 0)] {
                if who & class != 0 {
                    out |= (rwx & 0o7) << shift;
                }
            }
            out
        };
        for &(op, perms) in &self.actions {
            let bits = match perms {
                Perms::Copy(class) => {
                    let shift = match class {
                        0o4 => 6,
                        0o2 => 3,
                        _ => 0,
                    };
                    spread((mode >> shift) & 0o7)
                }
                Perms::Letters(l) => {
                    let mut rwx = 0;
                    if l & 1 != 0 {
                        rwx |= 0o4;
                    }
                    if l & 2 != 0 {
                        rwx |= 0o2;
                    }
                    // `X`: execute only for directories or entries someone may already execute.
                    if l & 4 != 0 || (l & 8 != 0 && (is_dir || mode & 0o111 != 0)) {
                        rwx |= 0o1;
                    }
                    let mut bits = spread(rwx);
                    if l & 16 != 0 {
                        if who & 0o4 != 0 {
                            bits |= 0o4000;
                        }
                        if who & 0o2 != 0 {
                            bits |= 0o2000;
                        }
                    }
                    if l & 32 != 0 && who & 0o1 != 0 {
                        bits |= 0o1000;
                    }
                    bits
                }
            };
            mode = match op {
                Op::Add => mode | bits,
                Op::Remove => mode & !bits,
                Op::Set => {
                    let mut clear = spread(0o7);
                    if who & 0o4 != 0 {
                        clear |= 0o4000;
                    }
                    if who & 0o2 != 0 {
                        clear |= 0o2000;
                    }
                    if who & 0o1 != 0 {
                        clear |= 0o1000;
                    }
                    (mode & !clear) | bits
                }
            };
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_apply_table() {
        // (value, mode before, is_dir, mode after) — the after values are what chmod(1) gives.
        let table: &[(&str, u32, bool, u32)] = &[
            ("0644", 0o777, false, 0o644),
            ("777", 0o600, false, 0o777),
            ("0", 0o755, false, 0o000),
            ("4755", 0o644, false, 0o4755),
            ("go-w", 0o666, false, 0o644),
            ("u=rw,g=r,o=r", 0o777, false, 0o644),
            ("a+X", 0o666, false, 0o666),
            ("a+X", 0o766, false, 0o777),
            ("a+X", 0o124, true, 0o135),
            ("go-w", 0o124, true, 0o104),
            ("u+rw,g+r,o-x,o+w", 0o124, true, 0o766),
            ("+x", 0o644, false, 0o755),
            ("u+s", 0o755, false, 0o4755),
            ("g=u", 0o740, false, 0o770),
            ("o=", 0o777, false, 0o770),
            ("+t", 0o777, true, 0o1777),
        ];
        for (value, before, is_dir, after) in table {
            let chmod = Chmod::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(
                chmod.apply(*before, *is_dir),
                *after,
                "chmod {value} on {before:o}"
            );
        }
    }

    #[test]
    fn invalid_values_keep_dockers_message() {
        for bad in ["10000", "8", "99999999999"] {
            assert_eq!(
                Chmod::parse(bad).unwrap_err().to_string(),
                format!(
                    "invalid chmod parameter: '{bad}'. it should be octal string and between 0 and 07777"
                )
            );
        }
        for bad in ["64a", "u+q", "", "z=r", "u", "+x,"] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?}");
        }
    }
}
