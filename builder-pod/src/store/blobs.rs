//! Blobs by digest: written through a verifying writer, renamed into place only when the bytes
//! hash to the digest they were announced with (threats-and-faults §4.2 R6: never use unverified
//! bytes).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use super::{Store, StoreError, io_err};
use crate::image::Digest;
use crate::image::digest::Digester;

impl Store {
    /// Where the blob with `digest` lives (whether or not it is present). Safe to build from any
    /// `Digest`: its hex part is validated, so the path cannot leave `blobs/sha256/`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading, with a clear error when it is absent.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::BlobMissing {
                digest: digest.clone(),
                root: self.root.clone(),
            },
            _ => StoreError::Io { path, source: e },
        })
    }

    /// Starts writing a blob. `expected` is the digest the producer announced (a registry
    /// descriptor); pass `None` when the digest is only known once the bytes are written (a layer
    /// being committed).
    pub fn blob_writer(&self, expected: Option<Digest>) -> Result<BlobWriter, StoreError> {
        let tmp = self.tmp_dir();
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp)
            .map_err(io_err(&tmp))?;
        Ok(BlobWriter {
            store: self.clone(),
            file: BufWriter::with_capacity(256 * 1024, file),
            digester: Digester::new(),
            expected,
        })
    }

    /// Stores `bytes` (a manifest or config, small by nature) and returns their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let mut writer = self.blob_writer(Some(Digest::of(bytes)))?;
        writer
            .write_all(bytes)
            .map_err(io_err(&self.blob_path(&Digest::of(bytes))))?;
        Ok(writer.commit()?.0)
    }
}

/// A blob being written: hashes as it writes, and only [`BlobWriter::commit`] makes it visible.
/// Dropping it without committing deletes the temporary file.
#[derive(Debug)]
pub struct BlobWriter {
    store: Store,
    file: BufWriter<tempfile::NamedTempFile>,
    digester: Digester,
    expected: Option<Digest>,
}

impl BlobWriter {
    /// Verifies the digest (when one was announced), syncs, and moves the blob into place.
    /// Returns its digest and size.
    pub fn commit(self) -> Result<(Digest, u64), StoreError> {
        let (actual, size) = self.digester.finish();
        if let Some(expected) = self.expected
            && expected != actual
        {
            return Err(StoreError::DigestMismatch {
                expected,
                actual,
                size,
            });
        }
        let tmp = self.store.tmp_dir();
        let file = self
            .file
            .into_inner()
            .map_err(|e| io_err(&tmp)(e.into_error()))?;
        file.as_file().sync_all().map_err(io_err(file.path()))?;
        let dest = self.store.blob_path(&actual);
        // Another writer may have committed the same content first; identical bytes, so either
        // copy is correct and `persist` (rename) simply replaces it.
        file.persist(&dest).map_err(|e| io_err(&dest)(e.error))?;
        Ok((actual, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Removes a blob; absent blobs are fine (idempotent GC).
pub(super) fn remove_blob(store: &Store, digest: &Digest) -> Result<(), StoreError> {
    let path = store.blob_path(digest);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io { path, source: e }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn committed_blob_is_readable_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = store.put_blob(b"{\"a\":1}").unwrap();
        assert_eq!(digest, Digest::of(b"{\"a\":1}"));
        let mut text = String::new();
        store
            .open_blob(&digest)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}");
        assert!(
            fs::read_dir(store.tmp_dir()).unwrap().next().is_none(),
            "tmp/ is clean"
        );
    }

    #[test]
    fn bytes_that_do_not_match_the_announced_digest_never_appear() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let announced = Digest::of(b"the real layer");
        let mut writer = store.blob_writer(Some(announced.clone())).unwrap();
        writer.write_all(b"a truncated or tampered layer").unwrap();
        let err = writer.commit().unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(!store.has_blob(&announced));
        assert!(
            fs::read_dir(store.tmp_dir()).unwrap().next().is_none(),
            "temp file removed"
        );
    }

    #[test]
    fn missing_blob_error_names_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = Digest::of(b"nope");
        let err = store.open_blob(&digest).unwrap_err().to_string();
        assert!(err.contains(&digest.to_string()), "{err}");
    }

    #[test]
    fn writer_without_announced_digest_reports_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut writer = store.blob_writer(None).unwrap();
        writer.write_all(b"layer bytes").unwrap();
        let (digest, size) = writer.commit().unwrap();
        assert_eq!((digest.clone(), size), (Digest::of(b"layer bytes"), 11));
        assert!(store.has_blob(&digest));
        remove_blob(&store, &digest).unwrap();
        remove_blob(&store, &digest).unwrap();
        assert!(!store.has_blob(&digest));
    }
}
