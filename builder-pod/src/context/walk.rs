//! A filtered, deterministic walk of one source directory, through directory descriptors.
//!
//! Entries come in pre-order with names sorted bytewise at each level (Go's `os.ReadDir` order,
//! which BuildKit's walkers use). `.dockerignore` is applied the way BuildKit's context walker
//! applies it: an excluded file is skipped; an excluded directory is skipped unless an exception
//! could re-include something below it, in which case it is walked and reported *lazily*, just
//! before the first entry below it that survives (so an excluded directory with nothing
//! re-included never appears). Nothing is ever followed: every child is opened with
//! `O_NOFOLLOW` relative to its parent's descriptor.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};

use super::dockerignore::{Dockerignore, MatchInfo};
use super::rootfs::file_type;

/// Deeper trees are refused: each level holds a directory descriptor open, and real contexts
/// are nowhere near this (threats-and-faults §2.3 #24e).
pub const MAX_DEPTH: usize = 512;

/// Why a walk stopped.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("reading {path}: {errno}")]
    Io { path: String, errno: Errno },
    #[error("{path}: directories nested deeper than {MAX_DEPTH} levels are not supported")]
    TooDeep { path: String },
}

/// One entry met by the walk.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Path relative to the walked directory (`""` for that directory itself).
    pub rel: &'a [u8],
    /// The entry's own name (the walked directory's name for the root entry).
    pub name: &'a OsStr,
    /// The directory holding the entry, for `*at` calls with `name`.
    pub parent: BorrowedFd<'a>,
    pub stat: &'a FileStat,
}

/// What the walk reports to.
pub trait Visitor {
    type Error: From<WalkError>;
    /// A directory, before its children. `dir` is readable (`O_RDONLY | O_DIRECTORY`).
    fn enter_dir(&mut self, entry: &Entry<'_>, dir: BorrowedFd<'_>) -> Result<(), Self::Error>;
    /// The same directory, after its children.
    fn leave_dir(&mut self, entry: &Entry<'_>) -> Result<(), Self::Error>;
    /// Anything that is not a directory (file, symlink, fifo, socket, device).
    fn leaf(&mut self, entry: &Entry<'_>) -> Result<(), Self::Error>;
}

/// The directory to walk and where it sits in the context (for `.dockerignore` matching).
#[derive(Debug)]
pub struct WalkRoot<'a> {
    /// The directory holding the walked directory, and its name there (`"."` to walk `parent`).
    pub parent: BorrowedFd<'a>,
    pub name: &'a OsStr,
    pub stat: &'a FileStat,
    /// The walked directory's path relative to the context root (empty for the root).
    pub ctx_rel: &'a [u8],
    /// The match information of `ctx_rel` (default for the context root).
    pub info: MatchInfo,
    pub ignore: &'a Dockerignore,
}

/// Walks `root`, reporting to `visitor`. The root directory itself is always reported.
pub fn walk<V: Visitor>(root: &WalkRoot<'_>, visitor: &mut V) -> Result<(), V::Error> {
    let dir = Rc::new(open_dir(root.parent, root.name, root.ctx_rel)?);
    let entry = Entry {
        rel: b"",
        name: root.name,
        parent: root.parent,
        stat: root.stat,
    };
    visitor.enter_dir(&entry, dir.as_fd())?;
    let mut walker = Walker {
        ignore: root.ignore,
        pending: Vec::new(),
    };
    walker.children(visitor, &dir, b"", root.ctx_rel, &root.info, 1)?;
    visitor.leave_dir(&entry)
}

/// A directory being walked; excluded ones are reported only once something below survives.
struct Pending {
    rel: Vec<u8>,
    name: OsString,
    parent: Rc<Dir>,
    dir: Rc<Dir>,
    stat: FileStat,
    emitted: bool,
}

struct Walker<'a> {
    ignore: &'a Dockerignore,
    /// The directories being walked, outermost first; one descriptor per level.
    pending: Vec<Pending>,
}

impl Walker<'_> {
    fn children<V: Visitor>(
        &mut self,
        visitor: &mut V,
        dir: &Rc<Dir>,
        rel: &[u8],
        ctx_rel: &[u8],
        info: &MatchInfo,
        depth: usize,
    ) -> Result<(), V::Error> {
        for name in sorted_names(dir.as_fd(), ctx_rel)? {
            let child_rel = join(rel, name.as_bytes());
            let child_ctx = join(ctx_rel, name.as_bytes());
            let stat = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(|errno| io(&child_ctx, errno))?;
            let is_dir = file_type(&stat) == SFlag::S_IFDIR;
            let (excluded, child_info) = if self.ignore.is_empty() {
                (false, MatchInfo::default())
            } else {
                self.ignore.matches(&child_ctx, info)
            };
            if excluded && !(is_dir && self.ignore.should_descend(&child_ctx)) {
                continue;
            }
            if !is_dir {
                if !excluded {
                    self.flush(visitor)?;
                }
                let entry = Entry {
                    rel: &child_rel,
                    name: &name,
                    parent: dir.as_fd(),
                    stat: &stat,
                };
                visitor.leaf(&entry)?;
                continue;
            }
            if depth >= MAX_DEPTH {
                return Err(WalkError::TooDeep {
                    path: String::from_utf8_lossy(&child_ctx).into_owned(),
                }
                .into());
            }
            let child = Rc::new(open_dir(dir.as_fd(), &name, &child_ctx)?);
            self.pending.push(Pending {
                rel: child_rel.clone(),
                name: name.clone(),
                parent: Rc::clone(dir),
                dir: Rc::clone(&child),
                stat,
                emitted: false,
            });
            if !excluded {
                self.flush(visitor)?;
            }
            self.children(
                visitor,
                &child,
                &child_rel,
                &child_ctx,
                &child_info,
                depth + 1,
            )?;
            let done = self.pending.pop().expect("pushed above");
            if done.emitted {
                let entry = Entry {
                    rel: &done.rel,
                    name: &done.name,
                    parent: done.parent.as_fd(),
                    stat: &done.stat,
                };
                visitor.leave_dir(&entry)?;
            }
        }
        Ok(())
    }

    /// Reports every pending directory that has not been reported yet.
    fn flush<V: Visitor>(&mut self, visitor: &mut V) -> Result<(), V::Error> {
        for i in 0..self.pending.len() {
            if self.pending[i].emitted {
                continue;
            }
            let p = &self.pending[i];
            let entry = Entry {
                rel: &p.rel,
                name: &p.name,
                parent: p.parent.as_fd(),
                stat: &p.stat,
            };
            visitor.enter_dir(&entry, p.dir.as_fd())?;
            self.pending[i].emitted = true;
        }
        Ok(())
    }
}

/// Opens a directory for reading without following a symlink in its place.
pub fn open_dir(parent: BorrowedFd<'_>, name: &OsStr, shown: &[u8]) -> Result<Dir, WalkError> {
    Dir::openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| io(shown, errno))
}

/// The names in a directory except `.` and `..`, sorted bytewise.
pub fn sorted_names(dir: impl AsFd, shown: &[u8]) -> Result<Vec<OsString>, WalkError> {
    // A fresh descriptor: the caller's may be shared, and a `Dir` iterates from its position.
    let mut reader = open_dir(dir.as_fd(), OsStr::new("."), shown)?;
    let mut names = Vec::new();
    for item in reader.iter() {
        let item = item.map_err(|errno| io(shown, errno))?;
        let name = item.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn join(base: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

fn io(path: &[u8], errno: Errno) -> WalkError {
    WalkError::Io {
        path: String::from_utf8_lossy(path).into_owned(),
        errno,
    }
}
