//! Platforms (`linux/amd64`, `linux/arm/v7`) as containerd's `platforms.Parse` normalises them,
//! and the automatic platform build arguments BuildKit defines (`TARGETPLATFORM`, `BUILDARCH`…).

use std::fmt;

use serde::Serialize;

/// An OS / architecture / variant triple, normalised.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on (Stratum builds for the host only).
    pub fn host() -> Self {
        let (architecture, variant) = normalize_arch(std::env::consts::ARCH, "");
        Self {
            os: "linux".to_owned(),
            architecture,
            variant,
        }
    }

    /// `linux/amd64` (what the golden tests use, independent of the machine).
    pub fn linux_amd64() -> Self {
        Self {
            os: "linux".to_owned(),
            architecture: "amd64".to_owned(),
            variant: None,
        }
    }

    /// containerd's `platforms.Parse` followed by `Normalize`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        };
        if text.contains('*') || parts.len() > 3 || !parts.iter().all(|p| valid(p)) {
            return Err(format!("{text:?}: invalid platform specifier"));
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let host = Self::host();
        match lower.as_slice() {
            [one] if is_known_os(one) => Ok(Self {
                os: one.clone(),
                ..host
            }),
            [one] => {
                let (architecture, variant) = normalize_arch(one, "");
                if !is_known_arch(&architecture) {
                    return Err(format!(
                        "{text:?}: unknown operating system or architecture"
                    ));
                }
                Ok(Self {
                    os: host.os,
                    architecture,
                    variant,
                })
            }
            [os, arch] | [os, arch, _] => {
                let variant_in = lower.get(2).map_or("", String::as_str);
                if !is_known_os(os) {
                    return Err(format!("{text:?}: unknown operating system {os:?}"));
                }
                let (architecture, variant) = normalize_arch(arch, variant_in);
                if !is_known_arch(&architecture) {
                    return Err(format!("{text:?}: unknown architecture {arch:?}"));
                }
                Ok(Self {
                    os: os.clone(),
                    architecture,
                    variant,
                })
            }
            _ => Err(format!("{text:?}: invalid platform specifier")),
        }
    }

    /// The automatic build arguments for this platform with `prefix` `TARGET` or `BUILD`.
    pub(crate) fn args(&self, prefix: &str) -> [(String, String); 4] {
        [
            (format!("{prefix}PLATFORM"), self.to_string()),
            (format!("{prefix}OS"), self.os.clone()),
            (format!("{prefix}ARCH"), self.architecture.clone()),
            (
                format!("{prefix}VARIANT"),
                self.variant.clone().unwrap_or_default(),
            ),
        ]
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "aix"
            | "android"
            | "darwin"
            | "dragonfly"
            | "freebsd"
            | "hurd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "nacl"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "windows"
            | "zos"
    )
}

fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "386"
            | "amd64"
            | "arm"
            | "arm64"
            | "loong64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "ppc64"
            | "ppc64le"
            | "riscv64"
            | "s390x"
            | "sparc64"
            | "wasm"
    )
}

/// containerd's `normalizeArch`.
fn normalize_arch(arch: &str, variant: &str) -> (String, Option<String>) {
    let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let (arch, variant) = match arch {
        "i386" | "i486" | "i586" | "i686" => ("386", ""),
        "x86_64" | "x86-64" | "amd64" => ("amd64", if variant == "v1" { "" } else { variant }),
        "aarch64" | "arm64" => (
            "arm64",
            if variant == "8" || variant == "v8" {
                ""
            } else {
                variant
            },
        ),
        "armhf" => ("arm", "v7"),
        "armel" => ("arm", "v6"),
        "arm" => (
            "arm",
            match variant {
                "" | "7" => "v7",
                "5" | "6" | "8" => return ("arm".to_owned(), Some(format!("v{variant}"))),
                v => v,
            },
        ),
        other => (other, variant),
    };
    (arch.to_owned(), some(variant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("Linux/ARM64/v8", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/arm/7", "linux/arm/v7"),
            ("windows/amd64", "windows/amd64"),
        ];
        for (text, want) in cases {
            assert_eq!(Platform::parse(text).unwrap().to_string(), want, "{text}");
        }
        for bad in ["", "linux/", "foo/amd64", "linux/foo", "a/b/c/d", "linux/*"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }
}
