//! A build context that is a directory on this machine, and Docker's COPY/ADD source rules.
//!
//! Source rules (BuildKit's `dockerfile2llb` + `fsutil/copy`): a source is made absolute from
//! the context root and cleaned, so `../../etc/passwd` names `<ctx>/etc/passwd`; the path is then
//! resolved inside the context with chroot semantics ([`super::rootfs`]), so a symlink — in the
//! middle or as the source itself — is followed but can never lead out of the context
//! (threats-and-faults §2.6 #32): `foo -> /etc/shadow` reads `<ctx>/etc/shadow`. A source with
//! `*`, `?` or `[` is split at its first such component; the rest is matched with Go's
//! `filepath.Match` against paths below the literal prefix, a matched directory is not searched
//! further, and no match is no error. Files `.dockerignore` excludes are invisible, exactly as if
//! BuildKit had not transferred them.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, SFlag, fstatat};

use super::dockerignore::{Dockerignore, MatchInfo};
use super::rootfs::{self, Node, ResolveError, RootDir, file_type};
use super::walk::{self, Entry, Visitor, WalkError, WalkRoot};
use super::{ContextError, gopath};

/// Who owns what COPY writes when `--chown` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// 0:0 whatever the files' owners are: Docker's clients reset the context's owners before
    /// sending it.
    Root,
    /// The source's own uid/gid (`COPY --from=<stage>`).
    Preserve,
}

/// What a resolved source is (after following a symlink given as the source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl SourceKind {
    fn of(stat: &FileStat) -> Self {
        match file_type(stat) {
            SFlag::S_IFDIR => Self::Directory,
            SFlag::S_IFIFO => Self::Fifo,
            SFlag::S_IFSOCK => Self::Socket,
            SFlag::S_IFCHR => Self::CharDevice,
            SFlag::S_IFBLK => Self::BlockDevice,
            _ => Self::File,
        }
    }

    /// A short human name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::File => "regular file",
            Self::Directory => "directory",
            Self::Fifo => "named pipe",
            Self::Socket => "socket",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) root: RootDir,
    pub(crate) ignore: Dockerignore,
    pub(crate) ownership: Ownership,
    pub(crate) allow_devices: bool,
}

/// A directory used as a build context (or as a stage's root for `COPY --from`).
#[derive(Debug, Clone)]
pub struct LocalContext {
    shared: Arc<Shared>,
}

/// One source of a COPY/ADD after Docker's rules were applied.
#[derive(Debug, Clone)]
pub struct ResolvedSource {
    /// The source as the Dockerfile wrote it.
    pub requested: String,
    /// The canonical path of what will be copied, relative to the context root (empty for the
    /// root itself); symlinks given as the source are already followed.
    pub path: PathBuf,
    /// The name the source takes when it lands inside a destination directory: the last
    /// component of the requested path or wildcard match (a followed link keeps its own name).
    pub name: OsString,
    pub kind: SourceKind,
    /// Whether it came from a wildcard.
    pub from_wildcard: bool,
    pub(crate) ctx: Arc<Shared>,
}

impl LocalContext {
    /// Opens a build context directory with its `.dockerignore`.
    pub fn open(dir: &Path, ignore: Dockerignore) -> Result<Self, ContextError> {
        Self::with_policy(dir, ignore, Ownership::Root, false)
    }

    /// Opens a stage's root filesystem as the source of `COPY --from`: nothing is ignored,
    /// owners are kept and device nodes (already vetted by the layer applier) are copied.
    pub fn open_stage_root(dir: &Path) -> Result<Self, ContextError> {
        Self::with_policy(dir, Dockerignore::empty(), Ownership::Preserve, true)
    }

    fn with_policy(
        dir: &Path,
        ignore: Dockerignore,
        ownership: Ownership,
        allow_devices: bool,
    ) -> Result<Self, ContextError> {
        let root = RootDir::open(dir).map_err(|reason| ContextError::Open {
            path: dir.display().to_string(),
            reason,
        })?;
        Ok(Self {
            shared: Arc::new(Shared {
                root,
                ignore,
                ownership,
                allow_devices,
            }),
        })
    }

    /// The context directory.
    pub fn dir(&self) -> &Path {
        self.shared.root.path()
    }

    /// Applies Docker's source rules to the sources of one COPY/ADD, in order. A wildcard may
    /// yield several sources (sorted) or none; anything else yields exactly one or fails.
    pub fn resolve_sources(&self, sources: &[String]) -> Result<Vec<ResolvedSource>, ContextError> {
        let mut out = Vec::new();
        for requested in sources {
            self.resolve_one(requested, &mut out)?;
        }
        Ok(out)
    }

    /// The cache-key checksum of resolved sources; see [`super::checksum`].
    pub fn checksum(
        &self,
        sources: &[ResolvedSource],
    ) -> Result<crate::image::Digest, ContextError> {
        super::checksum::checksum(sources)
    }

    fn resolve_one(
        &self,
        requested: &str,
        out: &mut Vec<ResolvedSource>,
    ) -> Result<(), ContextError> {
        let cleaned = gopath::clean(&[b"/", requested.as_bytes()].concat());
        let components: Vec<&[u8]> = rootfs::split(&cleaned).collect();
        let Some(first_wild) = components
            .iter()
            .position(|c| gopath::contains_wildcards(c))
        else {
            let name = components
                .last()
                .map(|c| OsStr::from_bytes(c).to_os_string());
            let source = self.resolve_path(requested, &cleaned, name.unwrap_or_default(), false)?;
            out.push(source);
            return Ok(());
        };
        let prefix = components[..first_wild].join(&b'/');
        let pattern = components[first_wild..].join(&b'/');
        if gopath::match_pattern(&pattern, b".").is_err() {
            return Err(ContextError::BadWildcard {
                requested: requested.to_owned(),
            });
        }
        let resolved = self.resolve(requested, &prefix, true)?;
        let base = match resolved.steps.last().map(|s| &s.node) {
            Some(Node::Missing) => {
                return Err(ContextError::NotFound {
                    requested: requested.to_owned(),
                });
            }
            _ => resolved.rel_path(),
        };
        let Some(dir) = resolved.dir_fd(&self.shared.root) else {
            // Walking a file finds nothing below it.
            return Ok(());
        };
        let mut matches = Vec::new();
        let max_depth = pattern.iter().filter(|&&b| b == b'/').count() + 1;
        self.find_matches(dir, &base, b"", &pattern, max_depth, &mut matches)?;
        for ctx_rel in matches {
            let name = ctx_rel.rsplit(|&b| b == b'/').next().unwrap_or_default();
            let name = OsStr::from_bytes(name).to_os_string();
            out.push(self.resolve_path(requested, &ctx_rel, name, true)?);
        }
        Ok(())
    }

    /// Resolves one literal path (following a final symlink) into a source.
    fn resolve_path(
        &self,
        requested: &str,
        path: &[u8],
        name: OsString,
        from_wildcard: bool,
    ) -> Result<ResolvedSource, ContextError> {
        let resolved = self.resolve(requested, path, true)?;
        let kind = if resolved.is_root() {
            SourceKind::Directory
        } else {
            match resolved.stat() {
                Some(stat) => SourceKind::of(stat),
                None => {
                    return Err(ContextError::NotFound {
                        requested: requested.to_owned(),
                    });
                }
            }
        };
        let rel = resolved.rel_path();
        if !self.shared.allow_devices
            && matches!(kind, SourceKind::CharDevice | SourceKind::BlockDevice)
        {
            return Err(ContextError::DeviceInContext {
                path: String::from_utf8_lossy(&rel).into_owned(),
                kind: kind.describe(),
            });
        }
        Ok(ResolvedSource {
            requested: requested.to_owned(),
            path: PathBuf::from(OsStr::from_bytes(&rel)),
            name,
            kind,
            from_wildcard,
            ctx: Arc::clone(&self.shared),
        })
    }

    fn resolve(
        &self,
        requested: &str,
        path: &[u8],
        follow_final: bool,
    ) -> Result<rootfs::Resolved, ContextError> {
        let shared = &*self.shared;
        rootfs::resolve(&shared.root, path, follow_final, &mut |rel, stat| {
            shared.visible(rel, stat)
        })
        .map_err(|reason| match reason {
            // `COPY file/x` where `file` is not a directory: nothing by that name exists.
            ResolveError::NotADirectory { .. } => ContextError::NotFound {
                requested: requested.to_owned(),
            },
            reason => ContextError::Resolve {
                requested: requested.to_owned(),
                reason,
            },
        })
    }

    /// fsutil's `resolveWildcards`: every visible entry below `dir` whose path relative to the
    /// wildcard's literal prefix matches `pattern`; a matched directory is not searched, and no
    /// directory deeper than the pattern's number of components is opened.
    fn find_matches(
        &self,
        dir: BorrowedFd<'_>,
        ctx_dir: &[u8],
        rel_dir: &[u8],
        pattern: &[u8],
        max_depth: usize,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), ContextError> {
        let depth = rel_dir
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .count();
        for name in walk::sorted_names(dir, ctx_dir)? {
            let rel = join(rel_dir, name.as_bytes());
            let ctx_rel = join(ctx_dir, name.as_bytes());
            let stat = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(|errno| read_error(&ctx_rel, errno))?;
            if !self
                .shared
                .visible(&ctx_rel, &stat)
                .map_err(|reason| ContextError::Resolve {
                    requested: String::from_utf8_lossy(&ctx_rel).into_owned(),
                    reason,
                })?
            {
                continue;
            }
            if gopath::match_pattern(pattern, &rel).unwrap_or(false) {
                out.push(ctx_rel);
                continue;
            }
            if file_type(&stat) == SFlag::S_IFDIR && depth + 1 < max_depth {
                let child = walk::open_dir(dir, &name, &ctx_rel)?;
                self.find_matches(child.as_fd(), &ctx_rel, &rel, pattern, max_depth, out)?;
            }
        }
        Ok(())
    }
}

impl Shared {
    /// Whether the entry at `rel` exists in the context as BuildKit would have transferred it:
    /// not excluded, or an excluded directory that still holds something re-included, and not
    /// below a directory the transfer skipped.
    pub(crate) fn visible(&self, rel: &[u8], stat: &FileStat) -> Result<bool, ResolveError> {
        if self.ignore.is_empty() {
            return Ok(true);
        }
        let chain = self.ignore.ancestry(rel);
        let Some(((_, excluded, info), ancestors)) = chain.split_last() else {
            return Ok(true);
        };
        if ancestors
            .iter()
            .any(|(prefix, excluded, _)| *excluded && !self.ignore.should_descend(prefix))
        {
            return Ok(false);
        }
        if !excluded {
            return Ok(true);
        }
        if file_type(stat) != SFlag::S_IFDIR || !self.ignore.should_descend(rel) {
            return Ok(false);
        }
        self.has_visible_descendant(rel, stat, info.clone())
    }

    fn has_visible_descendant(
        &self,
        rel: &[u8],
        stat: &FileStat,
        info: MatchInfo,
    ) -> Result<bool, ResolveError> {
        struct FindAny;
        #[derive(Debug)]
        enum Stop {
            Found,
            Walk(WalkError),
        }
        impl From<WalkError> for Stop {
            fn from(e: WalkError) -> Self {
                Self::Walk(e)
            }
        }
        impl Visitor for FindAny {
            type Error = Stop;
            fn enter_dir(&mut self, entry: &Entry<'_>, _: BorrowedFd<'_>) -> Result<(), Stop> {
                if entry.rel.is_empty() {
                    Ok(())
                } else {
                    Err(Stop::Found)
                }
            }
            fn leave_dir(&mut self, _: &Entry<'_>) -> Result<(), Stop> {
                Ok(())
            }
            fn leaf(&mut self, _: &Entry<'_>) -> Result<(), Stop> {
                Err(Stop::Found)
            }
        }
        let shown = || String::from_utf8_lossy(rel).into_owned();
        let (parent, name) =
            rootfs::open_parent(&self.root, rel).map_err(|errno| ResolveError::Io {
                path: shown(),
                errno,
            })?;
        let root = WalkRoot {
            parent: parent.as_ref().map_or(self.root.fd(), AsFd::as_fd),
            name: &name,
            stat,
            ctx_rel: rel,
            info,
            ignore: &self.ignore,
        };
        match walk::walk(&root, &mut FindAny) {
            Ok(()) => Ok(false),
            Err(Stop::Found) => Ok(true),
            Err(Stop::Walk(WalkError::Io { path, errno })) => Err(ResolveError::Io { path, errno }),
            Err(Stop::Walk(WalkError::TooDeep { path })) => Err(ResolveError::Io {
                path,
                errno: Errno::ENAMETOOLONG,
            }),
        }
    }
}

impl ResolvedSource {
    pub fn ownership(&self) -> Ownership {
        self.ctx.ownership
    }

    pub(crate) fn allows_devices(&self) -> bool {
        self.ctx.allow_devices
    }

    /// Opens the source where it lies: its parent directory (`None` for the context root), its
    /// name there (`.` for the root) and a fresh stat.
    pub(crate) fn locate(&self) -> Result<Located, ContextError> {
        let rel = self.path.as_os_str().as_bytes();
        let (parent, name) =
            rootfs::open_parent(&self.ctx.root, rel).map_err(|errno| read_error(rel, errno))?;
        let parent_fd = parent.as_ref().map_or(self.ctx.root.fd(), AsFd::as_fd);
        let stat = fstatat(parent_fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|errno| read_error(rel, errno))?;
        if SourceKind::of(&stat) != self.kind {
            // The tree changed since resolution; refuse rather than copy something else.
            return Err(read_error(rel, Errno::ESTALE));
        }
        Ok(Located { parent, name, stat })
    }

    /// The walk root for a directory source.
    pub(crate) fn walk_root<'a>(&'a self, located: &'a Located) -> WalkRoot<'a> {
        let rel = self.path.as_os_str().as_bytes();
        let info = self
            .ctx
            .ignore
            .ancestry(rel)
            .pop()
            .map(|(_, _, info)| info)
            .unwrap_or_default();
        WalkRoot {
            parent: located.parent_fd(self),
            name: &located.name,
            stat: &located.stat,
            ctx_rel: rel,
            info,
            ignore: &self.ctx.ignore,
        }
    }
}

/// Where a source lies, opened.
#[derive(Debug)]
pub(crate) struct Located {
    parent: Option<OwnedFd>,
    pub(crate) name: OsString,
    pub(crate) stat: FileStat,
}

impl Located {
    pub(crate) fn parent_fd<'a>(&'a self, source: &'a ResolvedSource) -> BorrowedFd<'a> {
        self.parent
            .as_ref()
            .map_or(source.ctx.root.fd(), AsFd::as_fd)
    }
}

fn join(base: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    if !out.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

pub(crate) fn read_error(path: &[u8], errno: Errno) -> ContextError {
    ContextError::Read {
        path: String::from_utf8_lossy(path).into_owned(),
        source: errno.into(),
    }
}
