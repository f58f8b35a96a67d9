//! The layer byte sink: one streaming pass that hashes the uncompressed tar (the diffID),
//! compresses it, and hashes and counts the compressed bytes (the blob digest and size) on their
//! way to the output.
//!
//! ```text
//! tar bytes ─┬─> sha256 (diffID)
//!            └─> gzip (gzp) | zstd (zstdmt) | none ─> sha256 + count (digest, size) ─> out
//! ```
//!
//! Reproducibility across machines: the compressed bytes must not depend on how many threads the
//! builder has. Both codecs therefore always run in their multi-threaded format, with at least
//! one worker: gzp's pigz-style output depends only on its fixed block size and the level, and
//! libzstd's multi-threaded output is identical for any `nbWorkers >= 1` (it differs from its
//! single-threaded output, which we never use). `threads` only changes the speed. The bytes still
//! depend on the codec versions, as with every builder; the diffID does not.
//!
//! Codec choice and measured throughput: reference/crates.md §9 (gzp on zlib-rs ≈ 2× single
//! thread on 2 cores; zstdmt ≈ 2×).

use std::fmt;
use std::io::{self, Write};

use gzp::ZWriter;
use gzp::deflate::Gzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};
use zstd::stream::raw::CParameter;

use crate::image::digest::{Digest, Digester};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (pigz-style parallel deflate), level 0–9.
    Gzip { level: u32 },
    /// zstd, any level libzstd accepts (negative levels are the fast modes).
    Zstd { level: i32 },
    /// An uncompressed tar: the blob digest equals the diffID.
    None,
}

impl Compression {
    /// The OCI media type of a layer blob compressed this way (image-spec media-types.md).
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::Gzip { .. } => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd { .. } => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }
}

/// Why the compressor could not be set up or finished.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("gzip level {0} is out of range: use 0 (store) to 9 (best)")]
    GzipLevel(u32),
    #[error("zstd level {level} is out of range: libzstd accepts {min} to {max}")]
    ZstdLevel { level: i32, min: i32, max: i32 },
    #[error("cannot set up the zstd compressor: {0}")]
    ZstdSetup(#[source] io::Error),
    #[error("gzip compression failed: {0}")]
    Gzip(#[source] gzp::GzpError),
    #[error("zstd compression failed: {0}")]
    Zstd(#[source] io::Error),
    #[error("writing the layer blob failed: {0}")]
    Output(#[source] io::Error),
}

/// gzp's compression block: part of the output format, so fixed here rather than left to gzp's
/// default (which could change between releases and with it every layer digest).
const GZIP_BLOCK: usize = 128 * 1024;

/// libzstd's multi-threaded job size, fixed for the same reason. The default for level 3 is
/// 8 MiB, which held the commit's peak RSS at 114 MiB with 2 workers (and it grows per worker);
/// 2 MiB jobs cost 0.1% of ratio and bring it to about 30 MiB (docs/arch/layer-perf.md). libzstd
/// raises the job size to at least the overlap window, so high levels stay valid.
const ZSTD_JOB: u32 = 2 * 1024 * 1024;

/// A `Write` sink that hashes and counts everything on its way to `inner`.
struct Counted<W> {
    inner: W,
    digester: Digester,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder<W: Write + Send + 'static> {
    Gzip(ParCompress<'static, Gzip, Counted<W>>),
    Zstd(zstd::stream::write::Encoder<'static, Counted<W>>),
    None(Counted<W>),
}

/// The result of a finished sink.
#[derive(Debug)]
pub struct Finished<W> {
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub digest: Digest,
    pub size: u64,
    pub writer: W,
}

/// Tar bytes in, compressed bytes out, both digests computed on the way.
pub struct LayerSink<W: Write + Send + 'static> {
    diff_id: Digester,
    /// `None` only after `finish` took it.
    encoder: Option<Encoder<W>>,
    /// A write failed. gzp tears its pipeline down on the first failure, after which its
    /// `finish` would panic, so nothing may call it again.
    failed: bool,
}

impl<W: Write + Send + 'static> fmt::Debug for LayerSink<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerSink")
            .field("uncompressed", &self.diff_id.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send + 'static> LayerSink<W> {
    /// A sink compressing with `compression` on `threads` worker threads (at least one).
    pub fn new(out: W, compression: Compression, threads: usize) -> Result<Self, CompressError> {
        let threads = threads.max(1);
        let counted = Counted {
            inner: out,
            digester: Digester::new(),
        };
        let encoder = match compression {
            Compression::Gzip { level } => {
                if level > 9 {
                    return Err(CompressError::GzipLevel(level));
                }
                let builder = ParCompressBuilder::<Gzip>::new()
                    .buffer_size(GZIP_BLOCK)
                    .and_then(|b| b.num_threads(threads))
                    .map_err(CompressError::Gzip)?
                    .compression_level(gzp::Compression::new(level));
                Encoder::Gzip(builder.from_writer(counted))
            }
            Compression::Zstd { level } => {
                let range = zstd::compression_level_range();
                if !range.contains(&level) {
                    return Err(CompressError::ZstdLevel {
                        level,
                        min: *range.start(),
                        max: *range.end(),
                    });
                }
                let mut encoder = zstd::stream::write::Encoder::new(counted, level)
                    .map_err(CompressError::ZstdSetup)?;
                let workers = u32::try_from(threads).unwrap_or(u32::MAX);
                encoder
                    .multithread(workers)
                    .and_then(|()| encoder.set_parameter(CParameter::JobSize(ZSTD_JOB)))
                    .and_then(|()| encoder.include_checksum(true))
                    .map_err(CompressError::ZstdSetup)?;
                Encoder::Zstd(encoder)
            }
            Compression::None => Encoder::None(counted),
        };
        Ok(Self {
            diff_id: Digester::new(),
            encoder: Some(encoder),
            failed: false,
        })
    }

    /// Flushes the codec and returns both digests, both sizes and the output writer.
    pub fn finish(mut self) -> Result<Finished<W>, CompressError> {
        if self.failed {
            return Err(CompressError::Output(io::Error::other(
                "an earlier write to the layer stream failed",
            )));
        }
        let encoder = self.encoder.take().expect("finish runs once");
        let counted = match encoder {
            Encoder::Gzip(mut gz) => gz.finish().map_err(CompressError::Gzip)?,
            Encoder::Zstd(zs) => zs.finish().map_err(CompressError::Zstd)?,
            Encoder::None(mut counted) => {
                counted.flush().map_err(CompressError::Output)?;
                counted
            }
        };
        let (diff_id, uncompressed_size) = std::mem::take(&mut self.diff_id).finish();
        let (digest, size) = counted.digester.finish();
        Ok(Finished {
            diff_id,
            uncompressed_size,
            digest,
            size,
            writer: counted.inner,
        })
    }
}

impl<W: Write + Send + 'static> Write for LayerSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(
                "an earlier write to the layer stream failed",
            ));
        }
        let written = match self.encoder.as_mut().expect("not finished") {
            Encoder::Gzip(gz) => gz.write(buf),
            Encoder::Zstd(zs) => zs.write(buf),
            Encoder::None(counted) => counted.write(buf),
        };
        let n = written.inspect_err(|_| self.failed = true)?;
        self.diff_id.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing a codec mid-stream would emit a sync block and change the compressed bytes
        // depending on when callers flush; the only flush that matters happens in `finish`.
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for LayerSink<W> {
    fn drop(&mut self) {
        // A sink abandoned on an error path: gzp's own Drop would call `finish().unwrap()` and
        // panic on a failed output; finishing here stops its threads and discards the error (the
        // caller is already returning the error that made it abandon the layer).
        if let Some(Encoder::Gzip(mut gz)) = self.encoder.take()
            && !self.failed
        {
            let _ = gz.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<u8> {
        // Compressible but not trivial, and larger than several gzp blocks and a zstd job.
        let mut data = Vec::new();
        let mut x: u32 = 1;
        while data.len() < 3 * 1024 * 1024 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.extend_from_slice(format!("line {} {}\n", x % 1000, x >> 20).as_bytes());
        }
        data
    }

    fn compress(data: &[u8], compression: Compression, threads: usize) -> Finished<Vec<u8>> {
        let mut sink = LayerSink::new(Vec::new(), compression, threads).unwrap();
        for chunk in data.chunks(70_001) {
            sink.write_all(chunk).unwrap();
        }
        sink.finish().unwrap()
    }

    #[test]
    fn digests_and_round_trip_for_every_codec() {
        let data = sample();
        for compression in [
            Compression::Gzip { level: 1 },
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
            Compression::Zstd { level: -1 },
            Compression::None,
        ] {
            let done = compress(&data, compression, 2);
            assert_eq!(done.diff_id, Digest::of(&data), "{compression:?}");
            assert_eq!(done.uncompressed_size, data.len() as u64);
            assert_eq!(done.digest, Digest::of(&done.writer), "{compression:?}");
            assert_eq!(done.size, done.writer.len() as u64);
            let mut back = Vec::new();
            match compression {
                Compression::Gzip { .. } => {
                    // One gzip member, readable by a plain (non-multi-member) decoder.
                    flate2::read::GzDecoder::new(&done.writer[..])
                        .read_to_end(&mut back)
                        .unwrap();
                }
                Compression::Zstd { .. } => {
                    back = zstd::decode_all(&done.writer[..]).unwrap();
                }
                Compression::None => back.clone_from(&done.writer),
            }
            assert!(back == data, "{compression:?} does not round-trip");
        }
    }

    #[test]
    fn compressed_bytes_do_not_depend_on_the_thread_count() {
        let data = sample();
        for compression in [
            Compression::Gzip { level: 1 },
            Compression::Zstd { level: 3 },
        ] {
            let one = compress(&data, compression, 1).digest;
            for threads in [0, 2, 3] {
                assert_eq!(
                    compress(&data, compression, threads).digest,
                    one,
                    "{compression:?} with {threads} threads"
                );
            }
        }
    }

    #[test]
    fn empty_input_is_a_valid_stream() {
        for compression in [
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let done = compress(&[], compression, 2);
            assert_eq!(done.diff_id, Digest::of(b""));
            assert!(done.size > 0, "{compression:?} wrote no header");
        }
    }

    #[test]
    fn levels_out_of_range_are_refused() {
        assert!(matches!(
            LayerSink::new(Vec::new(), Compression::Gzip { level: 10 }, 1),
            Err(CompressError::GzipLevel(10))
        ));
        assert!(matches!(
            LayerSink::new(Vec::new(), Compression::Zstd { level: 99 }, 1),
            Err(CompressError::ZstdLevel { level: 99, .. })
        ));
    }

    /// A writer that fails after a few bytes, to prove an abandoned sink does not panic.
    struct Failing(usize);
    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 < buf.len() {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_errors_surface_without_panicking() {
        let data = sample();
        for compression in [
            Compression::Gzip { level: 1 },
            Compression::Zstd { level: 3 },
        ] {
            let mut sink = LayerSink::new(Failing(100), compression, 2).unwrap();
            let wrote = data.chunks(65536).try_for_each(|c| sink.write_all(c));
            let failed = wrote.is_err() || sink.finish().is_err();
            assert!(failed, "{compression:?} swallowed the output error");
        }
        // Dropped mid-stream with a failing writer: must not panic.
        let mut sink = LayerSink::new(Failing(10), Compression::Gzip { level: 1 }, 2).unwrap();
        let _ = sink.write_all(&data);
        drop(sink);
    }
}
