//! Commit → checkout: a shallow fetch of exactly the pinned commit into a directory the build
//! owns, with fall-backs for servers that refuse unadvertised commits, and the checks that make
//! the result trustworthy (HEAD is the pinned commit, submodule URLs are network URLs, the tree
//! fits the size limit, `.git` is gone unless asked for).

use std::path::Path;
use std::time::Duration;

use super::auth::GitAuth;
use super::command::{RunError, Session};
use super::error::GitError;
use super::resolve::{check_revision, is_full_sha};
use super::submodules;
use super::url::GitUrl;
use crate::sandbox::CancelToken;
use crate::source::SourceErrorKind;

/// What to fetch.
#[derive(Clone)]
pub struct GitFetch<'a> {
    pub url: &'a str,
    /// The pinned commit (40 hex digits).
    pub commit: &'a str,
    /// The ref the commit was resolved from, fetched instead when the server refuses a request
    /// for the bare commit.
    pub reference: Option<&'a str>,
    /// Also check out submodules, recursively.
    pub submodules: bool,
    /// Commits of history to fetch; `None` = just the commit.
    pub depth: Option<u32>,
    /// Keep `.git` in the checkout (`--keep-git-dir`).
    pub keep_git_dir: bool,
}

impl std::fmt::Debug for GitFetch<'_> {
    // The URL may carry `user:token@`; Debug output ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitFetch")
            .field("url", &super::url::redact(self.url))
            .field("commit", &self.commit)
            .field("reference", &self.reference)
            .field("submodules", &self.submodules)
            .field("depth", &self.depth)
            .field("keep_git_dir", &self.keep_git_dir)
            .finish()
    }
}

/// What was checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub commit: String,
    /// `Name <email>` of the commit's author.
    pub author: Option<String>,
    /// The first line of the commit message.
    pub subject: Option<String>,
}

/// How long and how much.
#[derive(Clone, Debug)]
pub struct FetchControl {
    /// Killing git's process group when this is cancelled.
    pub cancel: Option<CancelToken>,
    /// Per git process.
    pub timeout: Duration,
    /// The checked-out tree's total file size (submodules included), checked before anything
    /// is written to the working tree.
    pub max_checkout_bytes: Option<u64>,
}

impl Default for FetchControl {
    fn default() -> Self {
        FetchControl {
            cancel: None,
            timeout: Duration::from_secs(30 * 60),
            max_checkout_bytes: Some(DEFAULT_MAX_CHECKOUT_BYTES),
        }
    }
}

/// 10 GiB: far beyond any sane build context, small enough to protect the node's disk.
pub const DEFAULT_MAX_CHECKOUT_BYTES: u64 = 10 << 30;

/// Fetches `spec.commit` into `dest` (an empty directory) with the default limits.
pub fn fetch(spec: &GitFetch<'_>, auth: &GitAuth, dest: &Path) -> Result<Fetched, GitError> {
    fetch_with(spec, auth, dest, &FetchControl::default())
}

/// [`fetch`] with a cancellation token, a timeout and a size limit.
pub fn fetch_with(
    spec: &GitFetch<'_>,
    auth: &GitAuth,
    dest: &Path,
    control: &FetchControl,
) -> Result<Fetched, GitError> {
    let url = GitUrl::parse(spec.url)?;
    let commit = spec.commit.to_ascii_lowercase();
    if !is_full_sha(&commit) {
        return Err(GitError::InvalidRevision {
            url: url.redacted,
            revision: spec.commit.to_owned(),
            reason: "the commit to fetch must be a full 40-hex SHA".to_owned(),
        });
    }
    if let Some(reference) = spec.reference {
        check_revision(&url.redacted, reference)?;
    }
    check_empty_dir(dest)?;
    let session = Session::new(url, auth, control.cancel.clone())?;
    let run = |args: &[&str], what: &'static str| {
        session
            .run(dest, args, control.timeout)
            .map_err(|e| session.error(e, what, spec.reference))
    };
    // No template: nothing from /usr/share/git-core/templates (sample hooks included).
    run(&["init", "-q", "--template=", "."], "init")?;
    let fetch_url = session.url.fetch_url.clone();
    run(&["remote", "add", "origin", &fetch_url], "remote add")?;

    fetch_commit(&session, spec, &commit, dest, control.timeout)?;

    let tree_size = super::size::tree_size(&session, dest, &commit, control.timeout)?;
    if let Some(limit) = control.max_checkout_bytes
        && tree_size > limit
    {
        return Err(GitError::TooLarge {
            url: session.url.redacted.clone(),
            size: tree_size,
            limit,
        });
    }
    run(
        &["checkout", "-q", "--force", "--detach", &commit, "--"],
        "checkout",
    )?;
    let head = String::from_utf8_lossy(&run(&["rev-parse", "HEAD"], "rev-parse")?)
        .trim()
        .to_owned();
    if head != commit {
        return Err(GitError::Mismatch {
            url: session.url.redacted.clone(),
            reference: spec.reference.map(str::to_owned),
            expected: commit,
            got: head,
        });
    }
    let (author, subject) = describe(&run(
        &[
            "log",
            "-1",
            "--no-show-signature",
            "--format=%an <%ae>%x00%s",
            "HEAD",
        ],
        "log",
    )?);

    super::lfs::pull_if_used(&session, dest, control.timeout)?;
    if spec.submodules {
        submodules::update(&session, dest, control.timeout)?;
    }
    if let Some(limit) = control.max_checkout_bytes {
        // LFS objects and submodules are written by git-lfs and `git submodule update`, so
        // their size is only known afterwards.
        let size = super::size::disk_size(dest)?;
        if size > limit {
            return Err(GitError::TooLarge {
                url: session.url.redacted.clone(),
                size,
                limit,
            });
        }
    }
    if !spec.keep_git_dir {
        remove_git_dirs(dest)?;
    }
    Ok(Fetched {
        commit,
        author,
        subject,
    })
}

/// Fetches `commit` shallowly. Protocol v2 servers hand out any commit; v0 servers without
/// `uploadpack.allowReachableSHA1InWant` refuse commits no ref advertises ("not our ref"), so
/// then the reference (or every branch and tag) is fetched in full and must contain the commit.
fn fetch_commit(
    session: &Session,
    spec: &GitFetch<'_>,
    commit: &str,
    dest: &Path,
    timeout: Duration,
) -> Result<(), GitError> {
    let depth = format!("--depth={}", spec.depth.unwrap_or(1).max(1));
    let direct = session.run(
        dest,
        &[
            "fetch",
            "-q",
            "--no-tags",
            "--no-recurse-submodules",
            &depth,
            "origin",
            commit,
        ],
        timeout,
    );
    let refused = match direct {
        Ok(_) => return Ok(()),
        Err(RunError::Failed(f))
            if matches!(f.kind, SourceErrorKind::NotFound | SourceErrorKind::Invalid) =>
        {
            f
        }
        Err(e) => return Err(session.error(e, "fetch", spec.reference)),
    };
    tracing::info!(
        url = %session.url.redacted,
        commit,
        detail = %refused.detail,
        "the server refused the commit by itself; fetching its ref in full"
    );
    let refspecs: Vec<String> = match spec.reference {
        Some(reference) => vec![format!("+{reference}:refs/stratum/fetched")],
        None => vec![
            "+refs/heads/*:refs/remotes/origin/*".to_owned(),
            "+refs/tags/*:refs/tags/*".to_owned(),
        ],
    };
    let mut args = vec![
        "fetch",
        "-q",
        "--no-tags",
        "--no-recurse-submodules",
        "origin",
    ];
    args.extend(refspecs.iter().map(String::as_str));
    session
        .run(dest, &args, timeout)
        .map_err(|e| session.error(e, "fetch", spec.reference))?;
    let object = format!("{commit}^{{commit}}");
    match session.run(dest, &["cat-file", "-e", &object], timeout) {
        Ok(_) => Ok(()),
        Err(RunError::Failed(_)) => Err(GitError::CommitNotFound {
            url: session.url.redacted.clone(),
            commit: commit.to_owned(),
            reference: spec.reference.map(str::to_owned),
            detail: refused.detail,
        }),
        Err(e) => Err(session.error(e, "cat-file", spec.reference)),
    }
}

fn describe(log: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(log);
    let text = text.trim_end_matches('\n');
    let (author, subject) = text.split_once('\0').unwrap_or((text, ""));
    let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    (non_empty(author), non_empty(subject))
}

fn check_empty_dir(dest: &Path) -> Result<(), GitError> {
    let mut entries = std::fs::read_dir(dest).map_err(|e| {
        GitError::io(
            format!("opening the checkout directory {}", dest.display()),
            e,
        )
    })?;
    if entries.next().is_some() {
        return Err(GitError::io(
            format!("the checkout directory {}", dest.display()),
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "is not empty"),
        ));
    }
    Ok(())
}

/// Removes the repository's `.git` and the `.git` files of submodules. Git never checks out a
/// tree entry named `.git` (verify_path, CVE-2014-9390), so every `.git` here is git's own.
fn remove_git_dirs(dest: &Path) -> Result<(), GitError> {
    let mut found = Vec::new();
    let mut walk = walkdir::WalkDir::new(dest).follow_links(false).into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| {
            GitError::io(format!("walking the checkout {}", dest.display()), e.into())
        })?;
        if entry.file_name() == ".git" {
            if entry.file_type().is_dir() {
                walk.skip_current_dir();
            }
            found.push((entry.path().to_owned(), entry.file_type().is_dir()));
        }
    }
    for (path, is_dir) in found {
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| GitError::io(format!("removing {}", path.display()), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_url_credentials() {
        let spec = GitFetch {
            url: "https://u:tok3n@host/r.git",
            commit: "a",
            reference: None,
            submodules: false,
            depth: None,
            keep_git_dir: false,
        };
        assert!(!format!("{spec:?}").contains("tok3n"));
    }

    #[test]
    fn describe_splits_author_and_subject() {
        assert_eq!(
            describe(b"Ada <ada@example.com>\0first commit\n"),
            (
                Some("Ada <ada@example.com>".to_owned()),
                Some("first commit".to_owned())
            )
        );
        assert_eq!(describe(b"\0\n"), (None, None));
    }
}
