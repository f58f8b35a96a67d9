//! The source Secret's keys as files in a private directory, because the builder library's
//! `from_secret_dir` reads them the way the builder pod reads its mounted Secret.
//!
//! The directory is `0700` and each file `0600`, created exclusively (never following or
//! reusing an existing path), and removed when the [`SecretDir`] drops — also on a panic or an
//! early return — so no credential stays on the operator's disk.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::ByteString;

/// Why the Secret could not be written out.
#[derive(Debug, thiserror::Error)]
pub enum SecretDirError {
    #[error("cannot create a private directory under {parent}: {source}")]
    Create {
        parent: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write key {key} of the source Secret: {source}")]
    Write {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the source Secret has a key {key:?} that is not a plain file name")]
    BadKey { key: String },
}

/// A private directory holding one Secret's keys; removed on drop.
#[derive(Debug)]
pub struct SecretDir {
    path: PathBuf,
}

impl SecretDir {
    /// Writes `data` into a new private directory under `parent`.
    pub fn write(
        parent: &Path,
        data: &BTreeMap<String, ByteString>,
    ) -> Result<SecretDir, SecretDirError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let candidate = parent.join(format!("stratum-source-{}-{n}", std::process::id()));
            // `create` fails on an existing path (even a symlink), so nothing is reused.
            match DirBuilder::new().mode(0o700).create(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(SecretDirError::Create {
                        parent: parent.to_owned(),
                        source,
                    });
                }
            }
        };
        let dir = SecretDir { path };
        for (key, value) in data {
            // The apiserver allows `[-._a-zA-Z0-9]+` keys; `.` and `..` are names too.
            if key.is_empty() || key == "." || key == ".." || key.contains('/') {
                return Err(SecretDirError::BadKey { key: key.clone() });
            }
            let write = || -> std::io::Result<()> {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(dir.path.join(key))?;
                file.write_all(&value.0)
            };
            write().map_err(|source| SecretDirError::Write {
                key: key.clone(),
                source,
            })?;
        }
        Ok(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), "cannot remove the source Secret's directory: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_become_private_files_that_go_with_the_dir() {
        let parent = tempfile::tempdir().unwrap();
        let data = BTreeMap::from([
            ("ssh-privatekey".to_owned(), ByteString(b"KEY".to_vec())),
            (
                "known_hosts".to_owned(),
                ByteString(b"host ssh-ed25519 AAAA".to_vec()),
            ),
        ]);
        let dir = SecretDir::write(parent.path(), &data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.path().join("ssh-privatekey")), 0o600);
        assert_eq!(
            std::fs::read(dir.path().join("known_hosts")).unwrap(),
            b"host ssh-ed25519 AAAA"
        );
        let path = dir.path().to_owned();
        drop(dir);
        assert!(!path.exists(), "the credentials stayed on disk");
    }

    #[test]
    fn path_like_keys_are_refused_and_nothing_stays() {
        let parent = tempfile::tempdir().unwrap();
        for key in ["..", "a/b", ""] {
            let data = BTreeMap::from([
                ("a".to_owned(), ByteString(b"x".to_vec())),
                (key.to_owned(), ByteString(b"x".to_vec())),
            ]);
            assert!(matches!(
                SecretDir::write(parent.path(), &data),
                Err(SecretDirError::BadKey { .. })
            ));
        }
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }
}
