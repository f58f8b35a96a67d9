//! A git repository as the build context, for `stratum build <url>#ref:dir` and for a
//! BuildRequest's git source: resolve (CLI only; the operator pins the commit for pods), fetch
//! into a scratch directory of the store, and find the context directory and the Dockerfile
//! inside the checkout.

use std::path::{Path, PathBuf};

use stratum_builder::sandbox::CancelToken;
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::git::{
    self, FetchControl, Fetched, GitAuth, GitError, GitFetch, RemoteContext,
};
use stratum_builder::store::Store;
use stratum_crds::contract::FailureReason;

/// A fetched checkout; the directory is removed when this is dropped.
pub struct GitContext {
    _checkout: tempfile::TempDir,
    checkout_root: PathBuf,
    pub context_dir: PathBuf,
    pub fetched: Fetched,
    url: String,
}

/// What to fetch, as the request or the command line gave it.
pub struct GitSourceSpec<'a> {
    pub url: &'a str,
    pub commit: &'a str,
    pub reference: Option<&'a str>,
    pub context_dir: Option<&'a str>,
    pub submodules: bool,
    pub depth: Option<u32>,
    pub keep_git_dir: bool,
}

impl GitContext {
    /// The Dockerfile at `path` relative to the context; it must stay inside the checkout.
    pub fn dockerfile(&self, path: &str) -> Result<PathBuf, GitError> {
        git::dockerfile_in(&self.url, &self.checkout_root, &self.context_dir, path)
    }
}

pub fn fetch(
    spec: &GitSourceSpec<'_>,
    auth: &GitAuth,
    store: &Store,
    cancel: &CancelToken,
) -> Result<GitContext, GitError> {
    if let Some(dir) = spec.context_dir {
        git::check_context_path(&git::redact_url(spec.url), dir)?;
    }
    let checkout = store.scratch_dir("git-context").map_err(|e| GitError::Io {
        what: "creating a scratch directory for the checkout".to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let control = FetchControl {
        cancel: Some(cancel.clone()),
        ..FetchControl::default()
    };
    let fetched = git::fetch_with(
        &GitFetch {
            url: spec.url,
            commit: spec.commit,
            reference: spec.reference,
            submodules: spec.submodules,
            depth: spec.depth,
            keep_git_dir: spec.keep_git_dir,
        },
        auth,
        checkout.path(),
        &control,
    )?;
    let context_dir = git::context_dir(spec.url, checkout.path(), spec.context_dir)?;
    Ok(GitContext {
        checkout_root: checkout.path().to_owned(),
        _checkout: checkout,
        context_dir,
        fetched,
        url: spec.url.to_owned(),
    })
}

/// `stratum build <url>#ref:dir`: resolve the revision, then fetch it.
pub fn fetch_remote_context(
    arg: &str,
    keep_git_dir: bool,
    auth_dir: Option<&Path>,
    store: &Store,
    cancel: &CancelToken,
) -> Result<GitContext, GitError> {
    let RemoteContext {
        url,
        reference,
        subdir,
    } = git::parse_remote_context(arg)?;
    let auth = match auth_dir {
        Some(dir) => GitAuth::from_secret_dir(dir)?,
        None => GitAuth::Anonymous,
    };
    let resolved = git::resolve(&url, reference.as_deref(), &auth)?;
    fetch(
        &GitSourceSpec {
            url: &url,
            commit: &resolved.commit,
            reference: resolved.reference.as_deref(),
            context_dir: subdir.as_deref(),
            // Docker (BuildKit's git source) always checks submodules out, recursively.
            submodules: true,
            depth: None,
            keep_git_dir,
        },
        &auth,
        store,
        cancel,
    )
}

/// The contract's reason for a git failure.
pub fn failure_reason(error: &GitError) -> FailureReason {
    match error.kind() {
        SourceErrorKind::Auth => FailureReason::SourceAuthFailed,
        SourceErrorKind::Unavailable => FailureReason::SourceUnavailable,
        SourceErrorKind::Mismatch => FailureReason::SourceMismatch,
        SourceErrorKind::NotFound | SourceErrorKind::Invalid => FailureReason::FetchFailed,
    }
}
