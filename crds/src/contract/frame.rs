//! The termination-message frame: `STRATUM-RESULT/<version> <length> <crc32>\n<json>`.
//!
//! `length` is the decimal byte length of the JSON and `crc32` its CRC-32 as 8 lowercase hex
//! digits. A reader that gets fewer bytes than the header promises knows the message was cut
//! (the kubelet truncates silently); one whose checksum differs knows it was altered. Either way
//! it refuses the result instead of reading a partial digest.

use super::RESULT_VERSION;
use super::crc32::crc32;
use super::result::{BuildResult, Wire};

const MAGIC: &str = "STRATUM-RESULT/";

/// Why a termination message is not a usable [`BuildResult`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("the builder left no result (empty termination message)")]
    Empty,
    #[error(
        "the builder's result was cut short after {got} bytes{}; the termination message limit is \
         4096 bytes per container, less with more than three containers",
        .expected.map(|e| format!(" of {e}")).unwrap_or_default()
    )]
    Truncated {
        /// The message's full length, when the header that says it arrived.
        expected: Option<usize>,
        got: usize,
    },
    #[error("the builder's result is corrupt: CRC-32 {actual:08x}, header says {expected:08x}")]
    Checksum { expected: u32, actual: u32 },
    #[error(
        "the builder's result has version {found}; this operator reads version {RESULT_VERSION}: upgrade the operator or pin the builder image"
    )]
    Version { found: u32 },
    #[error("the builder's result is malformed: {what}")]
    Malformed { what: String },
}

impl ResultError {
    /// The condition reason the operator reports for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            ResultError::Truncated { .. } => crate::reason::RESULT_TRUNCATED,
            _ => crate::reason::RESULT_INVALID,
        }
    }
}

fn malformed(what: impl Into<String>) -> ResultError {
    ResultError::Malformed { what: what.into() }
}

/// Frames the wire form.
pub(super) fn frame(wire: &Wire) -> String {
    // Serializing plain structs of strings and integers cannot fail.
    let json = serde_json::to_string(wire).unwrap_or_default();
    format!(
        "{MAGIC}{} {} {:08x}\n{json}",
        wire.v,
        json.len(),
        crc32(json.as_bytes())
    )
}

/// Parses a termination message, failing closed: a cut, corrupted, unknown-version or malformed
/// message is an error, never a partial result.
pub fn parse_termination_message(message: &str) -> Result<BuildResult, ResultError> {
    if message.is_empty() {
        return Err(ResultError::Empty);
    }
    let truncated = || ResultError::Truncated {
        expected: None,
        got: message.len(),
    };
    let Some(rest) = message.strip_prefix(MAGIC) else {
        return Err(if MAGIC.starts_with(message) {
            truncated()
        } else {
            malformed("it does not start with STRATUM-RESULT/")
        });
    };
    let (version, rest) = field(rest, b' ').ok_or_else(truncated)?;
    let version = number(version, "version")?;
    if version != u64::from(RESULT_VERSION) {
        return Err(ResultError::Version {
            found: u32::try_from(version).unwrap_or(u32::MAX),
        });
    }
    let (length, rest) = field(rest, b' ').ok_or_else(truncated)?;
    let length = usize::try_from(number(length, "length")?).map_err(|_| malformed("length"))?;
    let (checksum, payload) = field(rest, b'\n').ok_or_else(truncated)?;
    if checksum.len() != 8
        || !checksum
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(malformed("the checksum is not 8 lowercase hex digits"));
    }
    let expected = u32::from_str_radix(checksum, 16).map_err(|_| malformed("checksum"))?;
    if payload.len() < length {
        return Err(ResultError::Truncated {
            expected: Some(message.len() - payload.len() + length),
            got: message.len(),
        });
    }
    let (json, trailer) = payload.split_at(length);
    if !trailer.trim().is_empty() {
        return Err(malformed("there are bytes after the result"));
    }
    let actual = crc32(json.as_bytes());
    if actual != expected {
        return Err(ResultError::Checksum { expected, actual });
    }
    let wire: Wire = serde_json::from_str(json).map_err(|e| malformed(e.to_string()))?;
    if wire.v != RESULT_VERSION {
        return Err(ResultError::Version { found: wire.v });
    }
    BuildResult::from_wire(wire).map_err(malformed)
}

/// Splits `text` at the first `end` byte; `None` when the text ends first (a cut header).
fn field(text: &str, end: u8) -> Option<(&str, &str)> {
    let i = text.bytes().position(|b| b == end)?;
    Some((&text[..i], &text[i + 1..]))
}

fn number(digits: &str, what: &str) -> Result<u64, ResultError> {
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!("the {what} is not a decimal number")));
    }
    digits
        .parse()
        .map_err(|_| malformed(format!("the {what} is not a decimal number")))
}
