//! COPY and ADD's local part: writing resolved context sources into a stage's root filesystem.
//!
//! The executor hands over the stage's root view (the merged overlay mount; everything written
//! lands in the upper directory and becomes the layer), the sources resolved by
//! [`crate::context::LocalContext`] and the destination as the Dockerfile wrote it. Docker's
//! rules, as BuildKit implements them (`dockerfile2llb` + tonistiigi/fsutil `copy`):
//!
//! - a relative destination is relative to WORKDIR; a trailing `/` (or `.`, `/.`) makes it a
//!   directory; several sources require that (Docker's error otherwise);
//! - a directory source copies its *contents*; a file source lands inside an existing
//!   directory (or one the destination names with `/`), otherwise it becomes the destination;
//! - missing directories on the way are created 0755 (or with the `--chmod` mode) and owned by
//!   the `--chown` owner or root; existing ones keep their metadata;
//! - entries keep their mode (unless `--chmod`), times (clamped to SOURCE_DATE_EPOCH) and
//!   allowlisted xattrs; their owner is `--chown`, else 0:0 for a build context or the source's
//!   own for `COPY --from`; hardlinks within one source stay linked, symlinks inside a copied
//!   directory are copied as links;
//! - the destination is resolved inside the root with chroot semantics (see [`dest`]).
//!
//! ADD's archives are recognised by [`is_archive`]; extracting them is the layer applier's job.

mod archive;
mod chmod;
mod dest;
mod inroot;
mod meta;
mod write;

use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sys::time::TimeSpec;

pub use archive::{ArchiveKind, is_archive};
pub use chmod::{Chmod, ChmodError};
pub use inroot::{mkdir_all_in_root, open_dir_in_root, read_file_in_root};

use crate::context::rootfs::{self, ResolveError, RootDir};
use crate::context::walk::{self, Entry};
use crate::context::{ContextError, ResolvedSource, SourceKind};
use dest::{FileTarget, ensure_dir, file_target, open_dir_at, shown};
use meta::{Meta, set_times};
use write::Writer;

/// Options of one COPY/ADD.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `--chown`, already resolved from names by the executor (from the image's
    /// /etc/passwd and /etc/group, never through NSS: threats-and-faults §2.1 #15).
    pub chown: Option<(u32, u32)>,
    /// `--chmod` ([`Chmod::parse`]).
    pub chmod: Option<Chmod>,
    /// The stage's WORKDIR, for a relative destination.
    pub workdir: String,
    /// `--link`: consult nothing of the existing root (see [`dest`]).
    pub link: bool,
    /// Clamp every written time to this (seconds since the epoch).
    pub source_date_epoch: Option<i64>,
}

/// What a copy wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    /// FIFOs, sockets and (from a stage root) device nodes.
    pub special: u64,
    /// Bytes of regular-file content.
    pub bytes: u64,
}

/// Why a copy failed. Paths are shown as inside the image (`/usr/bin/x`).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    )]
    MultipleSourcesNeedDirectory,
    #[error("cannot replace to directory {path} with file")]
    CannotReplaceDirectory { path: String },
    #[error("cannot copy to non-directory: {path}")]
    CannotCopyToNonDirectory { path: String },
    #[error("destination {path} exists and is not a directory")]
    NotADirectory { path: String },
    #[error("resolving destination {dest} in the image: {reason}")]
    Resolve {
        dest: String,
        #[source]
        reason: ResolveError,
    },
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{op} {path} in the source: {source}")]
    SourceIo {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

impl CopyError {
    fn io(op: &'static str, rel: &[u8], errno: Errno) -> Self {
        Self::Io {
            op,
            path: shown(rel),
            source: errno.into(),
        }
    }

    fn source_io(op: &'static str, rel: &[u8], errno: Errno) -> Self {
        Self::SourceIo {
            op,
            path: String::from_utf8_lossy(rel).into_owned(),
            source: errno.into(),
        }
    }
}

/// Copies `sources` to `dest` inside the root filesystem view `root` (see the module docs).
/// An empty `sources` (a wildcard that matched nothing) copies nothing, as in BuildKit.
pub fn copy_into(
    root: &Path,
    sources: &[ResolvedSource],
    dest: &str,
    opts: &CopyOptions,
) -> Result<CopyStats, CopyError> {
    let mut stats = CopyStats::default();
    if sources.is_empty() {
        return Ok(stats);
    }
    let (dest_path, dest_is_dir) = destination(dest, &opts.workdir);
    if sources.len() > 1 && !dest_is_dir {
        return Err(CopyError::MultipleSourcesNeedDirectory);
    }
    let root = RootDir::open(root).map_err(|reason| CopyError::Resolve {
        dest: dest.to_owned(),
        reason,
    })?;
    let meta = Meta {
        chown: opts.chown,
        chmod: opts.chmod.as_ref(),
        epoch: opts.source_date_epoch,
        link: opts.link,
    };
    let mut created = Vec::new();
    for source in sources {
        let located = source.locate()?;
        let mut writer = Writer::new(&root, &meta, source, &mut stats);
        if source.kind == SourceKind::Directory {
            let target =
                ensure_dir(&root, &dest_path, &meta, &mut created).map_err(|e| match e {
                    CopyError::NotADirectory { path } => {
                        CopyError::CannotCopyToNonDirectory { path }
                    }
                    e => e,
                })?;
            writer.stack.push(target);
            walk::walk(&source.walk_root(&located), &mut writer)?;
            continue;
        }
        let entry = Entry {
            rel: source.path.as_os_str().as_bytes(),
            name: &located.name,
            parent: located.parent_fd(source),
            stat: &located.stat,
        };
        let target = if dest_is_dir {
            FileTarget::Inside(ensure_dir(&root, &dest_path, &meta, &mut created)?)
        } else {
            file_target(&root, &dest_path, &meta, &mut created)?
        };
        match target {
            FileTarget::Inside(dir) => writer.write_leaf(&entry, &dir, &source.name)?,
            FileTarget::At { parent, name } => writer.write_leaf(&entry, &parent, &name)?,
        }
    }
    if let Some(epoch) = opts.source_date_epoch {
        clamp_created(&root, &created, epoch)?;
    }
    Ok(stats)
}

/// The absolute, cleaned destination and whether it names a directory (BuildKit's
/// `pathRelativeToWorkingDir` + `cleanPath`: a trailing `/`, `/.` or a bare `.` keep it one).
fn destination(dest: &str, workdir: &str) -> (Vec<u8>, bool) {
    let is_dir = dest.is_empty() || dest == "." || dest.ends_with('/') || dest.ends_with("/.");
    let joined = if dest.starts_with('/') {
        dest.to_owned()
    } else {
        format!("/{workdir}/{dest}")
    };
    let cleaned = crate::context::gopath::clean(joined.as_bytes());
    // The root itself can only be a directory.
    let is_dir = is_dir || cleaned == b"/";
    (cleaned, is_dir)
}

/// Directories created on the way keep "now" as mtime unless the build is reproducible.
fn clamp_created(root: &RootDir, created: &[Vec<u8>], epoch: i64) -> Result<(), CopyError> {
    let time = TimeSpec::new(epoch, 0);
    for rel in created.iter().rev() {
        let (parent, name) =
            rootfs::open_parent(root, rel).map_err(|e| CopyError::io("open", rel, e))?;
        let parent = parent.as_ref().map_or(root.fd(), AsFd::as_fd);
        let fd = open_dir_at(parent, &name).map_err(|e| CopyError::io("open", rel, e))?;
        set_times(fd.as_fd(), (time, time)).map_err(|e| CopyError::io("utimes", rel, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn destination_table() {
        let table: &[(&str, &str, &str, bool)] = &[
            ("/app", "/", "/app", false),
            ("/app/", "/", "/app", true),
            ("app", "/srv", "/srv/app", false),
            ("./", "/srv", "/srv", true),
            (".", "/srv", "/srv", true),
            ("sub/.", "/srv", "/srv/sub", true),
            ("../x", "/srv/a", "/srv/x", false),
            ("../../../../x", "/srv", "/x", false),
            ("..", "/", "/", true),
            ("/", "/srv", "/", true),
        ];
        for (dest, workdir, path, is_dir) in table {
            let (got, got_dir) = destination(dest, workdir);
            assert_eq!(
                (String::from_utf8(got).unwrap().as_str(), got_dir),
                (*path, *is_dir),
                "{dest:?} in {workdir:?}"
            );
        }
    }
}
