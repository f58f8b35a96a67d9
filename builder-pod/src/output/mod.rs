//! Where a built image goes besides a registry: an OCI image layout (directory or tar archive), a
//! docker-archive loadable by `docker load` / `podman load`, and the `--iidfile` /
//! `--metadata-file` records.
//!
//! Every writer takes the image as committed to the [`Store`] — the exact manifest and config
//! bytes that were hashed — and copies blobs from there; nothing is re-serialised on the way out,
//! so the digests a user sees in any output are the digests of the bytes we wrote. Files appear
//! atomically (written beside the destination, then renamed).

mod docker_archive;
mod metadata;
mod oci_layout;

use std::io;
use std::path::PathBuf;

pub use docker_archive::write_docker_archive;
pub use metadata::{Metadata, write_iidfile, write_metadata_file};
pub use oci_layout::{write_oci_archive, write_oci_layout};

use crate::image::Digest;
use crate::store::StoreError;

/// One layer of a built image, as its manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

/// A built image whose blobs (manifest, config, layers) are all in the store.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub manifest_size: u64,
    /// The image ID.
    pub config_digest: Digest,
    pub layers: Vec<LayerInfo>,
}

/// Errors writing an output; each names the destination.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("writing {dest}: {source}")]
    Io {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {dest}: {source}")]
    Store {
        dest: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("writing {dest}: the existing {file} is not a valid OCI layout file: {reason}")]
    BadLayout {
        dest: PathBuf,
        file: &'static str,
        reason: String,
    },
    #[error(
        "writing {dest}: layer {digest} has media type {media_type}, which a docker-archive cannot \
         carry; use --output type=oci"
    )]
    UnsupportedLayer {
        dest: PathBuf,
        digest: Digest,
        media_type: String,
    },
}

pub(crate) fn io_err(dest: &std::path::Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        dest: dest.to_owned(),
        source,
    }
}

pub(crate) fn store_err(dest: &std::path::Path) -> impl FnOnce(StoreError) -> OutputError + '_ {
    move |source| OutputError::Store {
        dest: dest.to_owned(),
        source,
    }
}

#[cfg(test)]
pub(crate) mod testimage;
