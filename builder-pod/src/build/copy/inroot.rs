//! Small filesystem operations inside an image root with the copier's chroot semantics, for the
//! executor's other steps: WORKDIR's directory, the image's user database for `--chown` and
//! `USER`, and the directory ADD extracts an archive into.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use super::dest::{DestDir, ensure_dir};
use super::meta::Meta;
use super::{CopyError, destination};
use crate::context::rootfs::{self, Node, RootDir};

fn open_root(root: &Path, what: &str) -> Result<RootDir, CopyError> {
    RootDir::open(root).map_err(|reason| CopyError::Resolve {
        dest: what.to_owned(),
        reason,
    })
}

/// Makes sure the directory `path` (absolute, or relative to `workdir`) exists inside `root`.
/// Directories it creates are 0755 and owned by `owner` (BuildKit's WORKDIR: the `USER` in
/// effect); existing ones are left as they are.
pub fn mkdir_all_in_root(
    root: &Path,
    path: &str,
    workdir: &str,
    owner: (u32, u32),
) -> Result<(), CopyError> {
    open_dir_in_root(root, path, workdir, Some(owner)).map(drop)
}

/// Opens (creating as COPY does) the directory `dest` inside `root`; the descriptor can be used
/// as `/proc/self/fd/N` by code that needs a path, such as the archive extractor.
pub fn open_dir_in_root(
    root: &Path,
    dest: &str,
    workdir: &str,
    owner: Option<(u32, u32)>,
) -> Result<OwnedFd, CopyError> {
    let root_dir = open_root(root, dest)?;
    let (path, _) = destination(dest, workdir);
    let meta = Meta {
        chown: owner,
        chmod: None,
        epoch: None,
        link: false,
    };
    let DestDir { fd, .. } = ensure_dir(&root_dir, &path, &meta, &mut Vec::new())?;
    Ok(fd)
}

/// Reads the regular file `path` inside `root`, following symlinks inside the root; `None` when
/// it does not exist or is not a regular file.
pub fn read_file_in_root(root: &Path, path: &str) -> Result<Option<Vec<u8>>, CopyError> {
    let root_dir = open_root(root, path)?;
    let resolved = rootfs::resolve(&root_dir, path.as_bytes(), true, &mut |_, _| Ok(true))
        .map_err(|reason| CopyError::Resolve {
            dest: path.to_owned(),
            reason,
        })?;
    let (Some(parent), Some(last)) = (resolved.parent_fd(&root_dir), resolved.steps.last()) else {
        return Ok(None);
    };
    let Node::Present { stat, dir: None } = &last.node else {
        return Ok(None);
    };
    if rootfs::file_type(stat) != nix::sys::stat::SFlag::S_IFREG {
        return Ok(None);
    }
    let fd = openat(
        parent.as_fd(),
        last.name.as_os_str(),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CopyError::Io {
        op: "open",
        path: path.to_owned(),
        source: e.into(),
    })?;
    let mut bytes = Vec::new();
    File::from(fd)
        .read_to_end(&mut bytes)
        .map_err(|source| CopyError::Io {
            op: "read",
            path: path.to_owned(),
            source,
        })?;
    Ok(Some(bytes))
}
