//! Writing one source's entries into the image root (fsutil/copy's `copier`, descriptor based).
//!
//! Every target is addressed as (open parent directory, name) and created with `O_EXCL |
//! O_NOFOLLOW`, `mkdirat`, `symlinkat`, `linkat` or `mknodat` after whatever non-directory stood
//! there was unlinked, so nothing is ever written through a symlink the image left at that name
//! (threats-and-faults §2.1 #5, #6). A directory merges into an existing directory (taking the
//! source's metadata, as BuildKit does for everything below the destination); a file onto a
//! directory and a directory onto a non-directory are BuildKit's errors.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat, mknodat};
use nix::unistd::{UnlinkatFlags, linkat, symlinkat, unlinkat};

use super::dest::{DestDir, lstat_at, open_dir_at, shown};
use super::meta::{Meta, copy_xattrs, set_link_meta, set_node_meta, set_owner_mode, set_times};
use super::{CopyError, CopyStats};
use crate::context::rootfs::{self, RootDir, file_type};
use crate::context::walk::{Entry, Visitor, WalkError};
use crate::context::{Ownership, ResolvedSource};

pub(super) struct Writer<'a> {
    pub root: &'a RootDir,
    pub meta: &'a Meta<'a>,
    pub ownership: Ownership,
    pub allow_devices: bool,
    pub stats: &'a mut CopyStats,
    /// Target directories being filled, innermost last.
    pub stack: Vec<DestDir>,
    /// (dev, ino) of a source file → where its first copy went, so hardlinks stay linked.
    pub links: HashMap<(u64, u64), Vec<u8>>,
}

impl<'a> Writer<'a> {
    pub fn new(
        root: &'a RootDir,
        meta: &'a Meta<'a>,
        source: &ResolvedSource,
        stats: &'a mut CopyStats,
    ) -> Self {
        Self {
            root,
            meta,
            ownership: source.ownership(),
            allow_devices: source.allows_devices(),
            stats,
            stack: Vec::new(),
            links: HashMap::new(),
        }
    }

    /// Writes one non-directory `entry` at `parent/name`.
    pub fn write_leaf(
        &mut self,
        entry: &Entry<'_>,
        parent: &DestDir,
        name: &OsStr,
    ) -> Result<(), CopyError> {
        let rel = parent.child_rel(name);
        let stat = entry.stat;
        let kind = file_type(stat);
        let owner = self.meta.owner(self.ownership, stat);
        let times = self.meta.times(stat);
        let source_shown = || String::from_utf8_lossy(entry.rel).into_owned();
        if matches!(kind, SFlag::S_IFCHR | SFlag::S_IFBLK) && !self.allow_devices {
            return Err(CopyError::Context(
                crate::context::ContextError::DeviceInContext {
                    path: source_shown(),
                    kind: if kind == SFlag::S_IFCHR {
                        "character device"
                    } else {
                        "block device"
                    },
                },
            ));
        }
        self.clear_target(parent.fd.as_fd(), name, &rel)?;
        let pfd = parent.fd.as_fd();
        match kind {
            SFlag::S_IFREG => {
                let key = (stat.st_dev, stat.st_ino);
                if stat.st_nlink > 1
                    && let Some(first) = self.links.get(&key)
                {
                    let (first_parent, first_name) = rootfs::open_parent(self.root, first)
                        .map_err(|e| CopyError::io("open", first, e))?;
                    let first_parent = first_parent.as_ref().map_or(self.root.fd(), AsFd::as_fd);
                    linkat(
                        first_parent,
                        first_name.as_os_str(),
                        pfd,
                        name,
                        AtFlags::empty(),
                    )
                    .map_err(|e| CopyError::io("link", &rel, e))?;
                    self.stats.hardlinks += 1;
                    return Ok(());
                }
                let src = openat(
                    entry.parent,
                    entry.name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| CopyError::source_io("open", entry.rel, e))?;
                let src_stat =
                    fstat(&src).map_err(|e| CopyError::source_io("stat", entry.rel, e))?;
                if file_type(&src_stat) != SFlag::S_IFREG {
                    return Err(CopyError::source_io("open", entry.rel, Errno::ESTALE));
                }
                let dst = openat(
                    pfd,
                    name,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| CopyError::io("create", &rel, e))?;
                let mut reader = File::from(src);
                let mut writer = File::from(dst);
                // std's copy uses copy_file_range on Linux: no userspace buffering.
                let bytes =
                    std::io::copy(&mut reader, &mut writer).map_err(|source| CopyError::Io {
                        op: "copy",
                        path: shown(&rel),
                        source,
                    })?;
                set_owner_mode(writer.as_fd(), owner, self.meta.mode(stat, false))
                    .map_err(|e| CopyError::io("chown/chmod", &rel, e))?;
                copy_xattrs(reader.as_fd(), writer.as_fd()).map_err(|source| CopyError::Io {
                    op: "copy xattrs",
                    path: shown(&rel),
                    source,
                })?;
                set_times(writer.as_fd(), times).map_err(|e| CopyError::io("utimes", &rel, e))?;
                if stat.st_nlink > 1 {
                    self.links.insert(key, rel);
                }
                self.stats.files += 1;
                self.stats.bytes += bytes;
            }
            SFlag::S_IFLNK => {
                let target = readlinkat(entry.parent, entry.name)
                    .map_err(|e| CopyError::source_io("readlink", entry.rel, e))?;
                symlinkat(target.as_os_str(), pfd, name)
                    .map_err(|e| CopyError::io("symlink", &rel, e))?;
                set_link_meta(pfd, name, owner, times)
                    .map_err(|e| CopyError::io("chown/utimes", &rel, e))?;
                self.stats.symlinks += 1;
            }
            _ => {
                let mode = self.meta.mode(stat, false);
                mknodat(
                    pfd,
                    name,
                    kind,
                    Mode::from_bits_truncate(0o600),
                    stat.st_rdev,
                )
                .map_err(|e| CopyError::io("mknod", &rel, e))?;
                set_node_meta(pfd, name, owner, mode, times)
                    .map_err(|e| CopyError::io("chown/chmod", &rel, e))?;
                self.stats.special += 1;
            }
        }
        Ok(())
    }

    /// fsutil's `ensureEmptyFileTarget`: a non-directory is unlinked; a directory is an error
    /// (with `--link` it is removed, as the stacked layer would hide it).
    fn clear_target(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        rel: &[u8],
    ) -> Result<(), CopyError> {
        match lstat_at(parent, name).map_err(|e| CopyError::io("stat", rel, e))? {
            None => Ok(()),
            Some(stat) if file_type(&stat) == SFlag::S_IFDIR => {
                if self.meta.link {
                    remove_tree(parent, name, rel)
                } else {
                    Err(CopyError::CannotReplaceDirectory { path: shown(rel) })
                }
            }
            Some(_) => unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| CopyError::io("unlink", rel, e)),
        }
    }

    fn top(&self) -> &DestDir {
        self.stack
            .last()
            .expect("enter_dir pushes the destination first")
    }
}

impl Visitor for Writer<'_> {
    type Error = CopyError;

    fn enter_dir(
        &mut self,
        entry: &Entry<'_>,
        source_dir: BorrowedFd<'_>,
    ) -> Result<(), CopyError> {
        if entry.rel.is_empty() {
            // The destination itself was prepared (and pushed) by the caller.
            return Ok(());
        }
        let parent = self.top();
        let rel = parent.child_rel(entry.name);
        let pfd = parent.fd.as_fd();
        match lstat_at(pfd, entry.name).map_err(|e| CopyError::io("stat", &rel, e))? {
            None => mkdirat(pfd, entry.name, Mode::from_bits_truncate(0o700))
                .map_err(|e| CopyError::io("mkdir", &rel, e))?,
            Some(stat) if file_type(&stat) == SFlag::S_IFDIR => {}
            Some(_) if self.meta.link => {
                unlinkat(pfd, entry.name, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| CopyError::io("unlink", &rel, e))?;
                mkdirat(pfd, entry.name, Mode::from_bits_truncate(0o700))
                    .map_err(|e| CopyError::io("mkdir", &rel, e))?;
            }
            Some(_) => return Err(CopyError::CannotCopyToNonDirectory { path: shown(&rel) }),
        }
        let fd: OwnedFd =
            open_dir_at(pfd, entry.name).map_err(|e| CopyError::io("open", &rel, e))?;
        set_owner_mode(
            fd.as_fd(),
            self.meta.owner(self.ownership, entry.stat),
            self.meta.mode(entry.stat, true),
        )
        .map_err(|e| CopyError::io("chown/chmod", &rel, e))?;
        copy_xattrs(source_dir, fd.as_fd()).map_err(|source| CopyError::Io {
            op: "copy xattrs",
            path: shown(&rel),
            source,
        })?;
        self.stats.dirs += 1;
        self.stack.push(DestDir { fd, rel });
        Ok(())
    }

    fn leave_dir(&mut self, entry: &Entry<'_>) -> Result<(), CopyError> {
        // After the children, so their creation does not move the directory's mtime again. The
        // destination of a directory copy takes the source's times too (fsutil restores them).
        let dir = self.top();
        set_times(dir.fd.as_fd(), self.meta.times(entry.stat))
            .map_err(|e| CopyError::io("utimes", &dir.rel, e))?;
        if !entry.rel.is_empty() {
            self.stack.pop();
        }
        Ok(())
    }

    fn leaf(&mut self, entry: &Entry<'_>) -> Result<(), CopyError> {
        let parent = self
            .stack
            .pop()
            .expect("enter_dir pushes the destination first");
        let result = self.write_leaf(entry, &parent, entry.name);
        self.stack.push(parent);
        result
    }
}

impl From<WalkError> for CopyError {
    fn from(e: WalkError) -> Self {
        CopyError::Context(e.into())
    }
}

/// Removes `name` and everything below it, without following symlinks (`--link` only).
fn remove_tree(parent: BorrowedFd<'_>, name: &OsStr, rel: &[u8]) -> Result<(), CopyError> {
    let mut dir = Dir::openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CopyError::io("open", rel, e))?;
    let mut children = Vec::new();
    for item in dir.iter() {
        let item = item.map_err(|e| CopyError::io("readdir", rel, e))?;
        let child = item.file_name().to_bytes();
        if child != b"." && child != b".." {
            children.push(OsStr::from_bytes(child).to_os_string());
        }
    }
    let dfd = dir.as_fd();
    for child in children {
        let mut child_rel = rel.to_vec();
        child_rel.push(b'/');
        child_rel.extend_from_slice(child.as_bytes());
        match lstat_at(dfd, &child).map_err(|e| CopyError::io("stat", &child_rel, e))? {
            Some(stat) if file_type(&stat) == SFlag::S_IFDIR => {
                remove_tree(dfd, &child, &child_rel)?
            }
            Some(_) => unlinkat(dfd, child.as_os_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| CopyError::io("unlink", &child_rel, e))?,
            None => {}
        }
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir).map_err(|e| CopyError::io("rmdir", rel, e))
}
