//! docker-archive: the `docker save` format that `docker load` and `podman load` read.
//!
//! `manifest.json` lists the config and the layers as *uncompressed* tars (the format predates
//! compressed layers, and older `docker load` versions accept nothing else). Each layer is
//! decompressed from the store through a temporary file whose sha256 must equal the layer's
//! diffID before it enters the archive — so the archive can never carry a layer that disagrees
//! with the config's `rootfs.diff_ids`. Paths follow Docker 25's `blobs/sha256/<hex>` naming,
//! which every loader accepts because it only follows the paths in `manifest.json`.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::Path;

use serde_json::json;

use super::oci_layout::{append_bytes, append_dir, atomic_write, file_header};
use super::{BuiltImage, LayerInfo, OutputError};
use crate::image::digest::Digester;
use crate::store::Store;

/// Writes a docker-archive to `dest`. `repo_tags` are full references (`registry/app:tag`).
pub fn write_docker_archive(
    store: &Store,
    image: &BuiltImage,
    dest: &Path,
    repo_tags: &[String],
) -> Result<(), OutputError> {
    for layer in &image.layers {
        decoder_for(dest, layer, io::empty())?; // refuse unsupported layers before writing
    }
    let config_name = format!("blobs/sha256/{}", image.config_digest.hex());
    let layer_names: Vec<String> = image
        .layers
        .iter()
        .map(|l| format!("blobs/sha256/{}", l.diff_id.hex()))
        .collect();
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": layer_names,
    }]);
    let manifest = serde_json::to_vec(&manifest).expect("JSON values serialise");
    let scratch = store
        .scratch_dir("docker-archive")
        .map_err(super::store_err(dest))?;

    atomic_write(dest, |out| {
        let mut tar = tar::Builder::new(out);
        append_dir(&mut tar, "blobs/")?;
        append_dir(&mut tar, "blobs/sha256/")?;
        let mut config = store
            .open_blob(&image.config_digest)
            .map_err(io::Error::other)?;
        let size = config.metadata()?.len();
        tar.append_data(&mut file_header(size), &config_name, &mut config)?;
        for (layer, name) in image.layers.iter().zip(&layer_names) {
            let mut plain = decompress_verified(store, dest, layer, scratch.path())?;
            let size = plain.metadata()?.len();
            tar.append_data(&mut file_header(size), name, &mut plain)?;
        }
        append_bytes(&mut tar, "manifest.json", &manifest)?;
        tar.into_inner()?.flush()
    })
}

fn decoder_for<'a, R: Read + 'a>(
    dest: &Path,
    layer: &LayerInfo,
    blob: R,
) -> Result<Box<dyn Read + 'a>, OutputError> {
    let mt = layer.media_type.as_str();
    if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(blob)))
    } else if mt.ends_with("+zstd") {
        let decoder = zstd::stream::read::Decoder::new(blob).map_err(super::io_err(dest))?;
        Ok(Box::new(decoder))
    } else if mt.ends_with(".tar") || mt.ends_with("rootfs.diff.tar") {
        Ok(Box::new(blob))
    } else {
        Err(OutputError::UnsupportedLayer {
            dest: dest.to_owned(),
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
        })
    }
}

/// Decompresses one layer into a temporary file and checks it against the diffID.
fn decompress_verified(
    store: &Store,
    dest: &Path,
    layer: &LayerInfo,
    scratch: &Path,
) -> io::Result<File> {
    let blob = BufReader::new(store.open_blob(&layer.digest).map_err(io::Error::other)?);
    let mut decoder = decoder_for(dest, layer, blob).map_err(io::Error::other)?;
    let mut file = tempfile::tempfile_in(scratch)?;
    let mut tee = Tee {
        out: &mut file,
        digester: Digester::new(),
    };
    io::copy(&mut decoder, &mut tee)?;
    let (actual, _) = tee.digester.finish();
    if actual != layer.diff_id {
        return Err(io::Error::other(format!(
            "layer {} decompresses to {actual}, but the image config says its diffID is {}",
            layer.digest, layer.diff_id
        )));
    }
    file.rewind()?;
    Ok(file)
}

struct Tee<'a, W> {
    out: &'a mut W,
    digester: Digester,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;
    use crate::output::testimage::{TestImage, skopeo};

    #[test]
    fn docker_archive_is_readable_by_skopeo_with_the_same_config() {
        let t = TestImage::new();
        let dest = t.dir.path().join("image.tar");
        write_docker_archive(&t.store, &t.image, &dest, &["example.com/hello:1".into()]).unwrap();
        let config = skopeo(&[
            "inspect",
            "--config",
            "--raw",
            &format!("docker-archive:{}", dest.display()),
        ]);
        assert_eq!(
            Digest::of(&config),
            t.image.config_digest,
            "config bytes unchanged"
        );
        // Addressing the image by its tag proves `RepoTags` made it into manifest.json.
        let by_tag = format!("docker-archive:{}:example.com/hello:1", dest.display());
        let inspect: serde_json::Value =
            serde_json::from_slice(&skopeo(&["inspect", &by_tag])).unwrap();
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_layer_that_disagrees_with_its_diff_id_is_refused() {
        let mut t = TestImage::new();
        t.image.layers[0].diff_id = Digest::of(b"something else");
        let dest = t.dir.path().join("image.tar");
        let err = write_docker_archive(&t.store, &t.image, &dest, &[]).unwrap_err();
        assert!(err.to_string().contains("diffID"), "{err}");
        assert!(!dest.exists(), "no partial archive is left behind");
    }
}
