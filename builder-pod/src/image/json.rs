//! JSON encoding and strict decoding for image documents.
//!
//! Encoding: an image ID is the sha256 of the config bytes, so two builders agree on an ID only if
//! they agree on every byte. Docker and BuildKit write their JSON with Go's `encoding/json`, which
//! is compact and escapes `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`-style sequences
//! (encoding/json `HTMLEscape`; a `CMD a && b` becomes `"a \u0026\u0026 b"` in a Docker config).
//! [`to_vec`] writes the same bytes for the same document.
//!
//! Decoding: a document with a key twice means different things to different parsers (Go keeps
//! the last value, some keep the first), which is the parser differential behind CVE-2021-41190.
//! [`check_document`] rejects duplicate keys at any depth before a document is trusted.

use std::collections::HashSet;
use std::fmt;
use std::io;

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Serialises `value` the way Go's `json.Marshal` would (compact, HTML-safe escapes).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(512);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// serde_json's compact formatter plus Go's extra escapes inside strings.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escape = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escape.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Checks that `bytes` is one complete JSON document without duplicate object keys.
///
/// The error names the offending key, or carries serde_json's line/column for a syntax error or a
/// truncated document.
pub fn check_document(bytes: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<NoDuplicateKeys>(bytes).map(|_| ())
}

/// A value that deserialises any JSON and fails on a repeated key within one object.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeysVisitor)
    }
}

struct NoDuplicateKeysVisitor;

impl<'de> Visitor<'de> for NoDuplicateKeysVisitor {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_go_json_marshal() {
        // Expected bytes are what Go 1.22's json.Marshal prints for the same values.
        let table: &[(&[&str], &str)] = &[
            (
                &["/bin/sh", "-c", "a && b"],
                r#"["/bin/sh","-c","a \u0026\u0026 b"]"#,
            ),
            (&["<html>"], r#"["\u003chtml\u003e"]"#),
            (&["line\u{2028}sep\u{2029}"], r#"["line\u2028sep\u2029"]"#),
            (&["tab\tnl\n\"q\" \\"], r#"["tab\tnl\n\"q\" \\"]"#),
            (&["ünïcödé"], r#"["ünïcödé"]"#),
        ];
        for (value, expected) in table {
            let bytes = to_vec(value).unwrap();
            assert_eq!(std::str::from_utf8(&bytes).unwrap(), *expected);
        }
    }

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        check_document(br#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).unwrap();
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"layers":[],"layers":[]}}"#,
            r#"[{"k":1},{"k":1,"k":1}]"#,
        ] {
            let err = check_document(doc.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("duplicate key"), "{doc}: {err}");
        }
    }

    #[test]
    fn truncated_and_trailing_documents_are_rejected() {
        for doc in [r#"{"schemaVersion":2,"#, "", r#"{"a":1} {"a":2}"#, "[1,2"] {
            assert!(check_document(doc.as_bytes()).is_err(), "{doc:?}");
        }
    }
}
