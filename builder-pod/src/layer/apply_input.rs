//! The decompressed layer stream as the tar reader sees it: every byte counted against the
//! layer cap and the image-wide budget (§2.3 #24), and every read failure turned into the typed
//! error it stands for (a cap, a decoder failure, truncation).

use std::io::{self, Read};
use std::sync::Arc;

use super::apply_decompress::DecompressFailed;
use super::apply_error::{ApplyError, LimitKind, TarDefect};
use super::limits::ByteBudget;

/// Turns a read failure into the typed error it stands for.
pub(crate) fn read_error(err: io::Error, offset: u64) -> ApplyError {
    let err = match err.downcast::<LimitHit>() {
        Ok(hit) => {
            return ApplyError::LimitExceeded {
                limit: hit.kind,
                value: hit.value,
                max: hit.max,
                entry: None,
            };
        }
        Err(err) => err,
    };
    let err = match err.downcast::<DecompressFailed>() {
        Ok(failed) => {
            return ApplyError::Decompress {
                codec: failed.codec,
                source: failed.source,
            };
        }
        Err(err) => err,
    };
    if err.kind() == io::ErrorKind::UnexpectedEof {
        return ApplyError::Tar {
            offset,
            defect: TarDefect::Truncated,
        };
    }
    ApplyError::Read {
        offset,
        source: err,
    }
}

/// The decompressed input, counted against the layer cap and the image budget.
pub(crate) struct Counted<R> {
    inner: R,
    read: u64,
    max: u64,
    budget: Option<Arc<ByteBudget>>,
}

impl<R> Counted<R> {
    pub(crate) fn new(inner: R, max: u64, budget: Option<Arc<ByteBudget>>) -> Self {
        Self {
            inner,
            read: 0,
            max,
            budget,
        }
    }

    /// Bytes read so far.
    pub(crate) fn read_so_far(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.read += read as u64;
        if self.read > self.max {
            return Err(io::Error::other(LimitHit {
                kind: LimitKind::LayerBytes,
                value: self.read,
                max: self.max,
            }));
        }
        if let Some(budget) = &self.budget {
            budget.charge(read as u64).map_err(|exhausted| {
                io::Error::other(LimitHit {
                    kind: LimitKind::ImageBytes,
                    value: exhausted.used,
                    max: exhausted.limit,
                })
            })?;
        }
        Ok(read)
    }
}

/// Payload of the I/O error [`Counted`] raises at a cap.
#[derive(Debug)]
struct LimitHit {
    kind: LimitKind,
    value: u64,
    max: u64,
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "limit {:?} exceeded: {} > {}",
            self.kind, self.value, self.max
        )
    }
}

impl std::error::Error for LimitHit {}
