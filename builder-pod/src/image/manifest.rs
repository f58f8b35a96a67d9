//! Image manifests and indexes (OCI image-spec manifest.md / image-index.md, Docker image
//! manifest v2 schema 2 and manifest list), with strict parsing of received documents.
//!
//! A received manifest is checked in this order, and rejected at the first failure
//! (threats-and-faults §2.9 #49):
//! 1. the caller hashes the exact bytes received and compares them with the digest it asked for
//!    (see `registry::pull`) — before any of this runs;
//! 2. the bytes are one complete JSON document without duplicate keys ([`json::check_document`]);
//! 3. `schemaVersion` is 2 (schema 1 is refused by name);
//! 4. the document is unambiguous: `manifests` together with `config`/`layers` is refused
//!    (CVE-2021-41190 — the same bytes could be read as an index by one client and as an image
//!    by another);
//! 5. the `Content-Type` the registry sent, the `mediaType` field and the document's shape all
//!    agree;
//! 6. every descriptor parses: a valid digest, a media type and a non-negative `size`.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::{Descriptor, Digest, MediaType, Platform, json};

/// An image manifest: one config and its ordered layers.
///
/// Field order (`schemaVersion`, `mediaType`, `config`, `layers`, …) is the one Docker and
/// BuildKit write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Box<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index (OCI) or manifest list (Docker): one manifest per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<MediaType>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Box<Descriptor>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A parsed manifest of either kind.
#[expect(
    clippy::large_enum_variant,
    reason = "a few manifests are parsed per build; boxing would only add indirection"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// Why a manifest was refused. `reason` strings come from serde_json and carry line/column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "manifest is not a single well-formed JSON document ({0}); the registry sent a truncated or corrupt body"
    )]
    Malformed(String),
    #[error("manifest has no schemaVersion")]
    MissingSchemaVersion,
    #[error(
        "manifest schemaVersion {0} is not supported: Docker schema 1 manifests are deprecated; re-push the image with a current client"
    )]
    UnsupportedSchemaVersion(u64),
    #[error(
        "manifest is ambiguous: it has both `manifests` and `config`/`layers` (CVE-2021-41190); refusing it"
    )]
    Ambiguous,
    #[error("manifest has neither `manifests` nor `config`/`layers`")]
    UnknownShape,
    #[error(
        "manifest media type mismatch: the registry said Content-Type {content_type:?} but the document {detail}"
    )]
    MediaTypeMismatch {
        content_type: String,
        detail: String,
    },
    #[error("manifest field mediaType {media_type:?} does not match its content ({shape})")]
    ShapeMismatch {
        media_type: String,
        shape: &'static str,
    },
    #[error("{0:?} is not a manifest media type Stratum can read")]
    UnsupportedMediaType(String),
    #[error("manifest is invalid: {0}")]
    Invalid(String),
}

/// The fields that decide what a document is, without trusting the rest of it yet.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u64>,
    media_type: Option<String>,
    config: Option<IgnoredAny>,
    layers: Option<IgnoredAny>,
    manifests: Option<IgnoredAny>,
}

impl Manifest {
    /// Parses manifest bytes received with `content_type` (the `Content-Type` header; `None`
    /// when read from disk). The digest check happens before this, on the same bytes.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        json::check_document(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Invalid(e.to_string()))?;
        match probe.schema_version {
            None => return Err(ManifestError::MissingSchemaVersion),
            Some(2) => {}
            Some(v) => return Err(ManifestError::UnsupportedSchemaVersion(v)),
        }
        let is_index = match (
            probe.manifests.is_some(),
            probe.config.is_some() || probe.layers.is_some(),
        ) {
            (true, true) => return Err(ManifestError::Ambiguous),
            (true, false) => true,
            (false, true) => false,
            (false, false) => return Err(ManifestError::UnknownShape),
        };
        let shape = if is_index {
            "an index with `manifests`"
        } else {
            "an image manifest with `config`/`layers`"
        };
        let field = probe.media_type.as_deref().map(MediaType::from);
        if let Some(field) = &field {
            let consistent = if is_index {
                field.is_index()
            } else {
                field.is_image_manifest()
            };
            if !consistent {
                return Err(ManifestError::ShapeMismatch {
                    media_type: field.to_string(),
                    shape,
                });
            }
        }
        if let Some(header) = content_type
            .map(MediaType::from_content_type)
            .filter(MediaType::is_manifest)
        {
            // A specific manifest Content-Type must agree with the document; a generic one
            // (application/json, octet-stream) says nothing and is not held against it.
            let detail = match &field {
                Some(field) if *field != header => {
                    Some(format!("says mediaType {:?}", field.as_str()))
                }
                _ if header.is_index() != is_index => Some(format!("is {shape}")),
                _ => None,
            };
            if let Some(detail) = detail {
                return Err(ManifestError::MediaTypeMismatch {
                    content_type: header.to_string(),
                    detail,
                });
            }
        }
        let invalid = |e: serde_json::Error| ManifestError::Invalid(e.to_string());
        Ok(if is_index {
            Self::Index(serde_json::from_slice(bytes).map_err(invalid)?)
        } else {
            Self::Image(serde_json::from_slice(bytes).map_err(invalid)?)
        })
    }

    /// The media type this manifest is served and stored under: its `mediaType` field, or for
    /// an OCI document without one, the OCI type of its shape.
    pub fn media_type(&self) -> MediaType {
        match self {
            Self::Image(m) => m.media_type.clone().unwrap_or(MediaType::OciManifest),
            Self::Index(i) => i.media_type.clone().unwrap_or(MediaType::OciIndex),
        }
    }
}

impl ImageIndex {
    /// The first manifest in the index for `wanted`, or an error that lists what is available.
    ///
    /// Entries without a platform, and `unknown/unknown` entries (BuildKit's attestation
    /// manifests), never match.
    pub fn select(&self, wanted: &Platform) -> Result<&Descriptor, NoMatchingPlatform> {
        self.manifests
            .iter()
            .find(|d| {
                d.media_type.is_manifest() && d.platform.as_ref().is_some_and(|p| wanted.matches(p))
            })
            .ok_or_else(|| NoMatchingPlatform {
                wanted: Box::new(wanted.clone()),
                available: self.platforms(),
            })
    }

    /// The distinct platforms the index offers, in index order.
    pub fn platforms(&self) -> Vec<Platform> {
        let mut out: Vec<Platform> = Vec::new();
        for p in self.manifests.iter().filter_map(|d| d.platform.as_ref()) {
            if p.os != "unknown" && !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }
}

/// No manifest in an index serves the wanted platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no manifest for platform {wanted} in the index (available: {})", list_platforms(.available))]
pub struct NoMatchingPlatform {
    pub wanted: Box<Platform>,
    pub available: Vec<Platform>,
}

fn list_platforms(platforms: &[Platform]) -> String {
    if platforms.is_empty() {
        return "none".to_owned();
    }
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A document serialised once, with the digest of exactly those bytes: what gets hashed is what
/// gets pushed (an image ID is the digest of the config bytes; a manifest digest of its bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Serialized {
    pub media_type: MediaType,
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

impl Serialized {
    /// Serialises `value` in Docker's JSON encoding (see [`json::to_vec`]).
    pub fn new<T: Serialize>(media_type: MediaType, value: &T) -> Result<Self, serde_json::Error> {
        let bytes = json::to_vec(value)?;
        Ok(Self {
            media_type,
            digest: Digest::of(&bytes),
            bytes,
        })
    }

    /// The descriptor that points at these bytes.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

impl std::fmt::Debug for Serialized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serialized")
            .field("media_type", &self.media_type)
            .field("digest", &self.digest)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
