//! Sniffing and decompressing layer and archive streams.
//!
//! Layers are gzip or zstd (OCI image-spec media types `…tar+gzip`, `…tar+zstd`) or plain
//! tar; `ADD local.tar` archives may be anything, and Docker sniffs them by magic bytes rather
//! than by name. bzip2 and xz are recognised so the error can say what the archive is, but no
//! decoder for them is in the dependency tree.
//!
//! Decoder errors (bad CRC, truncated frame) are tagged so [`super::apply`] can report them as
//! [`ApplyError::Decompress`] instead of as a tar defect. Decompressed size is bounded by the
//! consumer ([`super::Limits::max_bytes`] and the image budget), never here: the bomb is only
//! visible in what it expands to (§2.3 #24b).

use std::fmt;
use std::io::{self, BufReader, Read};

use super::apply_error::ApplyError;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];

/// The compression a stream was found to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    fn codec(self) -> &'static str {
        match self {
            Self::None => "tar",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

/// Sniffs `reader` by magic bytes and returns the decompressed (tar) stream.
pub fn decompress<R: Read + 'static>(reader: R) -> Result<Box<dyn Read>, ApplyError> {
    let (compression, reader) = sniff(reader)?;
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(Tagged {
            inner: flate2::bufread::MultiGzDecoder::new(reader),
            codec: compression.codec(),
        }),
        Compression::Zstd => {
            // The default window limit (2^27) bounds decoder memory; frames that ask for more
            // (`zstd --long=31`) are refused by libzstd, which is the safe answer.
            let decoder = zstd::stream::read::Decoder::with_buffer(reader).map_err(|source| {
                ApplyError::Decompress {
                    codec: "zstd",
                    source,
                }
            })?;
            Box::new(Tagged {
                inner: decoder,
                codec: compression.codec(),
            })
        }
    })
}

/// The stream after sniffing: the peeked magic bytes replayed in front of the rest.
pub type Sniffed<R> = BufReader<io::Chain<io::Cursor<Vec<u8>>, R>>;

/// Detects the compression of `reader` without losing the bytes it peeked.
pub fn sniff<R: Read>(mut reader: R) -> Result<(Compression, Sniffed<R>), ApplyError> {
    let mut head = Vec::with_capacity(XZ_MAGIC.len());
    while head.len() < XZ_MAGIC.len() {
        let mut byte = [0u8; XZ_MAGIC.len()];
        let want = XZ_MAGIC.len() - head.len();
        match reader.read(&mut byte[..want]) {
            Ok(0) => break,
            Ok(read) => head.extend_from_slice(&byte[..read]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(ApplyError::Read { offset: 0, source }),
        }
    }
    let compression = if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else if head.starts_with(BZIP2_MAGIC) {
        return Err(ApplyError::UnsupportedCompression { format: "bzip2" });
    } else if head.starts_with(XZ_MAGIC) {
        return Err(ApplyError::UnsupportedCompression { format: "xz" });
    } else {
        Compression::None
    };
    let replay = io::Cursor::new(head).chain(reader);
    Ok((compression, BufReader::with_capacity(64 * 1024, replay)))
}

/// Wraps a decoder so its errors carry the codec name.
struct Tagged<D> {
    inner: D,
    codec: &'static str,
}

impl<D: Read> Read for Tagged<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|source| {
            io::Error::new(
                source.kind(),
                DecompressFailed {
                    codec: self.codec,
                    source,
                },
            )
        })
    }
}

/// Payload of an I/O error raised by a decoder.
#[derive(Debug)]
pub(crate) struct DecompressFailed {
    pub(crate) codec: &'static str,
    pub(crate) source: io::Error,
}

impl fmt::Display for DecompressFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} decoder: {}", self.codec, self.source)
    }
}

impl std::error::Error for DecompressFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}
