//! Git LFS: files a repository keeps in LFS are checked out as small pointer files; building
//! with those instead of their content would be a silently wrong image. So for each repository
//! (and submodule) whose `.gitattributes` use `filter=lfs`, the objects are fetched with
//! `git lfs pull` over the same isolated session (the LFS server gets the same credentials
//! through the same origin-checked askpass), or, without `git-lfs` installed, the fetch fails
//! with a message saying so (issue 7: "fetched when present or a clear error").

use std::path::Path;
use std::time::Duration;

use super::command::{RunError, Session};
use super::error::GitError;

/// The filter driver `git lfs install` would write to a global config, which our isolated git
/// never reads.
const LFS_FILTER: &[&str] = &[
    "-c",
    "filter.lfs.process=git-lfs filter-process",
    "-c",
    "filter.lfs.smudge=git-lfs smudge -- %f",
    "-c",
    "filter.lfs.clean=git-lfs clean -- %f",
    "-c",
    "filter.lfs.required=true",
];

/// Fetches and checks out the LFS objects of the repository at `repo`, if it uses LFS.
pub(crate) fn pull_if_used(
    session: &Session,
    repo: &Path,
    timeout: Duration,
) -> Result<(), GitError> {
    let Some(attributes) = lfs_attributes(session, repo, timeout)? else {
        return Ok(());
    };
    match session.run(repo, &["lfs", "version"], timeout) {
        Ok(_) => {}
        Err(RunError::Failed(_) | RunError::Spawn(_)) => {
            return Err(GitError::Unsupported {
                url: session.url.redacted.clone(),
                reason: format!(
                    "{attributes} stores files in Git LFS (filter=lfs), and git-lfs is not \
                     installed in this builder; the build would see pointer files instead of \
                     their content"
                ),
            });
        }
        Err(e) => return Err(session.error(e, "lfs version", None)),
    }
    let mut args = LFS_FILTER.to_vec();
    args.extend(["lfs", "pull"]);
    session
        .run(repo, &args, timeout)
        .map(|_| ())
        .map_err(|e| session.error(e, "lfs pull", None))
}

/// The first tracked `.gitattributes` of this repository (not of its submodules) that routes
/// files through the LFS filter.
fn lfs_attributes(
    session: &Session,
    repo: &Path,
    timeout: Duration,
) -> Result<Option<String>, GitError> {
    let listing = session
        .run(
            repo,
            &[
                "ls-files",
                "-z",
                "--",
                ".gitattributes",
                ":(glob)**/.gitattributes",
            ],
            timeout,
        )
        .map_err(|e| session.error(e, "ls-files", None))?;
    for name in String::from_utf8_lossy(&listing).split('\0') {
        if name.is_empty() {
            continue;
        }
        let path = repo.join(name);
        // A tracked .gitattributes that is a symlink is not followed (git ignores those too).
        let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
        if !is_file {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.lines().any(uses_lfs) {
            return Ok(Some(name.to_owned()));
        }
    }
    Ok(None)
}

fn uses_lfs(line: &str) -> bool {
    let line = line.trim();
    !line.starts_with('#') && line.split_whitespace().skip(1).any(|a| a == "filter=lfs")
}

#[cfg(test)]
mod tests {
    #[test]
    fn lfs_attribute_lines() {
        assert!(super::uses_lfs("*.bin filter=lfs diff=lfs merge=lfs -text"));
        assert!(!super::uses_lfs("# *.bin filter=lfs"));
        assert!(!super::uses_lfs("*.txt text eol=lf"));
        assert!(!super::uses_lfs("filter=lfs"));
    }
}
