//! Changes → one deterministic tar layer, streamed through the compressor in a single pass that
//! yields the diffID, the blob digest and both sizes.
//!
//! Entry metadata is read from the upper dir at write time: mode (with setuid/setgid/sticky),
//! numeric owner, mtime truncated to whole seconds (and clamped to `SOURCE_DATE_EPOCH` when set),
//! the xattrs [`super::diff_xattr`] allows. Whiteouts and opaque markers are empty regular files
//! owned by root with mode 0 and mtime 0 (the epoch) in every mode, so they never make two
//! otherwise identical layers differ. Non-directories sharing an inode are written once, with the
//! other names as hardlink entries to the first (containerd's `ChangeWriter` does the same by
//! inode): a RUN that links a new name to a lower file keeps both names linked.
//!
//! Memory stays bounded whatever the layer size: file content is copied through one 256 KiB
//! buffer, and the only per-entry state is the name of each multiply-linked inode.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use super::compress::Compression;
use super::compress::{CompressError, LayerSink};
use super::diff::{Change, ChangeKind};
use super::diff_xattr;
use super::writer_tar::{self, END_OF_ARCHIVE, EntryHeader, EntryType, MAX_MTIME};
use crate::image::digest::Digest;

/// How to write a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub compression: Compression,
    /// Reproducible builds: entry mtimes later than this are clamped to it
    /// (reproducible-builds.org `SOURCE_DATE_EPOCH`, as BuildKit and containerd do).
    pub source_date_epoch: Option<i64>,
    /// Compression worker threads; 0 means one per available CPU. The bytes written do not
    /// depend on it (see [`super::compress`]).
    pub threads: usize,
}

/// A written layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// sha256 of the uncompressed tar: the image config's `rootfs.diff_ids` entry.
    pub diff_id: Digest,
    /// sha256 of the blob as written: the manifest descriptor's digest.
    pub digest: Digest,
    /// Bytes written to the output (compressed).
    pub size: u64,
    pub uncompressed_size: u64,
    pub media_type: &'static str,
    /// Tar entries written (whiteouts and opaque markers included, PAX headers not).
    pub entries: u64,
}

impl LayerBlob {
    /// True when the layer has no entries: the executor adds no layer for it (BuildKit drops a
    /// RUN that changed nothing).
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
}

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerWriteError {
    #[error("cannot read {path} while writing the layer: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} changed while the layer was being written (it must not be modified until the \
         commit finishes)"
    )]
    Changed { path: PathBuf },
    #[error("{path} is a socket, which a layer cannot hold")]
    Socket { path: PathBuf },
    #[error("writing the layer stream failed: {0}")]
    Output(#[source] io::Error),
    #[error(transparent)]
    Compress(#[from] CompressError),
}

const COPY_BUFFER: usize = 256 * 1024;

/// Writes `changes` (from [`super::diff::diff_upper`], read from `upper`) as a tar layer to `out`.
///
/// Returns the blob description and `out` back (e.g. to fsync and rename the file). With no
/// changes the result is a valid empty tar and [`LayerBlob::is_empty`] is true.
pub fn write_layer<W: Write + Send + 'static>(
    changes: &[Change],
    upper: &Path,
    out: W,
    opts: &WriteOptions,
) -> Result<(LayerBlob, W), LayerWriteError> {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let sink = LayerSink::new(out, opts.compression, threads)?;
    let mut writer = TarWriter {
        out: BufWriter::with_capacity(COPY_BUFFER, sink),
        upper,
        epoch: opts.source_date_epoch,
        first_name_of_inode: HashMap::new(),
        header: Vec::with_capacity(4 * writer_tar::BLOCK),
        buffer: vec![0; COPY_BUFFER],
        entries: 0,
    };
    for change in changes {
        writer.write_change(change)?;
    }
    writer
        .out
        .write_all(&END_OF_ARCHIVE)
        .map_err(LayerWriteError::Output)?;
    let entries = writer.entries;
    let sink = writer
        .out
        .into_inner()
        .map_err(|e| LayerWriteError::Output(e.into_error()))?;
    let done = sink.finish()?;
    let blob = LayerBlob {
        diff_id: done.diff_id,
        digest: done.digest,
        size: done.size,
        uncompressed_size: done.uncompressed_size,
        media_type: opts.compression.media_type(),
        entries,
    };
    Ok((blob, done.writer))
}

struct TarWriter<'a, W: Write + Send + 'static> {
    out: BufWriter<LayerSink<W>>,
    upper: &'a Path,
    epoch: Option<i64>,
    /// (st_dev, st_ino) → the tar name the inode's content was written under.
    first_name_of_inode: HashMap<(u64, u64), Vec<u8>>,
    header: Vec<u8>,
    buffer: Vec<u8>,
    entries: u64,
}

impl<W: Write + Send + 'static> TarWriter<'_, W> {
    fn write_change(&mut self, change: &Change) -> Result<(), LayerWriteError> {
        let name = change.path.as_os_str().as_bytes();
        match change.kind {
            ChangeKind::Deleted => {
                let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
                    Some(slash) => (&name[..=slash], &name[slash + 1..]),
                    None => (&b""[..], name),
                };
                let whiteout = [dir, b".wh.", base].concat();
                self.write_marker(whiteout)
            }
            ChangeKind::Opaque => self.write_marker([name, b"/.wh..wh..opq"].concat()),
            ChangeKind::Added | ChangeKind::Modified | ChangeKind::Parent => {
                self.write_entry(&change.path)
            }
        }
    }

    /// A whiteout or opaque marker (image-spec layer.md "Whiteouts"): an empty regular file.
    fn write_marker(&mut self, name: Vec<u8>) -> Result<(), LayerWriteError> {
        self.write_header(&EntryHeader::new(name, EntryType::Regular))
    }

    fn write_entry(&mut self, rel: &Path) -> Result<(), LayerWriteError> {
        let path = self.upper.join(rel);
        let read_err = |source| LayerWriteError::Read {
            path: path.clone(),
            source,
        };
        let meta = std::fs::symlink_metadata(&path).map_err(read_err)?;
        let file_type = meta.file_type();
        let mut name = rel.as_os_str().as_bytes().to_vec();
        let mut header;
        if file_type.is_dir() {
            name.push(b'/');
            header = EntryHeader::new(name, EntryType::Directory);
        } else if file_type.is_symlink() {
            header = EntryHeader::new(name, EntryType::Symlink);
            header.link_name = std::fs::read_link(&path)
                .map_err(read_err)?
                .into_os_string()
                .into_vec();
        } else if file_type.is_file() {
            header = EntryHeader::new(name, EntryType::Regular);
            header.size = meta.size();
        } else if file_type.is_char_device() || file_type.is_block_device() {
            let kind = if file_type.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            header = EntryHeader::new(name, kind);
            header.dev_major = libc::major(meta.rdev());
            header.dev_minor = libc::minor(meta.rdev());
        } else if file_type.is_fifo() {
            header = EntryHeader::new(name, EntryType::Fifo);
        } else {
            return Err(LayerWriteError::Socket { path });
        }
        header.mode = meta.mode() & 0o7777;
        header.uid = u64::from(meta.uid());
        header.gid = u64::from(meta.gid());
        header.mtime = self.clamp_mtime(meta.mtime());
        if !file_type.is_dir() && meta.nlink() > 1 {
            let inode = (meta.dev(), meta.ino());
            if let Some(first) = self.first_name_of_inode.get(&inode) {
                header.entry_type = EntryType::HardLink;
                header.link_name = first.clone();
                header.size = 0;
                return self.write_header(&header);
            }
            self.first_name_of_inode.insert(inode, header.name.clone());
        }
        header.xattrs = diff_xattr::read_layer_xattrs(&path).map_err(read_err)?;
        self.write_header(&header)?;
        if header.entry_type == EntryType::Regular {
            self.copy_content(&path, &meta)?;
        }
        Ok(())
    }

    fn write_header(&mut self, header: &EntryHeader) -> Result<(), LayerWriteError> {
        self.header.clear();
        writer_tar::encode(header, &mut self.header);
        self.out
            .write_all(&self.header)
            .map_err(LayerWriteError::Output)?;
        self.entries += 1;
        Ok(())
    }

    /// Streams exactly `meta.size()` bytes of the file, then the block padding. The file is
    /// opened without following a symlink and must still be the inode whose header was written:
    /// anything else would make the header lie about the content.
    fn copy_content(&mut self, path: &Path, meta: &Metadata) -> Result<(), LayerWriteError> {
        let read_err = |source| LayerWriteError::Read {
            path: path.to_path_buf(),
            source,
        };
        let changed = || LayerWriteError::Changed {
            path: path.to_path_buf(),
        };
        let mut file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(read_err)?;
        let opened = file.metadata().map_err(read_err)?;
        if (opened.dev(), opened.ino(), opened.size()) != (meta.dev(), meta.ino(), meta.size()) {
            return Err(changed());
        }
        let mut remaining = meta.size();
        while remaining > 0 {
            let want = remaining.min(self.buffer.len() as u64) as usize;
            let n = match file.read(&mut self.buffer[..want]) {
                Ok(0) => return Err(changed()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            self.out
                .write_all(&self.buffer[..n])
                .map_err(LayerWriteError::Output)?;
            remaining -= n as u64;
        }
        // A file that grew after its header was written would be silently cut short.
        if file.read(&mut self.buffer[..1]).map_err(read_err)? != 0 {
            return Err(changed());
        }
        let padding = writer_tar::padding(meta.size());
        self.out
            .write_all(&END_OF_ARCHIVE[..padding])
            .map_err(LayerWriteError::Output)
    }

    /// Whole seconds (tar has no sub-second field without PAX, and BuildKit truncates rather
    /// than rounds), clamped to `SOURCE_DATE_EPOCH` and to what a ustar header holds.
    fn clamp_mtime(&self, mtime: i64) -> u64 {
        let clamped = match self.epoch {
            Some(epoch) => mtime.min(epoch),
            None => mtime,
        };
        u64::try_from(clamped).unwrap_or(0).min(MAX_MTIME)
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
