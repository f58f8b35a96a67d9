//! What a filesystem tree looks like to an image: per path the type, mode, owner, content, link
//! target, device number and the xattrs a layer carries, plus the hardlink groups. Two trees are
//! equal for the suite when their snapshots are.
//!
//! Left out on purpose: directory mtimes (a tar applier sets them from the layer, while the merged
//! view shows whatever the kernel last wrote, and BuildKit's differ does not record an mtime-only
//! directory change), sub-second times (layers hold whole seconds), atime/ctime, and sockets
//! (never part of a layer).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// sha256 of a regular file, target of a symlink, major:minor of a device.
    pub data: String,
    /// Whole seconds, for non-directories.
    pub mtime: Option<i64>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: BTreeMap<Vec<u8>, Entry>,
    /// Sets of names sharing one inode (only sets of two or more).
    pub hardlinks: BTreeSet<BTreeSet<Vec<u8>>>,
}

fn keep_xattr(name: &str) -> bool {
    name == "security.capability"
        || (name.starts_with("user.") && !name.starts_with("user.overlay."))
}

pub fn take(root: &Path) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    let mut inodes: HashMap<(u64, u64), BTreeSet<Vec<u8>>> = HashMap::new();
    let walker = walkdir::WalkDir::new(root).follow_links(false).min_depth(1);
    for item in walker {
        let item = item?;
        let path = item.path();
        let rel = path.strip_prefix(root)?.as_os_str().as_bytes().to_vec();
        let meta = std::fs::symlink_metadata(path)?;
        let ft = meta.file_type();
        if ft.is_socket() {
            continue;
        }
        let (kind, data) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_symlink() {
            let target = std::fs::read_link(path)?;
            ("symlink", format!("{:?}", target.as_os_str()))
        } else if ft.is_file() {
            ("file", hex::encode(Sha256::digest(std::fs::read(path)?)))
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() { "char" } else { "block" };
            let dev = meta.rdev();
            (kind, format!("{}:{}", libc::major(dev), libc::minor(dev)))
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            bail!("unexpected file type at {}", path.display());
        };
        let mut xattrs = BTreeMap::new();
        if !ft.is_symlink() {
            for name in xattr::list(path).with_context(|| format!("listxattr {path:?}"))? {
                let name: OsString = name;
                let name = name.to_string_lossy().into_owned();
                if keep_xattr(&name)
                    && let Some(value) = xattr::get(path, &name)?
                {
                    xattrs.insert(name, value);
                }
            }
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .insert(rel.clone());
        }
        let entry = Entry {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            data,
            mtime: (!ft.is_dir()).then_some(meta.mtime()),
            xattrs,
        };
        snap.entries.insert(rel, entry);
    }
    snap.hardlinks = inodes
        .into_values()
        .filter(|names| names.len() > 1)
        .collect();
    Ok(snap)
}

/// Fails with a readable list of every difference.
pub fn assert_same(expected: &Snapshot, got: &Snapshot, what: &str) -> Result<()> {
    let mut report = String::new();
    let keys: BTreeSet<_> = expected.entries.keys().chain(got.entries.keys()).collect();
    for key in keys {
        let name = String::from_utf8_lossy(key);
        match (expected.entries.get(key), got.entries.get(key)) {
            (Some(e), Some(g)) if e == g => {}
            (e, g) => writeln!(report, "  {name}:\n    merged:  {e:?}\n    applied: {g:?}")?,
        }
    }
    if expected.hardlinks != got.hardlinks {
        let show = |s: &BTreeSet<BTreeSet<Vec<u8>>>| -> Vec<Vec<String>> {
            s.iter()
                .map(|g| {
                    g.iter()
                        .map(|n| String::from_utf8_lossy(n).into_owned())
                        .collect()
                })
                .collect()
        };
        writeln!(
            report,
            "  hardlink groups:\n    merged:  {:?}\n    applied: {:?}",
            show(&expected.hardlinks),
            show(&got.hardlinks)
        )?;
    }
    if !report.is_empty() {
        bail!("{what}: the applied layer differs from the merged view:\n{report}");
    }
    Ok(())
}
