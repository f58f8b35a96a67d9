//! Path resolution inside a directory tree with chroot semantics, one component at a time.
//!
//! Both sides of a COPY are hostile: the build context may carry `foo -> /etc/shadow` or
//! `bar -> ../../x` (threats-and-faults §2.6 #32) and the image root may carry `/bin -> usr/bin`
//! or `localetc -> /etc` (§2.1 #2–#4, #10). Every lookup here goes through a directory file
//! descriptor: each component is opened relative to its parent with `O_PATH | O_NOFOLLOW`, a
//! symlink is read and its target spliced back into the remaining components (an absolute target
//! restarts at the tree's root, `..` never climbs above it), so a path can only ever name
//! something inside the tree. A component that is swapped for a symlink between two lookups fails
//! the next `O_NOFOLLOW` open instead of being followed. Resolution is capped at 40 symlinks, like
//! the kernel's `MAXSYMLINKS`, and reports `ELOOP` rather than silently stopping (§2.1 #12).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

/// The kernel's limit on symlinks followed while resolving one path.
pub const MAX_SYMLINKS: usize = 40;

/// A directory opened as the root of a tree: nothing resolved through it can leave it.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl RootDir {
    /// Opens `path` (which the caller trusts, e.g. the context directory or the stage's merged
    /// mount) as a root.
    pub fn open(path: &Path) -> Result<Self, ResolveError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| ResolveError::io(path.display().to_string(), errno))?;
        Ok(Self {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why a path could not be resolved inside a root.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("resolving {path}: more than {MAX_SYMLINKS} symbolic links (a loop?)")]
    Loop { path: String },
    #[error("resolving {path}: {component} is not a directory")]
    NotADirectory { path: String, component: String },
    #[error("resolving {path}: symbolic link {component} has an empty target")]
    EmptyLink { path: String, component: String },
    #[error("resolving {path}: {errno}")]
    Io { path: String, errno: Errno },
}

impl ResolveError {
    fn io(path: String, errno: Errno) -> Self {
        Self::Io { path, errno }
    }
}

/// What one resolved component is.
#[derive(Debug)]
pub enum Node {
    /// It exists. `dir` holds an `O_PATH` descriptor when it is a directory.
    Present {
        stat: FileStat,
        dir: Option<OwnedFd>,
    },
    /// It does not exist (or the visibility filter hid it); neither does anything below it.
    Missing,
}

/// One component of a resolved path.
#[derive(Debug)]
pub struct Step {
    pub name: OsString,
    pub node: Node,
}

/// A path resolved inside a root: the canonical components from the root down. Only the last
/// component can be a symlink (when not followed); everything before it is a directory or
/// missing.
#[derive(Debug, Default)]
pub struct Resolved {
    pub steps: Vec<Step>,
}

impl Resolved {
    /// The canonical path relative to the root, `/`-separated (empty for the root itself).
    pub fn rel_path(&self) -> Vec<u8> {
        join(self.steps.iter().map(|s| s.name.as_os_str()))
    }

    /// The last component's stat, if it exists. The root itself reports `None` here; use
    /// [`Resolved::is_root`].
    pub fn stat(&self) -> Option<&FileStat> {
        match self.steps.last().map(|s| &s.node) {
            Some(Node::Present { stat, .. }) => Some(stat),
            _ => None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }

    /// The descriptor of the directory holding the last component (the root when the path has
    /// one component), if that directory exists.
    pub fn parent_fd<'a>(&'a self, root: &'a RootDir) -> Option<BorrowedFd<'a>> {
        match self.steps.len() {
            0 | 1 => Some(root.fd()),
            n => dir_fd(&self.steps[n - 2].node),
        }
    }

    /// The descriptor of the last component when it is an existing directory (the root for an
    /// empty path).
    pub fn dir_fd<'a>(&'a self, root: &'a RootDir) -> Option<BorrowedFd<'a>> {
        match self.steps.last() {
            None => Some(root.fd()),
            Some(step) => dir_fd(&step.node),
        }
    }
}

fn dir_fd(node: &Node) -> Option<BorrowedFd<'_>> {
    match node {
        Node::Present { dir: Some(fd), .. } => Some(fd.as_fd()),
        _ => None,
    }
}

/// Decides whether an existing entry (path relative to the root, its stat) is visible.
pub type VisibleFn<'a> = dyn FnMut(&[u8], &FileStat) -> Result<bool, ResolveError> + 'a;

/// Resolves `path` inside `root` with chroot semantics. A leading `/` is the root, `..` at the
/// root stays there, symlinks in the middle are always followed and the final one only when
/// `follow_final` (or the path ends in `/` or `/.`). Missing components are reported, not
/// created. `visible(rel_path, stat)` can hide existing entries (the `.dockerignore` filter);
/// a hidden entry behaves as if it did not exist.
pub fn resolve(
    root: &RootDir,
    path: &[u8],
    follow_final: bool,
    visible: &mut VisibleFn<'_>,
) -> Result<Resolved, ResolveError> {
    let display = || String::from_utf8_lossy(path).into_owned();
    let follow_final =
        follow_final || path.ends_with(b"/") || path.ends_with(b"/.") || path == b".";
    let mut pending: VecDeque<Vec<u8>> = split(path).map(<[u8]>::to_vec).collect();
    let mut resolved = Resolved::default();
    let mut links = 0;
    while let Some(component) = pending.pop_front() {
        if component == b".." {
            resolved.steps.pop();
            continue;
        }
        let is_last = pending.iter().all(|c| c.is_empty() || c == b".");
        let parent = match resolved.steps.last() {
            None => Some(root.fd()),
            Some(Step {
                node: Node::Missing,
                ..
            }) => None,
            Some(Step {
                name,
                node: Node::Present { dir, .. },
            }) => match dir {
                Some(fd) => Some(fd.as_fd()),
                None => {
                    return Err(ResolveError::NotADirectory {
                        path: display(),
                        component: name.to_string_lossy().into_owned(),
                    });
                }
            },
        };
        let name = OsString::from_vec(component);
        let Some(parent) = parent else {
            resolved.steps.push(Step {
                name,
                node: Node::Missing,
            });
            continue;
        };
        let Some((stat, fd)) = lookup(parent, &name).map_err(|e| ResolveError::io(display(), e))?
        else {
            resolved.steps.push(Step {
                name,
                node: Node::Missing,
            });
            continue;
        };
        let mut rel = resolved.rel_path();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        if !visible(&rel, &stat)? {
            resolved.steps.push(Step {
                name,
                node: Node::Missing,
            });
            continue;
        }
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK && (!is_last || follow_final) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(ResolveError::Loop { path: display() });
            }
            let target =
                readlinkat(parent, name.as_os_str()).map_err(|e| ResolveError::io(display(), e))?;
            let target = target.into_vec();
            if target.is_empty() {
                return Err(ResolveError::EmptyLink {
                    path: display(),
                    component: name.to_string_lossy().into_owned(),
                });
            }
            if target[0] == b'/' {
                resolved.steps.clear();
            }
            for part in split(&target).collect::<Vec<_>>().into_iter().rev() {
                pending.push_front(part.to_vec());
            }
            continue;
        }
        let dir = (kind == SFlag::S_IFDIR).then_some(fd);
        resolved.steps.push(Step {
            name,
            node: Node::Present { stat, dir },
        });
    }
    Ok(resolved)
}

/// Opens `name` under `parent` without following it; `None` when it does not exist.
fn lookup(parent: BorrowedFd<'_>, name: &OsStr) -> Result<Option<(FileStat, OwnedFd)>, Errno> {
    match openat(
        parent,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some((fstat(&fd)?, fd))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the parent directory of a canonical relative path without following anything
/// (`None` means the root); the name is `.` for the root itself.
pub fn open_parent(root: &RootDir, rel: &[u8]) -> Result<(Option<OwnedFd>, OsString), Errno> {
    let parts: Vec<&[u8]> = split(rel).collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Ok((None, OsString::from(".")));
    };
    let mut current: Option<OwnedFd> = None;
    for dir in dirs {
        let parent = current.as_ref().map_or(root.fd(), AsFd::as_fd);
        let next = openat(
            parent,
            OsStr::from_bytes(dir),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        current = Some(next);
    }
    Ok((current, OsStr::from_bytes(last).to_os_string()))
}

/// The non-empty, non-`.` components of a `/`-separated path (`..` kept).
pub fn split(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// Joins components with `/`.
pub fn join<'a>(parts: impl Iterator<Item = &'a OsStr>) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// The file-type bits of a stat.
pub fn file_type(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn all(_: &[u8], _: &FileStat) -> Result<bool, ResolveError> {
        Ok(true)
    }

    fn rel(root: &RootDir, path: &str, follow: bool) -> (String, bool) {
        let r = resolve(root, path.as_bytes(), follow, &mut all).unwrap();
        let exists =
            matches!(r.steps.last().map(|s| &s.node), Some(Node::Present { .. })) || r.is_root();
        (String::from_utf8(r.rel_path()).unwrap(), exists)
    }

    #[test]
    fn chroot_semantics_table() {
        let base = tempfile::tempdir().unwrap();
        let root_path = base.path().join("root");
        std::fs::create_dir_all(root_path.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root_path.join("etc")).unwrap();
        std::fs::write(root_path.join("etc/passwd"), "root").unwrap();
        std::fs::write(base.path().join("outside"), "host").unwrap();
        symlink("usr/bin", root_path.join("bin")).unwrap();
        symlink("/etc", root_path.join("localetc")).unwrap();
        symlink("../../../../outside", root_path.join("up")).unwrap();
        symlink("../..", root_path.join("usr/bin/dotdot")).unwrap();
        symlink("loop2", root_path.join("loop1")).unwrap();
        symlink("loop1", root_path.join("loop2")).unwrap();
        let root = RootDir::open(&root_path).unwrap();

        let table: &[(&str, bool, &str, bool)] = &[
            ("/", false, "", true),
            ("", false, "", true),
            ("etc/passwd", false, "etc/passwd", true),
            ("/etc/../etc/./passwd", false, "etc/passwd", true),
            ("../../../etc/passwd", false, "etc/passwd", true),
            ("bin", false, "bin", true),
            ("bin", true, "usr/bin", true),
            ("bin/", false, "usr/bin", true),
            ("bin/sh", false, "usr/bin/sh", false),
            ("localetc/passwd", false, "etc/passwd", true),
            // The escaping link resolves to the root's own /outside, which does not exist.
            ("up", true, "outside", false),
            ("usr/bin/dotdot/etc", false, "etc", true),
            ("missing/../etc", false, "etc", true),
            ("missing/deeper", false, "missing/deeper", false),
        ];
        for (path, follow, want, exists) in table {
            assert_eq!(
                rel(&root, path, *follow),
                ((*want).to_owned(), *exists),
                "resolve({path:?}, follow={follow})"
            );
        }
        let err = resolve(&root, b"loop1", true, &mut all).unwrap_err();
        assert!(matches!(err, ResolveError::Loop { .. }), "{err}");
        let err = resolve(&root, b"etc/passwd/x", false, &mut all).unwrap_err();
        assert!(matches!(err, ResolveError::NotADirectory { .. }), "{err}");
    }
}
