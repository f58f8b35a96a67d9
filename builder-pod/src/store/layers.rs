//! Unpacked layers by diffID, and chains of them by chain ID.
//!
//! Each layer is unpacked on its own (whiteouts kept as overlay whiteouts), so its directory
//! depends only on the layer's bytes: the diffID is the whole key, and two images sharing a layer
//! share its directory. The chain ID (image-spec config.md, "Layer ChainID") names a whole stack;
//! `chains/<id>` records which diffIDs make it up, bottom first.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Store, StoreError, io_err};
use crate::image::Digest;

/// `ChainID(L0) = DiffID(L0)`; `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))`.
/// `None` for an empty stack (`FROM scratch` before any layer).
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let (first, rest) = diff_ids.split_first()?;
    Some(rest.iter().fold(first.clone(), |chain, diff_id| {
        Digest::of(format!("{chain} {diff_id}").as_bytes())
    }))
}

impl Store {
    /// The directory holding the unpacked layer `diff_id` (whether or not it exists yet).
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// Makes sure the layer `diff_id` is unpacked and returns its directory. When absent, `fill`
    /// is called with a fresh empty directory to unpack into; the directory is moved into place
    /// only if `fill` succeeds, so a failed or interrupted unpack never leaves a partial layer.
    /// If a parallel build unpacked the same layer first, its copy wins and ours is discarded.
    pub fn ensure_layer<E>(
        &self,
        diff_id: &Digest,
        fill: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<PathBuf, EnsureLayerError<E>> {
        let dest = self.layer_dir(diff_id);
        if !dest.is_dir() {
            let scratch = self.scratch_dir("layer").map_err(EnsureLayerError::Store)?;
            // A layer without a `./` entry leaves the root as created; temporary directories are
            // 0700, but an image's root is 0755 unless a layer says otherwise.
            fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755))
                .map_err(|e| EnsureLayerError::Store(io_err(scratch.path())(e)))?;
            fill(scratch.path()).map_err(EnsureLayerError::Fill)?;
            let staged = scratch.keep();
            if let Err(e) = fs::rename(&staged, &dest) {
                // ENOTEMPTY/EEXIST: someone else won the race with the same content.
                let lost_race = dest.is_dir();
                let _ = fs::remove_dir_all(&staged);
                if !lost_race {
                    return Err(EnsureLayerError::Store(io_err(&dest)(e)));
                }
            }
        }
        self.mark_used(&dest);
        Ok(dest)
    }

    /// Moves a directory that already holds the layer `diff_id` in unpacked form (a committed
    /// overlay upper directory) into `layers/<diffID>`, unless a copy is there already — then
    /// `dir` is removed. Returns the layer's directory.
    pub fn adopt_layer(&self, diff_id: &Digest, dir: &Path) -> Result<PathBuf, StoreError> {
        let dest = self.layer_dir(diff_id);
        if !dest.is_dir()
            && let Err(e) = fs::rename(dir, &dest)
            && !dest.is_dir()
        {
            return Err(io_err(&dest)(e));
        }
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(io_err(dir))?;
        }
        self.mark_used(&dest);
        Ok(dest)
    }

    /// Records the stack `diff_ids` (bottom first) and returns its chain ID.
    pub fn record_chain(&self, diff_ids: &[Digest]) -> Result<Option<Digest>, StoreError> {
        let Some(id) = chain_id(diff_ids) else {
            return Ok(None);
        };
        let path = self.chain_path(&id);
        if !path.is_file() {
            let tmp = self.tmp_dir();
            let mut file = tempfile::NamedTempFile::new_in(&tmp).map_err(io_err(&tmp))?;
            for diff_id in diff_ids {
                writeln!(file, "{diff_id}").map_err(io_err(&path))?;
            }
            file.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        }
        Ok(Some(id))
    }

    /// The diffIDs (bottom first) of a recorded chain, or `None` if it was never recorded.
    pub fn chain(&self, id: &Digest) -> Result<Option<Vec<Digest>>, StoreError> {
        let path = self.chain_path(id);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let corrupt = |reason: String| StoreError::CorruptChain {
            chain_id: id.clone(),
            path: path.clone(),
            reason,
        };
        let diff_ids = text
            .lines()
            .map(|line| line.parse::<Digest>().map_err(|e| corrupt(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        if chain_id(&diff_ids).as_ref() != Some(id) {
            return Err(corrupt("its diffIDs do not hash to its chain ID".into()));
        }
        Ok(Some(diff_ids))
    }

    fn chain_path(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("chains").join(chain_id.hex())
    }

    /// Notes that an entry was just used, for least-recently-used garbage collection. The stamp is
    /// a sibling file so the layer directory itself (an overlay lowerdir) is never modified.
    pub(super) fn mark_used(&self, entry: &Path) {
        let stamp = used_stamp(entry);
        // Best effort: a missing stamp only makes the entry look older to the collector.
        let _ = fs::File::create(stamp);
    }
}

/// `layers/<hex>` → `layers/<hex>.used`.
pub(super) fn used_stamp(entry: &Path) -> PathBuf {
    let mut name = entry.file_name().unwrap_or_default().to_owned();
    name.push(".used");
    entry.with_file_name(name)
}

/// Failure of [`Store::ensure_layer`]: the store itself, or the caller's unpack.
#[derive(Debug, thiserror::Error)]
pub enum EnsureLayerError<E> {
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Fill(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    #[test]
    fn chain_id_follows_the_image_spec_recursion() {
        assert_eq!(chain_id(&[]), None);
        assert_eq!(chain_id(&[d("a")]), Some(d("a")));
        let two = Digest::of(format!("{} {}", d("a"), d("b")).as_bytes());
        assert_eq!(chain_id(&[d("a"), d("b")]), Some(two.clone()));
        let three = Digest::of(format!("{two} {}", d("c")).as_bytes());
        assert_eq!(chain_id(&[d("a"), d("b"), d("c")]), Some(three));
    }

    #[test]
    fn ensure_layer_fills_once_and_never_exposes_a_failed_unpack() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = d("layer");
        let failed = store.ensure_layer(&id, |_| Err::<(), _>("bad tar"));
        assert!(matches!(failed, Err(EnsureLayerError::Fill("bad tar"))));
        assert!(!store.has_layer(&id));

        let path = store
            .ensure_layer(&id, |p| fs::write(p.join("f"), "x"))
            .unwrap();
        assert_eq!(fs::read_to_string(path.join("f")).unwrap(), "x");
        let again = store.ensure_layer(&id, |_| -> Result<(), &str> {
            panic!("an unpacked layer is not unpacked twice")
        });
        assert_eq!(again.unwrap(), path);
        assert!(fs::read_dir(store.tmp_dir()).unwrap().next().is_none());
    }

    #[test]
    fn adopting_a_layer_moves_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = d("committed");
        let first = store.scratch_dir("upper").unwrap().keep();
        fs::write(first.join("f"), "1").unwrap();
        let path = store.adopt_layer(&id, &first).unwrap();
        assert_eq!(fs::read_to_string(path.join("f")).unwrap(), "1");
        assert!(!first.exists());
        let second = store.scratch_dir("upper").unwrap().keep();
        fs::write(second.join("f"), "1").unwrap();
        assert_eq!(store.adopt_layer(&id, &second).unwrap(), path);
        assert!(!second.exists(), "the duplicate is discarded");
    }

    #[test]
    fn chains_round_trip_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = vec![d("a"), d("b")];
        let id = store.record_chain(&ids).unwrap().unwrap();
        assert_eq!(store.chain(&id).unwrap(), Some(ids));
        assert_eq!(store.chain(&d("unknown")).unwrap(), None);
        fs::write(store.chain_path(&id), format!("{}\n", d("a"))).unwrap();
        assert!(matches!(
            store.chain(&id),
            Err(StoreError::CorruptChain { .. })
        ));
    }
}
