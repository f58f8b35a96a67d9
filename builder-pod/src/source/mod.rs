//! Build contexts from remote sources: git repositories ([`git`]) and objects at URLs
//! ([`object`]: https archives, S3, GCS, Azure Blob). Both fetch into a directory the build owns
//! and never write outside it; the operator uses their `resolve`/`probe` halves to pin the
//! revision before a builder pod starts.

pub mod git;
pub mod object;
