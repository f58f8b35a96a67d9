//! Applying a tar layer to a directory, confined to it (docs/arch/layer-apply.md).
//!
//! The pipeline per entry: the tar reader ([`super::apply_tar`]) yields a fully folded entry →
//! its name is normalised lexically ([`super::resolve_name`]) → a whiteout or opaque marker is
//! applied ([`super::apply_whiteout`]) or the parent directory is resolved on disk inside the
//! root ([`super::resolve`]) and the node is created fresh ([`super::apply_write`]).
//! Directory modes and times are applied last.
//!
//! Threat model: the archive is hostile (threats-and-faults §2.1-§2.4); the target tree is not
//! being modified by anyone else while we run. The executor guarantees the latter — it never
//! extracts into a rootfs that has a running process — and everything is still done through
//! directory descriptors with `O_NOFOLLOW`, so a concurrent swap makes the extraction fail
//! rather than escape (§2.1 #14).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use nix::sys::stat::SFlag;

use super::apply_error::{ApplyError, lossy};
use super::apply_pax::Timestamp;
use super::apply_remove::{list_children, remove_tree};
use super::apply_tar::{EntryKind, TarEntry, TarReader};
use super::apply_whiteout::{
    Marker, Written, classify, flatten_opaque, flatten_whiteout, is_overlay_whiteout,
    overlay_whiteout, set_opaque,
};
use super::apply_write::{
    Owner, Previous, clear_slot, copy_body, device_allowed, finish_dir, make_dir, make_hardlink,
    make_node, make_symlink, set_dir_metadata, write_file,
};
use super::limits::{ByteBudget, Limits};
use super::resolve::{InRootDir, LayerRoot, Walk, is_type, lstat_at};
use super::resolve_name::{self, RootedName};

/// How whiteouts and opaque markers are rendered (see [`super::apply_whiteout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Apply onto an existing tree: whiteouts delete, opaque markers clear what earlier layers
    /// put in the directory. For `ADD local.tar`, context archives, `COPY --from` sources and
    /// the conformance suite.
    Flatten,
    /// Extract one image layer into its own fresh, empty directory, to be stacked later as an
    /// overlayfs lower layer: whiteouts become 0/0 character devices and opaque markers the
    /// `trusted.overlay.opaque=y` xattr. On failure the directory is emptied again.
    OverlayLayer,
}

/// Options for [`apply_layer`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub mode: ApplyMode,
    pub limits: Limits,
    /// Decompressed-byte budget shared by every layer of one image (§2.3 #24).
    pub budget: Option<Arc<ByteBudget>>,
    /// Give nodes the archive's numeric uid/gid (`true` when running as root). User and group
    /// *names* in the archive are never looked up (§2.1 #15, CVE-2019-14271).
    pub same_owner: bool,
}

impl ApplyOptions {
    /// Default limits, no shared budget, owners from the archive.
    pub fn new(mode: ApplyMode) -> Self {
        Self {
            mode,
            limits: Limits::default(),
            budget: None,
            same_owner: true,
        }
    }
}

/// What an applied layer amounted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Archive entries applied, whiteouts and markers included.
    pub entries: u64,
    /// Decompressed tar bytes read (headers, padding and trailing bytes included) — what the
    /// layer cost against [`Limits::max_bytes`] and the image budget.
    pub bytes: u64,
}

/// Applies the uncompressed tar stream `reader` to the directory `root`.
///
/// Nothing outside `root` is ever created, written, chmod-ed, chown-ed, linked or removed. On
/// error the tree may hold part of the layer (in [`ApplyMode::OverlayLayer`] it is emptied
/// again); the stream is consumed to its end on success so a digesting reader sees every byte.
pub fn apply_layer<R: Read>(
    reader: R,
    root: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, ApplyError> {
    let layer_root = LayerRoot::open(root)?;
    if opts.mode == ApplyMode::OverlayLayer && !list_children(&layer_root.dir()?)?.is_empty() {
        return Err(ApplyError::RootNotEmpty {
            root: root.to_path_buf(),
        });
    }
    let mut tar = TarReader::new(reader, &opts.limits, opts.budget.clone());
    let mut applier = Applier::new(&layer_root, opts);
    if let Err(err) = applier.run(&mut tar) {
        if opts.mode == ApplyMode::OverlayLayer {
            // Nothing of a failed layer may be committed; a failure to clean up is logged, the
            // extraction error is what the caller needs.
            if let Err(cleanup) = empty_directory(&layer_root) {
                tracing::warn!(root = %root.display(), error = %cleanup, "emptying a failed layer directory");
            }
        }
        return Err(err);
    }
    Ok(ApplyStats {
        entries: applier.entries,
        bytes: tar.offset(),
    })
}

fn empty_directory(root: &LayerRoot) -> Result<(), ApplyError> {
    let top = root.dir()?;
    for child in list_children(&top)? {
        remove_tree(&top, &child)?;
    }
    Ok(())
}

/// One entry as seen by [`list_entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    /// The name as stored (after PAX/GNU long names), not normalised.
    pub name: Vec<u8>,
    pub kind: EntryKind,
    pub size: u64,
    /// Symlink text or hard-link target; empty for other kinds.
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Reads an uncompressed tar stream with exactly the reader [`apply_layer`] uses and lists its
/// entries without writing anything — for inspection and for the differential tests against
/// GNU tar (§2.3 #23).
pub fn list_entries<R: Read>(reader: R, limits: &Limits) -> Result<Vec<ListedEntry>, ApplyError> {
    let mut tar = TarReader::new(reader, limits, None);
    let mut entries = Vec::new();
    while let Some(entry) = tar.next_entry()? {
        entries.push(ListedEntry {
            name: entry.name,
            kind: entry.kind,
            size: entry.size,
            link: entry.link,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
        });
    }
    tar.drain()?;
    Ok(entries)
}

/// Mode and times of a directory, applied once the layer is complete.
#[derive(Debug, Clone, Copy)]
struct DirFinish {
    mode: u32,
    atime: Timestamp,
    mtime: Timestamp,
}

struct Applier<'a> {
    root: &'a LayerRoot,
    opts: &'a ApplyOptions,
    owner: Owner,
    /// The last resolved parent (raw components → directory): consecutive entries usually
    /// share one. Dropped whenever anything is removed, since only a removal can change what a
    /// resolved path leads to.
    parent_cache: Option<(Vec<OsString>, InRootDir)>,
    /// What this layer wrote (Flatten only).
    written: Written,
    /// Canonical directory location → deferred mode and times.
    directories: BTreeMap<Vec<OsString>, DirFinish>,
    entries: u64,
    /// Copy buffer shared by every file of the layer.
    buffer: Vec<u8>,
}

impl<'a> Applier<'a> {
    fn new(root: &'a LayerRoot, opts: &'a ApplyOptions) -> Self {
        Self {
            root,
            opts,
            owner: Owner {
                same_owner: opts.same_owner,
            },
            parent_cache: None,
            written: Written::default(),
            directories: BTreeMap::new(),
            entries: 0,
            buffer: vec![0; 128 * 1024],
        }
    }

    fn run<R: Read>(&mut self, tar: &mut TarReader<R>) -> Result<(), ApplyError> {
        while let Some(entry) = tar.next_entry()? {
            self.entries += 1;
            self.apply_entry(&entry, tar)?;
        }
        tar.drain()?;
        self.finish_directories()
    }

    fn apply_entry<R: Read>(
        &mut self,
        entry: &TarEntry,
        tar: &mut TarReader<R>,
    ) -> Result<(), ApplyError> {
        let name = resolve_name::entry_name(&entry.name, &self.opts.limits)?;
        let Some((base, parent)) = name.split_last() else {
            return self.apply_root_entry(entry);
        };
        let marker = classify(base).map_err(|reason| ApplyError::InvalidWhiteout {
            name: lossy(&entry.name),
            reason,
        })?;
        match (marker, self.opts.mode) {
            (Marker::Opaque, ApplyMode::Flatten) => {
                let dir = self
                    .root
                    .walk(parent, Walk::FollowCreate)?
                    .ok_or_else(|| unresolved(&name))?;
                self.parent_cache = None;
                flatten_opaque(self.root, &dir, &self.written)
            }
            (Marker::Opaque, ApplyMode::OverlayLayer) => {
                let dir = self
                    .root
                    .walk(parent, Walk::FollowCreate)?
                    .ok_or_else(|| unresolved(&name))?;
                set_opaque(&dir)
            }
            (Marker::Whiteout(target), ApplyMode::Flatten) => {
                if flatten_whiteout(self.root, parent, target, &self.written)? {
                    self.parent_cache = None;
                }
                Ok(())
            }
            (Marker::Whiteout(target), ApplyMode::OverlayLayer) => {
                let dir = self.parent_dir(parent, &name)?;
                overlay_whiteout(&dir, target)
            }
            (Marker::Plain, _) => {
                let dir = self.parent_dir(parent, &name)?;
                self.create(&dir, base, entry, tar)?;
                if self.opts.mode == ApplyMode::Flatten {
                    self.written.insert(&dir, base);
                }
                Ok(())
            }
        }
    }

    /// An entry naming the root itself (`./`, `/`, or an empty name): a directory entry sets the
    /// root's metadata; anything else would replace the root and is refused (§2.1 #11).
    fn apply_root_entry(&mut self, entry: &TarEntry) -> Result<(), ApplyError> {
        if entry.kind != EntryKind::Dir {
            return Err(ApplyError::ReplaceRoot {
                name: lossy(&entry.name),
                kind: entry.kind.describe(),
            });
        }
        set_dir_metadata(&self.root.dir()?, entry, self.owner)?;
        self.defer_directory(Vec::new(), entry);
        Ok(())
    }

    fn create<R: Read>(
        &mut self,
        dir: &InRootDir,
        name: &OsStr,
        entry: &TarEntry,
        tar: &mut TarReader<R>,
    ) -> Result<(), ApplyError> {
        if matches!(entry.kind, EntryKind::CharDevice | EntryKind::BlockDevice)
            && !device_allowed(entry.kind, entry.device.0, entry.device.1)
        {
            return Err(ApplyError::DeviceNotAllowed {
                name: lossy(&entry.name),
                kind: if entry.kind == EntryKind::BlockDevice {
                    "block"
                } else {
                    "character"
                },
                major: entry.device.0,
                minor: entry.device.1,
            });
        }
        if entry.kind == EntryKind::Hardlink {
            return self.create_hardlink(dir, name, entry);
        }
        self.create_node(dir, name, entry, tar)
    }

    fn create_node<R: Read>(
        &mut self,
        dir: &InRootDir,
        name: &OsStr,
        entry: &TarEntry,
        tar: &mut TarReader<R>,
    ) -> Result<(), ApplyError> {
        let previous = clear_slot(dir, name, entry.kind)?;
        if matches!(previous, Previous::Removed { .. }) {
            self.parent_cache = None;
        }
        match entry.kind {
            EntryKind::File => {
                let offset = tar.offset();
                let display = dir.display_child(name);
                let buffer = &mut self.buffer;
                write_file(dir, name, entry, self.owner, |file| {
                    copy_body(tar.body(), file, buffer, &display, offset)
                })
            }
            EntryKind::Dir => {
                let created = make_dir(dir, name, previous, entry, self.owner)?;
                if self.opts.mode == ApplyMode::OverlayLayer
                    && previous == (Previous::Removed { whiteout: true })
                {
                    // Deleted and recreated in one layer: the new directory must not show the
                    // lower one's children (what overlayfs itself does on rmdir + mkdir).
                    set_opaque(&created)?;
                }
                self.defer_directory(created.components().to_vec(), entry);
                Ok(())
            }
            EntryKind::Symlink => make_symlink(dir, name, entry, self.owner),
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => {
                make_node(dir, name, entry, self.owner)
            }
            // Routed to `create_hardlink` by the caller; linking again here is still correct.
            EntryKind::Hardlink => self.create_hardlink(dir, name, entry),
        }
    }

    /// Hard-link targets are resolved inside the root, `..` clamped at the root and absolute
    /// names relative to it (§2.1 #7, #13c); the target's final component is not followed, so
    /// a link to a symlink links the symlink (§2.1 #8).
    fn create_hardlink(
        &mut self,
        dir: &InRootDir,
        name: &OsStr,
        entry: &TarEntry,
    ) -> Result<(), ApplyError> {
        let fail = |reason| ApplyError::Hardlink {
            name: lossy(&entry.name),
            target: lossy(&entry.link),
            reason,
        };
        let target = resolve_name::link_target(&entry.link, &self.opts.limits)?;
        let Some((target_name, target_parent)) = target.split_last() else {
            return Err(fail("the target is the layer root"));
        };
        let target_dir = self
            .root
            .walk(target_parent, Walk::FollowExisting)?
            .ok_or_else(|| fail("the target does not exist in the layer root"))?;
        let target_stat = lstat_at(target_dir.fd(), target_name)
            .map_err(|err| ApplyError::io("lstat", target_dir.display_child(target_name), err))?
            .ok_or_else(|| fail("the target does not exist in the layer root"))?;
        if is_type(&target_stat, SFlag::S_IFDIR) {
            return Err(fail("the target is a directory"));
        }
        if is_overlay_whiteout(&target_stat) {
            // Deleted earlier in this layer (OverlayLayer renders that as a 0/0 device): there
            // is nothing to link to, exactly as in Flatten mode.
            return Err(fail("the target does not exist in the layer root"));
        }
        let existing = lstat_at(dir.fd(), name)
            .map_err(|err| ApplyError::io("lstat", dir.display_child(name), err))?;
        if existing.is_some_and(|existing| {
            existing.st_dev == target_stat.st_dev && existing.st_ino == target_stat.st_ino
        }) {
            // Already linked (a repeated entry, or a link to itself).
            return Ok(());
        }
        if clear_slot(dir, name, EntryKind::Hardlink)? != Previous::Nothing {
            self.parent_cache = None;
        }
        make_hardlink(&target_dir, target_name, dir, name)
    }

    fn parent_dir(
        &mut self,
        parent: &[OsString],
        name: &RootedName,
    ) -> Result<InRootDir, ApplyError> {
        if let Some((key, dir)) = &self.parent_cache
            && key.as_slice() == parent
        {
            return dir.try_clone();
        }
        let dir = self
            .root
            .walk(parent, Walk::FollowCreate)?
            .ok_or_else(|| unresolved(name))?;
        self.parent_cache = Some((parent.to_vec(), dir.try_clone()?));
        Ok(dir)
    }

    fn defer_directory(&mut self, location: Vec<OsString>, entry: &TarEntry) {
        self.directories.insert(
            location,
            DirFinish {
                mode: entry.mode,
                atime: entry.atime,
                mtime: entry.mtime,
            },
        );
    }

    /// Children before parents (reverse order of canonical paths), so a read-only parent mode
    /// is set after its children are done. A location that is gone or no longer a directory
    /// was replaced later in the layer and is skipped.
    fn finish_directories(&mut self) -> Result<(), ApplyError> {
        for (location, finish) in std::mem::take(&mut self.directories).into_iter().rev() {
            if let Some(dir) = self.root.walk(&location, Walk::Canonical)? {
                finish_dir(&dir, finish.mode, finish.atime, finish.mtime)?;
            }
        }
        Ok(())
    }
}

/// `FollowCreate` walks only stop at missing components when told not to create; reaching
/// this is a bug, reported as an error rather than a panic.
fn unresolved(name: &RootedName) -> ApplyError {
    ApplyError::io(
        "resolving",
        name.display(),
        std::io::Error::other("parent directory could not be created"),
    )
}
