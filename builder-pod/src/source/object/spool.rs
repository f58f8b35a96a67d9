//! The download spool: fetched bytes go to a temporary file beside the destination while they
//! are hashed and counted, so the sha256 pin is checked before a single entry is extracted and
//! the size limit stops a download that never ends.

use std::io::{BufWriter, Write};
use std::path::Path;

use tempfile::NamedTempFile;

use super::error::ObjectError;
use crate::image::digest::Digester;

/// A download in progress.
pub(crate) struct Spooler {
    out: BufWriter<NamedTempFile>,
    digester: Digester,
    limit: u64,
    shown: String,
}

/// A finished download: the file (deleted when dropped) and the sha256 of its bytes.
pub(crate) struct Spooled {
    pub file: NamedTempFile,
    pub sha256: String,
    pub size: u64,
}

impl Spooler {
    /// A spool file in `dir` — the build's own directory, never the context itself (the spool
    /// must not become part of the context) and never a shared /tmp.
    pub(crate) fn new(dir: &Path, limit: u64, shown: &str) -> Result<Self, ObjectError> {
        let file = tempfile::Builder::new()
            .prefix(".stratum-object-")
            .tempfile_in(dir)
            .map_err(|e| ObjectError::io("cannot create a download spool file in", dir, e))?;
        Ok(Self {
            out: BufWriter::with_capacity(256 << 10, file),
            digester: Digester::new(),
            limit,
            shown: shown.to_owned(),
        })
    }

    /// Refuses a download whose announced length is over the limit before reading any of it.
    pub(crate) fn check_announced(&self, length: Option<u64>) -> Result<(), ObjectError> {
        match length {
            Some(n) if n > self.limit => Err(self.too_large()),
            _ => Ok(()),
        }
    }

    pub(crate) fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), ObjectError> {
        if self.digester.len() + chunk.len() as u64 > self.limit {
            return Err(self.too_large());
        }
        self.digester.update(chunk);
        let path = self.out.get_ref().path().to_owned();
        self.out
            .write_all(chunk)
            .map_err(|e| ObjectError::io("cannot write the download spool", path, e))
    }

    pub(crate) fn finish(self) -> Result<Spooled, ObjectError> {
        let path = self.out.get_ref().path().to_owned();
        let file = self.out.into_inner().map_err(|e| {
            ObjectError::io("cannot write the download spool", path, e.into_error())
        })?;
        let (digest, size) = self.digester.finish();
        Ok(Spooled {
            file,
            sha256: digest.hex().to_owned(),
            size,
        })
    }

    fn too_large(&self) -> ObjectError {
        ObjectError::TooLarge {
            url: self.shown.clone(),
            limit: self.limit,
        }
    }
}

/// A sha256 pin must be 64 lowercase hex digits (the CRD's pattern; the CLI passes user text).
pub(crate) fn check_pin(pin: &str) -> Result<(), ObjectError> {
    let valid = pin.len() == 64 && pin.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if valid {
        Ok(())
    } else {
        Err(ObjectError::BadPin {
            pin: pin.chars().take(80).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_counts_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spooler::new(dir.path(), 10, "https://h/x").unwrap();
        spool.write_chunk(b"hello").unwrap();
        spool.write_chunk(b"world").unwrap();
        let err = spool.write_chunk(b"!").unwrap_err();
        assert!(matches!(err, ObjectError::TooLarge { limit: 10, .. }));
        let done = spool.finish().unwrap();
        assert_eq!(done.size, 10);
        assert_eq!(
            done.sha256,
            "936a185caaa266bb9cbe981e9e05cb78cd732b0b3280eb944412bb6f8f8f07af"
        );
        assert_eq!(std::fs::read(done.file.path()).unwrap(), b"helloworld");
    }

    #[test]
    fn announced_length_over_the_limit_is_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spooler::new(dir.path(), 10, "https://h/x").unwrap();
        assert!(spool.check_announced(Some(10)).is_ok());
        assert!(spool.check_announced(None).is_ok());
        assert!(spool.check_announced(Some(11)).is_err());
    }

    #[test]
    fn pins_are_strict() {
        assert!(check_pin(&"a".repeat(64)).is_ok());
        for bad in [
            "A".repeat(64),
            "a".repeat(63),
            format!("sha256:{}", "a".repeat(64)),
            String::new(),
        ] {
            assert!(check_pin(&bad).is_err(), "{bad}");
        }
    }
}
