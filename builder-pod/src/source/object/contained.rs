//! Choosing a path inside the fetched tree (`contextDir`, the Dockerfile): resolved on disk,
//! symlinks and all, and refused unless it stays inside (threats §2.6 #32, #33 — containment
//! is checked after resolving links, not lexically).

use std::path::{Component, Path, PathBuf};

use super::error::ObjectError;

/// `root/rel` with every symlink resolved, provided it is still inside `root`. `rel` must be
/// relative and free of `..` (the CRD's pattern already says so; a hand-written request or
/// the CLI may not).
pub fn contained_path(root: &Path, rel: &str, what: &'static str) -> Result<PathBuf, ObjectError> {
    let refuse = |reason: String| ObjectError::NotContained {
        what,
        path: rel.to_owned(),
        reason,
    };
    let relative = Path::new(rel);
    if rel.is_empty()
        || relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(refuse("it must be a relative path without `..`".into()));
    }
    let real_root = root
        .canonicalize()
        .map_err(|e| ObjectError::io("cannot resolve the context directory", root, e))?;
    let resolved = root
        .join(relative)
        .canonicalize()
        .map_err(|e| refuse(format!("it does not exist in the fetched source ({e})")))?;
    if !resolved.starts_with(&real_root) {
        return Err(refuse(
            "it resolves (through a symlink) to a place outside the fetched source".into(),
        ));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inside_or_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("app/sub")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        std::os::unix::fs::symlink("app/sub", root.path().join("inner")).unwrap();
        std::os::unix::fs::symlink("../..", root.path().join("app/up")).unwrap();
        let real = root.path().canonicalize().unwrap();
        assert_eq!(
            contained_path(root.path(), "app", "contextDir").unwrap(),
            real.join("app")
        );
        assert_eq!(
            contained_path(root.path(), "inner", "contextDir").unwrap(),
            real.join("app/sub")
        );
        for bad in [
            "escape",
            "app/up",
            "../x",
            "/etc",
            "",
            "app/../..",
            "missing",
        ] {
            let err = contained_path(root.path(), bad, "contextDir").unwrap_err();
            assert_eq!(
                err.kind(),
                crate::source::SourceErrorKind::Invalid,
                "{bad}: {err}"
            );
        }
    }
}
