//! Stratum's builder: the Dockerfile front end, image plumbing, the overlay step executor and the
//! pieces the `stratum` CLI and the builder pod share.
//!
//! Pure logic (parsing, expansion, planning, cache keys) lives apart from side effects (syscalls,
//! HTTP, the filesystem) so most of it is testable without root or a network; see
//! docs/architecture.md.

pub mod build;
pub mod context;
pub mod dockerfile;
pub mod image;
pub mod layer;
pub mod output;
pub mod registry;
pub mod sandbox;
pub mod source;
pub mod store;
pub mod timefmt;
