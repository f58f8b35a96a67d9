//! Garbage collection (`stratum prune`): least-recently-used entries go first until the store
//! fits its budget.
//!
//! Builds hold [`UseLock`] (a shared `flock` on `<root>/lock`) for as long as they read from the
//! store; the collector takes the same lock exclusively, so it never removes a layer that a
//! running build has mounted as a lowerdir. Removal order: the staging area, then blobs and layers
//! by their last use, then chain records whose layers are gone.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use std::os::unix::fs::MetadataExt;

use super::blobs::remove_blob;
use super::layers::used_stamp;
use super::{Store, StoreError, io_err};
use crate::image::Digest;

/// A shared hold on the store: while any exists, [`prune`] waits.
#[derive(Debug)]
pub struct UseLock {
    _file: File,
}

fn lock_file(store: &Store) -> Result<File, StoreError> {
    let path = store.root().join("lock");
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))
}

impl Store {
    /// Takes a shared hold on the store for the duration of a build.
    pub fn use_lock(&self) -> Result<UseLock, StoreError> {
        let file = lock_file(self)?;
        file.lock_shared()
            .map_err(io_err(&self.root().join("lock")))?;
        Ok(UseLock { _file: file })
    }
}

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Remove everything.
    Nothing,
    /// Remove least-recently-used entries until the store holds at most this many bytes.
    Bytes(u64),
}

/// What a prune removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub blobs_removed: u64,
    pub layers_removed: u64,
    pub bytes_freed: u64,
    pub bytes_kept: u64,
}

#[derive(Debug)]
enum Kind {
    Blob(Digest),
    Layer(PathBuf),
}

#[derive(Debug)]
struct Entry {
    kind: Kind,
    bytes: u64,
    last_used: SystemTime,
}

/// Shrinks the store to `budget`, waiting for running builds to release it first.
pub fn prune(store: &Store, budget: Budget) -> Result<PruneReport, StoreError> {
    let lock = lock_file(store)?;
    lock.lock().map_err(io_err(&store.root().join("lock")))?;

    clear_dir(&store.tmp_dir())?;
    let mut entries = collect(store)?;
    // Oldest first; ties broken by size (bigger first) so fewer removals reach the budget.
    entries.sort_by(|a, b| a.last_used.cmp(&b.last_used).then(b.bytes.cmp(&a.bytes)));
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let keep = match budget {
        Budget::Nothing => 0,
        Budget::Bytes(n) => n,
    };
    let mut report = PruneReport::default();
    for entry in entries {
        if total <= keep {
            break;
        }
        match &entry.kind {
            Kind::Blob(digest) => {
                remove_blob(store, digest)?;
                report.blobs_removed += 1;
            }
            Kind::Layer(dir) => {
                fs::remove_dir_all(dir).map_err(io_err(dir))?;
                let _ = fs::remove_file(used_stamp(dir));
                report.layers_removed += 1;
            }
        }
        total -= entry.bytes;
        report.bytes_freed += entry.bytes;
    }
    report.bytes_kept = total;
    drop_dangling_chains(store)?;
    Ok(report)
}

fn collect(store: &Store) -> Result<Vec<Entry>, StoreError> {
    let mut entries = Vec::new();
    let blobs = store.root().join("blobs/sha256");
    for item in fs::read_dir(&blobs).map_err(io_err(&blobs))? {
        let item = item.map_err(io_err(&blobs))?;
        let Ok(digest) = format!("sha256:{}", item.file_name().to_string_lossy()).parse() else {
            continue; // not ours; leave it alone
        };
        let meta = item.metadata().map_err(io_err(&item.path()))?;
        entries.push(Entry {
            kind: Kind::Blob(digest),
            bytes: meta.len(),
            last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    let layers = store.root().join("layers");
    for item in fs::read_dir(&layers).map_err(io_err(&layers))? {
        let item = item.map_err(io_err(&layers))?;
        let path = item.path();
        if !item.file_type().map_err(io_err(&path))?.is_dir() {
            continue;
        }
        let last_used = fs::metadata(used_stamp(&path))
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        entries.push(Entry {
            bytes: disk_usage(&path)?,
            kind: Kind::Layer(path),
            last_used,
        });
    }
    Ok(entries)
}

/// Bytes allocated on disk under `dir` (hard links counted once per entry, as `du -l` would).
fn disk_usage(dir: &Path) -> Result<u64, StoreError> {
    let mut bytes = 0;
    for item in walkdir::WalkDir::new(dir) {
        let item = item.map_err(|e| io_err(dir)(e.into()))?;
        let meta = item.metadata().map_err(|e| io_err(item.path())(e.into()))?;
        bytes += meta.blocks() * 512;
    }
    Ok(bytes)
}

fn clear_dir(dir: &Path) -> Result<(), StoreError> {
    for item in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = item.map_err(io_err(dir))?.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_err(&path))?;
    }
    Ok(())
}

/// Chain records whose layers were collected describe stacks that can no longer be mounted.
fn drop_dangling_chains(store: &Store) -> Result<(), StoreError> {
    let chains = store.root().join("chains");
    for item in fs::read_dir(&chains).map_err(io_err(&chains))? {
        let path = item.map_err(io_err(&chains))?.path();
        let text = fs::read_to_string(&path).unwrap_or_default();
        let complete = text.lines().all(|line| {
            line.parse::<Digest>()
                .is_ok_and(|diff_id| store.has_layer(&diff_id))
        });
        if !complete {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn age(path: &Path, secs_ago: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs_ago);
        filetime::set_file_mtime(path, filetime::FileTime::from_system_time(t)).unwrap();
    }

    #[test]
    fn prune_removes_least_recently_used_first_until_within_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = store.put_blob(&[1u8; 8192]).unwrap();
        let new = store.put_blob(&[2u8; 8192]).unwrap();
        age(&store.blob_path(&old), 3600);
        let layer_id = Digest::of(b"layer");
        let layer = store
            .ensure_layer(&layer_id, |p| fs::write(p.join("f"), [0u8; 4096]))
            .unwrap();
        age(&used_stamp(&layer), 7200);
        store.record_chain(std::slice::from_ref(&layer_id)).unwrap();
        fs::write(store.tmp_dir().join("leftover"), b"crash debris").unwrap();

        let report = prune(&store, Budget::Bytes(8192)).unwrap();
        assert_eq!((report.layers_removed, report.blobs_removed), (1, 1));
        assert!(!store.has_layer(&layer_id) && !store.has_blob(&old));
        assert!(store.has_blob(&new), "the most recently used blob stays");
        assert!(
            fs::read_dir(store.root().join("chains"))
                .unwrap()
                .next()
                .is_none()
        );
        assert!(fs::read_dir(store.tmp_dir()).unwrap().next().is_none());

        let report = prune(&store, Budget::Nothing).unwrap();
        assert_eq!(report.blobs_removed, 1);
        assert_eq!(report.bytes_kept, 0);
    }

    #[test]
    fn prune_waits_for_builds_holding_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let blob = store.put_blob(b"in use").unwrap();
        let hold = store.use_lock().unwrap();
        let pruner = {
            let store = store.clone();
            std::thread::spawn(move || prune(&store, Budget::Nothing).unwrap())
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            store.has_blob(&blob),
            "nothing is removed while a build holds the store"
        );
        drop(hold);
        assert_eq!(pruner.join().unwrap().blobs_removed, 1);
    }
}
