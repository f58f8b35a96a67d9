//! Submodules, opt-in and recursive, one level at a time so every `.gitmodules` is checked
//! before git acts on it: only network URLs (or URLs relative to the superproject's, which stay
//! on its transport) pass. A `file://` or local-path submodule would copy a repository of the
//! builder's own filesystem into the context (CVE-2022-39253, moby #44324), and a URL starting
//! with `-` is an option to git or ssh (CVE-2017-1000117).

use std::path::Path;
use std::time::Duration;

use super::command::{RunError, Session};
use super::error::GitError;
use super::url::GitUrl;

/// Submodules of submodules of …: deeper than this is a loop (a repository that contains
/// itself), not a project layout.
const MAX_DEPTH: usize = 8;

pub(crate) fn update(
    session: &Session,
    checkout: &Path,
    timeout: Duration,
) -> Result<(), GitError> {
    let root = checkout
        .canonicalize()
        .map_err(|e| GitError::io(format!("{}", checkout.display()), e))?;
    update_level(session, &root, &root, timeout, 0)
}

fn update_level(
    session: &Session,
    root: &Path,
    repo: &Path,
    timeout: Duration,
    depth: usize,
) -> Result<(), GitError> {
    let gitmodules = repo.join(".gitmodules");
    match std::fs::symlink_metadata(&gitmodules) {
        Ok(meta) if meta.file_type().is_file() => {}
        // Git itself ignores a symlinked .gitmodules (CVE-2018-11235 hardening).
        _ => return Ok(()),
    }
    if depth >= MAX_DEPTH {
        return Err(GitError::Unsupported {
            url: session.url.redacted.clone(),
            reason: format!("submodules nest deeper than {MAX_DEPTH} levels"),
        });
    }
    let listing = match session.run(
        repo,
        &[
            "config",
            "--file",
            ".gitmodules",
            "--null",
            "--get-regexp",
            r"^submodule\..*\.url$",
        ],
        timeout,
    ) {
        Ok(out) => out,
        // Exit status 1: no submodule has a URL; nothing to do.
        Err(RunError::Failed(_)) => return Ok(()),
        Err(e) => return Err(session.error(e, "config", None)),
    };
    let entries = parse_urls(&listing);
    for (name, url) in &entries {
        check_url(url).map_err(|reason| GitError::HostileSubmodule {
            url: session.url.redacted.clone(),
            name: name.clone(),
            submodule_url: super::url::redact(url),
            reason,
        })?;
    }
    if entries.is_empty() {
        return Ok(());
    }
    // `--checkout` overrides any `update = rebase/merge/!command` from .gitmodules.
    let shallow = session.run(
        repo,
        &[
            "submodule",
            "--quiet",
            "update",
            "--init",
            "--checkout",
            "--depth=1",
        ],
        timeout,
    );
    if let Err(first) = shallow {
        match first {
            RunError::Failed(_) => {
                // A server that refuses the pinned commit by itself: fetch whole histories.
                session
                    .run(
                        repo,
                        &["submodule", "--quiet", "update", "--init", "--checkout"],
                        timeout,
                    )
                    .map_err(|e| session.error(e, "submodule update", None))?;
            }
            other => return Err(session.error(other, "submodule update", None)),
        }
    }
    for path in gitlinks(session, repo, timeout)? {
        let sub = repo.join(&path);
        let Ok(real) = sub.canonicalize() else {
            continue;
        };
        // Git refuses to check a submodule out through a symlink (CVE-2024-32002); this
        // check keeps the promise even for an older git.
        if !real.starts_with(root) {
            return Err(GitError::HostileSubmodule {
                url: session.url.redacted.clone(),
                name: path,
                submodule_url: String::new(),
                reason: "its path leads outside the checkout".to_owned(),
            });
        }
        if real.join(".git").exists() {
            super::lfs::pull_if_used(session, &real, timeout)?;
            update_level(session, root, &real, timeout, depth + 1)?;
        }
    }
    Ok(())
}

/// `submodule.<name>.url\n<value>\0` records of `git config --null --get-regexp`.
fn parse_urls(listing: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(listing)
        .split('\0')
        .filter_map(|record| {
            let (key, value) = record.split_once('\n')?;
            let name = key.strip_prefix("submodule.")?.strip_suffix(".url")?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Why a submodule URL is refused, if it is.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("./") || url.starts_with("../") {
        // Relative to the superproject's own (network) URL; git's GIT_ALLOW_PROTOCOL and
        // protocol.file.allow=never still stop anything that resolves to a local path.
        if url.chars().any(|c| c.is_control()) {
            return Err("contains control characters".to_owned());
        }
        return Ok(());
    }
    GitUrl::parse(url).map(|_| ()).map_err(|e| match e {
        GitError::InvalidUrl { reason, .. } => reason,
        other => other.to_string(),
    })
}

/// Paths of the gitlinks (mode 160000 entries) in the index: the submodules actually present.
fn gitlinks(session: &Session, repo: &Path, timeout: Duration) -> Result<Vec<String>, GitError> {
    let out = session
        .run(repo, &["ls-files", "-s", "-z"], timeout)
        .map_err(|e| session.error(e, "ls-files", None))?;
    Ok(String::from_utf8_lossy(&out)
        .split('\0')
        .filter_map(|record| {
            let (meta, path) = record.split_once('\t')?;
            meta.starts_with("160000 ").then(|| path.to_owned())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submodule_urls() {
        for ok in [
            "../lib.git",
            "./lib",
            "https://host/lib.git",
            "git://host/lib.git",
            "git@host:lib.git",
            "ssh://git@host/lib.git",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "file:///etc",
            "/srv/other.git",
            "other",
            "--upload-pack=touch /tmp/pwned",
            "-oProxyCommand=touch /tmp/pwned:x",
            "ext::sh -c id",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gitmodules_listing_is_parsed() {
        assert_eq!(
            parse_urls(b"submodule.lib.url\n../lib.git\0submodule.a.b.url\nhttps://h/x\0"),
            vec![
                ("lib".to_owned(), "../lib.git".to_owned()),
                ("a.b".to_owned(), "https://h/x".to_owned())
            ]
        );
    }
}
