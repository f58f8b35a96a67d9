//! Base images: resolve a reference to one manifest for the host platform, fetch the layers the
//! store lacks (digest-verified), and unpack each on its own into `layers/<diffID>`.
//!
//! The diffID of every unpacked layer is checked against the config's `rootfs.diff_ids` while it
//! is unpacked (threats-and-faults §2.9 #50): a layer whose uncompressed bytes hash to something
//! else is refused and nothing is moved into place.

use std::io::{self, BufReader, Read};
use std::path::PathBuf;

use super::BuildError;
use super::executor::Executor;
use crate::image::digest::Digester;
use crate::image::{Digest, ImageConfig, Platform, Reference};
use crate::layer::{ApplyMode, ApplyOptions, apply_layer, decompress};
use crate::output::LayerInfo;
use crate::store::EnsureLayerError;

/// A pulled base image, unpacked in the store.
#[derive(Debug, Clone)]
pub(crate) struct BaseImage {
    /// Pinned to the manifest digest.
    pub reference: Reference,
    pub manifest_digest: Digest,
    pub config: ImageConfig,
    pub layers: Vec<LayerInfo>,
    /// Unpacked layer directories, bottom first (parallel to `layers`).
    pub lower_dirs: Vec<PathBuf>,
}

pub(crate) fn pull(exec: &Executor, reference_text: &str) -> Result<BaseImage, BuildError> {
    let pull_err = |source| BuildError::Pull {
        reference: reference_text.to_owned(),
        source,
    };
    let reference = Reference::parse(reference_text)
        .map_err(|e| BuildError::Other(format!("base image {reference_text:?}: {e}")))?;
    exec.progress().event(&super::progress::Event::Pulling {
        reference: reference_text,
    });
    let platform = Platform::linux_amd64();
    let resolved = exec
        .block_on(exec.registry().resolve(&reference, &platform))
        .map_err(pull_err)?;

    let diff_ids = &resolved.config.rootfs.diff_ids;
    if diff_ids.len() != resolved.manifest.layers.len() {
        return Err(BuildError::Other(format!(
            "base image {reference_text}: its manifest lists {} layers but its config {} diffIDs",
            resolved.manifest.layers.len(),
            diff_ids.len()
        )));
    }
    let repo = resolved.reference.repository().clone();
    let mut layers = Vec::new();
    let mut lower_dirs = Vec::new();
    for (descriptor, diff_id) in resolved.manifest.layers.iter().zip(diff_ids) {
        let info = LayerInfo {
            digest: descriptor.digest.clone(),
            diff_id: diff_id.clone(),
            size: descriptor.size,
            media_type: descriptor.media_type.as_str().to_owned(),
        };
        if !exec.store().has_layer(diff_id) && !exec.store().has_blob(&descriptor.digest) {
            let dest = exec.store().blob_path(&descriptor.digest);
            exec.block_on(exec.registry().fetch_blob_to(&repo, descriptor, &dest))
                .map_err(pull_err)?;
        }
        let dir = unpack(exec, &info, reference_text)?;
        layers.push(info);
        lower_dirs.push(dir);
    }
    exec.progress().event(&super::progress::Event::Pulled {
        reference: reference_text,
        digest: &resolved.manifest_digest.to_string(),
        layers: layers.len(),
    });
    Ok(BaseImage {
        reference: resolved.reference.clone(),
        manifest_digest: resolved.manifest_digest.clone(),
        config: resolved.config,
        layers,
        lower_dirs,
    })
}

/// Unpacks a layer blob from the store into `layers/<diffID>` unless it is already there.
pub(crate) fn unpack(
    exec: &Executor,
    layer: &LayerInfo,
    image: &str,
) -> Result<PathBuf, BuildError> {
    let unpack_err = |message: String| BuildError::Unpack {
        reference: image.to_owned(),
        digest: layer.digest.to_string(),
        message,
    };
    let store = exec.store();
    let result = store.ensure_layer(&layer.diff_id, |dir| {
        let blob = store.open_blob(&layer.digest).map_err(|e| e.to_string())?;
        let plain =
            decompress(BufReader::with_capacity(256 * 1024, blob)).map_err(|e| e.to_string())?;
        let mut hashed = HashingReader {
            inner: plain,
            digester: Digester::new(),
        };
        let options = ApplyOptions::new(ApplyMode::OverlayLayer);
        apply_layer(&mut hashed, dir, &options).map_err(|e| e.to_string())?;
        // The tar ends before the stream does (end-of-archive blocks, padding); the diffID covers
        // every byte.
        io::copy(&mut hashed, &mut io::sink()).map_err(|e| e.to_string())?;
        let (actual, _) = hashed.digester.finish();
        if actual != layer.diff_id {
            return Err(format!(
                "the layer decompresses to {actual}, but the image config says {}",
                layer.diff_id
            ));
        }
        Ok(())
    });
    match result {
        Ok(dir) => Ok(dir),
        Err(EnsureLayerError::Fill(message)) => Err(unpack_err(message)),
        Err(EnsureLayerError::Store(e)) => Err(e.into()),
    }
}

struct HashingReader<R> {
    inner: R,
    digester: Digester,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}
