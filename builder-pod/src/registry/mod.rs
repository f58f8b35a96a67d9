//! A distribution-spec registry client: anonymous, Basic and Bearer-token auth from docker
//! config credentials; pulls by tag or digest through indexes to one platform, with every byte
//! verified before use; pushes with existence checks, cross-repository mounts, monolithic or
//! resumable chunked uploads and verified manifest digests; and the retry discipline of
//! threats-and-faults §4.2 (R1–R10). See docs/arch/image-registry.md.
//!
//! [`Registry`] is the seam the build executor and the operator depend on; it returns boxed
//! futures so that it can be used as `Arc<dyn Registry>` (a test double, or a wrapper that records
//! progress) while [`RegistryClient`] is the real implementation.

mod auth;
mod client;
pub mod credentials;
mod error;
pub mod httpdate;
mod ops;
mod pull;
mod push;
pub mod retry;

use std::path::Path;

use bytes::Bytes;
use futures::future::BoxFuture;

pub use client::{ClientConfig, RegistryClient};
pub use credentials::{Credential, Credentials, CredentialsError, Secret};
pub use error::{ApiError, ApiErrors, RegistryError};
pub use ops::{ImagePush, LocalBlob, PushedImage, push_image};
pub use pull::{MAX_CONFIG_BYTES, fetch_blobs, resolve};
pub use retry::RetryPolicy;

use crate::image::{
    Descriptor, Digest, ImageConfig, ImageManifest, Manifest, ManifestRef, MediaType, Platform,
    Reference, Repository,
};

/// A manifest as received: the exact bytes, their digest (computed here), and the parse.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub digest: Digest,
    pub media_type: MediaType,
    pub bytes: Bytes,
    pub manifest: Manifest,
}

/// One image resolved for one platform, with every document verified.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The reference pinned to `manifest_digest`.
    pub reference: Reference,
    /// The index the manifest was chosen from, when the reference named one.
    pub index_digest: Option<Digest>,
    pub manifest_digest: Digest,
    pub manifest_media_type: MediaType,
    pub manifest_bytes: Bytes,
    pub manifest: ImageManifest,
    /// The config's exact bytes; their digest (`manifest.config.digest`) is the image ID.
    pub config_bytes: Bytes,
    pub config: ImageConfig,
}

impl ResolvedImage {
    /// The image ID: the digest of the config bytes.
    pub fn image_id(&self) -> &Digest {
        &self.manifest.config.digest
    }
}

/// What pushing a blob did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobPushed {
    /// The repository already had it (HEAD).
    Existed,
    /// Mounted from another repository of the same registry, without uploading.
    Mounted {
        from: Repository,
    },
    Uploaded,
}

/// The registry operations the rest of Stratum uses.
pub trait Registry: Send + Sync {
    /// GET a manifest by tag or digest; digest-checked before it is parsed.
    fn fetch_manifest<'a>(
        &'a self,
        repo: &'a Repository,
        reference: &'a ManifestRef,
    ) -> BoxFuture<'a, Result<FetchedManifest, RegistryError>>;

    /// GET a small blob (a config) into memory, verifying size and digest; at most `limit` bytes.
    fn fetch_blob<'a>(
        &'a self,
        repo: &'a Repository,
        blob: &'a Descriptor,
        limit: u64,
    ) -> BoxFuture<'a, Result<Bytes, RegistryError>>;

    /// GET a blob into `dest`; `dest` appears (by rename) only after size and digest match.
    fn fetch_blob_to<'a>(
        &'a self,
        repo: &'a Repository,
        blob: &'a Descriptor,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;

    /// HEAD a blob.
    fn blob_exists<'a>(
        &'a self,
        repo: &'a Repository,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool, RegistryError>>;

    /// Pushes the file at `path` as `blob`, mounting from `mount_from` if possible.
    fn push_blob<'a>(
        &'a self,
        repo: &'a Repository,
        blob: &'a Descriptor,
        path: &'a Path,
        mount_from: Option<&'a Repository>,
    ) -> BoxFuture<'a, Result<BlobPushed, RegistryError>>;

    /// PUTs manifest bytes under a tag or their digest; returns the local digest of `bytes`,
    /// confirmed in the registry.
    fn push_manifest<'a>(
        &'a self,
        repo: &'a Repository,
        reference: &'a ManifestRef,
        media_type: &'a MediaType,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<Digest, RegistryError>>;

    /// Resolves a reference to one verified image for `platform` (see [`resolve`]).
    fn resolve<'a>(
        &'a self,
        reference: &'a Reference,
        platform: &'a Platform,
    ) -> BoxFuture<'a, Result<ResolvedImage, RegistryError>> {
        Box::pin(resolve(self, reference, platform))
    }
}

impl Registry for RegistryClient {
    fn fetch_manifest<'a>(
        &'a self,
        repo: &'a Repository,
        reference: &'a ManifestRef,
    ) -> BoxFuture<'a, Result<FetchedManifest, RegistryError>> {
        Box::pin(RegistryClient::fetch_manifest(self, repo, reference))
    }

    fn fetch_blob<'a>(
        &'a self,
        repo: &'a Repository,
        blob: &'a Descriptor,
        limit: u64,
    ) -> BoxFuture<'a, Result<Bytes, RegistryError>> {
        Box::pin(RegistryClient::fetch_blob(self, repo, blob, limit))
    }

    fn fetch_blob_to<'a>(
        &'a self,
        repo: &'a Repository,
        blob: &'a Descriptor,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(RegistryClient::fetch_blob_to(self, repo, blob, dest))
    }

    fn blob_exists<'a>(
        &'a self,
        repo: &'a Repository,
        digest: &'a Digest,
    ) -> BoxFuture<'a, Result<bool, RegistryError>> {
        Box::pin(RegistryClient::blob_exists(self, repo, digest))
    }

    fn push_blob<'a>(
        &'a self,
        repo: &'a Repository,
        blob: &'a Descriptor,
        path: &'a Path,
        mount_from: Option<&'a Repository>,
    ) -> BoxFuture<'a, Result<BlobPushed, RegistryError>> {
        Box::pin(RegistryClient::push_blob(
            self, repo, blob, path, mount_from,
        ))
    }

    fn push_manifest<'a>(
        &'a self,
        repo: &'a Repository,
        reference: &'a ManifestRef,
        media_type: &'a MediaType,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<Digest, RegistryError>> {
        Box::pin(RegistryClient::push_manifest(
            self, repo, reference, media_type, bytes,
        ))
    }
}
