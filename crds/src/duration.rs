//! Durations written the way Kubernetes and Go write them: `30m`, `1h30m`, `1.5h`, `500ms`.
//!
//! The spec keeps the user's string ([`GoDuration`]) so that a malformed value still deserializes
//! — the operator then reports `SpecInvalid` on the object instead of failing to decode it and
//! stalling its watch. [`parse`] is the single definition of the syntax; the schema's `pattern`
//! ([`crate::patterns::DURATION`]) accepts exactly the strings it accepts, and CEL's
//! `duration()` (Go's `time.ParseDuration`) reads them the same way.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::patterns;

/// The longest duration string the schema admits; longer ones are refused before parsing.
pub const MAX_LEN: usize = 64;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty: write a number and a unit, like 30m or 1h30m")]
    Empty,
    #[error("duration {input:?} is longer than {MAX_LEN} characters")]
    TooLong { input: String },
    #[error("duration {input:?} is malformed: {what}; write terms like 30m, 1h30m or 1.5h")]
    Malformed { input: String, what: &'static str },
    #[error("duration {input:?} has unknown unit {unit:?}: use h, m, s, ms, us or ns")]
    UnknownUnit { input: String, unit: String },
    #[error(
        "duration {input:?} is too large: the limit is about 292 years (Go's int64 nanoseconds)"
    )]
    Overflow { input: String },
}

/// A duration in Go syntax, as written in the spec.
///
/// `Deserialize` accepts any string on purpose (see the module docs); call [`GoDuration::parse`]
/// to get the value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GoDuration(String);

impl GoDuration {
    /// Wraps `text` without checking it.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The duration, or why the text is not one.
    pub fn parse(&self) -> Result<Duration, DurationError> {
        parse(&self.0)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for GoDuration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": patterns::DURATION,
            "maxLength": MAX_LEN,
        })
    }
}

/// Go's `time.Duration` is int64 nanoseconds; anything longer does not exist in CEL either.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parses a positive Go duration: one or more `<digits>[.<digits>]<unit>` terms with units `h`,
/// `m`, `s`, `ms`, `us`, `ns`. Fractions truncate toward zero at nanosecond precision, like Go.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    if input.len() > MAX_LEN {
        return Err(DurationError::TooLong {
            input: input.to_owned(),
        });
    }
    let malformed = |what| DurationError::Malformed {
        input: input.to_owned(),
        what,
    };
    let mut total: u128 = 0;
    let mut rest = input.as_bytes();
    while !rest.is_empty() {
        let (whole, after) = split_digits(rest);
        if whole.is_empty() {
            return Err(malformed("every term must start with a digit"));
        }
        rest = after;
        let mut fraction: &[u8] = &[];
        if let Some((b'.', after)) = rest.split_first() {
            let (digits, after) = split_digits(after);
            if digits.is_empty() {
                return Err(malformed("a '.' must be followed by digits"));
            }
            fraction = digits;
            rest = after;
        }
        let unit_len = rest
            .iter()
            .take_while(|b| !b.is_ascii_digit() && **b != b'.')
            .count();
        if unit_len == 0 {
            return Err(malformed("every number needs a unit"));
        }
        let (unit, after) = rest.split_at(unit_len);
        rest = after;
        let nanos_per_unit = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            input: input.to_owned(),
            unit: String::from_utf8_lossy(unit).into_owned(),
        })?;
        let term =
            term_nanos(whole, fraction, nanos_per_unit).ok_or_else(|| DurationError::Overflow {
                input: input.to_owned(),
            })?;
        total = total.saturating_add(term);
        if total > MAX_NANOS {
            return Err(DurationError::Overflow {
                input: input.to_owned(),
            });
        }
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow {
        input: input.to_owned(),
    })?;
    // The remainder of a division by 1e9 always fits in u32.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration the way Go's `Duration.String()` does for whole seconds and above
/// (`1h30m0s`), falling back to milliseconds below a second. Used in messages and the request.
pub fn format(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

fn split_digits(bytes: &[u8]) -> (&[u8], &[u8]) {
    let n = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    bytes.split_at(n)
}

fn unit_nanos(unit: &[u8]) -> Option<u128> {
    Some(match unit {
        b"ns" => 1,
        b"us" => 1_000,
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60 * 1_000_000_000,
        b"h" => 3600 * 1_000_000_000,
        _ => return None,
    })
}

/// `whole.fraction × unit` in nanoseconds, or `None` past [`MAX_NANOS`].
fn term_nanos(whole: &[u8], fraction: &[u8], unit: u128) -> Option<u128> {
    let mut value: u128 = 0;
    for digit in whole {
        value = value
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
        if value > MAX_NANOS {
            return None;
        }
    }
    let mut nanos = value.checked_mul(unit)?;
    // Digits past the 19th change the result by less than a nanosecond (unit <= 3.6e12 ns), so
    // they are dropped before they could overflow the scale.
    let fraction = &fraction[..fraction.len().min(19)];
    let mut numerator: u128 = 0;
    let mut scale: u128 = 1;
    for digit in fraction {
        numerator = numerator * 10 + u128::from(digit - b'0');
        scale *= 10;
    }
    nanos = nanos.checked_add(numerator * unit / scale)?;
    (nanos <= MAX_NANOS).then_some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> Duration {
        parse(input).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn accepts_go_syntax() {
        let cases: &[(&str, Duration)] = &[
            ("30m", Duration::from_secs(1800)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5h", Duration::from_secs(5400)),
            ("90s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("1h1m1s1ms1us1ns", Duration::new(3661, 1_001_001)),
            ("0s", Duration::ZERO),
            ("2h0m0s", Duration::from_secs(7200)),
            ("0.5s", Duration::from_millis(500)),
            ("1.0000000001s", Duration::new(1, 0)),
            ("1.999999999999s", Duration::new(1, 999_999_999)),
            ("10m10m", Duration::from_secs(1200)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ];
        for (input, want) in cases {
            assert_eq!(ok(input), *want, "{input}");
        }
    }

    type Expect = fn(&DurationError) -> bool;

    #[test]
    fn refuses_malformed() {
        let cases: &[(&str, Expect)] = &[
            ("", |e| matches!(e, DurationError::Empty)),
            ("30", |e| matches!(e, DurationError::Malformed { .. })),
            ("m", |e| matches!(e, DurationError::Malformed { .. })),
            ("-5m", |e| matches!(e, DurationError::Malformed { .. })),
            ("+5m", |e| matches!(e, DurationError::Malformed { .. })),
            ("1.m", |e| matches!(e, DurationError::Malformed { .. })),
            (".5m", |e| matches!(e, DurationError::Malformed { .. })),
            ("1 h", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("1h.5m", |e| matches!(e, DurationError::Malformed { .. })),
            ("5d", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("5µs", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("5M", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("5hours", |e| matches!(e, DurationError::UnknownUnit { .. })),
            ("2562048h", |e| matches!(e, DurationError::Overflow { .. })),
            ("99999999999999999999999s", |e| {
                matches!(e, DurationError::Overflow { .. })
            }),
            ("9223372036s9223372036s", |e| {
                matches!(e, DurationError::Overflow { .. })
            }),
            (&"1s".repeat(33), |e| {
                matches!(e, DurationError::TooLong { .. })
            }),
        ];
        for (input, expected) in cases {
            let err = parse(input).expect_err(input);
            assert!(expected(&err), "{input}: unexpected {err:?}");
        }
    }

    /// The schema pattern and the parser must agree on every string, or the apiserver would admit
    /// what the operator then calls SpecInvalid (or the reverse).
    #[test]
    fn pattern_agrees_with_parser() {
        let samples = [
            "30m", "1h30m", "1.5h", "0s", "500ms", "1us", "3ns", "30", "m", "-5m", "1.m", ".5m",
            "5d", "5µs", "1 h", "", "1h-1m", "1e3s", "0x10s", "１s", "10mm", "1msm",
        ];
        for s in samples {
            let parsed = parse(s).is_ok();
            let matched = patterns::matches(patterns::DURATION, s);
            assert_eq!(parsed, matched, "{s:?}: parser {parsed}, pattern {matched}");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(1800)), "30m0s");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format(Duration::from_secs(45)), "45s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(
            ok(&format(Duration::from_secs(98_765))),
            Duration::from_secs(98_765)
        );
    }
}
