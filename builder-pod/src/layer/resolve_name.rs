//! Lexical normalisation of tar entry names and hard-link targets (pure; no filesystem).
//!
//! Entry names are relative to the layer root whether or not they start with `/` (OCI
//! image-spec layer.md; GNU tar strips the leading `/` too). `.` and empty components vanish,
//! so `""`, `.` and `./` all name the root itself (docker/cli #7111: an empty name is `.`).
//!
//! `..` is handled lexically before anything touches the disk, as containerd does
//! (`localetc/sub/..` is `localetc`, `dne/../.wh.etc` is `.wh.etc` — containerd TestBreakouts
//! SymlinkParentRelative, WhiteoutRelativePath). The two kinds of names differ only in what a
//! `..` above the root means:
//! - an *entry name* that climbs above the root is refused (§2.1 #1, moby
//!   TestUntarInvalidFilenames; kaniko CVE-2026-28406): no legitimate writer produces one;
//! - a *hard-link target* is clamped at the root, like a path resolved inside a chroot
//!   (containerd HardlinkDirectRelative expects `../../../../../etc/passwd` to mean `/etc/passwd`).
//!
//! Symlinks met while walking the disk are resolved later, component by component, in
//! [`super::resolve`]; nothing here follows or creates anything.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use super::apply_error::{ApplyError, LimitKind, lossy};
use super::limits::Limits;

/// Linux NAME_MAX: the longest single component the kernel accepts.
const NAME_MAX: usize = 255;

/// A normalised name: the components below the layer root, none of them `""`, `.` or `..`.
/// Empty means the root itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RootedName {
    components: Vec<OsString>,
}

impl RootedName {
    #[cfg(test)]
    pub(crate) fn components(&self) -> &[OsString] {
        &self.components
    }

    #[cfg(test)]
    pub(crate) fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// The parent's components and the final component, or `None` for the root.
    pub(crate) fn split_last(&self) -> Option<(&OsStr, &[OsString])> {
        self.components
            .split_last()
            .map(|(last, parent)| (last.as_os_str(), parent))
    }

    /// `/a/b` form for messages and for the layer's set of written paths.
    pub(crate) fn display(&self) -> String {
        display_components(&self.components)
    }
}

/// `/a/b` form of a component list (`/` for the root).
pub(crate) fn display_components(components: &[OsString]) -> String {
    let mut out = String::new();
    for component in components {
        out.push('/');
        out.push_str(&component.to_string_lossy());
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// How a `..` that climbs above the root is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AboveRoot {
    Refuse,
    Clamp,
}

/// Normalises an entry name; refuses `..` above the root, NUL bytes, over-long names and
/// over-deep names.
pub(crate) fn entry_name(raw: &[u8], limits: &Limits) -> Result<RootedName, ApplyError> {
    normalize(raw, limits, AboveRoot::Refuse)
}

/// Normalises a hard-link target; `..` above the root stays at the root.
pub(crate) fn link_target(raw: &[u8], limits: &Limits) -> Result<RootedName, ApplyError> {
    normalize(raw, limits, AboveRoot::Clamp)
}

fn normalize(raw: &[u8], limits: &Limits, above_root: AboveRoot) -> Result<RootedName, ApplyError> {
    if raw.len() > limits.max_path_len {
        return Err(ApplyError::LimitExceeded {
            limit: LimitKind::PathLength,
            value: raw.len() as u64,
            max: limits.max_path_len as u64,
            entry: Some(lossy(&raw[..64.min(raw.len())]) + "…"),
        });
    }
    if raw.contains(&0) {
        // Header fields cannot hold NUL, but PAX values can; C-string readers (GNU tar) would
        // cut the name there and Go would not, so no single reading exists.
        return Err(invalid(raw, "contains a NUL byte"));
    }
    let mut components: Vec<OsString> = Vec::new();
    for component in raw.split(|byte| *byte == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if components.pop().is_none() && above_root == AboveRoot::Refuse {
                    return Err(ApplyError::PathEscapes { name: lossy(raw) });
                }
            }
            _ if component.len() > NAME_MAX => {
                return Err(invalid(raw, "has a component longer than 255 bytes"));
            }
            _ => {
                components.push(OsStr::from_bytes(component).to_os_string());
                if components.len() > limits.max_depth {
                    return Err(ApplyError::LimitExceeded {
                        limit: LimitKind::Depth,
                        value: components.len() as u64,
                        max: limits.max_depth as u64,
                        entry: Some(lossy(&raw[..64.min(raw.len())]) + "…"),
                    });
                }
            }
        }
    }
    Ok(RootedName { components })
}

fn invalid(raw: &[u8], reason: &'static str) -> ApplyError {
    ApplyError::InvalidName {
        name: lossy(raw),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(raw: &str) -> Result<Vec<String>, String> {
        entry_name(raw.as_bytes(), &Limits::default())
            .map(|name| {
                name.components()
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect()
            })
            .map_err(|err| format!("{err:?}"))
    }

    #[test]
    fn entry_names_normalise_lexically() {
        let table: &[(&str, &[&str])] = &[
            ("etc/passwd", &["etc", "passwd"]),
            ("/etc/passwd", &["etc", "passwd"]),
            ("./etc//passwd/", &["etc", "passwd"]),
            ("", &[]),
            (".", &[]),
            ("./", &[]),
            ("/", &[]),
            ("localetc/sub/..", &["localetc"]),
            ("dne/../.wh.etc", &[".wh.etc"]),
            ("a\\b", &["a\\b"]),
        ];
        for (raw, expected) in table {
            let expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            assert_eq!(names(raw), Ok(expected), "{raw:?}");
        }
    }

    #[test]
    fn entry_names_above_the_root_are_refused() {
        for raw in [
            "..",
            "../victim/dotdot",
            "/../victim/slash-dotdot",
            "../../pwned",
            "a/../../b",
        ] {
            let err = entry_name(raw.as_bytes(), &Limits::default()).unwrap_err();
            assert!(
                matches!(err, ApplyError::PathEscapes { .. }),
                "{raw:?}: {err:?}"
            );
        }
    }

    #[test]
    fn link_targets_clamp_at_the_root() {
        let target = link_target(b"../../../../../etc/passwd", &Limits::default()).unwrap();
        assert_eq!(target.display(), "/etc/passwd");
        assert!(link_target(b"..", &Limits::default()).unwrap().is_root());
    }

    #[test]
    fn nul_length_and_depth_are_capped() {
        let limits = Limits {
            max_path_len: 16,
            max_depth: 3,
            ..Limits::default()
        };
        assert!(matches!(
            entry_name(b"a\0b", &limits),
            Err(ApplyError::InvalidName { .. })
        ));
        assert!(matches!(
            entry_name(&[b'a'; 17], &limits),
            Err(ApplyError::LimitExceeded {
                limit: LimitKind::PathLength,
                ..
            })
        ));
        assert!(matches!(
            entry_name(b"a/b/c/d", &limits),
            Err(ApplyError::LimitExceeded {
                limit: LimitKind::Depth,
                ..
            })
        ));
        assert!(entry_name(b"a/b/c", &limits).is_ok());
        let long_component = vec![b'x'; 256];
        assert!(matches!(
            entry_name(&long_component, &Limits::default()),
            Err(ApplyError::InvalidName { .. })
        ));
    }

    #[test]
    fn display_is_rooted() {
        assert_eq!(entry_name(b"", &Limits::default()).unwrap().display(), "/");
        assert_eq!(
            entry_name(b"a/b", &Limits::default()).unwrap().display(),
            "/a/b"
        );
    }
}
