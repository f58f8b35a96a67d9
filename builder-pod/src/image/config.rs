//! The image config (image-spec config.md, Docker's image JSON v1.2): what the image runs and
//! the history and diffIDs of its layers. The image ID is the digest of its exact bytes.
//!
//! Serialisation reproduces what BuildKit (and so `docker build`) writes, byte for byte:
//! - top-level keys in sorted order — BuildKit re-marshals the config through a
//!   `map[string]json.RawMessage` (exporter/containerimage `patchImageConfig`), and Go sorts map
//!   keys;
//! - `config` keys in the order of moby/docker-image-spec's `DockerOCIImageConfig` (the OCI
//!   `ImageConfig` fields, then `Healthcheck`, `OnBuild`, `Shell`);
//! - Go's `omitempty`: empty strings, lists, maps, `false` and zero durations are left out, but
//!   `config` itself is always present (Go never omits a struct);
//! - Go's string escapes ([`super::json::to_vec`]).
//!
//! Fields we do not model (`container_config`, `docker_version`, vendor keys, unknown keys inside
//! `config`, `history` entries and `rootfs`) are kept in `extra` maps and written back, so
//! rewriting a pulled config loses nothing.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::manifest::Serialized;
use super::{Digest, MediaType, Platform, json};

/// An image config document.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ImageConfig {
    pub architecture: String,
    pub os: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub variant: String,
    #[serde(rename = "os.version", default, deserialize_with = "null_as_default")]
    pub os_version: String,
    #[serde(rename = "os.features", default, deserialize_with = "null_as_default")]
    pub os_features: Vec<String>,
    /// RFC 3339 creation time, as written by the builder.
    #[serde(default, deserialize_with = "null_as_default")]
    pub created: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub author: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: ContainerConfig,
    pub rootfs: RootFs,
    #[serde(default, deserialize_with = "null_as_default")]
    pub history: Vec<History>,
    /// Top-level keys this type does not model, kept for the round trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The runtime defaults of a container (`config` in the image config).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(
        rename = "User",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user: String,
    #[serde(
        rename = "ExposedPorts",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(
        rename = "Env",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    #[serde(
        rename = "Entrypoint",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    #[serde(
        rename = "Cmd",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    #[serde(
        rename = "Volumes",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(
        rename = "WorkingDir",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    #[serde(
        rename = "Labels",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        rename = "StopSignal",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    #[serde(
        rename = "ArgsEscaped",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub args_escaped: bool,
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<Healthcheck>,
    #[serde(
        rename = "OnBuild",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    #[serde(
        rename = "Shell",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
    /// Keys this type does not model (`Hostname`, `Image`, `StopTimeout`, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `{}` value of `ExposedPorts` and `Volumes` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Empty {}

/// HEALTHCHECK settings; durations are integer nanoseconds, as in Docker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Healthcheck {
    #[serde(
        rename = "Test",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    #[serde(
        rename = "Interval",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub interval: i64,
    #[serde(
        rename = "Timeout",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub timeout: i64,
    #[serde(
        rename = "StartPeriod",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub start_period: i64,
    #[serde(
        rename = "StartInterval",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub start_interval: i64,
    #[serde(
        rename = "Retries",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub retries: i64,
}

/// `rootfs`: the diffIDs (digests of the uncompressed layer tars), in layer order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for RootFs {
    fn default() -> Self {
        Self {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
            extra: BTreeMap::new(),
        }
    }
}

/// One `history` entry; `empty_layer` entries have no layer in `rootfs`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct History {
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created_by: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub author: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub empty_layer: bool,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Why a config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("image config is not a single well-formed JSON document: {0}")]
    Malformed(String),
    #[error("image config is invalid: {0}")]
    Invalid(String),
    #[error(
        "image config has {diff_ids} rootfs.diff_ids but {layers} layer entries in its history"
    )]
    HistoryMismatch { diff_ids: usize, layers: usize },
}

impl ImageConfig {
    /// Parses config bytes (after their digest was verified) strictly: duplicate keys and
    /// trailing data are refused, `architecture`, `os` and `rootfs` are required.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        json::check_document(bytes).map_err(|e| ConfigError::Malformed(e.to_string()))?;
        let config: Self =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        // Docker refuses a config whose non-empty history entries do not pair up with the
        // diffIDs (moby image/rootfs.go); an image without history is allowed.
        let layers = config.history.iter().filter(|h| !h.empty_layer).count();
        if !config.history.is_empty() && layers != config.rootfs.diff_ids.len() {
            return Err(ConfigError::HistoryMismatch {
                diff_ids: config.rootfs.diff_ids.len(),
                layers,
            });
        }
        Ok(config)
    }

    /// The platform this config says the image is for.
    pub fn platform(&self) -> Platform {
        let mut p = Platform::new(
            &self.os,
            &self.architecture,
            Some(&self.variant)
                .filter(|v| !v.is_empty())
                .map(String::as_str),
        );
        if !self.os_version.is_empty() {
            p.os_version = Some(self.os_version.clone());
        }
        if !self.os_features.is_empty() {
            p.os_features = Some(self.os_features.clone());
        }
        p
    }

    /// Serialises once; the digest of the returned bytes is the image ID.
    pub fn serialize_as(&self, media_type: MediaType) -> Result<Serialized, serde_json::Error> {
        Serialized::new(media_type, self)
    }
}

impl Serialize for ImageConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Known keys (only where Go's omitempty would keep them) and extra keys, in sorted
        // order, as Go writes a map.
        let mut keys: Vec<&str> = vec!["architecture", "config", "os", "rootfs"];
        let optional = [
            ("author", self.author.is_empty()),
            ("created", self.created.is_empty()),
            ("history", self.history.is_empty()),
            ("os.features", self.os_features.is_empty()),
            ("os.version", self.os_version.is_empty()),
            ("variant", self.variant.is_empty()),
        ];
        keys.extend(optional.iter().filter(|(_, empty)| !empty).map(|(k, _)| *k));
        keys.extend(self.extra.keys().map(String::as_str));
        keys.sort_unstable();
        let mut map = serializer.serialize_map(Some(keys.len()))?;
        for key in keys {
            match key {
                "architecture" => map.serialize_entry(key, &self.architecture)?,
                "author" => map.serialize_entry(key, &self.author)?,
                "config" => map.serialize_entry(key, &self.config)?,
                "created" => map.serialize_entry(key, &self.created)?,
                "history" => map.serialize_entry(key, &self.history)?,
                "os" => map.serialize_entry(key, &self.os)?,
                "os.features" => map.serialize_entry(key, &self.os_features)?,
                "os.version" => map.serialize_entry(key, &self.os_version)?,
                "rootfs" => map.serialize_entry(key, &self.rootfs)?,
                "variant" => map.serialize_entry(key, &self.variant)?,
                other => map.serialize_entry(other, &self.extra[other])?,
            }
        }
        map.end()
    }
}

/// Go decodes `null` into a zero value; serde would fail, so treat `null` as absent.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
