//! The local build cache: which layer (if any) an instruction produced, keyed by everything that
//! could change that layer.
//!
//! Keys chain: `key(n) = sha256(key(n-1), instruction after expansion (with the build args a RUN
//! sees), the checksum of its COPY/ADD sources, the layer format)`, and `key(0)` is the base image's
//! manifest digest (or `scratch`, or the parent stage's final key). So any change to an earlier
//! step — including a metadata step such as `ENV`, which changes what later `RUN`s see — moves
//! every later key, and changing one COPY source invalidates exactly that step and the ones after
//! it. The layer format (compression, SOURCE_DATE_EPOCH) is part of the key because it changes
//! the bytes of the layer, though not its content.
//!
//! Entries live in `<store>/cache/<key hex>.json` and point at blobs in the same store. An entry
//! whose blob has since been garbage-collected is a miss, never an error.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::image::Digest;
use crate::output::LayerInfo;
use crate::store::{Store, StoreError};

/// A cache key: a digest over a step's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CacheKey(pub Digest);

/// Everything a step's result depends on, in canonical form.
#[derive(Debug, Serialize)]
pub struct StepInputs<'a> {
    /// The key of the previous step, or the stage's base.
    pub parent: &'a str,
    /// The instruction after variable expansion, as history shows it — for RUN that includes
    /// the build args it sees (`|2 A=1 B=2 /bin/sh -c …`), so their values are part of the key.
    pub instruction: &'a str,
    /// Checksum of COPY/ADD sources, or of a downloaded ADD URL.
    pub content: Option<&'a Digest>,
    /// Compression and timestamp policy of the layer bytes.
    pub layer_format: &'a str,
}

impl StepInputs<'_> {
    pub fn key(&self) -> CacheKey {
        // serde_json writes struct fields in declaration order and BTreeMap keys sorted, so the
        // encoding is canonical.
        let bytes = serde_json::to_vec(self).expect("step inputs serialise");
        CacheKey(Digest::of(&bytes))
    }
}

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    /// The layer, or `None` when the step changed no files (no layer, `empty_layer` history).
    pub layer: Option<CachedLayer>,
    /// When the step first ran (RFC 3339): a cached step keeps its original history time, so a
    /// rebuild with nothing changed produces the same config and image ID (as BuildKit does).
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedLayer {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

impl From<&CachedLayer> for LayerInfo {
    fn from(l: &CachedLayer) -> Self {
        Self {
            digest: l.digest.clone(),
            diff_id: l.diff_id.clone(),
            size: l.size,
            media_type: l.media_type.clone(),
        }
    }
}

/// The cache index inside a store.
#[derive(Debug, Clone)]
pub struct Cache {
    store: Store,
    dir: PathBuf,
}

impl Cache {
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let dir = store.root().join("cache");
        fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Self {
            store: store.clone(),
            dir,
        })
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.0.hex()))
    }

    /// The entry for `key` if present, readable, and its layer blob is still in the store.
    pub fn get(&self, key: &CacheKey) -> Option<CacheEntry> {
        let bytes = fs::read(self.path(key)).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
        match &entry.layer {
            Some(layer) if !self.store.has_blob(&layer.digest) => None,
            _ => Some(entry),
        }
    }

    pub fn put(&self, key: &CacheKey, entry: &CacheEntry) -> Result<(), StoreError> {
        let path = self.path(key);
        let io_err = |source: io::Error| StoreError::Io {
            path: path.clone(),
            source,
        };
        let tmp = tempfile::NamedTempFile::new_in(self.store.tmp_dir()).map_err(io_err)?;
        serde_json::to_writer(tmp.as_file(), entry).map_err(|e| io_err(e.into()))?;
        tmp.persist(&path).map_err(|e| io_err(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs<'a>(instruction: &'a str, content: Option<&'a Digest>) -> StepInputs<'a> {
        StepInputs {
            parent: "sha256:base",
            instruction,
            content,
            layer_format: "gzip",
        }
    }

    #[test]
    fn keys_change_with_every_input_and_only_with_them() {
        let sources = Digest::of(b"sources");
        let base = inputs("COPY a /a", Some(&sources)).key();
        assert_eq!(
            base,
            inputs("COPY a /a", Some(&sources)).key(),
            "deterministic"
        );

        let other_sources = Digest::of(b"changed");
        let variants = [
            inputs("COPY a /b", Some(&sources)).key(),
            inputs("COPY a /a", Some(&other_sources)).key(),
            inputs("COPY a /a", None).key(),
            StepInputs {
                parent: "sha256:other",
                ..inputs("COPY a /a", Some(&sources))
            }
            .key(),
            inputs("RUN |1 V=2 make", None).key(),
            StepInputs {
                layer_format: "zstd",
                ..inputs("COPY a /a", Some(&sources))
            }
            .key(),
        ];
        for (i, variant) in variants.iter().enumerate() {
            assert_ne!(*variant, base, "variant {i} must change the key");
        }
    }

    #[test]
    fn entries_round_trip_and_dangling_ones_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = Cache::open(&store).unwrap();
        let key = inputs("RUN true", None).key();
        assert_eq!(cache.get(&key), None);

        let empty = CacheEntry {
            layer: None,
            created: "2026-01-01T00:00:00Z".into(),
        };
        cache.put(&key, &empty).unwrap();
        assert_eq!(cache.get(&key), Some(empty));

        let blob = store.put_blob(b"layer").unwrap();
        let with_layer = CacheEntry {
            layer: Some(CachedLayer {
                digest: blob.clone(),
                diff_id: Digest::of(b"tar"),
                size: 5,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }),
            created: "2026-01-01T00:00:00Z".into(),
        };
        let key2 = inputs("RUN make", None).key();
        cache.put(&key2, &with_layer).unwrap();
        assert_eq!(cache.get(&key2), Some(with_layer));
        fs::remove_file(store.blob_path(&blob)).unwrap();
        assert_eq!(
            cache.get(&key2),
            None,
            "a collected blob makes the entry a miss"
        );
    }
}
