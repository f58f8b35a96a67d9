//! What the copier writes as owner, mode and times, and the descriptor-based calls that write
//! them. Order matters: `chown` clears set-id bits and `security.capability`, so ownership is
//! set first, then the mode, then xattrs, and times last (every other change bumps ctime/mtime).

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::BorrowedFd;

use nix::fcntl::AtFlags;
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, UtimensatFlags, fchmod, fchmodat, futimens};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown, fchownat};

use super::chmod::Chmod;
use crate::context::Ownership;
use crate::context::checksum::xattr_is_copied;

/// The metadata policy of one COPY.
#[derive(Debug)]
pub(super) struct Meta<'a> {
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<&'a Chmod>,
    pub epoch: Option<i64>,
    pub link: bool,
}

impl Meta<'_> {
    /// Owner of a copied entry: `--chown`, else 0:0 for a build context (Docker's clients reset
    /// owners) or the source's own for a stage root.
    pub fn owner(&self, ownership: Ownership, stat: &FileStat) -> (u32, u32) {
        match (self.chown, ownership) {
            (Some(ids), _) => ids,
            (None, Ownership::Root) => (0, 0),
            (None, Ownership::Preserve) => (stat.st_uid, stat.st_gid),
        }
    }

    /// Permission and special bits of a copied entry.
    pub fn mode(&self, stat: &FileStat, is_dir: bool) -> u32 {
        let mode = stat.st_mode & 0o7777;
        self.chmod.map_or(mode, |c| c.apply(mode, is_dir))
    }

    /// A directory COPY creates on the way to its destination: 0755 (or the `--chmod` mode,
    /// as current BuildKit does), owned by `--chown` or 0:0.
    pub fn created_dir(&self) -> (u32, u32, u32) {
        let (uid, gid) = self.chown.unwrap_or((0, 0));
        let mode = self.chmod.map_or(0o755, |c| c.apply(0o755, true));
        (uid, gid, mode)
    }

    /// The source's atime and mtime, clamped to SOURCE_DATE_EPOCH when one is set.
    pub fn times(&self, stat: &FileStat) -> (TimeSpec, TimeSpec) {
        let clamp = |sec: i64, nsec: i64| match self.epoch {
            Some(epoch) if sec >= epoch => TimeSpec::new(epoch, 0),
            _ => TimeSpec::new(sec, nsec),
        };
        (
            clamp(stat.st_atime, stat.st_atime_nsec),
            clamp(stat.st_mtime, stat.st_mtime_nsec),
        )
    }
}

/// Owner, then mode, on an open descriptor.
pub(super) fn set_owner_mode(
    fd: BorrowedFd<'_>,
    (uid, gid): (u32, u32),
    mode: u32,
) -> nix::Result<()> {
    fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    fchmod(fd, Mode::from_bits_retain(mode & 0o7777))
}

pub(super) fn set_times(
    fd: BorrowedFd<'_>,
    (atime, mtime): (TimeSpec, TimeSpec),
) -> nix::Result<()> {
    futimens(fd, &atime, &mtime)
}

/// Owner and times of an entry that cannot be opened (a symlink), without following it.
pub(super) fn set_link_meta(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    (uid, gid): (u32, u32),
    (atime, mtime): (TimeSpec, TimeSpec),
) -> nix::Result<()> {
    fchownat(
        parent,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    nix::sys::stat::utimensat(
        parent,
        name,
        &atime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
}

/// Owner, mode and times of a node (fifo, socket, device) just created by name.
pub(super) fn set_node_meta(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    owner: (u32, u32),
    mode: u32,
    times: (TimeSpec, TimeSpec),
) -> nix::Result<()> {
    fchownat(
        parent,
        name,
        Some(Uid::from_raw(owner.0)),
        Some(Gid::from_raw(owner.1)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    fchmodat(
        parent,
        name,
        Mode::from_bits_retain(mode & 0o7777),
        FchmodatFlags::FollowSymlink,
    )?;
    nix::sys::stat::utimensat(
        parent,
        name,
        &times.0,
        &times.1,
        UtimensatFlags::NoFollowSymlink,
    )
}

/// Copies the allowlisted xattrs (threats-and-faults §2.4 #28) from one open entry to another.
pub(super) fn copy_xattrs(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> std::io::Result<()> {
    use xattr::FileExt as _;
    let from = File::from(from.try_clone_to_owned()?);
    let to = File::from(to.try_clone_to_owned()?);
    for name in from.list_xattr()? {
        if !xattr_is_copied(std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str())) {
            continue;
        }
        if let Some(value) = from.get_xattr(&name)? {
            to.set_xattr(&name, &value)?;
        }
    }
    Ok(())
}
