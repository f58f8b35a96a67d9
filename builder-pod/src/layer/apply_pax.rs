//! Pure decoding of tar header fields and PAX records.
//!
//! We decode these ourselves, strictly, instead of through the `tar` crate's helpers, because
//! the lenient helpers are where parsers disagree (§2.3 #23):
//! - `tar::PaxExtensions` splits records on `\n`, but a PAX record is length-prefixed and its
//!   value may contain newlines and arbitrary bytes (binary `SCHILY.xattr.security.capability`
//!   values do); and `pax_extensions_value` stops at the first malformed record, silently
//!   dropping a later `size` that GNU tar and Go would honour.
//! - base-256 numbers longer than 8 bytes are truncated to their low 8 bytes, and negative
//!   ones read as huge positives.
//!
//! Anything that is not exactly well formed is an error here, so the caller refuses the archive.

use super::apply_error::TarDefect;

/// One `key=value` record of a PAX extended header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PaxRecord {
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
}

/// Splits a PAX extended header body into records (`"%d %s=%s\n"`, the length counting the
/// whole record, POSIX.1-2008 pax "Extended Header"). Trailing NUL padding is tolerated, as Go
/// does; anything else malformed is refused.
pub(crate) fn parse_pax_records(mut body: &[u8]) -> Result<Vec<PaxRecord>, TarDefect> {
    let mut records = Vec::new();
    while !body.is_empty() {
        if body.iter().all(|byte| *byte == 0) {
            break;
        }
        let space = body
            .iter()
            .position(|byte| *byte == b' ')
            .ok_or(TarDefect::PaxRecord)?;
        let length_digits = &body[..space];
        if length_digits.is_empty()
            || !length_digits.iter().all(u8::is_ascii_digit)
            || length_digits.len() > 10
        {
            return Err(TarDefect::PaxRecord);
        }
        let length: usize = std::str::from_utf8(length_digits)
            .ok()
            .and_then(|digits| digits.parse().ok())
            .ok_or(TarDefect::PaxRecord)?;
        if length <= space + 1 || length > body.len() || body[length - 1] != b'\n' {
            return Err(TarDefect::PaxRecord);
        }
        let record = &body[space + 1..length - 1];
        let equals = record
            .iter()
            .position(|byte| *byte == b'=')
            .ok_or(TarDefect::PaxRecord)?;
        let key = std::str::from_utf8(&record[..equals]).map_err(|_| TarDefect::PaxRecord)?;
        if key.is_empty() || key.contains('\0') {
            return Err(TarDefect::PaxRecord);
        }
        records.push(PaxRecord {
            key: key.to_owned(),
            value: record[equals + 1..].to_vec(),
        });
        body = &body[length..];
    }
    Ok(records)
}

/// A PAX decimal integer: ASCII digits only (no sign, no blanks), at most `i64::MAX` as Go's
/// `strconv.ParseInt(v, 10, 64)` requires.
pub(crate) fn pax_decimal(key: &str, value: &[u8]) -> Result<u64, TarDefect> {
    let bad = || TarDefect::PaxValue {
        key: key.to_owned(),
    };
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let parsed: u64 = std::str::from_utf8(value)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(bad)?;
    if parsed > i64::MAX as u64 {
        return Err(bad());
    }
    Ok(parsed)
}

/// A point in time: seconds since the epoch (may be negative) and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Timestamp {
    pub(crate) seconds: i64,
    pub(crate) nanos: u32,
}

/// A PAX time value: `[-]digits[.digits]`.
pub(crate) fn pax_time(key: &str, value: &[u8]) -> Result<Timestamp, TarDefect> {
    let bad = || TarDefect::PaxValue {
        key: key.to_owned(),
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |s: &str| s.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
        return Err(bad());
    }
    let seconds: i64 = whole.parse().map_err(|_| bad())?;
    let mut nanos_text: String = fraction.chars().take(9).collect();
    while nanos_text.len() < 9 {
        nanos_text.push('0');
    }
    let nanos: u32 = nanos_text.parse().map_err(|_| bad())?;
    if !negative {
        return Ok(Timestamp { seconds, nanos });
    }
    // -1.25 is 1.25 s before the epoch: seconds -2, nanos 750_000_000.
    Ok(if nanos == 0 {
        Timestamp {
            seconds: -seconds,
            nanos: 0,
        }
    } else {
        Timestamp {
            seconds: -seconds - 1,
            nanos: 1_000_000_000 - nanos,
        }
    })
}

/// A numeric header field: octal ASCII padded with spaces/NULs, or GNU base-256 (high bit of
/// the first byte set; `0xff` first byte = negative two's complement).
///
/// Returns `None` for a field with no digits at all, which Go reads as 0 and GNU tar as an
/// error: callers decide whether that ambiguity matters for the field.
pub(crate) fn header_number(field: &[u8], name: &'static str) -> Result<Option<i64>, TarDefect> {
    let bad = || TarDefect::BadNumber { field: name };
    match field.first() {
        Some(0x80) => {
            let mut value: u64 = 0;
            for (index, byte) in field[1..].iter().enumerate() {
                let remaining = field.len() - 1 - index;
                if remaining > 8 && *byte != 0 {
                    return Err(bad());
                }
                value = (value << 8) | u64::from(*byte);
            }
            i64::try_from(value).map(Some).map_err(|_| bad())
        }
        Some(0xff) => {
            let mut value: i64 = -1;
            for (index, byte) in field[1..].iter().enumerate() {
                let remaining = field.len() - 1 - index;
                if remaining > 8 && *byte != 0xff {
                    return Err(bad());
                }
                value = (value << 8) | i64::from(*byte);
            }
            if value >= 0 {
                Err(bad())
            } else {
                Ok(Some(value))
            }
        }
        Some(first) if first & 0x80 != 0 => Err(bad()),
        _ => {
            let trimmed = trim_blanks(field);
            if trimmed.is_empty() {
                return Ok(None);
            }
            if !trimmed.iter().all(|byte| (b'0'..=b'7').contains(byte)) {
                return Err(bad());
            }
            let text = std::str::from_utf8(trimmed).map_err(|_| bad())?;
            i64::from_str_radix(text, 8).map(Some).map_err(|_| bad())
        }
    }
}

/// A numeric field that must be present and non-negative.
pub(crate) fn header_unsigned(field: &[u8], name: &'static str) -> Result<u64, TarDefect> {
    match header_number(field, name)? {
        Some(value) if value >= 0 => Ok(value as u64),
        _ => Err(TarDefect::BadNumber { field: name }),
    }
}

/// A numeric field where an all-blank field means 0 (Go's reading; GNU tar agrees for the
/// fields that do not frame the stream, such as device numbers in non-device entries).
pub(crate) fn header_unsigned_or_zero(field: &[u8], name: &'static str) -> Result<u64, TarDefect> {
    match header_number(field, name)? {
        None => Ok(0),
        Some(value) if value >= 0 => Ok(value as u64),
        Some(_) => Err(TarDefect::BadNumber { field: name }),
    }
}

/// Strips leading and trailing spaces and NULs, as Go's `parseOctal` does.
fn trim_blanks(field: &[u8]) -> &[u8] {
    let blank = |byte: &u8| *byte == b' ' || *byte == 0;
    let start = field
        .iter()
        .position(|byte| !blank(byte))
        .unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|byte| !blank(byte))
        .map_or(start, |index| index + 1);
    &field[start..end]
}

/// A NUL-terminated header string (name, linkname, prefix, magic).
pub(crate) fn header_string(field: &[u8]) -> &[u8] {
    match field.iter().position(|byte| *byte == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

/// Whether the 8-byte checksum field matches the block, summed as unsigned or as signed bytes
/// (both GNU tar and Go accept either; old Sun tars used signed sums).
pub(crate) fn checksum_matches(block: &[u8; 512]) -> Result<bool, TarDefect> {
    let stored = header_unsigned(&block[148..156], "chksum")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (index, byte) in block.iter().enumerate() {
        let byte = if (148..156).contains(&index) {
            b' '
        } else {
            *byte
        };
        unsigned += u64::from(byte);
        signed += i64::from(byte as i8);
    }
    Ok(stored == unsigned || i64::try_from(stored) == Ok(signed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &[u8]) -> Vec<u8> {
        let payload_len = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut digits = 1;
        while (payload_len + digits).to_string().len() != digits {
            digits += 1;
        }
        let mut out = format!("{} {key}=", payload_len + digits).into_bytes();
        out.extend_from_slice(value);
        out.push(b'\n');
        out
    }

    #[test]
    fn pax_records_are_length_prefixed_not_line_split() {
        let capability = [0x01, 0x00, 0x00, 0x02, 0x0a, 0x00, b'\n', 0x00];
        let mut body = record("path", b"a\nb");
        body.extend(record("SCHILY.xattr.security.capability", &capability));
        body.extend(record("size", b"12"));
        let records = parse_pax_records(&body).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].value, b"a\nb");
        assert_eq!(records[1].value, capability);
        assert_eq!(
            records[2],
            PaxRecord {
                key: "size".into(),
                value: b"12".to_vec()
            }
        );
    }

    #[test]
    fn malformed_pax_records_are_refused() {
        let table: &[&[u8]] = &[
            b"5 a=b\n",  // length too short for the record
            b"7 a=b\nx", // length points past the newline
            b"6 ab\n\n", // no '='
            b"x6 a=b\n", // junk before the length
            b"06a=b\n",  // no space
            b"7 =bb\n",  // empty key
            b"99 a=b\n", // runs past the body
            b"-6 a=b\n", // sign
        ];
        for body in table {
            assert_eq!(
                parse_pax_records(body),
                Err(TarDefect::PaxRecord),
                "{body:?}"
            );
        }
        assert_eq!(parse_pax_records(b"6 a=b\n\0\0\0").unwrap().len(), 1);
    }

    #[test]
    fn pax_numbers_and_times() {
        assert_eq!(pax_decimal("size", b"1024"), Ok(1024));
        for bad in [
            &b""[..],
            b"+1",
            b" 1",
            b"1 ",
            b"0x10",
            b"-1",
            b"9223372036854775808",
        ] {
            assert!(pax_decimal("size", bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            pax_time("mtime", b"1700000000.5"),
            Ok(Timestamp {
                seconds: 1_700_000_000,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            pax_time("mtime", b"-1.25"),
            Ok(Timestamp {
                seconds: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(
            pax_time("mtime", b"7"),
            Ok(Timestamp {
                seconds: 7,
                nanos: 0
            })
        );
        assert!(pax_time("mtime", b"1.2.3").is_err());
        assert!(pax_time("mtime", b"").is_err());
    }

    #[test]
    fn header_numbers_octal_and_base256() {
        assert_eq!(header_number(b"0000644\0", "mode"), Ok(Some(0o644)));
        assert_eq!(header_number(b"  644 \0\0", "mode"), Ok(Some(0o644)));
        assert_eq!(header_number(b"\0\0\0\0\0\0\0\0", "mode"), Ok(None));
        assert!(header_number(b"00 644\0\0", "mode").is_err());
        assert!(header_number(b"0000899\0", "mode").is_err());
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 0x01;
        big[10] = 0x02;
        assert_eq!(header_number(&big, "size"), Ok(Some(0x0201)));
        big[2] = 0x01; // a bit above the 64 we can hold: refused, not truncated
        assert!(header_number(&big, "size").is_err());
        let negative = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
        ];
        assert_eq!(header_number(&negative, "mtime"), Ok(Some(-2)));
        assert!(header_unsigned(&negative, "size").is_err());
        assert_eq!(
            header_unsigned_or_zero(b"\0\0\0\0\0\0\0\0", "devmajor"),
            Ok(0)
        );
        assert!(header_unsigned(b"\0\0\0\0\0\0\0\0\0\0\0\0", "size").is_err());
    }

    #[test]
    fn checksum_accepts_unsigned_and_signed_sums() {
        let mut block = [0u8; 512];
        block[0] = b'a';
        block[1] = 0xff;
        let unsigned: u32 = u32::from(b'a') + 0xff + 8 * u32::from(b' ');
        block[148..156].copy_from_slice(format!("{unsigned:06o}\0 ").as_bytes());
        assert_eq!(checksum_matches(&block), Ok(true));
        let signed: i32 = i32::from(b'a') - 1 + 8 * i32::from(b' ');
        block[148..156].copy_from_slice(format!("{signed:06o}\0 ").as_bytes());
        assert_eq!(checksum_matches(&block), Ok(true));
        block[148..156].copy_from_slice(b"000001\0 ");
        assert_eq!(checksum_matches(&block), Ok(false));
    }
}
