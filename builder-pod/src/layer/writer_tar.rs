//! Deterministic tar headers: POSIX ustar blocks, with a PAX extended header (typeflag `x`) for
//! whatever ustar cannot hold — long or non-ASCII names and link targets, big ids and sizes, and
//! xattrs (`SCHILY.xattr.<name>`, the key GNU tar, Go's archive/tar and containerd use).
//!
//! Every byte is a function of the entry: no user or group names (image-spec layer.md leaves them
//! out of the change set, and host names would leak the build host), zero device numbers except
//! for devices, a fixed PAX header name, PAX records sorted by key. The split between ustar and
//! PAX follows Go's archive/tar (`splitUSTARPath`, PAX for non-ASCII), which is what layers from
//! Docker, BuildKit and containerd look like.

use std::collections::BTreeMap;
use std::ffi::OsString;

pub const BLOCK: usize = 512;

/// The ustar typeflag of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    Regular,
    HardLink,
    Symlink,
    Char,
    Block,
    Directory,
    Fifo,
}

impl EntryType {
    fn flag(self) -> u8 {
        match self {
            EntryType::Regular => b'0',
            EntryType::HardLink => b'1',
            EntryType::Symlink => b'2',
            EntryType::Char => b'3',
            EntryType::Block => b'4',
            EntryType::Directory => b'5',
            EntryType::Fifo => b'6',
        }
    }
}

/// Everything a layer records about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    /// The path in the layer, relative, `/`-separated; directories end with `/`.
    pub name: Vec<u8>,
    pub entry_type: EntryType,
    /// Permission bits plus setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    /// Whole seconds since the epoch, already clamped by the caller.
    pub mtime: u64,
    /// Symlink target or hardlink source name.
    pub link_name: Vec<u8>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Sorted by name.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

impl EntryHeader {
    /// An entry with everything zero except its name and type.
    pub fn new(name: Vec<u8>, entry_type: EntryType) -> Self {
        Self {
            name,
            entry_type,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            link_name: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }
}

/// The largest value an octal field of `width` bytes holds (width - 1 digits plus a NUL).
const fn octal_max(width: u32) -> u64 {
    (1u64 << (3 * (width - 1))) - 1
}

/// The largest mtime a ustar header holds; later times are clamped to it by the writer.
pub const MAX_MTIME: u64 = octal_max(12);

/// The PAX extended header's own name. Readers ignore it; it is fixed so layers stay
/// byte-identical (GNU tar puts its process id here).
const PAX_HEADER_NAME: &[u8] = b"PaxHeaders/entry";

/// Appends the header block(s) for `entry` to `out`: a PAX header and its records when needed,
/// then the ustar block. The caller writes the content and its padding.
pub fn encode(entry: &EntryHeader, out: &mut Vec<u8>) {
    let mut pax: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();

    let (prefix, name) = match split_ustar_path(&entry.name) {
        Some(split) => split,
        None => {
            pax.insert(b"path".to_vec(), entry.name.clone());
            (&b""[..], truncate(&entry.name, 100))
        }
    };
    let link_name = if entry.link_name.len() <= 100 && entry.link_name.is_ascii() {
        &entry.link_name[..]
    } else {
        pax.insert(b"linkpath".to_vec(), entry.link_name.clone());
        truncate(&entry.link_name, 100)
    };
    let mut numeric = |key: &[u8], value: u64, width: u32| -> u64 {
        if value > octal_max(width) {
            pax.insert(key.to_vec(), value.to_string().into_bytes());
            0
        } else {
            value
        }
    };
    let uid = numeric(b"uid", entry.uid, 8);
    let gid = numeric(b"gid", entry.gid, 8);
    let size = numeric(b"size", entry.size, 12);
    for (key, value) in &entry.xattrs {
        let mut pax_key = b"SCHILY.xattr.".to_vec();
        pax_key.extend_from_slice(key.as_encoded_bytes());
        pax.insert(pax_key, value.clone());
    }

    if !pax.is_empty() {
        let mut records = Vec::new();
        for (key, value) in &pax {
            pax_record(key, value, &mut records);
        }
        let mut pax_header = EntryHeader::new(PAX_HEADER_NAME.to_vec(), EntryType::Regular);
        pax_header.size = records.len() as u64;
        ustar_block(
            &pax_header,
            b'x',
            (b"", PAX_HEADER_NAME),
            b"",
            (0, 0, pax_header.size),
            out,
        );
        out.extend_from_slice(&records);
        pad(out);
    }
    ustar_block(
        entry,
        entry.entry_type.flag(),
        (prefix, name),
        link_name,
        (uid, gid, size),
        out,
    );
}

/// Zero bytes that complete a member of `len` bytes to a whole block.
pub fn padding(len: u64) -> usize {
    let rem = (len % BLOCK as u64) as usize;
    if rem == 0 { 0 } else { BLOCK - rem }
}

/// The end of an archive: two zero blocks.
pub const END_OF_ARCHIVE: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len() + padding(out.len() as u64), 0);
}

fn truncate(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

/// Go archive/tar's `splitUSTARPath`: `(prefix, name)` when the path fits ustar's 155-byte prefix
/// and 100-byte name (split at a `/`) and is ASCII without NUL; `None` means "use PAX `path`".
fn split_ustar_path(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if !path.is_ascii() || path.contains(&0) {
        return None;
    }
    if path.len() <= 100 {
        return Some((b"", path));
    }
    let mut end = path.len().min(155 + 1);
    if end == path.len() && path[end - 1] == b'/' {
        end -= 1;
    }
    let slash = path[..end].iter().rposition(|&b| b == b'/')?;
    let (prefix, name) = (&path[..slash], &path[slash + 1..]);
    (slash > 0 && !name.is_empty() && name.len() <= 100 && prefix.len() <= 155)
        .then_some((prefix, name))
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole record including
/// its own digits (POSIX.1-2008 pax, "extended header").
fn pax_record(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + body.to_string().len();
    if len.to_string().len() > body.to_string().len() {
        len += 1;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// One 512-byte ustar header block.
fn ustar_block(
    entry: &EntryHeader,
    typeflag: u8,
    (prefix, name): (&[u8], &[u8]),
    link_name: &[u8],
    (uid, gid, size): (u64, u64, u64),
    out: &mut Vec<u8>,
) {
    let mut block = [0u8; BLOCK];
    block[0..name.len()].copy_from_slice(name);
    octal(&mut block[100..108], u64::from(entry.mode));
    octal(&mut block[108..116], uid);
    octal(&mut block[116..124], gid);
    octal(&mut block[124..136], size);
    octal(&mut block[136..148], entry.mtime.min(MAX_MTIME));
    block[156] = typeflag;
    block[157..157 + link_name.len()].copy_from_slice(link_name);
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    // uname (265..297) and gname (297..329) stay empty: numeric ids only.
    octal(&mut block[329..337], u64::from(entry.dev_major));
    octal(&mut block[337..345], u64::from(entry.dev_minor));
    block[345..345 + prefix.len()].copy_from_slice(prefix);
    // The checksum is computed with its own field read as spaces, then stored as six octal
    // digits, NUL, space (the historical layout every reader accepts).
    block[148..156].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    let digits = format!("{sum:06o}");
    block[148..154].copy_from_slice(digits.as_bytes());
    block[154] = 0;
    block[155] = b' ';
    out.extend_from_slice(&block);
}

/// A zero-padded octal number filling `field` but its last byte, which stays NUL. Callers keep
/// `value` within `octal_max(field.len())`.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    debug_assert!(
        digits.len() == width,
        "{value} overflows a {width}-digit field"
    );
    field[..width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
    field[width] = 0;
}

#[cfg(test)]
#[path = "writer_tar_tests.rs"]
mod tests;
