//! The build context inside a checkout: Docker's remote-context syntax on the command line
//! (`https://host/org/repo.git#ref:subdir`) and the context directory's containment check.

use std::path::{Component, Path, PathBuf};

use super::error::GitError;
use super::url::redact;
use crate::source::SourceErrorKind;

/// A git repository named as a build context.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteContext {
    pub url: String,
    /// The part before `:` in the fragment; `None` = the remote's default branch.
    pub reference: Option<String>,
    /// The part after `:` in the fragment; `None` = the repository root.
    pub subdir: Option<String>,
}

impl std::fmt::Debug for RemoteContext {
    // The URL may carry `user:token@`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteContext")
            .field("url", &redact(&self.url))
            .field("reference", &self.reference)
            .field("subdir", &self.subdir)
            .finish()
    }
}

/// Whether a context argument names a git repository, by Docker's rules (BuildKit's
/// `gitutil.IsGitURL`): `git://`, `ssh://`, `git@host:`, `github.com/`, or an http(s) URL whose
/// path ends in `.git`. Any other http(s) URL is an archive to download.
pub fn is_git_context(arg: &str) -> bool {
    let without_fragment = arg.split('#').next().unwrap_or(arg);
    if arg.starts_with("git://")
        || arg.starts_with("ssh://")
        || arg.starts_with("git@")
        || arg.starts_with("github.com/")
    {
        return true;
    }
    (arg.starts_with("https://") || arg.starts_with("http://"))
        && without_fragment
            .split('?')
            .next()
            .unwrap_or("")
            .trim_end_matches('/')
            .ends_with(".git")
}

/// Splits `url#ref:subdir` (both parts optional: `#main`, `#:docs`, `#v1:api`).
pub fn parse_remote_context(arg: &str) -> Result<RemoteContext, GitError> {
    let (url, fragment) = match arg.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (arg, None),
    };
    // Docker treats `github.com/org/repo` as `https://github.com/org/repo`.
    let url = match url.strip_prefix("github.com/") {
        Some(rest) => format!("https://github.com/{rest}"),
        None => url.to_owned(),
    };
    let (reference, subdir) = match fragment {
        None => (None, None),
        Some(fragment) => {
            let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
            let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            (non_empty(reference), non_empty(subdir))
        }
    };
    if let Some(reference) = &reference {
        super::resolve::check_revision(&redact(&url), reference)?;
    }
    if let Some(subdir) = &subdir {
        check_context_path(&redact(&url), subdir)?;
    }
    Ok(RemoteContext {
        url,
        reference,
        subdir,
    })
}

/// Refuses context paths that could name anything but a directory inside the checkout
/// (threats-and-faults §2.6 item 33, BuildKit GHSA-4vrq-3vrq-g6gg): absolute paths, `..`,
/// backslashes, colons, whitespace and control characters.
pub fn check_context_path(url: &str, dir: &str) -> Result<(), GitError> {
    let bad = |reason: &str| {
        Err(GitError::ContextDir {
            url: url.to_owned(),
            dir: dir.to_owned(),
            kind: SourceErrorKind::Invalid,
            reason: reason.to_owned(),
        })
    };
    if dir.is_empty() {
        return bad("empty");
    }
    if dir
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\' || c == ':')
    {
        return bad("contains whitespace, a control character, '\\' or ':'");
    }
    for component in Path::new(dir).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return bad("contains '..'"),
            Component::RootDir | Component::Prefix(_) => return bad("is absolute"),
        }
    }
    Ok(())
}

/// The context directory `dir` of `checkout`, after following symlinks: it must exist, be a
/// directory, and still be inside the checkout (a repository can commit `ctx -> /etc`).
pub fn context_dir(url: &str, checkout: &Path, dir: Option<&str>) -> Result<PathBuf, GitError> {
    let url = redact(url);
    let root = checkout
        .canonicalize()
        .map_err(|e| GitError::io(format!("the checkout {}", checkout.display()), e))?;
    let Some(dir) = dir.filter(|d| !d.is_empty() && *d != ".") else {
        return Ok(root);
    };
    check_context_path(&url, dir)?;
    let error = |kind, reason: &str| GitError::ContextDir {
        url: url.clone(),
        dir: dir.to_owned(),
        kind,
        reason: reason.to_owned(),
    };
    let real = match root.join(dir).canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(error(
                SourceErrorKind::NotFound,
                "does not exist in the repository at this commit",
            ));
        }
        Err(e) => return Err(error(SourceErrorKind::Invalid, &e.to_string())),
    };
    if !real.starts_with(&root) {
        return Err(error(
            SourceErrorKind::Invalid,
            "is a symlink (or goes through one) that leads outside the repository",
        ));
    }
    if !real.is_dir() {
        return Err(error(SourceErrorKind::Invalid, "is not a directory"));
    }
    Ok(real)
}

/// The Dockerfile at `path` (relative to `context`), which must resolve to a regular file
/// inside `checkout`: a repository's `Dockerfile -> /etc/shadow` must not make the builder read
/// (and echo in parse errors) a file of the host.
pub fn dockerfile_in(
    url: &str,
    checkout: &Path,
    context: &Path,
    path: &str,
) -> Result<PathBuf, GitError> {
    let url = redact(url);
    check_context_path(&url, path)?;
    let error = |kind, reason: &str| GitError::ContextDir {
        url: url.clone(),
        dir: path.to_owned(),
        kind,
        reason: reason.to_owned(),
    };
    let root = checkout
        .canonicalize()
        .map_err(|e| GitError::io(format!("the checkout {}", checkout.display()), e))?;
    let real = match context.join(path).canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(error(
                SourceErrorKind::NotFound,
                "no such Dockerfile in the context",
            ));
        }
        Err(e) => return Err(error(SourceErrorKind::Invalid, &e.to_string())),
    };
    if !real.starts_with(&root) {
        return Err(error(
            SourceErrorKind::Invalid,
            "the Dockerfile is a symlink that leads outside the repository",
        ));
    }
    if !real.is_file() {
        return Err(error(
            SourceErrorKind::Invalid,
            "the Dockerfile is not a file",
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_contexts_are_recognised() {
        for git in [
            "https://host/org/repo.git",
            "https://host/org/repo.git#main:dir",
            "http://127.0.0.1:80/r.git#v1",
            "git://host/r.git",
            "ssh://git@host/r.git",
            "git@github.com:org/repo.git",
            "github.com/org/repo",
        ] {
            assert!(is_git_context(git), "{git}");
        }
        for other in [
            "https://host/context.tar.gz",
            "https://host/repo",
            ".",
            "/srv/ctx",
            "-",
            "s3://bucket/key",
        ] {
            assert!(!is_git_context(other), "{other}");
        }
    }

    #[test]
    fn fragments_split_into_ref_and_subdir() {
        let ctx = |reference: Option<&str>, subdir: Option<&str>| RemoteContext {
            url: "https://h/r.git".to_owned(),
            reference: reference.map(str::to_owned),
            subdir: subdir.map(str::to_owned),
        };
        let cases = [
            ("https://h/r.git", ctx(None, None)),
            ("https://h/r.git#", ctx(None, None)),
            ("https://h/r.git#main", ctx(Some("main"), None)),
            (
                "https://h/r.git#main:api/v1",
                ctx(Some("main"), Some("api/v1")),
            ),
            ("https://h/r.git#:docs", ctx(None, Some("docs"))),
        ];
        for (arg, expected) in cases {
            assert_eq!(parse_remote_context(arg).unwrap(), expected, "{arg}");
        }
        assert_eq!(
            parse_remote_context("github.com/o/r").unwrap().url,
            "https://github.com/o/r"
        );
    }

    #[test]
    fn hostile_fragments_are_refused() {
        for arg in [
            "https://h/r.git#main:../../..",
            "https://h/r.git#main:services/../api",
            "https://h/r.git#main:/etc",
            "https://h/r.git#main:a:b",
            "https://h/r.git#main:a b",
            "https://h/r.git#main:a\\b",
            "https://h/r.git#--upload-pack=x",
            "https://h/r.git#a..b",
        ] {
            assert!(parse_remote_context(arg).is_err(), "{arg}");
        }
    }

    #[test]
    fn context_dir_stays_inside_the_checkout() {
        let tmp = tempfile::tempdir().unwrap();
        let checkout = tmp.path().join("co");
        std::fs::create_dir_all(checkout.join("api/src")).unwrap();
        std::fs::write(checkout.join("file"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", checkout.join("out")).unwrap();
        std::os::unix::fs::symlink("../..", checkout.join("api/up")).unwrap();
        std::os::unix::fs::symlink("api/src", checkout.join("inside")).unwrap();
        let real = checkout.canonicalize().unwrap();
        assert_eq!(context_dir("u", &checkout, None).unwrap(), real);
        assert_eq!(
            context_dir("u", &checkout, Some("api")).unwrap(),
            real.join("api")
        );
        assert_eq!(
            context_dir("u", &checkout, Some("inside")).unwrap(),
            real.join("api/src")
        );
        std::os::unix::fs::symlink("/etc/passwd", checkout.join("api/Dockerfile")).unwrap();
        std::os::unix::fs::symlink("../file", checkout.join("api/Inside")).unwrap();
        let api = checkout.join("api");
        assert_eq!(
            dockerfile_in("u", &checkout, &api, "Inside").unwrap(),
            real.join("file")
        );
        for (path, kind) in [
            ("Dockerfile", SourceErrorKind::Invalid),
            ("src", SourceErrorKind::Invalid),
            ("nope", SourceErrorKind::NotFound),
            ("../file", SourceErrorKind::Invalid),
        ] {
            let err = dockerfile_in("u", &checkout, &api, path).unwrap_err();
            assert_eq!(err.kind(), kind, "{path}: {err}");
        }
        for (dir, kind) in [
            ("out", SourceErrorKind::Invalid),
            ("api/up", SourceErrorKind::Invalid),
            ("file", SourceErrorKind::Invalid),
            ("missing", SourceErrorKind::NotFound),
            ("../co", SourceErrorKind::Invalid),
        ] {
            let err = context_dir("u", &checkout, Some(dir)).unwrap_err();
            assert_eq!(err.kind(), kind, "{dir}: {err}");
        }
    }
}
