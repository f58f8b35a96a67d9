//! The tar stream reader: framing, extension headers and limits.
//!
//! The `tar` crate (0.4.46) gives us the block layout, but its `Archive` iterator cannot be
//! used on hostile input as is: it reads PAX and GNU long-name records into memory without a
//! cap (a 1 GiB `path=` record is a 1 GiB allocation, §2.3 #24a), splits PAX records on
//! newlines (mis-reading binary xattr values), ignores a PAX `size` that follows a malformed
//! record, and truncates over-long base-256 numbers. Each of those is a place where its reading
//! and GNU tar's or Go's can differ — the TARmageddon class (§2.3 #23, CVE-2025-62518).
//!
//! So the framing is ours: one 512-byte block at a time, every numeric field decoded strictly
//! (see [`super::apply_pax`]), PAX `x` records applied to the next *file* entry (never to an
//! intermediate `L`/`K`/`x` header), PAX `size` authoritative as in GNU tar and Go, and every
//! combination on which the two reference readers disagree refused. Where both readers agree
//! on something odd, we read it the same way.

use std::io::{self, Read};
use std::sync::Arc;

use super::apply_error::{ApplyError, LimitKind, TarDefect};
use super::apply_input::{Counted, read_error};
use super::apply_pax::{
    PaxRecord, Timestamp, checksum_matches, header_number, header_string, header_unsigned_or_zero,
    parse_pax_records, pax_decimal, pax_time,
};
use super::limits::{ByteBudget, Limits};

const BLOCK: usize = 512;
/// Raw ustar fields that the `tar` crate's views only expose once the magic is well formed.
const USTAR_MAGIC: std::ops::Range<usize> = 257..263;
const USTAR_PREFIX: std::ops::Range<usize> = 345..500;
const STAR_TRAILER: std::ops::Range<usize> = 508..512;
/// The fields the framing needs before anything else (POSIX ustar layout).
const SIZE_FIELD: std::ops::Range<usize> = 124..136;
const TYPEFLAG: usize = 156;

/// What an entry creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    CharDevice,
    BlockDevice,
    Fifo,
}

impl EntryKind {
    /// A human name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::File => "regular file",
            Self::Dir => "directory",
            Self::Symlink => "symbolic link",
            Self::Hardlink => "hard link",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Fifo => "fifo",
        }
    }
}

/// One archive entry with every extension header already folded in.
#[derive(Debug, Clone)]
pub(crate) struct TarEntry {
    pub(crate) name: Vec<u8>,
    pub(crate) kind: EntryKind,
    /// Link target (symlink text or hard-link name); empty otherwise.
    pub(crate) link: Vec<u8>,
    /// Body bytes (regular files only; other kinds are refused when non-zero).
    pub(crate) size: u64,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: Timestamp,
    pub(crate) atime: Timestamp,
    pub(crate) device: (u32, u32),
    /// `SCHILY.xattr.*` records, in archive order, last duplicate winning.
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads entries from an uncompressed tar stream, enforcing [`Limits`].
pub(crate) struct TarReader<R> {
    input: Counted<R>,
    limits: Limits,
    entries: u64,
    body_left: u64,
    padding_left: u64,
    finished: bool,
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(reader: R, limits: &Limits, budget: Option<Arc<ByteBudget>>) -> Self {
        Self {
            input: Counted::new(reader, limits.max_bytes, budget),
            limits: limits.clone(),
            entries: 0,
            body_left: 0,
            padding_left: 0,
            finished: false,
        }
    }

    /// Decompressed bytes consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.input.read_so_far()
    }

    /// The next entry, or `None` at the end of the archive. Skips whatever the caller left
    /// unread of the previous entry's body.
    pub(crate) fn next_entry(&mut self) -> Result<Option<TarEntry>, ApplyError> {
        if self.finished {
            return Ok(None);
        }
        self.skip_body()?;
        let mut pending = Pending::default();
        loop {
            let offset = self.offset();
            let Some(block) = self.read_block()? else {
                return self.end(&pending, offset);
            };
            if block.iter().all(|byte| *byte == 0) {
                return self.zero_block(&pending, offset);
            }
            let defect = |defect| ApplyError::Tar { offset, defect };
            if !checksum_matches(&block).map_err(defect)? {
                return Err(defect(TarDefect::Checksum));
            }
            // A blank size field is 0 to both GNU tar and Go.
            let size = header_unsigned_or_zero(&block[SIZE_FIELD], "size").map_err(defect)?;
            match block[TYPEFLAG] {
                b'x' => {
                    if pending.pax.is_some() {
                        return Err(defect(TarDefect::DuplicateExtension { kind: 'x' }));
                    }
                    let body = self.read_extension(size, offset)?;
                    pending.pax = Some(parse_pax_records(&body).map_err(defect)?);
                }
                b'g' => {
                    if !pending.is_empty() {
                        return Err(defect(TarDefect::DanglingExtension));
                    }
                    let body = self.read_extension(size, offset)?;
                    check_global_header(&parse_pax_records(&body).map_err(defect)?)
                        .map_err(defect)?;
                }
                b'L' | b'K' => {
                    let long_link = block[TYPEFLAG] == b'K';
                    let slot = if long_link {
                        &mut pending.long_link
                    } else {
                        &mut pending.long_name
                    };
                    if slot.is_some() {
                        let kind = if long_link { 'K' } else { 'L' };
                        return Err(defect(TarDefect::DuplicateExtension { kind }));
                    }
                    let body = self.read_extension(size, offset)?;
                    let value = header_string(&body).to_vec();
                    if long_link {
                        pending.long_link = Some(value)
                    } else {
                        pending.long_name = Some(value)
                    }
                }
                _ => {
                    let entry = self.entry(&block, offset, size, pending)?;
                    return Ok(Some(entry));
                }
            }
        }
    }

    /// Reads the rest of the stream after the end-of-archive marker, so a digest computed by
    /// the caller's reader sees every byte and a corrupt compressed trailer (bad gzip CRC) is
    /// reported. Still counted against the limits: a bomb after the marker is still a bomb.
    pub(crate) fn drain(&mut self) -> Result<(), ApplyError> {
        let offset = self.offset();
        io::copy(&mut self.input, &mut io::sink())
            .map(drop)
            .map_err(|err| read_error(err, offset))
    }

    /// The unread body of the current entry.
    pub(crate) fn body(&mut self) -> Body<'_, R> {
        Body { reader: self }
    }

    fn end(&mut self, pending: &Pending, offset: u64) -> Result<Option<TarEntry>, ApplyError> {
        if !pending.is_empty() {
            return Err(ApplyError::Tar {
                offset,
                defect: TarDefect::DanglingExtension,
            });
        }
        // EOF at a header boundary without the two zero blocks: Go and GNU tar both accept it.
        self.finished = true;
        Ok(None)
    }

    fn zero_block(
        &mut self,
        pending: &Pending,
        offset: u64,
    ) -> Result<Option<TarEntry>, ApplyError> {
        match self.read_block()? {
            Some(second) if second.iter().any(|byte| *byte != 0) => Err(ApplyError::Tar {
                offset,
                defect: TarDefect::LoneZeroBlock,
            }),
            _ => self.end(pending, offset),
        }
    }

    fn entry(
        &mut self,
        block: &[u8; BLOCK],
        offset: u64,
        header_size: u64,
        pending: Pending,
    ) -> Result<TarEntry, ApplyError> {
        let defect = |defect| ApplyError::Tar { offset, defect };
        let mut entry = decode_header(block, header_size).map_err(defect)?;
        fold_extensions(&mut entry, pending).map_err(defect)?;
        entry.kind = kind_of(block[TYPEFLAG], &entry.name).map_err(defect)?;
        if entry.kind != EntryKind::File && entry.size != 0 {
            return Err(defect(TarDefect::HeaderOnlyWithData {
                typeflag: char::from(block[TYPEFLAG]),
                size: entry.size,
            }));
        }
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ApplyError::LimitExceeded {
                limit: LimitKind::Entries,
                value: self.entries,
                max: self.limits.max_entries,
                entry: Some(String::from_utf8_lossy(&entry.name).into_owned()),
            });
        }
        self.body_left = entry.size;
        self.padding_left = padding(entry.size);
        Ok(entry)
    }

    fn read_extension(&mut self, size: u64, offset: u64) -> Result<Vec<u8>, ApplyError> {
        if size > self.limits.max_header_bytes {
            return Err(ApplyError::LimitExceeded {
                limit: LimitKind::HeaderBytes,
                value: size,
                max: self.limits.max_header_bytes,
                entry: None,
            });
        }
        let mut body = vec![0; size as usize];
        self.read_exact_counted(&mut body, offset)?;
        self.body_left = 0;
        self.padding_left = padding(size);
        self.skip_body()?;
        Ok(body)
    }

    fn read_block(&mut self) -> Result<Option<[u8; BLOCK]>, ApplyError> {
        let offset = self.offset();
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match self.input.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(ApplyError::Tar {
                        offset,
                        defect: TarDefect::Truncated,
                    });
                }
                Ok(read) => filled += read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(read_error(err, offset)),
            }
        }
        Ok(Some(block))
    }

    fn read_exact_counted(&mut self, buf: &mut [u8], offset: u64) -> Result<(), ApplyError> {
        self.input
            .read_exact(buf)
            .map_err(|err| read_error(err, offset))
    }

    fn skip_body(&mut self) -> Result<(), ApplyError> {
        let offset = self.offset();
        let skip = self.body_left + self.padding_left;
        let skipped = io::copy(&mut (&mut self.input).take(skip), &mut io::sink())
            .map_err(|err| read_error(err, offset))?;
        if skipped != skip {
            return Err(ApplyError::Tar {
                offset,
                defect: TarDefect::Truncated,
            });
        }
        self.body_left = 0;
        self.padding_left = 0;
        Ok(())
    }
}

/// The body of the current entry; reading past it returns EOF, a short stream an error.
pub(crate) struct Body<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: Read> Read for Body<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.reader.body_left;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let read = self.reader.input.read(&mut buf[..want])?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar entry body is truncated",
            ));
        }
        self.reader.body_left -= read as u64;
        Ok(read)
    }
}

/// Extension headers seen since the last entry.
#[derive(Debug, Default)]
struct Pending {
    pax: Option<Vec<PaxRecord>>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.pax.is_none() && self.long_name.is_none() && self.long_link.is_none()
    }
}

/// The header fields, before extension headers are folded in.
fn decode_header(block: &[u8; BLOCK], size: u64) -> Result<TarEntry, TarDefect> {
    // Field layout through the `tar` crate's header views; the *values* are decoded by our
    // strict parsers (`apply_pax`).
    let header = tar::Header::from_byte_slice(block);
    let old = header.as_old();
    let ustar = header.as_ustar();
    let gnu = header.as_gnu();
    let prefix = ustar.map_or(&[][..], |ustar| header_string(&ustar.prefix));
    // The views only recognise well-formed magic. A ustar magic with a bad version makes Go
    // read V7 (no prefix) and GNU tar ustar (with it); the star format's prefix is 131 bytes
    // for Go and 155 for GNU tar. Either, with a prefix present, has no single reading.
    let raw_prefix = header_string(&block[USTAR_PREFIX]);
    if !raw_prefix.is_empty()
        && &block[USTAR_MAGIC] == b"ustar\0"
        && (ustar.is_none() || &block[STAR_TRAILER] == b"tar\0")
    {
        return Err(TarDefect::AmbiguousPrefix);
    }
    let mut name = Vec::new();
    if !prefix.is_empty() {
        name.extend_from_slice(prefix);
        name.push(b'/');
    }
    name.extend_from_slice(header_string(&old.name));
    let id = |field: &[u8], label| -> Result<u32, TarDefect> {
        u32::try_from(header_unsigned_or_zero(field, label)?)
            .map_err(|_| TarDefect::BadNumber { field: label })
    };
    // V7 headers have no device fields.
    let device = match (ustar, gnu) {
        (Some(ustar), _) => (
            id(&ustar.dev_major, "devmajor")?,
            id(&ustar.dev_minor, "devminor")?,
        ),
        (None, Some(gnu)) => (
            id(&gnu.dev_major, "devmajor")?,
            id(&gnu.dev_minor, "devminor")?,
        ),
        (None, None) => (0, 0),
    };
    let mtime = Timestamp {
        seconds: header_number(&old.mtime, "mtime")?.unwrap_or(0),
        nanos: 0,
    };
    Ok(TarEntry {
        name,
        kind: EntryKind::File,
        link: header_string(&old.linkname).to_vec(),
        size,
        mode: (header_unsigned_or_zero(&old.mode, "mode")? & 0o7777) as u32,
        uid: id(&old.uid, "uid")?,
        gid: id(&old.gid, "gid")?,
        mtime,
        atime: mtime,
        device,
        xattrs: Vec::new(),
    })
}

/// Applies PAX records and GNU long names/links to `entry`.
fn fold_extensions(entry: &mut TarEntry, pending: Pending) -> Result<(), TarDefect> {
    let mut pax_path = None;
    let mut pax_link = None;
    let mut pax_atime = None;
    for PaxRecord { key, value } in pending.pax.unwrap_or_default() {
        let bad = || TarDefect::PaxValue { key: key.clone() };
        match key.as_str() {
            "path" | "linkpath" => {
                // Empty means "unset" to POSIX and "empty name" to Go; NUL cuts the value for
                // GNU tar only. Either way the readers differ.
                if value.is_empty() || value.contains(&0) {
                    return Err(bad());
                }
                if key == "path" {
                    pax_path = Some(value)
                } else {
                    pax_link = Some(value)
                }
            }
            "size" => entry.size = pax_decimal(&key, &value)?,
            "uid" => entry.uid = u32::try_from(pax_decimal(&key, &value)?).map_err(|_| bad())?,
            "gid" => entry.gid = u32::try_from(pax_decimal(&key, &value)?).map_err(|_| bad())?,
            "mtime" => entry.mtime = pax_time(&key, &value)?,
            "atime" => pax_atime = Some(pax_time(&key, &value)?),
            _ if key.starts_with("GNU.sparse.") => return Err(TarDefect::Sparse),
            _ => {
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    if name.is_empty() {
                        return Err(bad());
                    }
                    entry
                        .xattrs
                        .retain(|(existing, _)| existing.as_slice() != name.as_bytes());
                    entry.xattrs.push((name.as_bytes().to_vec(), value));
                }
                // Everything else (uname, gname, ctime, comment, charset, LIBARCHIVE.*,
                // SCHILY.acl.*, unknown keys) changes nothing we extract; GNU tar and Go ignore
                // them too.
            }
        }
    }
    entry.atime = pax_atime.unwrap_or(entry.mtime);
    entry.name = choose(
        "path",
        pax_path,
        pending.long_name,
        std::mem::take(&mut entry.name),
    )?;
    entry.link = choose(
        "linkpath",
        pax_link,
        pending.long_link,
        std::mem::take(&mut entry.link),
    )?;
    Ok(())
}

/// PAX wins for GNU tar, the GNU long record wins for Go: both present and different is
/// ambiguous.
fn choose(
    key: &'static str,
    pax: Option<Vec<u8>>,
    gnu: Option<Vec<u8>>,
    header: Vec<u8>,
) -> Result<Vec<u8>, TarDefect> {
    match (pax, gnu) {
        (Some(pax), Some(gnu)) if pax != gnu => Err(TarDefect::ConflictingNames { key }),
        (Some(pax), _) => Ok(pax),
        (None, Some(gnu)) => Ok(gnu),
        (None, None) => Ok(header),
    }
}

fn kind_of(typeflag: u8, name: &[u8]) -> Result<EntryKind, TarDefect> {
    let slash = name.ends_with(b"/");
    Ok(match typeflag {
        // Old V7 archives mark directories with a trailing slash; GNU tar and Go agree.
        b'\0' if slash => EntryKind::Dir,
        b'\0' => EntryKind::File,
        b'0' | b'7' if slash => return Err(TarDefect::RegularFileWithSlash),
        b'0' | b'7' => EntryKind::File,
        b'1' => EntryKind::Hardlink,
        b'2' => EntryKind::Symlink,
        b'3' => EntryKind::CharDevice,
        b'4' => EntryKind::BlockDevice,
        b'5' => EntryKind::Dir,
        b'6' => EntryKind::Fifo,
        b'S' => return Err(TarDefect::Sparse),
        other => {
            return Err(TarDefect::UnsupportedType {
                typeflag: char::from(other),
            });
        }
    })
}

/// Keys a PAX global header may carry. `git archive` writes `comment=<commit>`; anything that
/// GNU tar would apply to every later entry (and Go/Docker ignore) is refused (§2.3 #25).
fn check_global_header(records: &[PaxRecord]) -> Result<(), TarDefect> {
    match records
        .iter()
        .find(|record| !matches!(record.key.as_str(), "comment" | "charset" | "hdrcharset"))
    {
        Some(record) => Err(TarDefect::GlobalHeaderKey {
            key: record.key.clone(),
        }),
        None => Ok(()),
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}
