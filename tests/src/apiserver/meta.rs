//! Object metadata rules: names, UIDs, timestamps, generateName.
//!
//! Sources: "Object Names and IDs" (k8s.io docs: DNS-1123 subdomain/label names, UIDs) and API
//! conventions "Metadata" (`generateName` gets a random suffix; `uid`, `creationTimestamp`,
//! `resourceVersion`, `generation`, `deletionTimestamp` are system fields clients cannot set).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::jiff::{Timestamp, ToSpan};
use serde_json::Value;

use super::error::Cause;

/// RFC 3339 with second precision, as `metav1.Time` serializes.
pub fn now() -> String {
    format_time(Timestamp::now())
}

pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `now + secs` (deletionTimestamp of a graceful pod deletion).
pub fn now_plus(secs: i64) -> String {
    format_time(
        Timestamp::now()
            .checked_add(secs.seconds())
            .unwrap_or_else(|_| Timestamp::now()),
    )
}

/// Random 64 bits from the std hasher's per-process random keys plus a counter.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(Timestamp::now().as_nanosecond() as u128);
    h.finish()
}

/// A random version-4 UUID string.
pub fn new_uid() -> String {
    let (a, b) = (random_u64(), random_u64());
    let bytes: Vec<u8> = a.to_be_bytes().into_iter().chain(b.to_be_bytes()).collect();
    let hex: String = bytes
        .iter()
        .enumerate()
        .map(|(i, byte)| match i {
            6 => format!("{:02x}", (byte & 0x0f) | 0x40),
            8 => format!("{:02x}", (byte & 0x3f) | 0x80),
            _ => format!("{byte:02x}"),
        })
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `generateName` suffix: 5 characters from apimachinery's `utilrand` alphabet (no vowels, no
/// confusable characters), appended to the prefix truncated to 58 characters.
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = random_u64();
    let suffix: String = (0..5)
        .map(|_| {
            let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
            r /= ALPHABET.len() as u64;
            c
        })
        .collect();
    let keep = prefix.len().min(58);
    format!("{}{suffix}", &prefix[..keep])
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// DNS-1123 subdomain: lowercase labels joined by dots, at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Validates `metadata.name` for a resource: namespaces need DNS-1123 labels, everything else
/// DNS-1123 subdomains (path-segment names are a legacy exception we do not need).
pub fn validate_name(name: &str, label_only: bool) -> Option<Cause> {
    let ok = if label_only {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if ok {
        return None;
    }
    let what = if label_only {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    };
    Some(Cause::new(
        "FieldValueInvalid",
        "metadata.name",
        format!("Invalid value: \"{name}\": {what}"),
    ))
}

/// Validates label keys/values ("Labels and Selectors": syntax and character set).
pub fn validate_labels(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let name = k.rsplit('/').next().unwrap_or(k);
            let name_ok = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && name.as_bytes()[0].is_ascii_alphanumeric()
                && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
            let prefix_ok = k.split_once('/').is_none_or(|(p, _)| is_dns_subdomain(p));
            if !name_ok || !prefix_ok {
                causes.push(Cause::new("FieldValueInvalid", "metadata.labels", format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
            }
            let val = v.as_str().unwrap_or("");
            let val_ok = val.is_empty()
                || (val.len() <= 63
                    && val
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    && val.as_bytes()[0].is_ascii_alphanumeric()
                    && val.as_bytes()[val.len() - 1].is_ascii_alphanumeric());
            if !v.is_string() || !val_ok {
                causes.push(Cause::new("FieldValueInvalid", "metadata.labels", format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
            }
        }
    }
    causes
}

/// Parses a `metav1.Time` string.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// kubectl's age rendering (`duration.HumanDuration`), used in table cells.
pub fn human_age(since: &str) -> String {
    let Some(t) = parse_time(since) else {
        return "<unknown>".into();
    };
    let secs = Timestamp::now().as_second() - t.as_second();
    human_duration(secs.max(0))
}

pub fn human_duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => {
            let (m, r) = (s / 60, s % 60);
            if r == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{r}s")
            }
        }
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if m == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{m}m")
            }
        }
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("A"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain(""));
        assert!(validate_name("my.name", true).is_some());
        assert!(validate_name("my-name", true).is_none());
    }

    #[test]
    fn generated_names_and_uids() {
        let n = generate_name("build-");
        assert_eq!(n.len(), 11);
        assert!(n.starts_with("build-"));
        assert_ne!(generate_name("x-"), generate_name("x-"));
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn human_durations() {
        for (s, want) in [
            (5, "5s"),
            (125, "2m5s"),
            (3600, "60m"),
            (4 * 3600 + 60, "4h1m"),
            (3 * 86400, "3d"),
        ] {
            assert_eq!(human_duration(s), want);
        }
    }
}
