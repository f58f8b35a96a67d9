//! Whole-image push on top of [`Registry`]: blobs concurrently, then the manifest under each
//! tag, with the recovery of threats-and-faults R8.

use std::path::PathBuf;

use futures::{StreamExt, TryStreamExt};

use super::{BlobPushed, Registry, RegistryError};
use crate::image::{Descriptor, Digest, ManifestRef, Reference, Repository, Serialized, Tag};

/// A blob on local disk, ready to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBlob {
    pub descriptor: Descriptor,
    pub path: PathBuf,
}

/// Everything needed to push one image manifest.
#[derive(Debug, Clone, Copy)]
pub struct ImagePush<'a> {
    pub repository: &'a Repository,
    /// The config and layer blobs the manifest references.
    pub blobs: &'a [LocalBlob],
    /// The manifest, serialised once; exactly these bytes are pushed.
    pub manifest: &'a Serialized,
    /// Tags to push the manifest under; with none it is pushed by digest only.
    pub tags: &'a [Tag],
    /// A repository of the same registry that may already hold some blobs (the base image's).
    pub mount_from: Option<&'a Repository>,
    pub concurrency: usize,
}

/// The result of [`push_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The locally computed manifest digest, confirmed in the registry (R10).
    pub digest: Digest,
    /// `repository@digest`.
    pub reference: Reference,
    /// What happened to each blob, in `blobs` order.
    pub blobs: Vec<(Digest, BlobPushed)>,
}

/// Pushes the blobs (skipping those present, mounting where possible), then the manifest under
/// every tag.
///
/// R8: if the registry refuses the manifest with `MANIFEST_BLOB_UNKNOWN` (a mount that
/// "succeeded" without effect, or a blob garbage-collected between HEAD and PUT), the blobs it
/// names — or, if it names none, those a HEAD finds missing — are uploaded again without
/// mounting and the PUT is retried once; a second refusal fails with the list of blobs.
pub async fn push_image<R: Registry + ?Sized>(
    registry: &R,
    push: &ImagePush<'_>,
) -> Result<PushedImage, RegistryError> {
    let repo = push.repository;
    let blobs: Vec<(Digest, BlobPushed)> =
        futures::stream::iter(push.blobs.iter().map(|blob| async move {
            let outcome = registry
                .push_blob(repo, &blob.descriptor, &blob.path, push.mount_from)
                .await?;
            Ok::<_, RegistryError>((blob.descriptor.digest.clone(), outcome))
        }))
        .buffered(push.concurrency.max(1))
        .try_collect()
        .await?;

    let mut targets: Vec<ManifestRef> = push.tags.iter().cloned().map(ManifestRef::Tag).collect();
    if targets.is_empty() {
        targets.push(ManifestRef::Digest(push.manifest.digest.clone()));
    }
    let manifest = push.manifest;
    let put = |target: &ManifestRef| {
        let target = target.clone();
        async move {
            registry
                .push_manifest(repo, &target, &manifest.media_type, &manifest.bytes)
                .await
        }
    };
    let digest = match put(&targets[0]).await {
        Err(RegistryError::ManifestBlobUnknown { blobs: named, .. }) => {
            let missing = missing_blobs(registry, push, &named).await?;
            tracing::warn!(repository = %repo, missing = missing.len(), "registry lost blobs before the manifest PUT; uploading them again");
            for blob in &missing {
                registry
                    .push_blob(repo, &blob.descriptor, &blob.path, None)
                    .await?;
            }
            match put(&targets[0]).await {
                Err(RegistryError::ManifestBlobUnknown { repository, blobs })
                    if blobs.is_empty() =>
                {
                    return Err(RegistryError::ManifestBlobUnknown {
                        repository,
                        blobs: missing
                            .iter()
                            .map(|b| b.descriptor.digest.clone())
                            .collect(),
                    });
                }
                other => other?,
            }
        }
        other => other?,
    };
    for target in &targets[1..] {
        put(target).await?;
    }
    Ok(PushedImage {
        reference: Reference::new(repo.clone(), None, Some(digest.clone())),
        digest,
        blobs,
    })
}

/// The local blobs the registry is missing: those it named, or else those a HEAD cannot find.
async fn missing_blobs<'p, R: Registry + ?Sized>(
    registry: &R,
    push: &ImagePush<'p>,
    named: &[Digest],
) -> Result<Vec<&'p LocalBlob>, RegistryError> {
    if !named.is_empty() {
        return Ok(push
            .blobs
            .iter()
            .filter(|b| named.contains(&b.descriptor.digest))
            .collect());
    }
    let mut missing = Vec::new();
    for blob in push.blobs {
        if !registry
            .blob_exists(push.repository, &blob.descriptor.digest)
            .await?
        {
            missing.push(blob);
        }
    }
    if missing.is_empty() {
        // The registry names nothing and HEAD finds everything: push them all again.
        missing.extend(push.blobs.iter());
    }
    Ok(missing)
}
