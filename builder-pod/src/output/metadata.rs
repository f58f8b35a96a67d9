//! `--iidfile` and `--metadata-file`: small records of a build for scripts and CI.
//!
//! The metadata keys follow BuildKit's (`containerimage.digest`, `containerimage.config.digest`,
//! `containerimage.descriptor`, `image.name`) so tools written for `docker buildx build
//! --metadata-file` read ours unchanged; the layer list is Stratum's addition.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::oci_layout::atomic_write;
use super::{BuiltImage, LayerInfo, OutputError};
use crate::image::Digest;

#[derive(Debug, Serialize)]
struct Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: &'a Digest,
    size: u64,
}

/// The JSON document written by `--metadata-file`.
#[derive(Debug, Serialize)]
pub struct Metadata<'a> {
    #[serde(rename = "containerimage.digest")]
    manifest_digest: &'a Digest,
    #[serde(rename = "containerimage.config.digest")]
    config_digest: &'a Digest,
    #[serde(rename = "containerimage.descriptor")]
    descriptor: Descriptor<'a>,
    #[serde(rename = "image.name", skip_serializing_if = "String::is_empty")]
    image_names: String,
    #[serde(rename = "stratum.layers")]
    layers: &'a [LayerInfo],
}

impl<'a> Metadata<'a> {
    pub fn new(image: &'a BuiltImage, names: &[String]) -> Self {
        Self {
            manifest_digest: &image.manifest_digest,
            config_digest: &image.config_digest,
            descriptor: Descriptor {
                media_type: &image.manifest_media_type,
                digest: &image.manifest_digest,
                size: image.manifest_size,
            },
            image_names: names.join(","),
            layers: &image.layers,
        }
    }
}

/// Writes the image ID (`sha256:` of the config), as `docker build --iidfile` does.
pub fn write_iidfile(path: &Path, image: &BuiltImage) -> Result<(), OutputError> {
    atomic_write(path, |out| write!(out, "{}", image.config_digest))
}

pub fn write_metadata_file(
    path: &Path,
    image: &BuiltImage,
    names: &[String],
) -> Result<(), OutputError> {
    let json = serde_json::to_vec_pretty(&Metadata::new(image, names)).expect("serialisable");
    atomic_write(path, |out| out.write_all(&json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::testimage::TestImage;

    #[test]
    fn metadata_uses_buildkit_keys_and_lists_layers() {
        let t = TestImage::new();
        let path = t.dir.path().join("meta.json");
        write_metadata_file(&path, &t.image, &["a:1".into(), "a:2".into()]).unwrap();
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            meta["containerimage.digest"],
            t.image.manifest_digest.to_string()
        );
        assert_eq!(
            meta["containerimage.config.digest"],
            t.image.config_digest.to_string()
        );
        assert_eq!(
            meta["containerimage.descriptor"]["size"],
            t.image.manifest_size
        );
        assert_eq!(meta["image.name"], "a:1,a:2");
        assert_eq!(
            meta["stratum.layers"][0]["diffId"],
            t.image.layers[0].diff_id.to_string()
        );

        let iid = t.dir.path().join("iid");
        write_iidfile(&iid, &t.image).unwrap();
        assert_eq!(
            std::fs::read_to_string(iid).unwrap(),
            t.image.config_digest.to_string()
        );
    }
}
