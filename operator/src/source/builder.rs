//! The real [`SourceResolver`]: the builder library's git client (`git ls-remote` in an isolated
//! environment) and object client, run on the blocking pool because both block on the network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::git::{self, GitAuth};
use stratum_crds::{GitSource, ResolvedGit, ResolvedSource, SourceKind};

use super::secret_dir::{SecretDir, SecretDirError};
use super::{ResolveRequest, SourceCheck, SourceResolver, scrub};

/// Resolves with the builder library; Secret keys are written under `scratch` for the duration
/// of one resolution.
#[derive(Debug, Clone)]
pub struct BuilderResolver {
    scratch: PathBuf,
}

impl BuilderResolver {
    /// `scratch`: where the private per-resolution Secret directories go (the system temp dir
    /// in the operator's pod, an `emptyDir`).
    pub fn new(scratch: PathBuf) -> Self {
        Self { scratch }
    }
}

impl Default for BuilderResolver {
    fn default() -> Self {
        Self::new(std::env::temp_dir())
    }
}

impl SourceResolver for BuilderResolver {
    fn resolve<'a>(&'a self, request: ResolveRequest<'a>) -> BoxFuture<'a, SourceCheck> {
        let secret = request.secret.cloned();
        let scratch = self.scratch.clone();
        let job: Box<dyn FnOnce() -> SourceCheck + Send> = match request.source {
            SourceKind::Git(git) => {
                let git = git.clone();
                Box::new(move || resolve_git(&scratch, &git, secret.as_ref()))
            }
            SourceKind::Url(url) => {
                let url = url.clone();
                Box::new(move || super::object::probe_url(&scratch, &url, secret.as_ref()))
            }
            SourceKind::Inline(_) => Box::new(|| SourceCheck::Resolved(ResolvedSource::default())),
        };
        Box::pin(async move {
            tokio::task::spawn_blocking(job)
                .await
                .unwrap_or_else(|e| SourceCheck::Failed {
                    kind: SourceErrorKind::Unavailable,
                    message: format!("the source resolution task failed: {e}"),
                })
        })
    }
}

/// The Secret's keys in a private directory, or the failure to report.
pub(super) fn secret_dir(
    scratch: &Path,
    secret: Option<&BTreeMap<String, ByteString>>,
) -> Result<Option<SecretDir>, SourceCheck> {
    let Some(data) = secret else {
        return Ok(None);
    };
    SecretDir::write(scratch, data).map(Some).map_err(|e| {
        let kind = match e {
            SecretDirError::BadKey { .. } => SourceErrorKind::Invalid,
            // The operator's own disk: likely to work again.
            SecretDirError::Create { .. } | SecretDirError::Write { .. } => {
                SourceErrorKind::Unavailable
            }
        };
        SourceCheck::Failed {
            kind,
            message: e.to_string(),
        }
    })
}

fn resolve_git(
    scratch: &Path,
    source: &GitSource,
    secret: Option<&BTreeMap<String, ByteString>>,
) -> SourceCheck {
    let revision = source.revision.as_deref();
    let shown = revision.unwrap_or("HEAD");
    let failed = |kind, detail: String| SourceCheck::Failed {
        kind,
        message: scrub(
            &format!("cannot resolve git revision {shown}: {detail}"),
            secret,
        ),
    };
    // Kept alive until `resolve` returns: an SSH key is read from it.
    let dir = match secret_dir(scratch, secret) {
        Ok(dir) => dir,
        Err(check) => return check,
    };
    let auth = match &dir {
        Some(dir) => match GitAuth::from_secret_dir(dir.path()) {
            Ok(auth) => auth,
            Err(e) => return failed(e.kind(), e.to_string()),
        },
        None => GitAuth::Anonymous,
    };
    match git::resolve(&source.url, revision, &auth) {
        Ok(resolved) => SourceCheck::Resolved(ResolvedSource {
            git: Some(ResolvedGit {
                commit: resolved.commit,
            }),
            url: None,
        }),
        Err(e) => failed(e.kind(), e.to_string()),
    }
}
