//! What can go wrong resolving or fetching a git source. Every message names the repository URL
//! with any userinfo stripped (see [`super::url::GitUrl::redacted`]) and the revision, never a
//! credential: git's own stderr is passed through [`super::command::redact`] first.

use std::path::PathBuf;
use std::time::Duration;

use crate::source::SourceErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("git revision {revision:?} for {url}: {reason}")]
    InvalidRevision {
        url: String,
        revision: String,
        reason: String,
    },

    #[error("git credentials in {}: {reason}", dir.display())]
    Secret { dir: PathBuf, reason: String },

    #[error("{url}: {reason}")]
    AuthConfig { url: String, reason: String },

    #[error("{url}: revision {revision:?} not found (no branch, tag or ref of that name)")]
    RefNotFound { url: String, revision: String },

    #[error("{url}{}: git {operation} failed: {detail}", at(.reference))]
    Remote {
        url: String,
        reference: Option<String>,
        operation: &'static str,
        kind: SourceErrorKind,
        detail: String,
    },

    #[error("{url}{}: git {operation} did not finish within {}s", at(.reference), .after.as_secs())]
    Timeout {
        url: String,
        reference: Option<String>,
        operation: &'static str,
        after: Duration,
    },

    #[error("{url}: git {operation} was cancelled")]
    Cancelled {
        url: String,
        operation: &'static str,
    },

    #[error("{url}: checked out {got}, but commit {expected} was pinned{}", at(.reference))]
    Mismatch {
        url: String,
        reference: Option<String>,
        expected: String,
        got: String,
    },

    #[error(
        "{url}: commit {commit} is not on the server{}: {detail}",
        reference.as_ref().map(|r| format!(" (not reachable from {r}; was the branch force-pushed?)")).unwrap_or_default()
    )]
    CommitNotFound {
        url: String,
        commit: String,
        reference: Option<String>,
        detail: String,
    },

    #[error("{url}: submodule {name:?} has URL {submodule_url:?}: {reason}")]
    HostileSubmodule {
        url: String,
        name: String,
        submodule_url: String,
        reason: String,
    },

    #[error("{url}: context directory {dir:?}: {reason}")]
    ContextDir {
        url: String,
        dir: String,
        kind: SourceErrorKind,
        reason: String,
    },

    #[error("{url}: {reason}")]
    Unsupported { url: String, reason: String },

    #[error("{url}: the checkout is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { url: String, size: u64, limit: u64 },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn at(reference: &Option<String>) -> String {
    match reference {
        Some(r) => format!(" at {r}"),
        None => String::new(),
    }
}

impl GitError {
    /// The failure class the builder and the operator map onto a status reason.
    pub fn kind(&self) -> SourceErrorKind {
        match self {
            GitError::InvalidUrl { .. }
            | GitError::InvalidRevision { .. }
            | GitError::HostileSubmodule { .. }
            | GitError::TooLarge { .. }
            | GitError::Unsupported { .. }
            | GitError::Io { .. } => SourceErrorKind::Invalid,
            GitError::Secret { .. } | GitError::AuthConfig { .. } => SourceErrorKind::Auth,
            GitError::RefNotFound { .. } | GitError::CommitNotFound { .. } => {
                SourceErrorKind::NotFound
            }
            GitError::Remote { kind, .. } | GitError::ContextDir { kind, .. } => *kind,
            // A timeout or a cancelled run says nothing about the source; trying again may work.
            GitError::Timeout { .. } | GitError::Cancelled { .. } => SourceErrorKind::Unavailable,
            GitError::Mismatch { .. } => SourceErrorKind::Mismatch,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        GitError::Io {
            what: what.into(),
            source,
        }
    }
}
