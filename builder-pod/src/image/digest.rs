//! Content digests (`sha256:<64 lowercase hex>`).
//!
//! A digest string reaches us from registries, manifests, configs and users, and it ends up in file
//! paths (`blobs/sha256/<hex>`) and URLs (`/v2/<name>/blobs/<digest>`). The OCI image-spec
//! (descriptor.md, "Digests") allows other algorithms, but a digest is only ever *used* after it
//! has been parsed into this type, which accepts exactly `sha256:` followed by 64 lowercase hex
//! digits — so `sha256:../../etc/passwd`, uppercase hex or a wrong length can never reach a path
//! (threats-and-faults §2.9 #48, containers/image CVE-2024-3727).

use std::fmt;
use std::io;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected `algorithm:hex`")]
    MissingAlgorithm(String),
    #[error(
        "unsupported digest algorithm {algorithm:?} in {digest:?}: Stratum verifies sha256 only"
    )]
    UnsupportedAlgorithm { algorithm: String, digest: String },
    #[error(
        "invalid sha256 digest {0:?}: the encoded part must be exactly 64 lowercase hex digits"
    )]
    BadHex(String),
}

/// A validated `sha256` content digest.
///
/// Invariant: `hex` is exactly 64 characters of `[0-9a-f]`, so `to_string()` is safe to join into
/// a path or URL.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(hasher: Sha256) -> Self {
        Self {
            hex: hex::encode(hasher.finalize()),
        }
    }

    /// The algorithm name, always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// The 64 hex digits, without the `sha256:` prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as `docker images` shows an image ID.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algorithm, encoded) = s
            .split_once(':')
            .ok_or_else(|| DigestError::MissingAlgorithm(s.to_owned()))?;
        if algorithm != "sha256" {
            return Err(DigestError::UnsupportedAlgorithm {
                algorithm: algorithm.to_owned(),
                digest: s.to_owned(),
            });
        }
        let valid = encoded.len() == 64
            && encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(DigestError::BadHex(s.to_owned()));
        }
        Ok(Self {
            hex: encoded.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A `Write` sink that hashes everything written through it and counts the bytes, so one
/// streaming pass yields both a digest and a size (layer commit, blob download).
#[derive(Default)]
pub struct Digester {
    hasher: Sha256,
    len: u64,
}

impl fmt::Debug for Digester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digester").field("len", &self.len).finish()
    }
}

impl Digester {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest and byte count of everything written.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.len)
    }
}

impl io::Write for Digester {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input_is_the_well_known_value() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        let mut d = Digester::new();
        d.write_all(b"").unwrap();
        assert_eq!(d.finish(), (EMPTY.parse().unwrap(), 0));
    }

    #[test]
    fn streaming_and_one_shot_agree() {
        let mut d = Digester::new();
        d.write_all(b"hello ").unwrap();
        d.write_all(b"world").unwrap();
        let (digest, len) = d.finish();
        assert_eq!(digest, Digest::of(b"hello world"));
        assert_eq!(len, 11);
    }

    #[test]
    fn parse_rejects_everything_that_could_escape_a_path_or_url() {
        type Expect = fn(&DigestError) -> bool;
        let table: &[(&str, Expect)] = &[
            ("sha256:../../../../etc/passwd", |e| {
                matches!(e, DigestError::BadHex(_))
            }),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                |e| matches!(e, DigestError::BadHex(_)),
            ),
            ("sha256:e3b0", |e| matches!(e, DigestError::BadHex(_))),
            ("sha256:", |e| matches!(e, DigestError::BadHex(_))),
            (
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/x",
                |e| matches!(e, DigestError::BadHex(_)),
            ),
            ("sha512:abcd", |e| {
                matches!(e, DigestError::UnsupportedAlgorithm { .. })
            }),
            ("md5:abcd", |e| {
                matches!(e, DigestError::UnsupportedAlgorithm { .. })
            }),
            ("e3b0c44298fc", |e| {
                matches!(e, DigestError::MissingAlgorithm(_))
            }),
            ("", |e| matches!(e, DigestError::MissingAlgorithm(_))),
        ];
        for (input, expected) in table {
            let err = input.parse::<Digest>().unwrap_err();
            assert!(expected(&err), "{input:?} gave {err:?}");
        }
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let d: Digest = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{EMPTY}\""));
        assert!(serde_json::from_str::<Digest>("\"sha256:../x\"").is_err());
        assert_eq!(d.short(), "e3b0c44298fc");
    }
}
