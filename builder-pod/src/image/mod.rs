//! OCI and Docker image types.
pub mod digest;
pub use digest::Digest;
