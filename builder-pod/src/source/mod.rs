//! Build contexts from remote sources: git repositories ([`git`]) and objects at URLs
//! ([`object`]: https archives, S3, GCS, Azure Blob). Both fetch into a directory the build owns
//! and never write outside it; the operator uses their `resolve`/`probe` halves to pin the
//! revision before a builder pod starts.

pub mod git;
pub mod object;

/// What kind of failure fetching or resolving a source was; the builder and the operator map it
/// onto a status reason, and only [`SourceErrorKind::Unavailable`] is worth retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// No such repository, revision, bucket or object (`FetchFailed`).
    NotFound,
    /// The credentials were missing or refused (`SourceAuthFailed`).
    Auth,
    /// The remote could not be reached or kept failing: DNS, connection, 5xx, 429
    /// (`SourceUnavailable`, retried).
    Unavailable,
    /// The content is not what was pinned: a sha256 pin or a resolved commit (`SourceMismatch`).
    Mismatch,
    /// The source is unusable as given: a bad URL, not an archive, a hostile entry, over a size
    /// limit (`FetchFailed`).
    Invalid,
}
