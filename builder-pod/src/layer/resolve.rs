//! Resolving names inside a layer root, on disk, one component at a time.
//!
//! This is `openat2(RESOLVE_IN_ROOT)` done in user space with safe `nix` wrappers (the raw
//! syscall would need `unsafe`, which only `sandbox/` may use). Each step is an `openat` relative
//! to the directory descriptor of the previous step with `O_NOFOLLOW|O_DIRECTORY`, so the kernel
//! never follows a link we did not read ourselves. A symbolic link met on the way is read with
//! `readlinkat` and its target spliced into the remaining components with chroot semantics:
//! an absolute target restarts at the layer root, and `..` at the root stays at the root
//! (§2.1 #2-#4, #10, #12; moby/go-archive #93 moved to the same model with `os.Root`).
//!
//! Only *parent* directories are resolved here. The final component of an entry is never
//! followed: callers unlink it and create a fresh node with `O_CREAT|O_EXCL|O_NOFOLLOW` (or the
//! `*at` equivalent), which is what defeats §2.1 #5/#6/#26 (a link followed by a same-named
//! entry).
//!
//! `..` pops a name off our own stack and re-walks from the root instead of opening `..` on
//! disk, so a directory moved out from under us can never lead above the root, and at most two
//! descriptors are open at once however deep the path is.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, SFlag, fchmodat, fstatat, mkdirat};

use super::apply_error::ApplyError;
use super::resolve_name::display_components;

/// Linux MAXSYMLINKS: how many links one lookup may traverse before ELOOP.
pub(crate) const MAX_SYMLINK_HOPS: u32 = 40;

/// Mode of directories we create because an entry needs a parent that the archive never listed
/// (containerd and moby use 0755 as well).
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// An open layer root: every lookup starts here and never leaves it.
#[derive(Debug)]
pub(crate) struct LayerRoot {
    fd: OwnedFd,
    path: PathBuf,
}

/// A directory inside the root, open as an `O_PATH` descriptor, with its canonical location
/// (no symlinks, no `..`) below the root.
#[derive(Debug)]
pub(crate) struct InRootDir {
    fd: OwnedFd,
    components: Vec<OsString>,
}

/// What a walk does with missing components and symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Follow links inside the root; create missing directories (mode 0755). Used for the
    /// parents of new entries.
    FollowCreate,
    /// Follow links inside the root; stop with `None` at a missing component. Used for
    /// whiteouts (a whiteout under a dead link is a no-op, containerd WhiteoutDeadSymlinkParent)
    /// and hard-link targets.
    FollowExisting,
    /// Follow nothing; stop with `None` at a missing component, a link or a non-directory. Used
    /// to revisit a canonical location recorded earlier (deferred directory metadata).
    Canonical,
}

impl LayerRoot {
    /// Opens `path` (trusted: chosen by the caller, so links in it are followed once here).
    pub(crate) fn open(path: &Path) -> Result<Self, ApplyError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| ApplyError::Root {
            root: path.to_path_buf(),
            source: errno.into(),
        })?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The root itself as a directory handle.
    pub(crate) fn dir(&self) -> Result<InRootDir, ApplyError> {
        Ok(InRootDir {
            fd: self.dup()?,
            components: Vec::new(),
        })
    }

    fn dup(&self) -> Result<OwnedFd, ApplyError> {
        self.fd.try_clone().map_err(|err| {
            ApplyError::io(
                "duplicating descriptor of",
                self.path.display().to_string(),
                err,
            )
        })
    }

    /// Resolves `components` (all of them, as a directory) inside the root.
    ///
    /// `Ok(None)` when a component is missing (and `walk` does not create) or, for
    /// [`Walk::Canonical`], when something other than a plain directory is found.
    pub(crate) fn walk(
        &self,
        components: &[OsString],
        walk: Walk,
    ) -> Result<Option<InRootDir>, ApplyError> {
        let requested = || display_components(components);
        let mut pending: VecDeque<OsString> = components.iter().cloned().collect();
        let mut stack: Vec<OsString> = Vec::new();
        let mut current = self.dup()?;
        let mut hops = 0u32;
        while let Some(component) = pending.pop_front() {
            match component.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    // chroot semantics: `..` at the root is the root.
                    if stack.pop().is_some() {
                        current = self.reopen(&stack)?;
                    }
                    continue;
                }
                _ => {}
            }
            let here = || {
                display_components(&[stack.as_slice(), std::slice::from_ref(&component)].concat())
            };
            match lstat_at(current.as_fd(), &component)
                .map_err(|err| ApplyError::io("lstat", here(), err))?
            {
                None => match walk {
                    Walk::FollowCreate => {
                        create_implicit_dir(current.as_fd(), &component, &here())?
                    }
                    Walk::FollowExisting | Walk::Canonical => return Ok(None),
                },
                Some(stat) if is_type(&stat, SFlag::S_IFDIR) => {}
                Some(stat) if is_type(&stat, SFlag::S_IFLNK) => {
                    if walk == Walk::Canonical {
                        return Ok(None);
                    }
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(ApplyError::SymlinkLoop {
                            path: requested(),
                            max: MAX_SYMLINK_HOPS,
                        });
                    }
                    let target = readlinkat(current.as_fd(), component.as_os_str())
                        .map_err(|err| ApplyError::io("readlink", here(), err))?;
                    if target.as_bytes().starts_with(b"/") {
                        // An absolute target is relative to the layer root.
                        stack.clear();
                        current = self.dup()?;
                    }
                    for part in target.as_bytes().rsplit(|byte| *byte == b'/') {
                        pending.push_front(OsStr::from_bytes(part).to_os_string());
                    }
                    continue;
                }
                Some(_) if walk == Walk::Canonical => return Ok(None),
                Some(_) => {
                    return Err(ApplyError::NotADirectory {
                        path: requested(),
                        component: here(),
                    });
                }
            }
            current = open_dir_nofollow(current.as_fd(), &component)
                .map_err(|err| ApplyError::io("opening directory", here(), err))?;
            stack.push(component);
        }
        Ok(Some(InRootDir {
            fd: current,
            components: stack,
        }))
    }

    /// Re-opens a canonical location from the root without following anything.
    fn reopen(&self, components: &[OsString]) -> Result<OwnedFd, ApplyError> {
        let mut current = self.dup()?;
        for (depth, component) in components.iter().enumerate() {
            current = open_dir_nofollow(current.as_fd(), component).map_err(|err| {
                ApplyError::io(
                    "re-opening directory",
                    display_components(&components[..=depth]),
                    err,
                )
            })?;
        }
        Ok(current)
    }
}

impl InRootDir {
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Canonical location below the root.
    pub(crate) fn components(&self) -> &[OsString] {
        &self.components
    }

    /// `/a/b`: the in-root path of this directory, for messages.
    pub(crate) fn display(&self) -> String {
        display_components(&self.components)
    }

    /// `/a/b/name`: the in-root path of `name` inside this directory, for messages.
    pub(crate) fn display_child(&self, name: &OsStr) -> String {
        let mut components = self.components.clone();
        components.push(name.to_os_string());
        display_components(&components)
    }

    /// A second handle to the same directory.
    pub(crate) fn try_clone(&self) -> Result<Self, ApplyError> {
        Ok(Self {
            fd: self.fd.try_clone().map_err(|err| {
                ApplyError::io(
                    "duplicating descriptor of",
                    display_components(&self.components),
                    err,
                )
            })?,
            components: self.components.clone(),
        })
    }

    /// Opens child directory `name` without following a link.
    pub(crate) fn child_dir(&self, name: &OsStr) -> Result<Self, ApplyError> {
        let fd = open_dir_nofollow(self.fd(), name)
            .map_err(|err| ApplyError::io("opening directory", self.display_child(name), err))?;
        let mut components = self.components.clone();
        components.push(name.to_os_string());
        Ok(Self { fd, components })
    }
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<FileStat>, Errno> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(errno),
    }
}

/// Whether `stat` is of file type `kind`.
pub(crate) fn is_type(stat: &FileStat, kind: SFlag) -> bool {
    stat.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

fn open_dir_nofollow(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn create_implicit_dir(dir: BorrowedFd<'_>, name: &OsStr, display: &str) -> Result<(), ApplyError> {
    let mode = Mode::from_bits_truncate(IMPLICIT_DIR_MODE);
    mkdirat(dir, name, mode)
        .map_err(|err| ApplyError::io("creating parent directory", display, err))?;
    // mkdir honours the process umask; the implicit mode must not depend on it.
    fchmodat(dir, name, mode, FchmodatFlags::NoFollowSymlink)
        .map_err(|err| ApplyError::io("chmod", display, err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn names(path: &str) -> Vec<OsString> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .map(OsString::from)
            .collect()
    }

    fn canonical(dir: &InRootDir) -> String {
        display_components(dir.components())
    }

    fn fixture() -> (tempfile::TempDir, LayerRoot) {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("inner")).unwrap();
        fs::create_dir_all(base.path().join("victim")).unwrap();
        symlink("/etc", root.join("abs")).unwrap();
        symlink("../../../../etc", root.join("inner/up")).unwrap();
        symlink("..", root.join("inner/go_up")).unwrap();
        symlink("../victim", root.join("escape")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        fs::write(root.join("file"), b"x").unwrap();
        let layer_root = LayerRoot::open(&root).unwrap();
        (base, layer_root)
    }

    #[test]
    fn links_resolve_with_chroot_semantics() {
        let (_base, root) = fixture();
        let table = [
            ("abs", "/etc"),
            ("inner/up", "/etc"),
            ("inner/go_up/etc", "/etc"),
            ("inner/go_up/inner/go_up/abs", "/etc"),
            ("../../etc", "/etc"),
        ];
        for (path, expected) in table {
            let dir = root
                .walk(&names(path), Walk::FollowExisting)
                .unwrap()
                .unwrap();
            assert_eq!(canonical(&dir), expected, "{path}");
        }
    }

    #[test]
    fn an_escaping_link_lands_inside_the_root() {
        let (base, root) = fixture();
        let dir = root
            .walk(&names("escape/new"), Walk::FollowCreate)
            .unwrap()
            .unwrap();
        assert_eq!(canonical(&dir), "/victim/new");
        assert!(base.path().join("root/victim/new").is_dir());
        assert_eq!(fs::read_dir(base.path().join("victim")).unwrap().count(), 0);
    }

    #[test]
    fn loops_and_files_are_typed_errors() {
        let (_base, root) = fixture();
        assert!(matches!(
            root.walk(&names("loop1"), Walk::FollowExisting),
            Err(ApplyError::SymlinkLoop { .. })
        ));
        assert!(matches!(
            root.walk(&names("file/x"), Walk::FollowCreate),
            Err(ApplyError::NotADirectory { .. })
        ));
    }

    #[test]
    fn missing_and_canonical_walks_stop() {
        let (_base, root) = fixture();
        assert!(
            root.walk(&names("nope/x"), Walk::FollowExisting)
                .unwrap()
                .is_none()
        );
        assert!(root.walk(&names("abs"), Walk::Canonical).unwrap().is_none());
        assert!(root.walk(&names("etc"), Walk::Canonical).unwrap().is_some());
    }
}
