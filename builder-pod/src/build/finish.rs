//! The last step of a build: the target stage's config and manifest, serialised once, stored,
//! and described as a [`BuiltImage`].

use super::executor::StageState;
use super::{BuildError, ImageFormat};
use crate::image::{Descriptor, ImageConfig, ImageManifest, MediaType};
use crate::output::{BuiltImage, LayerInfo};
use crate::store::Store;

/// Media type of a layer in the output format. The bytes of a gzip layer are the same in both
/// formats; only the name differs, and a manifest should not mix the two families (BuildKit
/// converts base layers the same way). zstd has no Docker name.
pub(crate) fn layer_media_type(
    layer: &LayerInfo,
    format: ImageFormat,
) -> Result<MediaType, String> {
    let parsed: MediaType = layer
        .media_type
        .parse()
        .unwrap_or(MediaType::Other(layer.media_type.clone()));
    let converted = match (format, &parsed) {
        (ImageFormat::Oci, MediaType::DockerLayerGzip) => MediaType::OciLayerGzip,
        (ImageFormat::Docker, MediaType::OciLayerGzip) => MediaType::DockerLayerGzip,
        (ImageFormat::Docker, MediaType::OciLayerZstd) => {
            return Err(format!(
                "layer {} is zstd-compressed, which the Docker image format cannot describe; \
                 use --format oci or --compression gzip",
                layer.digest
            ));
        }
        _ => parsed,
    };
    Ok(converted)
}

/// Writes the image of `stage` into the store.
pub(crate) fn finish(
    store: &Store,
    stage: &StageState,
    format: ImageFormat,
    created: &str,
    labels: &std::collections::BTreeMap<String, String>,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Result<(BuiltImage, ImageConfig), BuildError> {
    let mut config = stage.image.clone();
    config.architecture = "amd64".to_owned();
    config.os = "linux".to_owned();
    config.created = created.to_owned();
    config.config = stage.meta.config.clone();
    config.config.labels.extend(labels.clone());
    if let Some(author) = &stage.meta.author {
        config.author.clone_from(author);
    }
    config.rootfs.kind = "layers".to_owned();
    config.rootfs.diff_ids = stage.layers.iter().map(|l| l.diff_id.clone()).collect();

    let (config_type, manifest_type) = match format {
        ImageFormat::Oci => (MediaType::OciConfig, MediaType::OciManifest),
        ImageFormat::Docker => (MediaType::DockerConfig, MediaType::DockerManifest),
    };
    let other = |e: serde_json::Error| BuildError::Other(format!("serialising the image: {e}"));
    let config_doc = config.serialize_as(config_type.clone()).map_err(other)?;
    store.put_blob(&config_doc.bytes)?;

    let mut layers = Vec::with_capacity(stage.layers.len());
    let mut infos = Vec::with_capacity(stage.layers.len());
    for layer in &stage.layers {
        let media_type = layer_media_type(layer, format).map_err(BuildError::Other)?;
        layers.push(Descriptor::new(
            media_type.clone(),
            layer.digest.clone(),
            layer.size,
        ));
        infos.push(LayerInfo {
            media_type: media_type.as_str().to_owned(),
            ..layer.clone()
        });
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(manifest_type.clone()),
        artifact_type: None,
        config: Descriptor::of_bytes(config_type, &config_doc.bytes),
        layers,
        subject: None,
        // Absent rather than `{}` when there are none, so an unannotated manifest keeps the
        // digest it had before annotations existed.
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
    };
    let manifest_doc =
        crate::image::Serialized::new(manifest_type.clone(), &manifest).map_err(other)?;
    store.put_blob(&manifest_doc.bytes)?;
    let image = BuiltImage {
        manifest_digest: manifest_doc.digest.clone(),
        manifest_media_type: manifest_type.as_str().to_owned(),
        manifest_size: manifest_doc.bytes.len() as u64,
        config_digest: config_doc.digest,
        layers: infos,
    };
    Ok((image, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;

    fn layer(media_type: &str) -> LayerInfo {
        LayerInfo {
            digest: Digest::of(b"l"),
            diff_id: Digest::of(b"d"),
            size: 1,
            media_type: media_type.into(),
        }
    }

    #[test]
    fn layer_media_types_follow_the_output_format() {
        let docker_gz = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        let oci_gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        let oci_zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
        let table = [
            (docker_gz, ImageFormat::Oci, Ok(oci_gz)),
            (oci_gz, ImageFormat::Docker, Ok(docker_gz)),
            (oci_gz, ImageFormat::Oci, Ok(oci_gz)),
            (oci_zstd, ImageFormat::Oci, Ok(oci_zstd)),
            (oci_zstd, ImageFormat::Docker, Err(())),
        ];
        for (input, format, expected) in table {
            let got = layer_media_type(&layer(input), format);
            match expected {
                Ok(want) => assert_eq!(got.unwrap().as_str(), want, "{input} as {format:?}"),
                Err(()) => assert!(got.unwrap_err().contains("--format oci")),
            }
        }
    }
}
