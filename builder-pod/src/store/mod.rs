//! The local content store: compressed blobs by digest and unpacked layers by diffID, with chain
//! IDs recorded so a build can find the lower stack of any image it has seen.
//!
//! Layout under the store root (default `/var/lib/stratum`):
//!
//! ```text
//! blobs/sha256/<hex>        blobs exactly as a registry serves them (layers, configs, manifests)
//! layers/<diffID hex>/      one layer unpacked on its own (overlay whiteouts, not deletions), used
//!                           directly as an overlayfs lowerdir
//! chains/<chainID hex>      the diffIDs of that chain, bottom first, one per line
//! tmp/                      staging: everything is created here and renamed into place
//! ```
//!
//! Every entry appears atomically (a temp file or directory renamed into place), so a crash leaves
//! at most garbage in `tmp/`, never a half-written blob or layer under its final name. Parallel
//! stages and parallel builds may share one store: creation races are settled by `rename` (the
//! loser discards its copy), and garbage collection takes an exclusive lock that every build holds
//! shared (see [`gc`]).

mod blobs;
pub mod gc;
mod layers;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use blobs::BlobWriter;
pub use layers::{EnsureLayerError, chain_id};

use crate::image::Digest;

/// Errors of the content store. Each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "blob written to the store does not match its digest: expected {expected}, got {actual} \
         ({size} bytes); the source delivered different bytes than it announced"
    )]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
    #[error("blob {digest} is not in the store {root}")]
    BlobMissing { digest: Digest, root: PathBuf },
    #[error("chain {chain_id} in {path} is corrupt: {reason}")]
    CorruptChain {
        chain_id: Digest,
        path: PathBuf,
        reason: String,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A content store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `root`. The directory should not be on overlayfs:
    /// unpacked layers become overlay lowerdirs and upper directories are created beside them.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let store = Self { root: root.into() };
        for dir in [
            store.root.join("blobs/sha256"),
            store.root.join("layers"),
            store.root.join("chains"),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Staging directory for entries being created; on the same filesystem as the final paths
    /// so that `rename` is atomic.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A fresh, empty directory under `tmp/` for the caller to fill (an upper dir, an unpacked
    /// layer). It is removed when the returned guard drops unless it was moved into place.
    pub fn scratch_dir(&self, purpose: &str) -> Result<tempfile::TempDir, StoreError> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(&format!("{purpose}-"))
            .tempdir_in(&tmp)
            .map_err(io_err(&tmp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_the_layout_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        for sub in ["blobs/sha256", "layers", "chains", "tmp"] {
            assert!(store.root().join(sub).is_dir(), "{sub}");
        }
        Store::open(store.root()).unwrap();
    }
}
