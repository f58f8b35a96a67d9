//! Content descriptors (image-spec descriptor.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Digest, MediaType, Platform};

/// A typed reference to content: what it is, its digest and its exact size.
///
/// Field order is the image-spec Go struct's (`mediaType`, `digest`, `size`, …), which BuildKit
/// uses for OCI and Docker manifests alike. `size` is required: descriptor.md says it "MUST" be
/// present and clients "SHOULD" refuse content whose length differs, so a descriptor without it
/// fails to parse (threats-and-faults §2.9 #50).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: MediaType,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
}

impl Descriptor {
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Self {
        Self {
            media_type,
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// The descriptor of `bytes` (a config or manifest that is held in memory).
    pub fn of_bytes(media_type: MediaType, bytes: &[u8]) -> Self {
        Self::new(media_type, Digest::of(bytes), bytes.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn serialises_in_image_spec_order_and_omits_absent_fields() {
        let desc = Descriptor::of_bytes(MediaType::OciLayerGzip, b"");
        let json = String::from_utf8(crate::image::json::to_vec(&desc).unwrap()).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D}","size":0}}"#
            )
        );
    }

    #[test]
    fn size_is_required_and_must_be_a_non_negative_integer() {
        let base =
            format!(r#""mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{D}""#);
        assert!(serde_json::from_str::<Descriptor>(&format!("{{{base},\"size\":3}}")).is_ok());
        for size in [
            "",
            r#","size":-1"#,
            r#","size":1.5"#,
            r#","size":"3""#,
            r#","size":null"#,
        ] {
            let doc = format!("{{{base}{size}}}");
            assert!(serde_json::from_str::<Descriptor>(&doc).is_err(), "{doc}");
        }
    }

    #[test]
    fn digest_is_validated_when_parsed() {
        let doc = r#"{"mediaType":"x/y","digest":"sha256:../../etc/passwd","size":1}"#;
        assert!(serde_json::from_str::<Descriptor>(doc).is_err());
    }
}
