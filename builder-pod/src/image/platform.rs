//! Platforms (`linux/amd64`, `linux/arm64/v8`) and choosing one from an index.
//!
//! Matching follows containerd's `platforms` package: names are normalised first (`x86_64` is
//! `amd64`, `aarch64` is `arm64`, `armhf` is `arm/v7`, and `arm64` without a variant is `v8`),
//! then os, architecture and variant must be equal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An OCI platform object (image-index.md `platform`; config.md `architecture`/`os`/`variant`).
/// Field order is the image-spec Go struct's, so a serialised index matches BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Why a platform string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid platform {input:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
)]
pub struct PlatformError {
    pub input: String,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            os_version: None,
            os_features: None,
            variant: variant.map(str::to_owned),
        }
    }

    /// `linux/amd64`.
    pub fn linux_amd64() -> Self {
        Self::new("linux", "amd64", None)
    }

    /// The platform this binary runs on (the only one `RUN` can execute without emulation).
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Self::new(std::env::consts::OS, arch, variant)
    }

    /// `(os, architecture, variant)` after normalisation; two platforms match when these agree.
    fn normalized(&self) -> (String, String, String) {
        let os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_owned(),
            other => other.to_owned(),
        };
        let variant = self.variant.as_deref().unwrap_or("").to_ascii_lowercase();
        let (arch, variant) = match (
            self.architecture.to_ascii_lowercase().as_str(),
            variant.as_str(),
        ) {
            ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64".to_owned(), String::new()),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64".to_owned(), v.to_owned()),
            ("i386", v) => ("386".to_owned(), v.to_owned()),
            ("aarch64" | "arm64", "" | "8" | "v8" | "v8.0") => {
                ("arm64".to_owned(), "v8".to_owned())
            }
            ("aarch64" | "arm64", v) => ("arm64".to_owned(), v.to_owned()),
            ("armhf", _) => ("arm".to_owned(), "v7".to_owned()),
            ("armel", _) => ("arm".to_owned(), "v6".to_owned()),
            ("arm", "" | "7") => ("arm".to_owned(), "v7".to_owned()),
            ("arm", v @ ("5" | "6" | "8")) => ("arm".to_owned(), format!("v{v}")),
            (a, v) => (a.to_owned(), v.to_owned()),
        };
        (os, arch, variant)
    }

    /// Whether an index entry for `candidate` can serve a request for `self`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.normalized() == candidate.normalized()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) if !v.is_empty() => write!(f, "/{v}"),
            _ => Ok(()),
        }
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PlatformError {
            input: s.to_owned(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let valid_part = |p: &&str| {
            p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(valid_part) {
            return Err(err());
        }
        Ok(Self::new(
            &parts[0].to_ascii_lowercase(),
            &parts[1].to_ascii_lowercase(),
            parts.get(2).map(|v| v.to_ascii_lowercase()).as_deref(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(p("linux/amd64"), Platform::linux_amd64());
        assert_eq!(p("linux/arm64/v8").variant.as_deref(), Some("v8"));
        assert_eq!(p("Linux/ARM/v7").to_string(), "linux/arm/v7");
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "a/b/c/d",
            "linux/am d64",
            "linux/../x",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching_normalises_like_containerd() {
        let table = [
            ("linux/amd64", "linux/amd64", true),
            ("linux/amd64", "linux/x86_64", true),
            ("linux/amd64", "linux/amd64/v1", true),
            ("linux/amd64", "linux/amd64/v3", false),
            ("linux/amd64", "linux/arm64", false),
            ("linux/amd64", "windows/amd64", false),
            ("linux/arm64", "linux/arm64/v8", true),
            ("linux/arm64/v8", "linux/aarch64", true),
            ("linux/arm64", "linux/arm64/v9", false),
            ("linux/arm", "linux/arm/v7", true),
            ("linux/arm/v7", "linux/armhf", true),
            ("linux/arm/v6", "linux/arm/v7", false),
            ("linux/386", "linux/i386", true),
        ];
        for (wanted, candidate, expected) in table {
            assert_eq!(
                p(wanted).matches(&p(candidate)),
                expected,
                "{wanted} vs {candidate}"
            );
        }
    }

    #[test]
    fn serde_uses_oci_field_names_and_order() {
        let mut platform = p("linux/arm64/v8");
        platform.os_version = Some("10.0".into());
        let json = String::from_utf8(crate::image::json::to_vec(&platform).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"architecture":"arm64","os":"linux","os.version":"10.0","variant":"v8"}"#
        );
    }
}
