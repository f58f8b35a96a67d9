//! Overlay upper dir (plus the lower stack) → the ordered list of changes a layer must carry.
//!
//! The upper dir already *is* the diff (overlayfs copies up whatever RUN touches); this module
//! only translates overlay's encoding into the OCI one, looking up in the lowers just the paths
//! that appear in the upper dir:
//! - a char device 0/0 is a deletion, emitted only when the path exists below;
//! - a directory with `trusted.overlay.opaque=y` that replaced a directory below gets an opaque
//!   marker and its whole content as additions (the kernel also marks brand-new directories and
//!   directories created over a deleted file opaque; those get no marker, threats §2.5 #30c);
//! - a directory that is in the upper dir only because something beneath it changed (overlay
//!   copied it up; mode, owner and layer xattrs equal below) is not a change by itself, but it
//!   is emitted as a [`ChangeKind::Parent`] ahead of the first change beneath it, carrying its
//!   real metadata — what containerd's `ChangeWriter.includeParents` does for BuildKit's
//!   `WriteUpperdir` and for Docker (threats §2.5 #30e, #31);
//! - sockets are omitted (containerd TestDiffTar IgnoreSockets);
//! - a name RUN created with the `.wh.` prefix fails the diff (threats §2.5 #29), and so does an
//!   entry carrying `redirect`/`metacopy` xattrs: the executor mounts with both off, and reading
//!   such an entry literally would produce a wrong layer.
//!
//! Every non-directory in the upper dir is a change: overlay copies a file up only when it is
//! opened for writing, its metadata is changed or it gains a hardlink, so copying it into the
//! layer is always correct (Docker's overlay2 differ does the same).
//!
//! The order is depth-first with each directory's entries sorted by name bytes; a directory's
//! entry and its opaque marker precede its contents.

use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::diff_xattr;
use super::lower::{DirView, Lookup, LowerDirs, OPAQUE_XATTR, is_whiteout_name};

/// One entry of a layer, relative to the layer root (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New: nothing at this path below.
    Added,
    /// Replaces what is below (new content, metadata or type).
    Modified,
    /// An unchanged directory, written because something beneath it changed.
    Parent,
    /// Removed: written as `<dir>/.wh.<name>`.
    Deleted,
    /// The directory at `path` hides everything below it: written as `<path>/.wh..wh..opq`, right
    /// after the directory's own entry.
    Opaque,
}

/// Why an upper dir could not be turned into a layer.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("cannot read {path} while computing the layer diff: {source}")]
    Upper {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot look up {path} in the lower layers while computing the layer diff: {source}")]
    Lower {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the step created /{path}, whose name starts with `.wh.`: image layers reserve that \
         prefix for whiteouts, so applying the layer would delete files instead of creating this \
         one; rename it or remove it within the same step"
    )]
    WhiteoutName { path: PathBuf },
    #[error(
        "/{path} in the upper dir {upper} carries the overlay xattr {xattr}: the overlay was \
         mounted with redirect_dir or metacopy enabled and such an upper dir cannot be turned \
         into a correct layer; mount with redirect_dir=off,metacopy=off"
    )]
    OverlayFeature {
        upper: PathBuf,
        path: PathBuf,
        xattr: &'static str,
    },
}

/// Computes the changes an overlay upper dir holds against its lower layers (`lower_dirs`
/// top-first, as in `lowerdir=`). With no lowers every entry is an addition: that is the tar of a
/// plain directory tree, used for COPY layers.
pub fn diff_upper(upper: &Path, lower_dirs: &[PathBuf]) -> Result<Vec<Change>, DiffError> {
    Differ::new(upper, LowerDirs::new(lower_dirs)).run()
}

/// One directory being listed during the depth-first walk.
struct Cursor {
    rel: PathBuf,
    /// Remaining entry names, sorted descending so `pop` yields them in ascending order.
    names: Vec<OsString>,
    /// The lower layers contributing to this directory; empty when nothing exists below it.
    below: DirView,
    /// Index in `Differ::out` of this directory's `Parent` entry while no change beneath it has
    /// been seen yet.
    pending_parent: Option<usize>,
}

struct Differ<'a> {
    upper: &'a Path,
    lowers: LowerDirs<'a>,
    /// Changes in order; `false` marks a `Parent` entry not (yet) needed.
    out: Vec<(Change, bool)>,
    stack: Vec<Cursor>,
}

impl<'a> Differ<'a> {
    fn new(upper: &'a Path, lowers: LowerDirs<'a>) -> Self {
        Self {
            upper,
            lowers,
            out: Vec::new(),
            stack: Vec::new(),
        }
    }

    fn run(mut self) -> Result<Vec<Change>, DiffError> {
        let root = Cursor {
            rel: PathBuf::new(),
            names: self.sorted_names(Path::new(""))?,
            below: DirView::root(&self.lowers),
            pending_parent: None,
        };
        self.stack.push(root);
        while let Some(top) = self.stack.last_mut() {
            let Some(name) = top.names.pop() else {
                self.stack.pop();
                continue;
            };
            let rel = top.rel.join(&name);
            self.visit(rel)?;
        }
        Ok(self
            .out
            .into_iter()
            .filter_map(|(change, needed)| needed.then_some(change))
            .collect())
    }

    fn visit(&mut self, rel: PathBuf) -> Result<(), DiffError> {
        let path = self.upper.join(&rel);
        let meta =
            std::fs::symlink_metadata(&path).map_err(|source| self.upper_err(&rel, source))?;
        let file_type = meta.file_type();
        let name = rel.file_name().unwrap_or_default();
        if is_whiteout_name(name) {
            return Err(DiffError::WhiteoutName { path: rel });
        }
        if file_type.is_char_device() && meta.rdev() == 0 {
            if let Lookup::Present { .. } = self.lookup_below(&rel)? {
                self.emit(rel, ChangeKind::Deleted);
            }
            return Ok(());
        }
        if file_type.is_socket() {
            return Ok(());
        }
        let names = diff_xattr::names(&path).map_err(|source| self.upper_err(&rel, source))?;
        if let Some(xattr) = diff_xattr::refused(&names) {
            return Err(DiffError::OverlayFeature {
                upper: self.upper.to_path_buf(),
                path: rel,
                xattr,
            });
        }
        let below = self.lookup_below(&rel)?;
        if !file_type.is_dir() {
            let kind = match below {
                Lookup::Absent => ChangeKind::Added,
                Lookup::Present { .. } => ChangeKind::Modified,
            };
            self.emit(rel, kind);
            return Ok(());
        }

        let opaque = names.iter().any(|n| n == OPAQUE_XATTR)
            && xattr::get(&path, OPAQUE_XATTR)
                .map_err(|source| self.upper_err(&rel, source))?
                .as_deref()
                == Some(b"y");
        let child_names = self.sorted_names(&rel)?;
        let (below_children, pending_parent) = match below {
            Lookup::Absent => {
                self.emit(rel.clone(), ChangeKind::Added);
                (DirView::empty(), None)
            }
            // A directory replacing a non-directory: nothing below to hide or merge with.
            Lookup::Present { dir: None, .. } => {
                self.emit(rel.clone(), ChangeKind::Modified);
                (DirView::empty(), None)
            }
            Lookup::Present { dir: Some(_), .. } if opaque => {
                self.emit(rel.clone(), ChangeKind::Modified);
                self.emit(rel.clone(), ChangeKind::Opaque);
                (DirView::empty(), None)
            }
            Lookup::Present {
                layer,
                dir: Some(view),
            } => {
                if self.same_dir_as_below(&rel, &meta, &names, layer)? {
                    self.out.push((
                        Change {
                            path: rel.clone(),
                            kind: ChangeKind::Parent,
                        },
                        false,
                    ));
                    (view, Some(self.out.len() - 1))
                } else {
                    self.emit(rel.clone(), ChangeKind::Modified);
                    (view, None)
                }
            }
        };
        self.stack.push(Cursor {
            rel,
            names: child_names,
            below: below_children,
            pending_parent,
        });
        Ok(())
    }

    /// Records a change and makes every pending ancestor directory part of the layer.
    fn emit(&mut self, path: PathBuf, kind: ChangeKind) {
        for cursor in self.stack.iter_mut().rev() {
            match cursor.pending_parent.take() {
                Some(index) => self.out[index].1 = true,
                // Ancestors of an emitted directory were marked when it was emitted.
                None => break,
            }
        }
        self.out.push((Change { path, kind }, true));
    }

    fn lookup_below(&self, rel: &Path) -> Result<Lookup, DiffError> {
        let parent = &self.stack.last().expect("visit runs under a cursor").below;
        if parent.is_empty() {
            return Ok(Lookup::Absent);
        }
        parent
            .lookup(&self.lowers, rel)
            .map_err(|source| DiffError::Lower {
                path: rel.to_path_buf(),
                source,
            })
    }

    /// BuildKit's rule for a copied-up directory (util/overlay `sameDirent`): unchanged when mode,
    /// owner and the xattrs a layer carries are equal; a new mtime alone (a child was added or
    /// removed) is not a change of the directory itself.
    fn same_dir_as_below(
        &self,
        rel: &Path,
        upper_meta: &Metadata,
        upper_names: &[OsString],
        layer: usize,
    ) -> Result<bool, DiffError> {
        let lower_path = self.lowers.path(layer, rel);
        let lower_err = |source| DiffError::Lower {
            path: lower_path.clone(),
            source,
        };
        let lower_meta = std::fs::symlink_metadata(&lower_path).map_err(lower_err)?;
        if (upper_meta.mode(), upper_meta.uid(), upper_meta.gid())
            != (lower_meta.mode(), lower_meta.uid(), lower_meta.gid())
        {
            return Ok(false);
        }
        let upper_xattrs = diff_xattr::layer_xattrs(&self.upper.join(rel), upper_names)
            .map_err(|source| self.upper_err(rel, source))?;
        let lower_xattrs = diff_xattr::read_layer_xattrs(&lower_path).map_err(lower_err)?;
        Ok(upper_xattrs == lower_xattrs)
    }

    /// The entry names of an upper directory, sorted descending by bytes (popped ascending).
    fn sorted_names(&self, rel: &Path) -> Result<Vec<OsString>, DiffError> {
        let read = |source| self.upper_err(rel, source);
        let mut names = std::fs::read_dir(self.upper.join(rel))
            .map_err(read)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()
            .map_err(read)?;
        names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
        Ok(names)
    }

    fn upper_err(&self, rel: &Path, source: io::Error) -> DiffError {
        DiffError::Upper {
            path: self.upper.join(rel),
            source,
        }
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
