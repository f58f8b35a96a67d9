//! A read-only view of the image root *before* it is mounted: the stage's layer directories merged
//! the way overlayfs merges them (top-first; a 0/0 char device is a whiteout; a directory with
//! `trusted.overlay.opaque=y` hides the layers below it; a non-directory ends the merge).
//!
//! The sandbox needs this on the host side for two things: reading `/etc/passwd` and `/etc/group`
//! as data (threats §2.1 #15), and deciding which mount-point stubs the upper directory needs.
//! Symlinks in the image are resolved as if the image root were `/` (chroot semantics); a host path
//! is only ever built from components verified to be real directories in that layer, so an image
//! symlink is never followed on the host. The layer directories are immutable while a step runs.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one resolution before giving up (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// What one path is in the merged view.
#[derive(Debug)]
pub(crate) enum Node {
    Absent,
    /// A directory; `layers` are the layer indices that contribute entries, top-first. The first
    /// one's metadata is what the merged view shows.
    Dir {
        layers: Vec<usize>,
    },
    /// Anything else, from the topmost layer that has the name.
    NonDir {
        layer: usize,
        meta: Metadata,
    },
}

#[derive(Debug)]
pub(crate) struct LowerStack<'a> {
    layers: &'a [PathBuf],
}

/// What reading a file of the image found.
#[derive(Debug)]
pub(crate) enum ImageFile {
    Missing,
    Contents(Vec<u8>),
}

impl<'a> LowerStack<'a> {
    /// `layers` top-first, as overlayfs' `lowerdir`.
    pub(crate) fn new(layers: &'a [PathBuf]) -> Self {
        Self { layers }
    }

    pub(crate) fn host_path(&self, layer: usize, components: &[OsString]) -> PathBuf {
        let mut p = self.layers[layer].clone();
        p.extend(components);
        p
    }

    /// The merged node at `components` (no `.`/`..`), without following symlinks.
    pub(crate) fn lookup(&self, components: &[OsString]) -> io::Result<Node> {
        let mut layers: Vec<usize> = (0..self.layers.len()).collect();
        for (depth, _) in components.iter().enumerate() {
            match self.child(&components[..=depth], &layers)? {
                Node::Dir { layers: next } => layers = next,
                other if depth + 1 == components.len() => return Ok(other),
                _ => return Ok(Node::Absent),
            }
        }
        Ok(Node::Dir { layers })
    }

    /// The node named by the last of `components`, given the layers where its parent is a directory.
    fn child(&self, components: &[OsString], parent_layers: &[usize]) -> io::Result<Node> {
        let mut dir_layers = Vec::new();
        for &layer in parent_layers {
            let path = self.host_path(layer, components);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                dir_layers.push(layer);
                if is_opaque(&path)? {
                    break;
                }
                continue;
            }
            if !dir_layers.is_empty() {
                // A non-directory below a directory ends the merge (overlayfs `ovl_lookup_single`).
                break;
            }
            if ft.is_char_device() && meta.rdev() == 0 {
                return Ok(Node::Absent);
            }
            return Ok(Node::NonDir { layer, meta });
        }
        Ok(if dir_layers.is_empty() {
            Node::Absent
        } else {
            Node::Dir { layers: dir_layers }
        })
    }

    /// Resolves an absolute image path, following symlinks inside the image root. Returns the
    /// resolved components and the node (never a symlink unless the chain is too long).
    pub(crate) fn resolve(&self, path: &str) -> io::Result<(Vec<OsString>, Node)> {
        let mut pending: Vec<OsString> = split(Path::new(path));
        pending.reverse();
        // (name, layers where this prefix is a directory); the root is a directory everywhere.
        let mut stack: Vec<(OsString, Vec<usize>)> = Vec::new();
        let all: Vec<usize> = (0..self.layers.len()).collect();
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                stack.pop();
                continue;
            }
            let mut comps: Vec<OsString> = stack.iter().map(|(n, _)| n.clone()).collect();
            comps.push(name.clone());
            let parent_layers = stack.last().map_or(&all, |(_, l)| l);
            match self.child(&comps, parent_layers)? {
                Node::Dir { layers } => stack.push((name, layers)),
                Node::NonDir { layer, meta } if meta.file_type().is_symlink() => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = fs::read_link(self.host_path(layer, &comps))?;
                    if target.is_absolute() {
                        stack.clear();
                    }
                    let mut more = split(&target);
                    more.reverse();
                    pending.extend(more);
                }
                node if pending.is_empty() => return Ok((comps, node)),
                _ => return Ok((comps, Node::Absent)),
            }
        }
        let comps = stack.iter().map(|(n, _)| n.clone()).collect();
        let layers = stack.pop().map_or(all, |(_, l)| l);
        Ok((comps, Node::Dir { layers }))
    }

    /// Reads a regular file of the image (e.g. `/etc/passwd`), at most `limit` bytes; a path that
    /// does not exist is `Missing`. Anything but a regular file is an error.
    pub(crate) fn read_file(&self, path: &str, limit: u64) -> io::Result<ImageFile> {
        let (comps, node) = self.resolve(path)?;
        let (layer, meta) = match node {
            Node::Absent => return Ok(ImageFile::Missing),
            Node::Dir { .. } => {
                return Err(io::Error::other(format!(
                    "{path} is a directory in the image"
                )));
            }
            Node::NonDir { layer, meta } => (layer, meta),
        };
        if !meta.file_type().is_file() {
            return Err(io::Error::other(format!(
                "{path} is not a regular file in the image"
            )));
        }
        if meta.len() > limit {
            return Err(io::Error::other(format!(
                "{path} is larger than {limit} bytes"
            )));
        }
        let host = self.host_path(layer, &comps);
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(host)?;
        let mut out = Vec::new();
        file.take(limit).read_to_end(&mut out)?;
        Ok(ImageFile::Contents(out))
    }
}

/// `trusted.overlay.opaque=y` on a directory (overlayfs' opaque marker, written by layer apply).
fn is_opaque(dir: &Path) -> io::Result<bool> {
    match xattr::get(dir, "trusted.overlay.opaque") {
        Ok(v) => Ok(v.as_deref() == Some(b"y")),
        // Filesystems without xattr support cannot carry the marker.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The normal components of a path (`.`, the root and empty parts dropped; `..` kept).
pub(crate) fn split(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsStr::from_bytes(b"..").to_owned()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn comps(p: &str) -> Vec<OsString> {
        split(Path::new(p))
    }

    fn kind(node: &Node) -> String {
        match node {
            Node::Absent => "absent".into(),
            Node::Dir { layers } => format!("dir{layers:?}"),
            Node::NonDir { layer, meta } if meta.file_type().is_symlink() => {
                format!("link@{layer}")
            }
            Node::NonDir { layer, .. } => format!("file@{layer}"),
        }
    }

    /// Layer 0 is the top. Whiteouts need mknod (root), so they are made only when we can.
    fn fixture() -> (tempfile::TempDir, Vec<PathBuf>) {
        let tmp = tempfile::tempdir().unwrap();
        let layers: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("l{i}"))).collect();
        for l in &layers {
            fs::create_dir_all(l.join("etc")).unwrap();
        }
        // bottom: etc/passwd, etc/group, dev dir, a/b/file, escape -> /, loop
        fs::write(layers[2].join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(layers[2].join("etc/group"), "bottom").unwrap();
        fs::create_dir_all(layers[2].join("a/b")).unwrap();
        fs::write(layers[2].join("a/b/file"), "deep").unwrap();
        fs::create_dir(layers[2].join("dev")).unwrap();
        symlink("/", layers[2].join("escape")).unwrap();
        symlink("loop", layers[2].join("loop")).unwrap();
        // middle: group overridden; `a` replaced by a symlink to /etc (stops the merge of a/)
        fs::write(layers[1].join("etc/group"), "middle").unwrap();
        // top: dev is a symlink to the host; etc/rel -> ../a
        symlink("/tmp", layers[0].join("dev")).unwrap();
        symlink("../../../../../etc/passwd", layers[0].join("etc/pw")).unwrap();
        (tmp, layers)
    }

    #[test]
    fn lookup_merges_top_first() {
        let (_tmp, layers) = fixture();
        let stack = LowerStack::new(&layers);
        let cases = [
            ("etc", "dir[0, 1, 2]"),
            ("etc/group", "file@1"),
            ("etc/passwd", "file@2"),
            ("dev", "link@0"),
            ("a/b/file", "file@2"),
            ("nope", "absent"),
            ("etc/passwd/x", "absent"),
        ];
        for (path, want) in cases {
            assert_eq!(kind(&stack.lookup(&comps(path)).unwrap()), want, "{path}");
        }
    }

    #[test]
    fn resolve_follows_symlinks_inside_the_root_only() {
        let (_tmp, layers) = fixture();
        let stack = LowerStack::new(&layers);
        // `escape -> /` resolves to the image root, `..` cannot climb above it
        let (c, n) = stack.resolve("/escape/etc/../../../etc/passwd").unwrap();
        assert_eq!((c, kind(&n)), (comps("etc/passwd"), "file@2".into()));
        let (c, n) = stack.resolve("/etc/pw").unwrap();
        assert_eq!((c, kind(&n)), (comps("etc/passwd"), "file@2".into()));
        // `dev -> /tmp` must not reach the host's /tmp
        let (c, n) = stack.resolve("/dev/x").unwrap();
        assert_eq!((c, kind(&n)), (comps("tmp"), "absent".into()));
        let err = stack.resolve("/loop").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn read_file_reads_regular_files_only() {
        let (_tmp, layers) = fixture();
        let stack = LowerStack::new(&layers);
        match stack.read_file("/etc/group", 1024).unwrap() {
            ImageFile::Contents(c) => assert_eq!(c, b"middle"),
            ImageFile::Missing => panic!("missing"),
        }
        assert!(matches!(
            stack.read_file("/etc/shadow", 1024).unwrap(),
            ImageFile::Missing
        ));
        assert!(stack.read_file("/etc", 1024).is_err());
        assert!(stack.read_file("/etc/group", 3).is_err());
    }

    #[test]
    fn non_directory_above_ends_the_merge() {
        let (_tmp, layers) = fixture();
        symlink("/etc", layers[1].join("a")).unwrap();
        let stack = LowerStack::new(&layers);
        assert_eq!(kind(&stack.lookup(&comps("a")).unwrap()), "link@1");
        assert_eq!(kind(&stack.lookup(&comps("a/b/file")).unwrap()), "absent");
        // a directory above a symlink hides the symlink
        fs::create_dir(layers[0].join("a")).unwrap();
        assert_eq!(kind(&stack.lookup(&comps("a")).unwrap()), "dir[0]");
        assert_eq!(kind(&stack.lookup(&comps("a/b/file")).unwrap()), "absent");
    }

    #[test]
    fn whiteouts_and_opaque_directories() {
        if !nix::unistd::Uid::effective().is_root() {
            // mknod 0/0 and trusted.* xattrs need root; CI and the test machines run as root.
            panic!("this test needs root (whiteouts are 0/0 char devices)");
        }
        let (_tmp, layers) = fixture();
        nix::sys::stat::mknod(
            &layers[0].join("etc/passwd"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        fs::create_dir(layers[1].join("a")).unwrap();
        xattr::set(layers[1].join("a"), "trusted.overlay.opaque", b"y").unwrap();
        let stack = LowerStack::new(&layers);
        assert_eq!(kind(&stack.lookup(&comps("etc/passwd")).unwrap()), "absent");
        assert!(matches!(
            stack.read_file("/etc/passwd", 100).unwrap(),
            ImageFile::Missing
        ));
        assert_eq!(kind(&stack.lookup(&comps("a")).unwrap()), "dir[1]");
        assert_eq!(kind(&stack.lookup(&comps("a/b")).unwrap()), "absent");
    }
}
