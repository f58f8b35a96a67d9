//! Media types of the OCI image-spec (media-types.md) and Docker's image manifest v2 schema 2.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A media type as it appears in `mediaType` fields and `Content-Type`/`Accept` headers.
///
/// The known types are variants so that code matches on them instead of comparing strings;
/// anything else (artifact types, nondistributable layers, future types) is kept verbatim in
/// [`MediaType::Other`] so it survives a round trip.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaType {
    OciManifest,
    OciIndex,
    OciConfig,
    OciLayer,
    OciLayerGzip,
    OciLayerZstd,
    OciEmpty,
    DockerManifest,
    DockerManifestList,
    DockerConfig,
    DockerLayerGzip,
    DockerForeignLayerGzip,
    /// Docker's legacy schema 1 (signed) manifest: recognised only to reject it by name.
    DockerManifestV1Signed,
    DockerManifestV1,
    Other(String),
}

const KNOWN: &[(MediaType, &str)] = &[
    (
        MediaType::OciManifest,
        "application/vnd.oci.image.manifest.v1+json",
    ),
    (
        MediaType::OciIndex,
        "application/vnd.oci.image.index.v1+json",
    ),
    (
        MediaType::OciConfig,
        "application/vnd.oci.image.config.v1+json",
    ),
    (
        MediaType::OciLayer,
        "application/vnd.oci.image.layer.v1.tar",
    ),
    (
        MediaType::OciLayerGzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    (
        MediaType::OciLayerZstd,
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ),
    (MediaType::OciEmpty, "application/vnd.oci.empty.v1+json"),
    (
        MediaType::DockerManifest,
        "application/vnd.docker.distribution.manifest.v2+json",
    ),
    (
        MediaType::DockerManifestList,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ),
    (
        MediaType::DockerConfig,
        "application/vnd.docker.container.image.v1+json",
    ),
    (
        MediaType::DockerLayerGzip,
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    (
        MediaType::DockerForeignLayerGzip,
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ),
    (
        MediaType::DockerManifestV1Signed,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ),
    (
        MediaType::DockerManifestV1,
        "application/vnd.docker.distribution.manifest.v1+json",
    ),
];

/// Layer compression, as a media type states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl MediaType {
    /// The `Accept` header for a manifest GET: every manifest and index type we can read (the
    /// distribution spec lets a registry convert or refuse types the client does not list).
    pub const MANIFEST_ACCEPT: &'static str = "application/vnd.oci.image.manifest.v1+json, \
         application/vnd.oci.image.index.v1+json, \
         application/vnd.docker.distribution.manifest.v2+json, \
         application/vnd.docker.distribution.manifest.list.v2+json";

    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(s) => s,
            known => KNOWN
                .iter()
                .find(|(m, _)| m == known)
                .map(|(_, s)| *s)
                .unwrap_or_default(),
        }
    }

    /// Parses a `Content-Type` header value: parameters (`; charset=utf-8`) are dropped and the
    /// type is compared case-insensitively (RFC 9110 §8.3.1).
    pub fn from_content_type(value: &str) -> Self {
        let essence = value.split(';').next().unwrap_or_default().trim();
        Self::from(essence.to_ascii_lowercase().as_str())
    }

    /// An image manifest (OCI or Docker schema 2).
    pub fn is_image_manifest(&self) -> bool {
        matches!(self, Self::OciManifest | Self::DockerManifest)
    }

    /// An index or Docker manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self, Self::OciIndex | Self::DockerManifestList)
    }

    /// Any manifest type a registry serves from `/manifests/`.
    pub fn is_manifest(&self) -> bool {
        self.is_image_manifest() || self.is_index()
    }

    /// An image config blob.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::OciConfig | Self::DockerConfig)
    }

    /// The compression of a layer type, or `None` if this is not a layer type we can apply.
    pub fn layer_compression(&self) -> Option<Compression> {
        match self {
            Self::OciLayer => Some(Compression::None),
            Self::OciLayerGzip | Self::DockerLayerGzip | Self::DockerForeignLayerGzip => {
                Some(Compression::Gzip)
            }
            Self::OciLayerZstd => Some(Compression::Zstd),
            _ => None,
        }
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        KNOWN
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(m, _)| m.clone())
            .unwrap_or_else(|| Self::Other(s.to_owned()))
    }
}

impl FromStr for MediaType {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(s))
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MediaType({})", self.as_str())
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(Self::from(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_type_round_trips_through_its_string() {
        for (media_type, name) in KNOWN {
            assert_eq!(media_type.as_str(), *name);
            assert_eq!(&MediaType::from(*name), media_type);
        }
        let other = MediaType::from("application/vnd.example+json");
        assert_eq!(
            other,
            MediaType::Other("application/vnd.example+json".into())
        );
        assert_eq!(other.as_str(), "application/vnd.example+json");
    }

    #[test]
    fn content_type_parameters_and_case_are_ignored() {
        assert_eq!(
            MediaType::from_content_type(
                "Application/VND.OCI.image.manifest.v1+json; charset=utf-8"
            ),
            MediaType::OciManifest
        );
        assert_eq!(
            MediaType::from_content_type("application/json"),
            MediaType::Other("application/json".into())
        );
    }

    #[test]
    fn classification() {
        assert!(MediaType::DockerManifestList.is_index());
        assert!(MediaType::OciManifest.is_image_manifest());
        assert!(!MediaType::OciConfig.is_manifest());
        assert_eq!(
            MediaType::DockerLayerGzip.layer_compression(),
            Some(Compression::Gzip)
        );
        assert_eq!(
            MediaType::OciLayerZstd.layer_compression(),
            Some(Compression::Zstd)
        );
        assert_eq!(MediaType::OciConfig.layer_compression(), None);
    }
}
