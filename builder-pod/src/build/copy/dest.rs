//! Where a COPY writes: the destination resolved inside the image root with chroot semantics
//! (threats-and-faults §2.1 #2–#4, #10), missing directories created on the way.
//!
//! BuildKit resolves the destination with containerd's `fs.RootPath`: symlinks anywhere in it
//! are followed *inside the root* (`/bin -> usr/bin` makes `COPY f /bin/` land in /usr/bin) and
//! `..` stops at `/`. One deliberate difference: when the destination's final component is a
//! symlink that does not lead to a directory (a file, a dangling or escaping link), a file
//! source replaces the link itself instead of writing through it (§2.1 #5).
//!
//! With `--link`, BuildKit copies onto an empty tree and stacks the result as its own layer, so
//! nothing of the image is consulted: no symlink is followed, a directory on the way is
//! (re)created with the metadata COPY gives new directories, and whatever non-directory stands
//! in the way is replaced. [`ensure_dir`] does the same in place when `link` is set.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::CopyError;
use super::meta::{Meta, set_owner_mode};
use crate::context::rootfs::{self, Node, RootDir, file_type};

/// An existing directory of the image root, open for `*at` calls and metadata changes.
#[derive(Debug)]
pub(super) struct DestDir {
    pub fd: OwnedFd,
    /// Canonical path below the root (no symlinks), `/`-separated, empty for the root.
    pub rel: Vec<u8>,
}

impl DestDir {
    pub fn child_rel(&self, name: &OsStr) -> Vec<u8> {
        let mut rel = self.rel.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        rel
    }
}

/// `/` + a root-relative path, for messages.
pub(super) fn shown(rel: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(rel))
}

/// Opens a directory readable (for metadata calls) without following a symlink in its place.
pub(super) fn open_dir_at(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Looks at `name` under `parent` without following it.
pub(super) fn lstat_at(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<Option<FileStat>> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes sure `path` (absolute, cleaned, inside `root`) is a directory and opens it. Missing
/// components are created with COPY's metadata for new directories and recorded in `created`.
pub(super) fn ensure_dir(
    root: &RootDir,
    path: &[u8],
    meta: &Meta<'_>,
    created: &mut Vec<Vec<u8>>,
) -> Result<DestDir, CopyError> {
    if meta.link {
        return ensure_dir_scratch(root, path, meta, created);
    }
    let resolved = rootfs::resolve(root, path, true, &mut |_, _| Ok(true)).map_err(|reason| {
        CopyError::Resolve {
            dest: String::from_utf8_lossy(path).into_owned(),
            reason,
        }
    })?;
    let mut current = DestDir {
        fd: openat(
            root.fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CopyError::io("open", &[], e))?,
        rel: Vec::new(),
    };
    for step in resolved.steps {
        let rel = current.child_rel(&step.name);
        current = match step.node {
            Node::Present { dir: Some(fd), .. } => DestDir {
                fd: openat(
                    &fd,
                    ".",
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| CopyError::io("open", &rel, e))?,
                rel,
            },
            Node::Present { .. } => return Err(CopyError::NotADirectory { path: shown(&rel) }),
            Node::Missing => create_dir(&current, &step.name, meta, created)?,
        };
    }
    Ok(current)
}

/// `--link`: walk `path` without following anything, replacing non-directories and giving
/// every directory on the way the metadata of a newly created one.
fn ensure_dir_scratch(
    root: &RootDir,
    path: &[u8],
    meta: &Meta<'_>,
    created: &mut Vec<Vec<u8>>,
) -> Result<DestDir, CopyError> {
    let cleaned = crate::context::gopath::clean(&[b"/", path].concat());
    let mut current = DestDir {
        fd: openat(
            root.fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CopyError::io("open", &[], e))?,
        rel: Vec::new(),
    };
    for part in rootfs::split(&cleaned) {
        let name = OsStr::from_bytes(part);
        let rel = current.child_rel(name);
        match lstat_at(current.fd.as_fd(), name).map_err(|e| CopyError::io("stat", &rel, e))? {
            Some(stat) if file_type(&stat) == SFlag::S_IFDIR => {
                let fd = open_dir_at(current.fd.as_fd(), name)
                    .map_err(|e| CopyError::io("open", &rel, e))?;
                let (uid, gid, mode) = meta.created_dir();
                set_owner_mode(fd.as_fd(), (uid, gid), mode)
                    .map_err(|e| CopyError::io("chown/chmod", &rel, e))?;
                created.push(rel.clone());
                current = DestDir { fd, rel };
            }
            Some(_) => {
                unlinkat(current.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| CopyError::io("unlink", &rel, e))?;
                current = create_dir(&current, name, meta, created)?;
            }
            None => current = create_dir(&current, name, meta, created)?,
        }
    }
    Ok(current)
}

/// Creates one directory below `parent` with COPY's metadata for new directories.
fn create_dir(
    parent: &DestDir,
    name: &OsStr,
    meta: &Meta<'_>,
    created: &mut Vec<Vec<u8>>,
) -> Result<DestDir, CopyError> {
    let rel = parent.child_rel(name);
    mkdirat(parent.fd.as_fd(), name, Mode::from_bits_truncate(0o700))
        .map_err(|e| CopyError::io("mkdir", &rel, e))?;
    let fd = open_dir_at(parent.fd.as_fd(), name).map_err(|e| CopyError::io("open", &rel, e))?;
    let (uid, gid, mode) = meta.created_dir();
    set_owner_mode(fd.as_fd(), (uid, gid), mode)
        .map_err(|e| CopyError::io("chown/chmod", &rel, e))?;
    created.push(rel.clone());
    Ok(DestDir { fd, rel })
}

/// Where a non-directory source goes when the destination has no trailing slash.
#[derive(Debug)]
pub(super) enum FileTarget {
    /// Inside this existing directory, under the source's own name.
    Inside(DestDir),
    /// Exactly at `parent/name` (replacing whatever non-directory is there).
    At { parent: DestDir, name: OsString },
}

/// Docker's rule for `COPY file dest`: an existing directory at `dest` (or a symlink leading to
/// one, followed inside the root) receives the file; otherwise the file becomes `dest`.
pub(super) fn file_target(
    root: &RootDir,
    dest: &[u8],
    meta: &Meta<'_>,
    created: &mut Vec<Vec<u8>>,
) -> Result<FileTarget, CopyError> {
    let (parent_path, name) = match dest.iter().rposition(|&b| b == b'/') {
        Some(i) => (&dest[..i], &dest[i + 1..]),
        None => (&b""[..], dest),
    };
    let parent = ensure_dir(root, parent_path, meta, created)?;
    let name = OsStr::from_bytes(name).to_os_string();
    let rel = parent.child_rel(&name);
    let existing =
        lstat_at(parent.fd.as_fd(), &name).map_err(|e| CopyError::io("stat", &rel, e))?;
    match existing.map(|s| file_type(&s)) {
        Some(SFlag::S_IFDIR) if !meta.link => {
            let fd = open_dir_at(parent.fd.as_fd(), &name)
                .map_err(|e| CopyError::io("open", &rel, e))?;
            Ok(FileTarget::Inside(DestDir { fd, rel }))
        }
        Some(SFlag::S_IFLNK) if !meta.link => {
            let followed = rootfs::resolve(root, &rel, true, &mut |_, _| Ok(true));
            if let Ok(resolved) = followed
                && let Some(Node::Present { dir: Some(fd), .. }) =
                    resolved.steps.last().map(|s| &s.node)
            {
                let fd = openat(
                    fd,
                    ".",
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| CopyError::io("open", &rel, e))?;
                return Ok(FileTarget::Inside(DestDir {
                    fd,
                    rel: resolved.rel_path(),
                }));
            }
            Ok(FileTarget::At { parent, name })
        }
        _ => Ok(FileTarget::At { parent, name }),
    }
}
