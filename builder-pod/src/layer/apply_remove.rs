//! Removing nodes inside the layer root without following links.
//!
//! Whiteouts, opaque directories and type-changing duplicates all delete. Everything here works
//! on directory descriptors opened with `O_NOFOLLOW`: a link is unlinked, never descended into,
//! so `.wh.localetc` removes the link and not `/etc` (§2.1 #18, containerd WhiteoutSymlink).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use nix::dir::{Dir, Type};
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::apply_error::ApplyError;
use super::resolve::{InRootDir, is_type, lstat_at};

/// Deepest directory tree we remove. Trees we extract are bounded by `Limits::max_depth`; a
/// deeper one can only come from a RUN step, and one descriptor is held per level.
const MAX_REMOVE_DEPTH: usize = 4096;

/// Removes `name` in `parent` (a whole tree if it is a directory). Missing is fine.
pub(crate) fn remove_tree(parent: &InRootDir, name: &OsStr) -> Result<(), ApplyError> {
    let display = || parent.display_child(name);
    let Some(stat) =
        lstat_at(parent.fd(), name).map_err(|err| ApplyError::io("lstat", display(), err))?
    else {
        return Ok(());
    };
    if !is_type(&stat, SFlag::S_IFDIR) {
        return unlinkat(parent.fd(), name, UnlinkatFlags::NoRemoveDir)
            .map_err(|err| ApplyError::io("removing", display(), err));
    }
    let mut stack = vec![Level::open(parent.fd(), name, display)?];
    loop {
        let depth = stack.len();
        let Some(top) = stack.last_mut() else { break };
        if let Some(child) = top.subdirs.pop() {
            if depth >= MAX_REMOVE_DEPTH {
                return Err(ApplyError::io(
                    "removing",
                    display(),
                    std::io::Error::other("directory tree deeper than 4096 levels"),
                ));
            }
            let level = Level::open(top.dir.as_fd(), &child, display)?;
            stack.push(level);
            continue;
        }
        let Some(done) = stack.pop() else { break };
        let above = stack.last().map_or(parent.fd(), |level| level.dir.as_fd());
        unlinkat(above, done.name.as_os_str(), UnlinkatFlags::RemoveDir)
            .map_err(|err| ApplyError::io("removing directory", display(), err))?;
    }
    Ok(())
}

/// Names of the entries of `dir` (without `.` and `..`).
pub(crate) fn list_children(dir: &InRootDir) -> Result<Vec<OsString>, ApplyError> {
    let display = || dir.display();
    let mut handle = open_listing(dir.fd(), OsStr::new("."))
        .map_err(|err| ApplyError::io("listing", display(), err))?;
    Ok(read_entries(&mut handle)
        .map_err(|err| ApplyError::io("listing", display(), err))?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// One directory being emptied: its handle, its name in the level above, and the
/// subdirectories still to visit. Non-directories are unlinked when the level is opened.
struct Level {
    dir: Dir,
    name: OsString,
    subdirs: Vec<OsString>,
}

impl Level {
    fn open(
        parent: BorrowedFd<'_>,
        name: &OsStr,
        display: impl Fn() -> String,
    ) -> Result<Self, ApplyError> {
        let mut dir = open_listing(parent, name)
            .map_err(|err| ApplyError::io("opening for removal", display(), err))?;
        let entries =
            read_entries(&mut dir).map_err(|err| ApplyError::io("listing", display(), err))?;
        let mut subdirs = Vec::new();
        for (child, file_type) in entries {
            let is_dir = match file_type {
                Some(file_type) => file_type == Type::Directory,
                None => lstat_at(dir.as_fd(), &child)
                    .map_err(|err| ApplyError::io("lstat", display(), err))?
                    .is_some_and(|stat| is_type(&stat, SFlag::S_IFDIR)),
            };
            if is_dir {
                subdirs.push(child);
            } else {
                unlinkat(dir.as_fd(), child.as_os_str(), UnlinkatFlags::NoRemoveDir)
                    .map_err(|err| ApplyError::io("removing", display(), err))?;
            }
        }
        Ok(Self {
            dir,
            name: name.to_os_string(),
            subdirs,
        })
    }
}

fn open_listing(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<Dir> {
    let fd = openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Dir::from_fd(fd)
}

/// All entries of `dir` but `.` and `..`, read before anything is changed (unlinking while
/// `readdir` runs may skip entries).
fn read_entries(dir: &mut Dir) -> nix::Result<Vec<(OsString, Option<Type>)>> {
    let mut entries = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        entries.push((OsStr::from_bytes(name).to_os_string(), entry.file_type()));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::resolve::{LayerRoot, Walk};
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn removes_trees_and_links_without_following() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        fs::create_dir_all(root.join("t/a/b/c")).unwrap();
        fs::write(root.join("t/a/b/c/f"), b"x").unwrap();
        fs::write(root.join("t/top"), b"x").unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep"), b"keep").unwrap();
        symlink(&outside, root.join("t/a/link")).unwrap();
        symlink(&outside, root.join("link")).unwrap();
        let layer_root = LayerRoot::open(&root).unwrap();
        let top = layer_root.walk(&[], Walk::Canonical).unwrap().unwrap();
        remove_tree(&top, OsStr::new("t")).unwrap();
        remove_tree(&top, OsStr::new("link")).unwrap();
        remove_tree(&top, OsStr::new("missing")).unwrap();
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
        assert_eq!(fs::read(outside.join("keep")).unwrap(), b"keep");
    }
}
