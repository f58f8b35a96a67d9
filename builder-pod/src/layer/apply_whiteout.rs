//! Whiteouts and opaque markers (OCI image-spec layer.md "Whiteouts"; the kernel's
//! Documentation/filesystems/overlayfs.rst "whiteouts and opaque directories").
//!
//! Two renderings of the same changeset:
//! - **Flatten** applies a layer onto the tree built from the layers below it. `.wh.name`
//!   deletes `name`; `.wh..wh..opq` deletes the directory's children that came from earlier
//!   layers. The spec says whiteouts only ever hide *lower* content, so anything this layer has
//!   already written survives — which is how "the opaque marker applies first regardless of its
//!   position" (§2.2 #21, image-spec #1215, umoci #232) is implemented in one streaming pass:
//!   we remember what this layer wrote and spare it.
//! - **OverlayLayer** extracts a layer into its own empty directory, to become an overlayfs
//!   lower layer. `.wh.name` becomes a 0/0 character device `name`; the opaque marker becomes
//!   the xattr `trusted.overlay.opaque=y` on the directory. The kernel then hides lower content
//!   exactly as Flatten deletes it. A whiteout for something this layer wrote itself is a no-op
//!   for a non-directory (its own entry already hides the lower one) and makes a directory
//!   opaque (keeping its own children, hiding the lower ones) — the same result Flatten gives.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, makedev, mknodat};
use xattr::FileExt;

use super::apply_error::ApplyError;
use super::apply_remove::{list_children, remove_tree};
use super::resolve::{InRootDir, LayerRoot, Walk, is_type, lstat_at};

/// The opaque-directory marker. Matched exactly, before the generic prefix, or it would read
/// as a whiteout of a file named `.wh..opq` (§2.2 #20, go-containerregistry #2372).
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Reserved prefix of the AUFS-style meta files (`.wh..wh.plnk`, `.wh..wh.aufs`): none but the
/// opaque marker is defined by the spec, so the rest are refused rather than mis-applied.
const META_PREFIX: &[u8] = b".wh..wh.";
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The overlayfs xattr marking a directory opaque.
pub(crate) const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What the final component of an entry name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker<'a> {
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// `.wh.<name>`: `<name>` in the parent directory is deleted.
    Whiteout(&'a OsStr),
    /// An ordinary name.
    Plain,
}

/// Classifies a final name component. Errors carry the reason for
/// [`ApplyError::InvalidWhiteout`].
pub(crate) fn classify(base: &OsStr) -> Result<Marker<'_>, &'static str> {
    let bytes = base.as_bytes();
    if bytes == OPAQUE_MARKER {
        return Ok(Marker::Opaque);
    }
    if bytes.starts_with(META_PREFIX) {
        return Err("unknown `.wh..wh.` meta file; only `.wh..wh..opq` is defined");
    }
    let Some(target) = bytes.strip_prefix(WHITEOUT_PREFIX) else {
        return Ok(Marker::Plain);
    };
    match target {
        // image-spec #1314: a bare `.wh.` MUST be an error, never "delete the parent".
        b"" => Err("`.wh.` names nothing"),
        // containerd #2001: `.wh..` / `.wh...` would delete the parent or the root.
        b"." | b".." => Err("a whiteout may not name `.` or `..`"),
        _ => Ok(Marker::Whiteout(OsStr::from_bytes(target))),
    }
}

/// The canonical in-root paths a layer has written so far (Flatten mode), to spare them from
/// its own whiteouts.
#[derive(Debug, Default)]
pub(crate) struct Written {
    paths: BTreeSet<Vec<u8>>,
}

impl Written {
    pub(crate) fn insert(&mut self, dir: &InRootDir, name: &OsStr) {
        self.paths.insert(key(dir.components(), Some(name)));
    }

    /// Whether `path` was written by this layer or lies on the way to something that was.
    fn keeps(&self, path: &[u8]) -> bool {
        if self.paths.contains(path) {
            return true;
        }
        let mut prefix = path.to_vec();
        prefix.push(b'/');
        self.paths
            .range(prefix.clone()..)
            .next()
            .is_some_and(|first| first.starts_with(&prefix))
    }
}

fn key(components: &[OsString], last: Option<&OsStr>) -> Vec<u8> {
    let mut out = Vec::new();
    for component in components.iter().map(OsString::as_os_str).chain(last) {
        out.push(b'/');
        out.extend_from_slice(component.as_bytes());
    }
    out
}

/// Flatten: `.wh.<target>` in the directory named by `parent`. Returns whether anything on
/// disk changed (callers drop cached lookups when it did).
pub(crate) fn flatten_whiteout(
    root: &LayerRoot,
    parent: &[OsString],
    target: &OsStr,
    written: &Written,
) -> Result<bool, ApplyError> {
    // A whiteout under a missing or dead-link parent has nothing to hide (containerd
    // WhiteoutDeadSymlinkParent).
    let Some(dir) = root.walk(parent, Walk::FollowExisting)? else {
        return Ok(false);
    };
    let Some(stat) = lstat(&dir, target)? else {
        return Ok(false);
    };
    let mut components = dir.components().to_vec();
    components.push(target.to_os_string());
    if written.keeps(&key(&components, None)) {
        if is_type(&stat, SFlag::S_IFDIR) {
            clear_lower(root, components, written)?;
            return Ok(true);
        }
        return Ok(false);
    }
    remove_tree(&dir, target)?;
    Ok(true)
}

/// Flatten: the directory `dir` is opaque; delete what earlier layers put in it.
pub(crate) fn flatten_opaque(
    root: &LayerRoot,
    dir: &InRootDir,
    written: &Written,
) -> Result<(), ApplyError> {
    clear_lower(root, dir.components().to_vec(), written)
}

/// Deletes everything below `start` that this layer did not write. Work items are canonical
/// locations, re-opened when visited, so the number of open descriptors stays constant.
fn clear_lower(
    root: &LayerRoot,
    start: Vec<OsString>,
    written: &Written,
) -> Result<(), ApplyError> {
    let mut work = vec![start];
    while let Some(components) = work.pop() {
        let Some(dir) = root.walk(&components, Walk::Canonical)? else {
            continue;
        };
        for child in list_children(&dir)? {
            let mut child_components = components.clone();
            child_components.push(child.clone());
            if !written.keeps(&key(&child_components, None)) {
                remove_tree(&dir, &child)?;
            } else if lstat(&dir, &child)?.is_some_and(|stat| is_type(&stat, SFlag::S_IFDIR)) {
                work.push(child_components);
            }
        }
    }
    Ok(())
}

/// OverlayLayer: `.wh.<target>` in `dir` (this layer's own directory).
pub(crate) fn overlay_whiteout(dir: &InRootDir, target: &OsStr) -> Result<(), ApplyError> {
    match lstat(dir, target)? {
        None => mknodat(
            dir.fd(),
            target,
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )
        .map_err(|err| ApplyError::io("creating overlay whiteout", dir.display_child(target), err)),
        Some(stat) if is_type(&stat, SFlag::S_IFDIR) => set_opaque(&dir.child_dir(target)?),
        // Already a whiteout, or this layer's own non-directory, which hides the lower entry.
        Some(_) => Ok(()),
    }
}

/// OverlayLayer: marks `dir` opaque for overlayfs.
pub(crate) fn set_opaque(dir: &InRootDir) -> Result<(), ApplyError> {
    let fd = openat(
        dir.fd(),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| ApplyError::io("opening", dir.display(), err))?;
    File::from(fd)
        .set_xattr(OVERLAY_OPAQUE_XATTR, b"y")
        .map_err(|err| ApplyError::io("setting trusted.overlay.opaque on", dir.display(), err))
}

/// Whether `stat` is an overlayfs whiteout (a 0/0 character device).
pub(crate) fn is_overlay_whiteout(stat: &FileStat) -> bool {
    is_type(stat, SFlag::S_IFCHR) && stat.st_rdev == 0
}

fn lstat(dir: &InRootDir, name: &OsStr) -> Result<Option<FileStat>, ApplyError> {
    lstat_at(dir.fd(), name).map_err(|err| ApplyError::io("lstat", dir.display_child(name), err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_matched_exactly() {
        let table: &[(&str, Result<Marker<'_>, ()>)] = &[
            (".wh..wh..opq", Ok(Marker::Opaque)),
            (".wh.etc", Ok(Marker::Whiteout(OsStr::new("etc")))),
            (".wh..opq", Ok(Marker::Whiteout(OsStr::new(".opq")))),
            (".wh..wh.plnk", Err(())),
            (".wh..wh..opqx", Err(())),
            (".wh.", Err(())),
            (".wh..", Err(())),
            (".wh...", Err(())),
            ("etc", Ok(Marker::Plain)),
            ("x.wh.etc", Ok(Marker::Plain)),
        ];
        for (name, expected) in table {
            assert_eq!(
                classify(OsStr::new(name)).map_err(drop),
                *expected,
                "{name}"
            );
        }
    }

    #[test]
    fn written_set_keeps_paths_and_their_ancestors() {
        let mut written = Written::default();
        written.paths.insert(b"/a/b/c/foo".to_vec());
        written.paths.insert(b"/ab".to_vec());
        assert!(written.keeps(b"/a/b/c/foo"));
        assert!(written.keeps(b"/a/b"));
        assert!(written.keeps(b"/a"));
        assert!(!written.keeps(b"/a/b/other"));
        assert!(!written.keeps(b"/a/b/c/foo/x"));
        assert!(written.keeps(b"/ab"));
        assert!(!written.keeps(b"/a/bc"));
    }
}
