//! OCI and Docker image types: digests, references, media types, descriptors, platforms,
//! manifests, indexes and configs.
//!
//! Everything here is pure (no I/O): received documents are parsed strictly, and documents we
//! produce are serialised once, byte-compatible with Docker/BuildKit, and hashed as written
//! ([`Serialized`]). See docs/arch/image-registry.md.

pub mod config;
pub mod descriptor;
pub mod digest;
pub mod json;
pub mod manifest;
pub mod media_type;
pub mod platform;
pub mod reference;

pub use config::{ConfigError, ContainerConfig, Healthcheck, History, ImageConfig, RootFs};
pub use descriptor::Descriptor;
pub use digest::{Digest, DigestError, Digester};
pub use manifest::{
    ImageIndex, ImageManifest, Manifest, ManifestError, NoMatchingPlatform, Serialized,
};
pub use media_type::{Compression, MediaType};
pub use platform::{Platform, PlatformError};
pub use reference::{ManifestRef, Reference, ReferenceError, ReferenceErrorKind, Repository, Tag};
