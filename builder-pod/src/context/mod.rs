//! Build contexts: the local directory a build reads `COPY`/`ADD` sources from, `.dockerignore`,
//! Docker's source-path rules and the content checksum that keys the step cache.
//!
//! Every other kind of context (a tar on stdin, git, https, object storage) is fetched and
//! safely extracted into a directory first and then opened as a [`LocalContext`]; a stage's
//! root filesystem for `COPY --from` is opened with [`LocalContext::open_stage_root`].
//! See docs/arch/context-copy.md.

pub mod checksum;
pub mod dockerignore;
pub mod gopath;
pub mod local;
pub mod pattern;
pub mod rootfs;
pub mod walk;

pub use dockerignore::{Dockerignore, DockerignoreError};
pub use local::{LocalContext, Ownership, ResolvedSource, SourceKind};

/// Why a context operation failed. Messages name the source as the Dockerfile wrote it.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(
        "COPY/ADD source {requested:?}: not found in the build context (it does not exist, or .dockerignore excludes it)"
    )]
    NotFound { requested: String },
    #[error("COPY/ADD source {requested:?}: invalid wildcard pattern (check `[`, `]` and `\\`)")]
    BadWildcard { requested: String },
    #[error("COPY/ADD source {requested:?}: {reason}")]
    Resolve {
        requested: String,
        #[source]
        reason: rootfs::ResolveError,
    },
    #[error("opening build context {path}: {reason}")]
    Open {
        path: String,
        #[source]
        reason: rootfs::ResolveError,
    },
    #[error(transparent)]
    Walk(#[from] walk::WalkError),
    #[error("reading {path} in the build context: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} in the build context is a {kind}; device nodes are not copied from a build context (a device in the image would give privileged RUN steps host device access)"
    )]
    DeviceInContext { path: String, kind: &'static str },
}
