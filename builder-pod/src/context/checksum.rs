//! The content checksum of COPY/ADD sources, the part of a step's cache key that depends on the
//! context.
//!
//! It covers exactly what the copier carries into the layer, so a cache hit can never return a
//! different result: for each source in order, its kind and (for a non-directory) the name it
//! takes at the destination; then every entry the copy would write, in walk order (pre-order,
//! names sorted bytewise at each level), with its path relative to the source, type, permission
//! and special bits (`mode & 0o7777`), the owner the copy would give it without `--chown` (0:0
//! for a build context, whose owners Docker resets), size, the SHA-256 of the content (streamed),
//! a symlink's target, a device's numbers, a hardlink's first name and the copied xattrs.
//! `.dockerignore`d entries are never walked, so they cannot contribute.
//!
//! Modification times are left out on purpose, as in BuildKit's `contenthash`: touching a file
//! does not invalidate the cache (the layer then keeps the mtime of the run that filled it).
//! The copied directory itself contributes only its kind: COPY merges its *contents*.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag};
use sha2::{Digest as _, Sha256};

use super::ContextError;
use super::local::{Ownership, ResolvedSource, SourceKind, read_error};
use super::rootfs::file_type;
use super::walk::{self, Entry, Visitor};
use crate::image::Digest;
use crate::image::digest::Digester;

/// Xattrs COPY carries over (threats-and-faults §2.4 #28): file capabilities, POSIX ACLs and
/// `user.*` except overlayfs' own `user.overlay.*`. Everything else (`trusted.*`,
/// `security.selinux`, …) is host policy, not image content.
pub fn xattr_is_copied(name: &[u8]) -> bool {
    name == b"security.capability"
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
        || (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
}

/// The checksum of `sources` (see the module docs).
pub fn checksum(sources: &[ResolvedSource]) -> Result<Digest, ContextError> {
    let mut out = Digester::new();
    record(&mut out, b"stratum-copy-checksum-v1");
    for source in sources {
        record(&mut out, b"source");
        record(&mut out, kind_tag(source.kind).as_bytes());
        let located = source.locate()?;
        let mut hasher = EntryHasher {
            out: &mut out,
            ownership: source.ownership(),
            allow_devices: source.allows_devices(),
            links: HashMap::new(),
        };
        if source.kind == SourceKind::Directory {
            let root = source.walk_root(&located);
            walk::walk(&root, &mut hasher)?;
        } else {
            record(hasher.out, source.name.as_bytes());
            let entry = Entry {
                rel: b"",
                name: &located.name,
                parent: located.parent_fd(source),
                stat: &located.stat,
            };
            hasher.leaf(&entry)?;
        }
    }
    Ok(out.finish().0)
}

struct EntryHasher<'a> {
    out: &'a mut Digester,
    ownership: Ownership,
    allow_devices: bool,
    /// (dev, ino) → first path, for hardlinks within one source (what the copier keeps).
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl EntryHasher<'_> {
    fn common(&mut self, entry: &Entry<'_>, tag: &str) {
        let stat = entry.stat;
        record(self.out, b"entry");
        record(self.out, entry.rel);
        record(self.out, tag.as_bytes());
        let (uid, gid) = match self.ownership {
            Ownership::Root => (0, 0),
            Ownership::Preserve => (stat.st_uid, stat.st_gid),
        };
        record(
            self.out,
            format!("{:o} {uid} {gid}", stat.st_mode & 0o7777).as_bytes(),
        );
    }

    fn xattrs(&mut self, entry: &Entry<'_>, file: &File) -> Result<(), ContextError> {
        use xattr::FileExt as _;
        let shown = || entry.rel.to_vec();
        let mut names: Vec<_> = file
            .list_xattr()
            .map_err(|e| read_error(&shown(), io_errno(&e)))?
            .filter(|n| xattr_is_copied(n.as_bytes()))
            .collect();
        names.sort();
        for name in names {
            let value = file
                .get_xattr(&name)
                .map_err(|e| read_error(&shown(), io_errno(&e)))?
                .unwrap_or_default();
            record(self.out, b"xattr");
            record(self.out, name.as_bytes());
            record(self.out, &value);
        }
        Ok(())
    }
}

impl Visitor for EntryHasher<'_> {
    type Error = ContextError;

    fn enter_dir(&mut self, entry: &Entry<'_>, dir: BorrowedFd<'_>) -> Result<(), ContextError> {
        if entry.rel.is_empty() {
            return Ok(());
        }
        self.common(entry, "dir");
        let file = File::from(nix::unistd::dup(dir).map_err(|errno| read_error(entry.rel, errno))?);
        self.xattrs(entry, &file)
    }

    fn leave_dir(&mut self, _: &Entry<'_>) -> Result<(), ContextError> {
        Ok(())
    }

    fn leaf(&mut self, entry: &Entry<'_>) -> Result<(), ContextError> {
        let stat = entry.stat;
        let kind = file_type(stat);
        match kind {
            SFlag::S_IFREG => {
                self.common(entry, "file");
                if stat.st_nlink > 1 {
                    let key = (stat.st_dev, stat.st_ino);
                    if let Some(first) = self.links.get(&key) {
                        record(self.out, b"hardlink");
                        let first = first.clone();
                        record(self.out, &first);
                        return Ok(());
                    }
                    self.links.insert(key, entry.rel.to_vec());
                }
                let fd = openat(
                    entry.parent,
                    entry.name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|errno| read_error(entry.rel, errno))?;
                let mut file = File::from(fd);
                let (size, sha) =
                    hash_content(&mut file).map_err(|e| read_error(entry.rel, io_errno(&e)))?;
                record(self.out, format!("{size} {sha}").as_bytes());
                self.xattrs(entry, &file)
            }
            SFlag::S_IFLNK => {
                self.common(entry, "symlink");
                let target = readlinkat(entry.parent, entry.name)
                    .map_err(|errno| read_error(entry.rel, errno))?;
                record(self.out, target.as_bytes());
                Ok(())
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK if !self.allow_devices => {
                Err(ContextError::DeviceInContext {
                    path: String::from_utf8_lossy(entry.rel).into_owned(),
                    kind: if kind == SFlag::S_IFCHR {
                        "character device"
                    } else {
                        "block device"
                    },
                })
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK => {
                self.common(
                    entry,
                    if kind == SFlag::S_IFCHR {
                        "char"
                    } else {
                        "block"
                    },
                );
                record(self.out, stat.st_rdev.to_string().as_bytes());
                Ok(())
            }
            SFlag::S_IFIFO => {
                self.common(entry, "fifo");
                Ok(())
            }
            _ => {
                self.common(entry, "socket");
                Ok(())
            }
        }
    }
}

/// Streams a file through SHA-256; returns the byte count and the hex digest.
fn hash_content(file: &mut File) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Length-prefixed so that no two different record sequences serialise alike.
fn record(out: &mut Digester, bytes: &[u8]) {
    let _ = out.write_all(&(bytes.len() as u64).to_le_bytes());
    let _ = out.write_all(bytes);
}

fn kind_tag(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::File => "file",
        SourceKind::Directory => "dir",
        SourceKind::Fifo => "fifo",
        SourceKind::Socket => "socket",
        SourceKind::CharDevice => "char",
        SourceKind::BlockDevice => "block",
    }
}

fn io_errno(e: &std::io::Error) -> nix::errno::Errno {
    nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
