//! Creating one entry's node inside its (already resolved) parent directory, and setting its
//! metadata without following links.
//!
//! Every node is created fresh: whatever held the name is removed first (the last duplicate
//! wins and a type change replaces, §2.1 #5, §2.3 #26), then the node is made with
//! `O_CREAT|O_EXCL|O_NOFOLLOW` / `mkdirat` / `symlinkat` / `linkat` / `mknodat`, which fail
//! rather than follow a link that appeared in between. Metadata goes through the descriptor we
//! created (`fchown`, `fchmod`, `fsetxattr`, `futimens`) or through `*at` calls with
//! `AT_SYMLINK_NOFOLLOW`. Only an existing directory meeting a directory entry is kept (its
//! metadata is replaced), as in moby and containerd.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, futimens, makedev, mkdirat,
    mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use xattr::FileExt;

use super::apply_error::{ApplyError, lossy};
use super::apply_input::read_error;
use super::apply_pax::Timestamp;
use super::apply_remove::remove_tree;
use super::apply_tar::{EntryKind, TarEntry};
use super::apply_whiteout::is_overlay_whiteout;
use super::resolve::{InRootDir, is_type, lstat_at};

/// Character devices a layer may carry (the OCI runtime-spec default devices, which are also
/// what `mmdebstrap` and old distribution images put in `/dev`). Every other device node is
/// refused: in a privileged builder pod the device cgroup is open, so a layer's `/dev/sda` or
/// `/dev/mem` would be live host hardware for later RUN steps (§2.4 #27).
const ALLOWED_CHAR_DEVICES: [(u32, u32); 8] = [
    (1, 3), // null
    (1, 5), // zero
    (1, 7), // full
    (1, 8), // random
    (1, 9), // urandom
    (5, 0), // tty
    (5, 1), // console
    (5, 2), // ptmx
];

/// Whether a layer may create this device node. A 0/0 character device is refused as well:
/// it is an overlay whiteout to some builders and a plain node to others (§7 promise 5).
pub(crate) fn device_allowed(kind: EntryKind, major: u32, minor: u32) -> bool {
    kind == EntryKind::CharDevice && ALLOWED_CHAR_DEVICES.contains(&(major, minor))
}

/// Xattrs a layer may set (§2.4 #28; rkt #3305, stacker #322, umoci #572): file capabilities,
/// POSIX ACLs and `user.*` — minus `user.overlay.*`, which steers rootless overlayfs. Dropped:
/// `trusted.*` (overlayfs' own `trusted.overlay.*` among them), other `security.*` labels
/// (SELinux, IMA, EVM belong to the host's policy, not the image).
pub(crate) fn xattr_allowed(name: &[u8]) -> bool {
    matches!(
        name,
        b"security.capability" | b"system.posix_acl_access" | b"system.posix_acl_default"
    ) || (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
}

/// What occupied the name before the entry was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Previous {
    Nothing,
    /// A directory, kept because the entry is a directory too.
    Directory,
    /// Something removed to make room; `whiteout` when it was an overlay whiteout device.
    Removed {
        whiteout: bool,
    },
}

/// Frees `name` for an entry of `kind`.
pub(crate) fn clear_slot(
    dir: &InRootDir,
    name: &OsStr,
    kind: EntryKind,
) -> Result<Previous, ApplyError> {
    let Some(stat) = lstat_at(dir.fd(), name)
        .map_err(|err| ApplyError::io("lstat", dir.display_child(name), err))?
    else {
        return Ok(Previous::Nothing);
    };
    if kind == EntryKind::Dir && is_type(&stat, SFlag::S_IFDIR) {
        return Ok(Previous::Directory);
    }
    let whiteout = is_overlay_whiteout(&stat);
    remove_tree(dir, name)?;
    Ok(Previous::Removed { whiteout })
}

/// Ownership and xattr settings shared by every kind of node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    pub(crate) same_owner: bool,
}

/// Creates the regular file `name`, lets `fill` write its content, then sets its metadata;
/// removes the partial file on any failure (§2.3 #24).
pub(crate) fn write_file(
    dir: &InRootDir,
    name: &OsStr,
    entry: &TarEntry,
    owner: Owner,
    fill: impl FnOnce(&mut File) -> Result<(), ApplyError>,
) -> Result<(), ApplyError> {
    let display = || dir.display_child(name);
    let fd = openat(
        dir.fd(),
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|err| ApplyError::io("creating", display(), err))?;
    let mut file = File::from(fd);
    let written =
        fill(&mut file).and_then(|()| set_fd_metadata(&file, entry, owner, &display, true));
    if written.is_err() {
        // Best effort: the error that matters is the one we return.
        let _ = unlinkat(dir.fd(), name, UnlinkatFlags::NoRemoveDir);
    }
    written
}

/// Copies `body` into `file` through `buffer` (reused across files: a fresh 128 KiB buffer per
/// file would cost more than small files do). Read failures become the typed error they stand
/// for (a cap, truncation, a decoder failure) at `stream_offset`.
pub(crate) fn copy_body<R: Read>(
    mut body: R,
    file: &mut File,
    buffer: &mut [u8],
    display: &str,
    stream_offset: u64,
) -> Result<(), ApplyError> {
    loop {
        let read = match body.read(buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(read_error(err, stream_offset)),
        };
        file.write_all(&buffer[..read])
            .map_err(|err| ApplyError::io("writing", display, err))?;
    }
}

/// Creates (or keeps) the directory `name`; sets owner and xattrs now. Mode and times are the
/// caller's to set once the layer is complete, because children change a directory's mtime and
/// a read-only mode would stop them being written.
pub(crate) fn make_dir(
    dir: &InRootDir,
    name: &OsStr,
    previous: Previous,
    entry: &TarEntry,
    owner: Owner,
) -> Result<InRootDir, ApplyError> {
    if previous != Previous::Directory {
        mkdirat(dir.fd(), name, Mode::from_bits_truncate(0o700))
            .map_err(|err| ApplyError::io("creating directory", dir.display_child(name), err))?;
    }
    let created = dir.child_dir(name)?;
    set_dir_metadata(&created, entry, owner)?;
    Ok(created)
}

/// Owner and xattrs of an existing directory (also used for the layer root's own entry).
pub(crate) fn set_dir_metadata(
    dir: &InRootDir,
    entry: &TarEntry,
    owner: Owner,
) -> Result<(), ApplyError> {
    let display = || dir.display();
    let file = open_readable(dir)?;
    // The entry describes the directory's whole new state: drop allowed xattrs it no longer
    // lists, as an overlay upper directory would hide the lower one's.
    let existing = file
        .list_xattr()
        .map_err(|err| ApplyError::io("listing xattrs of", display(), err))?;
    for name in existing {
        let keep = entry
            .xattrs
            .iter()
            .any(|(wanted, _)| wanted.as_slice() == name.as_bytes());
        if xattr_allowed(name.as_bytes()) && !keep {
            file.remove_xattr(&name)
                .map_err(|err| ApplyError::io("removing xattr from", display(), err))?;
        }
    }
    set_fd_metadata(&file, entry, owner, &display, false)
}

/// Applies a directory's deferred mode and times.
pub(crate) fn finish_dir(
    dir: &InRootDir,
    mode: u32,
    atime: Timestamp,
    mtime: Timestamp,
) -> Result<(), ApplyError> {
    let file = open_readable(dir)?;
    fchmod(&file, Mode::from_bits_truncate(mode))
        .map_err(|err| ApplyError::io("chmod", dir.display(), err))?;
    futimens(&file, &timespec(atime), &timespec(mtime))
        .map_err(|err| ApplyError::io("setting times of", dir.display(), err))
}

/// Creates a symbolic link. The target text is stored verbatim: it is only ever interpreted
/// inside the root (by [`super::resolve`] or by the kernel inside the build container).
pub(crate) fn make_symlink(
    dir: &InRootDir,
    name: &OsStr,
    entry: &TarEntry,
    owner: Owner,
) -> Result<(), ApplyError> {
    if entry.link.is_empty() {
        return Err(ApplyError::InvalidName {
            name: lossy(&entry.name),
            reason: "symbolic link with an empty target",
        });
    }
    symlinkat(OsStr::from_bytes(&entry.link), dir.fd(), name)
        .map_err(|err| ApplyError::io("creating symlink", dir.display_child(name), err))?;
    set_at_metadata(dir, name, entry, owner, false)
}

/// Creates a device node or fifo (the device policy is the caller's).
pub(crate) fn make_node(
    dir: &InRootDir,
    name: &OsStr,
    entry: &TarEntry,
    owner: Owner,
) -> Result<(), ApplyError> {
    let (kind, device) = match entry.kind {
        EntryKind::CharDevice => (
            SFlag::S_IFCHR,
            makedev(entry.device.0.into(), entry.device.1.into()),
        ),
        EntryKind::BlockDevice => (
            SFlag::S_IFBLK,
            makedev(entry.device.0.into(), entry.device.1.into()),
        ),
        _ => (SFlag::S_IFIFO, 0),
    };
    mknodat(
        dir.fd(),
        name,
        kind,
        Mode::from_bits_truncate(0o600),
        device,
    )
    .map_err(|err| ApplyError::io("creating node", dir.display_child(name), err))?;
    set_at_metadata(dir, name, entry, owner, true)
}

/// Links `name` in `dir` to the existing `target_name` in `target_dir`. `linkat` without
/// `AT_SYMLINK_FOLLOW` links a symlink's own inode (§2.1 #8, moby #11099).
pub(crate) fn make_hardlink(
    target_dir: &InRootDir,
    target_name: &OsStr,
    dir: &InRootDir,
    name: &OsStr,
) -> Result<(), ApplyError> {
    linkat(
        target_dir.fd(),
        target_name,
        dir.fd(),
        name,
        AtFlags::empty(),
    )
    .map_err(|err| ApplyError::io("creating hard link", dir.display_child(name), err))
}

fn open_readable(dir: &InRootDir) -> Result<File, ApplyError> {
    openat(
        dir.fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(File::from)
    .map_err(|err| ApplyError::io("opening", dir.display(), err))
}

/// Owner, mode (files only — directories defer it), xattrs, times (files only), in the order
/// the kernel needs: `chown` clears setuid bits and file capabilities, so it goes first.
fn set_fd_metadata(
    file: &File,
    entry: &TarEntry,
    owner: Owner,
    display: &dyn Fn() -> String,
    is_file: bool,
) -> Result<(), ApplyError> {
    if owner.same_owner {
        fchown(
            file,
            Some(Uid::from_raw(entry.uid)),
            Some(Gid::from_raw(entry.gid)),
        )
        .map_err(|err| ApplyError::io("chown", display(), err))?;
    }
    if is_file {
        fchmod(file, Mode::from_bits_truncate(entry.mode))
            .map_err(|err| ApplyError::io("chmod", display(), err))?;
    }
    for (name, value) in entry.xattrs.iter().filter(|(name, _)| xattr_allowed(name)) {
        tolerate_unsupported(
            file.set_xattr(OsStr::from_bytes(name), value),
            name,
            display,
        )?;
    }
    if is_file {
        futimens(file, &timespec(entry.atime), &timespec(entry.mtime))
            .map_err(|err| ApplyError::io("setting times of", display(), err))?;
    }
    Ok(())
}

/// Metadata of a node we hold no descriptor for (symlink, device, fifo): `*at` calls that do
/// not follow the final component.
fn set_at_metadata(
    dir: &InRootDir,
    name: &OsStr,
    entry: &TarEntry,
    owner: Owner,
    chmod: bool,
) -> Result<(), ApplyError> {
    let display = || dir.display_child(name);
    if owner.same_owner {
        fchownat(
            dir.fd(),
            name,
            Some(Uid::from_raw(entry.uid)),
            Some(Gid::from_raw(entry.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|err| ApplyError::io("chown", display(), err))?;
    }
    if chmod {
        // glibc implements AT_SYMLINK_NOFOLLOW for fchmodat with an O_PATH descriptor and
        // refuses symlinks, so this can never chmod a link's target.
        fchmodat(
            dir.fd(),
            name,
            Mode::from_bits_truncate(entry.mode),
            FchmodatFlags::NoFollowSymlink,
        )
        .map_err(|err| ApplyError::io("chmod", display(), err))?;
    }
    let allowed: Vec<_> = entry
        .xattrs
        .iter()
        .filter(|(name, _)| xattr_allowed(name))
        .collect();
    if !allowed.is_empty() {
        // lsetxattr through the directory descriptor: `/proc/self/fd/N` pins the parent we
        // resolved, and the final component is not followed.
        let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.fd().as_raw_fd()));
        path.push(name);
        for (xattr_name, value) in allowed {
            tolerate_unsupported(
                xattr::set(&path, OsStr::from_bytes(xattr_name), value),
                xattr_name,
                &display,
            )?;
        }
    }
    utimensat(
        dir.fd(),
        name,
        &timespec(entry.atime),
        &timespec(entry.mtime),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|err| ApplyError::io("setting times of", display(), err))
}

/// A filesystem without `user.*` support, or a node type the kernel refuses `user.*` on
/// (symlinks, devices), loses that xattr with a warning — containerd does the same — rather
/// than failing the whole image.
fn tolerate_unsupported(
    result: io::Result<()>,
    name: &[u8],
    display: &dyn Fn() -> String,
) -> Result<(), ApplyError> {
    match result {
        Ok(()) => Ok(()),
        Err(err)
            if matches!(
                Errno::from_raw(err.raw_os_error().unwrap_or(0)),
                Errno::ENOTSUP | Errno::EPERM
            ) =>
        {
            let path = display();
            tracing::warn!(%path, xattr = %lossy(name), error = %err, "xattr not supported here; dropped");
            Ok(())
        }
        Err(err) => Err(ApplyError::io("setting xattr on", display(), err)),
    }
}

fn timespec(time: Timestamp) -> TimeSpec {
    TimeSpec::new(time.seconds, i64::from(time.nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_policy_allows_only_the_runtime_default_nodes() {
        assert!(device_allowed(EntryKind::CharDevice, 1, 3));
        assert!(device_allowed(EntryKind::CharDevice, 5, 2));
        assert!(!device_allowed(EntryKind::CharDevice, 1, 1), "/dev/mem");
        assert!(
            !device_allowed(EntryKind::CharDevice, 0, 0),
            "ambiguous whiteout"
        );
        assert!(!device_allowed(EntryKind::BlockDevice, 8, 0), "/dev/sda");
        assert!(!device_allowed(EntryKind::BlockDevice, 1, 3));
    }

    #[test]
    fn xattr_allowlist() {
        for allowed in [
            "security.capability",
            "user.mime_type",
            "system.posix_acl_access",
        ] {
            assert!(xattr_allowed(allowed.as_bytes()), "{allowed}");
        }
        for dropped in [
            "trusted.overlay.opaque",
            "trusted.overlay.redirect",
            "trusted.overlay.metacopy",
            "user.overlay.opaque",
            "security.selinux",
            "security.ima",
            "trusted.foo",
        ] {
            assert!(!xattr_allowed(dropped.as_bytes()), "{dropped}");
        }
    }
}
