//! How one build-cache entry is laid out in a registry repository — pure, no I/O.
//!
//! An entry is a small OCI image manifest tagged `sha256-<key hex>` (the step's chained
//! [`CacheKey`]):
//! - its config blob (media type [`ENTRY_MEDIA_TYPE`]) is the entry itself as JSON: the key it
//!   answers, the layer (blob digest, diffID, size, media type) and the step's history time —
//!   exactly what the local cache records, so a remote hit is indistinguishable from a local one;
//! - its one layer is the step's layer blob, or, for a step that changed no files, the OCI empty
//!   descriptor (image-spec 1.1 manifest.md: layers SHOULD have at least one entry), so that
//!   registry garbage collection keeps the layer alive for as long as the tag exists.
//!
//! A tag rather than an index of all entries: one GET answers a lookup, concurrent builders never
//! race on a shared document, and a key is a name the registry already indexes (Kaniko's
//! `--cache-repo` does the same). The `sha256-` form is the one cosign and the OCI referrers
//! fallback use for digest-derived tags, since `:` is not allowed in a tag.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::super::cache::{CacheEntry, CacheKey, CachedLayer};
use crate::image::{Descriptor, Digest, ImageManifest, Manifest, MediaType, Serialized, Tag};

/// The config media type that marks a manifest as a Stratum cache entry.
pub const ENTRY_MEDIA_TYPE: &str = "application/vnd.stratum.cache.entry.v1+json";

/// The most bytes an entry document may have: it is a few hundred; anything big is not ours.
pub const MAX_ENTRY_BYTES: u64 = 64 << 10;

/// The content of the OCI empty descriptor (image-spec manifest.md "Guidance for an Empty
/// Descriptor").
pub const EMPTY_JSON: &[u8] = b"{}";

/// The annotation that names the key in the manifest, for people browsing the repository.
const KEY_ANNOTATION: &str = "dev.stratum.cache.key";

/// Why a manifest found under a key's tag is not a usable entry for that key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("it is not an image manifest")]
    NotAManifest,
    #[error("its config has media type {0}, not {ENTRY_MEDIA_TYPE}")]
    WrongConfigType(String),
    #[error("its config is {0} bytes, more than the {MAX_ENTRY_BYTES} an entry may have")]
    TooLarge(u64),
    #[error("the entry document is invalid: {0}")]
    Invalid(String),
    #[error("the entry answers key {found}, not {wanted}")]
    WrongKey { wanted: Digest, found: Digest },
    #[error("the entry's layer {0} is not the manifest's layer")]
    LayerMismatch(Digest),
    #[error("the layer media type {0} is not a layer type Stratum writes")]
    UnknownLayerType(String),
}

/// The tag an entry for `key` lives under.
pub fn tag_for(key: &CacheKey) -> Tag {
    format!("{}-{}", key.0.algorithm(), key.0.hex())
        .parse()
        .expect("an algorithm and lowercase hex digits form a valid tag")
}

/// The entry document: the local [`CacheEntry`] plus the key it answers, so that a tag pointing
/// at the wrong document is detected rather than trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryDocument {
    key: Digest,
    layer: Option<CachedLayer>,
    created: String,
}

/// The documents that store one entry: its config (the entry) and the manifest naming it.
#[derive(Debug, Clone)]
pub struct EntryDocuments {
    pub config: Serialized,
    pub manifest: Serialized,
    /// The manifest's layer descriptor: the step's layer blob, or the empty descriptor.
    pub layer: Descriptor,
}

/// Serialises an entry for `key`.
pub fn documents(key: &CacheKey, entry: &CacheEntry) -> EntryDocuments {
    let document = EntryDocument {
        key: key.0.clone(),
        layer: entry.layer.clone(),
        created: entry.created.clone(),
    };
    let config = Serialized::new(MediaType::Other(ENTRY_MEDIA_TYPE.to_owned()), &document)
        .expect("an entry serialises");
    let layer = match &entry.layer {
        Some(l) => Descriptor::new(
            MediaType::from(l.media_type.as_str()),
            l.digest.clone(),
            l.size,
        ),
        None => Descriptor::of_bytes(MediaType::OciEmpty, EMPTY_JSON),
    };
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MediaType::OciManifest),
        artifact_type: None,
        config: config.descriptor(),
        layers: vec![layer.clone()],
        subject: None,
        annotations: Some(BTreeMap::from([(
            KEY_ANNOTATION.to_owned(),
            key.0.to_string(),
        )])),
    };
    let manifest =
        Serialized::new(MediaType::OciManifest, &manifest).expect("a manifest serialises");
    EntryDocuments {
        config,
        manifest,
        layer,
    }
}

/// The config descriptor of a manifest found under a key's tag, if it looks like an entry.
pub fn entry_config(manifest: &Manifest) -> Result<&Descriptor, EntryError> {
    let Manifest::Image(image) = manifest else {
        return Err(EntryError::NotAManifest);
    };
    if image.config.media_type.as_str() != ENTRY_MEDIA_TYPE {
        return Err(EntryError::WrongConfigType(
            image.config.media_type.to_string(),
        ));
    }
    if image.config.size > MAX_ENTRY_BYTES {
        return Err(EntryError::TooLarge(image.config.size));
    }
    Ok(&image.config)
}

/// Reads the entry document (already digest-verified against the manifest) and checks it against
/// the key asked for and the manifest's layer. Returns the local entry and the descriptor of its
/// layer blob, if it has one.
pub fn parse_entry(
    key: &CacheKey,
    manifest: &Manifest,
    config: &[u8],
) -> Result<(CacheEntry, Option<Descriptor>), EntryError> {
    let Manifest::Image(image) = manifest else {
        return Err(EntryError::NotAManifest);
    };
    crate::image::json::check_document(config).map_err(|e| EntryError::Invalid(e.to_string()))?;
    let document: EntryDocument =
        serde_json::from_slice(config).map_err(|e| EntryError::Invalid(e.to_string()))?;
    if document.key != key.0 {
        return Err(EntryError::WrongKey {
            wanted: key.0.clone(),
            found: document.key,
        });
    }
    let blob = match &document.layer {
        None => None,
        Some(layer) => {
            let media_type = MediaType::from(layer.media_type.as_str());
            if media_type.layer_compression().is_none() {
                return Err(EntryError::UnknownLayerType(layer.media_type.clone()));
            }
            let listed = image
                .layers
                .iter()
                .find(|d| d.digest == layer.digest && d.size == layer.size)
                .ok_or_else(|| EntryError::LayerMismatch(layer.digest.clone()))?;
            Some(Descriptor::new(
                media_type,
                listed.digest.clone(),
                listed.size,
            ))
        }
    };
    Ok((
        CacheEntry {
            layer: document.layer,
            created: document.created,
        },
        blob,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey(Digest::of(b"a step"))
    }

    fn entry_with_layer() -> CacheEntry {
        CacheEntry {
            layer: Some(CachedLayer {
                digest: Digest::of(b"blob"),
                diff_id: Digest::of(b"tar"),
                size: 4,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }),
            created: "2026-11-22T18:00:00.123456789Z".into(),
        }
    }

    #[test]
    fn keys_map_to_digest_tags() {
        let table = [
            (
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ),
        ];
        for (key, want) in table {
            let key = CacheKey(key.parse().unwrap());
            assert_eq!(tag_for(&key).as_str(), want);
        }
    }

    #[test]
    fn entry_documents_are_golden() {
        let docs = documents(&key(), &entry_with_layer());
        let config = String::from_utf8(docs.config.bytes.clone()).unwrap();
        assert_eq!(
            config,
            format!(
                concat!(
                    r#"{{"key":"{key}","layer":{{"digest":"{blob}","diffId":"{tar}","size":4,"#,
                    r#""mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"}},"#,
                    r#""created":"2026-11-22T18:00:00.123456789Z"}}"#
                ),
                key = key().0,
                blob = Digest::of(b"blob"),
                tar = Digest::of(b"tar"),
            )
        );
        let manifest = String::from_utf8(docs.manifest.bytes.clone()).unwrap();
        assert_eq!(
            manifest,
            format!(
                concat!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","#,
                    r#""config":{{"mediaType":"{ENTRY_MEDIA_TYPE}","digest":"{config}","size":{size}}},"#,
                    r#""layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","#,
                    r#""digest":"{blob}","size":4}}],"#,
                    r#""annotations":{{"dev.stratum.cache.key":"{key}"}}}}"#
                ),
                ENTRY_MEDIA_TYPE = ENTRY_MEDIA_TYPE,
                config = docs.config.digest,
                size = docs.config.bytes.len(),
                blob = Digest::of(b"blob"),
                key = key().0,
            )
        );
    }

    #[test]
    fn entries_round_trip_with_and_without_a_layer() {
        let empty = CacheEntry {
            layer: None,
            created: "2026-01-01T00:00:00Z".into(),
        };
        for entry in [entry_with_layer(), empty] {
            let docs = documents(&key(), &entry);
            let manifest = Manifest::parse(&docs.manifest.bytes, None).unwrap();
            assert_eq!(entry_config(&manifest).unwrap(), &docs.config.descriptor());
            let (parsed, blob) = parse_entry(&key(), &manifest, &docs.config.bytes).unwrap();
            assert_eq!(parsed, entry);
            match &entry.layer {
                Some(l) => assert_eq!(blob.unwrap().digest, l.digest),
                None => {
                    assert_eq!(blob, None);
                    assert_eq!(docs.layer.media_type, MediaType::OciEmpty);
                    assert_eq!(docs.layer.digest, Digest::of(EMPTY_JSON));
                }
            }
        }
    }

    #[test]
    fn foreign_or_inconsistent_documents_are_refused() {
        let docs = documents(&key(), &entry_with_layer());
        let manifest = Manifest::parse(&docs.manifest.bytes, None).unwrap();
        let other_key = CacheKey(Digest::of(b"another step"));
        assert!(matches!(
            parse_entry(&other_key, &manifest, &docs.config.bytes),
            Err(EntryError::WrongKey { .. })
        ));

        let mut lying = entry_with_layer();
        lying.layer.as_mut().unwrap().digest = Digest::of(b"elsewhere");
        let lying_config = documents(&key(), &lying).config.bytes;
        assert!(matches!(
            parse_entry(&key(), &manifest, &lying_config),
            Err(EntryError::LayerMismatch(_))
        ));

        let mut odd = entry_with_layer();
        odd.layer.as_mut().unwrap().media_type = "text/plain".into();
        let odd_docs = documents(&key(), &odd);
        let odd_manifest = Manifest::parse(&odd_docs.manifest.bytes, None).unwrap();
        assert!(matches!(
            parse_entry(&key(), &odd_manifest, &odd_docs.config.bytes),
            Err(EntryError::UnknownLayerType(_))
        ));
        assert!(matches!(
            parse_entry(&key(), &manifest, b"{\"key\":1}"),
            Err(EntryError::Invalid(_))
        ));

        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},
            "layers":[]}"#;
        let image = Manifest::parse(image, None).unwrap();
        assert!(matches!(
            entry_config(&image),
            Err(EntryError::WrongConfigType(_))
        ));
    }
}
