//! "Does this path exist below the upper dir?" — resolved against a stack of unpacked lower layer
//! directories without merging them.
//!
//! Each lower is one layer's own directory and may carry overlay whiteouts (char device 0/0) and
//! opaque directories (`trusted.overlay.opaque=y`) of its own, exactly as overlayfs reads them
//! (Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories"). A path exists
//! below only if some lower holds it while every ancestor is a directory visible through the
//! layers above: a whiteout or a non-directory in a higher lower hides everything beneath it,
//! and an opaque directory hides the same directory in the lowers under it.
//!
//! The resolution is done one directory at a time ([`DirView`]), so the differ pays one probe per
//! contributing lower for each upper entry and never walks a lower tree. A lower is only ever
//! probed below a component it holds as a real directory, so a symlink inside a lower is never
//! followed.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What one lower layer holds at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Nothing at this path in this layer.
    Missing,
    /// An overlay whiteout (char device 0/0): the path is deleted in this and all lower layers.
    Whiteout,
    /// A directory; `opaque` hides the same directory in the layers under this one.
    Dir { opaque: bool },
    /// Any other entry (file, symlink, device, fifo, socket).
    Other,
}

/// Reads one lower layer at a relative path. A trait so the resolution is table-tested without a
/// filesystem; [`LowerDirs`] is the real implementation.
pub trait LowerFs {
    fn probe(&self, layer: usize, rel: &Path) -> io::Result<Probe>;
    fn layer_count(&self) -> usize;
}

/// The unpacked lower layer directories, top-first (the order of overlay's `lowerdir=`).
#[derive(Debug, Clone, Copy)]
pub struct LowerDirs<'a> {
    dirs: &'a [PathBuf],
}

impl<'a> LowerDirs<'a> {
    pub fn new(dirs: &'a [PathBuf]) -> Self {
        Self { dirs }
    }

    /// The absolute path of `rel` inside lower `layer`.
    pub fn path(&self, layer: usize, rel: &Path) -> PathBuf {
        self.dirs[layer].join(rel)
    }
}

impl LowerFs for LowerDirs<'_> {
    fn probe(&self, layer: usize, rel: &Path) -> io::Result<Probe> {
        let path = self.path(layer, rel);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Probe::Missing),
            Err(e) => return Err(e),
        };
        let file_type = meta.file_type();
        if file_type.is_char_device() && meta.rdev() == 0 {
            return Ok(Probe::Whiteout);
        }
        if file_type.is_dir() {
            // Only "y" means opaque; kernel 6.7 also writes "x" (a directory that merely holds
            // xwhiteouts), which hides nothing.
            let opaque = xattr::get(&path, OPAQUE_XATTR)?.as_deref() == Some(b"y");
            return Ok(Probe::Dir { opaque });
        }
        Ok(Probe::Other)
    }

    fn layer_count(&self) -> usize {
        self.dirs.len()
    }
}

/// The overlay xattr that marks an opaque directory (trusted namespace: Stratum mounts as root,
/// never with `userxattr`).
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The lower layers (top-first indices) that contribute entries to one directory of the merged
/// lower view: each holds the directory as a real directory and none is hidden by a layer above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirView {
    layers: Vec<usize>,
}

/// The result of looking up one child name in a [`DirView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The child does not exist below.
    Absent,
    /// The child exists below; `layer` is the topmost lower that provides it. `dir` is set when it
    /// is a directory, with the view of its own children.
    Present { layer: usize, dir: Option<DirView> },
}

impl DirView {
    /// The root of the lower stack: every layer contributes.
    pub fn root(fs: &impl LowerFs) -> Self {
        Self {
            layers: (0..fs.layer_count()).collect(),
        }
    }

    /// A view with no contributing layer: everything under it is absent below.
    pub fn empty() -> Self {
        Self { layers: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Looks up `rel` (a direct child of the directory this view describes) layer by layer from the
    /// top, stopping where overlayfs would stop.
    pub fn lookup(&self, fs: &impl LowerFs, rel: &Path) -> io::Result<Lookup> {
        let mut found: Option<(usize, bool)> = None;
        let mut child_layers = Vec::new();
        for &layer in &self.layers {
            match fs.probe(layer, rel)? {
                Probe::Missing => continue,
                // A whiteout deletes the name here and in every layer below; a non-directory
                // under a directory is hidden by it (a lower file never merges into a directory).
                Probe::Whiteout => break,
                Probe::Other => {
                    if found.is_none() {
                        found = Some((layer, false));
                    }
                    break;
                }
                Probe::Dir { opaque } => {
                    match found {
                        None => found = Some((layer, true)),
                        // A directory under a non-directory is hidden; `Other` already broke out.
                        Some((_, false)) => break,
                        Some((_, true)) => {}
                    }
                    child_layers.push(layer);
                    if opaque {
                        break;
                    }
                }
            }
        }
        Ok(match found {
            None => Lookup::Absent,
            Some((layer, is_dir)) => Lookup::Present {
                layer,
                dir: is_dir.then_some(DirView {
                    layers: child_layers,
                }),
            },
        })
    }
}

/// Resolves a whole relative path against the lower stack: the topmost layer that provides it, or
/// `None` when it does not exist below (a whiteout, an opaque directory or a non-directory
/// ancestor hides it, or no layer has it).
pub fn resolve(fs: &impl LowerFs, rel: &Path) -> io::Result<Option<usize>> {
    let mut view = DirView::root(fs);
    let mut prefix = PathBuf::new();
    let mut components = rel.iter().peekable();
    while let Some(name) = components.next() {
        prefix.push(name);
        match view.lookup(fs, &prefix)? {
            Lookup::Absent => return Ok(None),
            Lookup::Present { layer, dir } => {
                if components.peek().is_none() {
                    return Ok(Some(layer));
                }
                match dir {
                    Some(child) => view = child,
                    None => return Ok(None),
                }
            }
        }
    }
    // The empty path is the root directory, present whenever there is any layer.
    Ok((fs.layer_count() > 0).then_some(0))
}

/// True for a name overlayfs or the OCI layer format would read as a whiteout.
pub fn is_whiteout_name(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".wh.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Lower layers described as maps from path to what the layer holds there.
    struct FakeLowers(Vec<BTreeMap<&'static str, Probe>>);

    impl LowerFs for FakeLowers {
        fn probe(&self, layer: usize, rel: &Path) -> io::Result<Probe> {
            let key = rel.to_str().unwrap();
            // Mirror the real filesystem: a probe only happens below a real directory of this
            // layer, which the resolution guarantees; assert it so the table can't lie.
            if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                let parent_probe = self.0[layer].get(parent.to_str().unwrap());
                assert!(
                    matches!(parent_probe, Some(Probe::Dir { .. })),
                    "probed {key} in layer {layer} whose parent is {parent_probe:?}"
                );
            }
            Ok(self.0[layer].get(key).copied().unwrap_or(Probe::Missing))
        }

        fn layer_count(&self) -> usize {
            self.0.len()
        }
    }

    const D: Probe = Probe::Dir { opaque: false };
    const O: Probe = Probe::Dir { opaque: true };
    const F: Probe = Probe::Other;
    const W: Probe = Probe::Whiteout;

    #[test]
    fn resolution_table() {
        // (case, layers top-first, path, expected topmost layer)
        #[allow(clippy::type_complexity)]
        let table: &[(&str, &[&[(&str, Probe)]], &str, Option<usize>)] = &[
            ("no lowers", &[], "a", None),
            ("only layer has it", &[&[("a", F)]], "a", Some(0)),
            ("missing everywhere", &[&[("b", F)], &[("c", F)]], "a", None),
            (
                "found in the lower one",
                &[&[("b", F)], &[("a", F)]],
                "a",
                Some(1),
            ),
            ("top wins", &[&[("a", F)], &[("a", F)]], "a", Some(0)),
            (
                "whiteout hides lower",
                &[&[("a", W)], &[("a", F)]],
                "a",
                None,
            ),
            (
                "whiteout hides a lower dir's children",
                &[&[("a", W)], &[("a", D), ("a/b", F)]],
                "a/b",
                None,
            ),
            (
                "whiteout below does not hide above",
                &[&[("a", F)], &[("a", W)]],
                "a",
                Some(0),
            ),
            (
                "re-created over a whiteout",
                &[
                    &[("a", D), ("a/b", F)],
                    &[("a", W)],
                    &[("a", D), ("a/c", F)],
                ],
                "a/c",
                None,
            ),
            (
                "dirs merge",
                &[&[("a", D), ("a/b", F)], &[("a", D), ("a/c", F)]],
                "a/c",
                Some(1),
            ),
            (
                "parent missing in middle layer still merges",
                &[&[("a", D)], &[], &[("a", D), ("a/c", F)]],
                "a/c",
                Some(2),
            ),
            (
                "opaque hides lower children",
                &[&[("a", O), ("a/b", F)], &[("a", D), ("a/c", F)]],
                "a/c",
                None,
            ),
            (
                "opaque keeps its own children",
                &[&[("a", O), ("a/b", F)], &[("a", D), ("a/c", F)]],
                "a/b",
                Some(0),
            ),
            (
                "opaque in a lower layer hides the layers under it",
                &[&[("a", D)], &[("a", O)], &[("a", D), ("a/c", F)]],
                "a/c",
                None,
            ),
            (
                "opaque dir itself exists",
                &[&[("a", O)], &[("a", D)]],
                "a",
                Some(0),
            ),
            (
                "file over dir hides children",
                &[&[("a", F)], &[("a", D), ("a/b", F)]],
                "a/b",
                None,
            ),
            (
                "dir over file: the file below is hidden",
                &[&[("a", D), ("a/b", F)], &[("a", F)]],
                "a/b",
                Some(0),
            ),
            (
                "dir over file over dir: the bottom dir is hidden",
                &[&[("a", D)], &[("a", F)], &[("a", D), ("a/c", F)]],
                "a/c",
                None,
            ),
            (
                "nested whiteout",
                &[&[("a", D), ("a/b", W)], &[("a", D), ("a/b", F)]],
                "a/b",
                None,
            ),
            (
                "nested whiteout hides deeper",
                &[
                    &[("a", D), ("a/b", W)],
                    &[("a", D), ("a/b", D), ("a/b/c", F)],
                ],
                "a/b/c",
                None,
            ),
            (
                "sibling unaffected by whiteout",
                &[&[("a", D), ("a/b", W)], &[("a", D), ("a/b", F), ("a/x", F)]],
                "a/x",
                Some(1),
            ),
            (
                "deep path",
                &[
                    &[("a", D), ("a/b", D)],
                    &[("a", D), ("a/b", D), ("a/b/c", D), ("a/b/c/d", F)],
                ],
                "a/b/c/d",
                Some(1),
            ),
            ("path through a file is absent", &[&[("a", F)]], "a/b", None),
            (
                "whiteout of the dir in a middle layer",
                &[&[], &[("a", W)], &[("a", D), ("a/b", F)]],
                "a/b",
                None,
            ),
        ];
        for (case, layers, path, expected) in table {
            let fs = FakeLowers(
                layers
                    .iter()
                    .map(|entries| entries.iter().copied().collect())
                    .collect(),
            );
            let got = resolve(&fs, Path::new(path)).unwrap();
            assert_eq!(got, *expected, "case {case:?}: {path}");
        }
    }

    #[test]
    fn whiteout_names() {
        for (name, expected) in [
            (".wh.x", true),
            (".wh..wh..opq", true),
            (".wh.", true),
            ("wh.x", false),
            (".whx", false),
            ("x.wh.y", false),
        ] {
            assert_eq!(is_whiteout_name(OsStr::new(name)), expected, "{name}");
        }
    }

    #[test]
    fn real_lower_dirs_are_probed_like_overlayfs() {
        // Root-only: mknod of the whiteout and the trusted.* xattr (the suite runs as root).
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        let bottom = tmp.path().join("bottom");
        for d in [&top, &bottom] {
            std::fs::create_dir_all(d.join("etc")).unwrap();
        }
        std::fs::write(bottom.join("etc/passwd"), "root").unwrap();
        std::fs::write(bottom.join("etc/group"), "root").unwrap();
        std::fs::create_dir_all(bottom.join("opt/app")).unwrap();
        std::fs::write(bottom.join("opt/app/bin"), "x").unwrap();
        nix::sys::stat::mknod(
            &top.join("etc/passwd"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        std::fs::create_dir_all(top.join("opt")).unwrap();
        xattr::set(top.join("opt"), OPAQUE_XATTR, b"y").unwrap();
        let dirs = vec![top, bottom];
        let fs = LowerDirs::new(&dirs);
        assert_eq!(resolve(&fs, Path::new("etc/passwd")).unwrap(), None);
        assert_eq!(resolve(&fs, Path::new("etc/group")).unwrap(), Some(1));
        assert_eq!(resolve(&fs, Path::new("etc")).unwrap(), Some(0));
        assert_eq!(resolve(&fs, Path::new("opt/app/bin")).unwrap(), None);
        assert_eq!(resolve(&fs, Path::new("opt")).unwrap(), Some(0));
    }
}
