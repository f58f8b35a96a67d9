//! A root filesystem reduced to what an image's layers define: for every path its type,
//! permission bits, owner, content digest, link target, device number, hardlink group and
//! extended attributes — and nothing a layer cannot carry or a builder cannot control.
//!
//! Ignored, each for a reason (docs/arch/compat.md, "Ignored fields"):
//! - mtime/atime/ctime: wall-clock times of the build; Docker only fixes them with
//!   SOURCE_DATE_EPOCH, which the suite does not set.
//! - a directory's size: the filesystem's allocation, not image content.
//! - a symlink's permission bits: Linux has no lchmod, every symlink is 0777.
//! - inode numbers and link counts as such: only which paths share an inode matters, recorded
//!   as the hardlink group.
//! - `security.selinux`: labels come from the host's policy, not the image.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Extended attributes never compared: assigned by the host's security policy.
const IGNORED_XATTRS: &[&str] = &["security.selinux"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Fifo,
    Char,
    Block,
    Socket,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Char => "char",
            Kind::Block => "block",
            Kind::Socket => "socket",
        }
    }
}

/// What one path holds. Fields that do not apply to the kind are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`); 0o777 for symlinks.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Regular files only.
    pub size: Option<u64>,
    /// Regular files only: sha256 of the content, hex.
    pub sha256: Option<String>,
    /// Symlinks only.
    pub target: Option<String>,
    /// Character and block devices only: (major, minor).
    pub rdev: Option<(u64, u64)>,
    /// The smallest path sharing this entry's inode, when at least two paths do.
    pub hardlink_group: Option<String>,
    /// Name → value, `security.selinux` left out.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// Every path of a root filesystem, keyed by its absolute path inside the image (`/`, `/etc`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: BTreeMap<String, Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: the file name is not UTF-8; the suite's case files cannot name it")]
    NotUtf8 { path: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Snapshot {
    /// Walks `root` without following symlinks. The root itself is recorded as `/`.
    pub fn capture(root: &Path) -> Result<Self, SnapshotError> {
        let mut entries = BTreeMap::new();
        let mut inodes: HashMap<(u64, u64), Vec<String>> = HashMap::new();
        let mut pending = vec![(root.to_path_buf(), "/".to_owned())];
        while let Some((host_path, image_path)) = pending.pop() {
            let meta = fs::symlink_metadata(&host_path).map_err(io_error(&host_path))?;
            let entry = read_entry(&host_path, &meta)?;
            if entry.kind == Kind::Dir {
                for child in fs::read_dir(&host_path).map_err(io_error(&host_path))? {
                    let child = child.map_err(io_error(&host_path))?;
                    let name = child.file_name();
                    let name = std::str::from_utf8(name.as_bytes()).map_err(|_| {
                        SnapshotError::NotUtf8 {
                            path: child.path().display().to_string(),
                        }
                    })?;
                    let child_image_path = if image_path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{image_path}/{name}")
                    };
                    pending.push((child.path(), child_image_path));
                }
            } else if meta.nlink() > 1 {
                inodes
                    .entry((meta.dev(), meta.ino()))
                    .or_default()
                    .push(image_path.clone());
            }
            entries.insert(image_path, entry);
        }
        // Inode numbers differ between unpacks; the smallest member's path names the group in
        // both, so two snapshots agree exactly when the same paths are linked together.
        for mut group in inodes.into_values().filter(|g| g.len() > 1) {
            group.sort();
            let name = group[0].clone();
            for path in group {
                if let Some(entry) = entries.get_mut(&path) {
                    entry.hardlink_group = Some(name.clone());
                }
            }
        }
        Ok(Snapshot { entries })
    }

    /// Removes `path` and everything below it.
    pub fn remove_tree(&mut self, path: &str) {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        self.entries
            .retain(|p, _| p != path && !(path == "/" || p.starts_with(&prefix)));
    }
}

fn read_entry(path: &Path, meta: &fs::Metadata) -> Result<Entry, SnapshotError> {
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else if file_type.is_fifo() {
        Kind::Fifo
    } else if file_type.is_char_device() {
        Kind::Char
    } else if file_type.is_block_device() {
        Kind::Block
    } else {
        Kind::Socket
    };
    let mut entry = Entry {
        kind,
        mode: if kind == Kind::Symlink {
            0o777
        } else {
            meta.mode() & 0o7777
        },
        uid: meta.uid(),
        gid: meta.gid(),
        size: None,
        sha256: None,
        target: None,
        rdev: None,
        hardlink_group: None,
        xattrs: read_xattrs(path)?,
    };
    match kind {
        Kind::File => {
            entry.size = Some(meta.len());
            entry.sha256 = Some(sha256_file(path)?);
        }
        Kind::Symlink => {
            let target = fs::read_link(path).map_err(io_error(path))?;
            let target = target.to_str().ok_or_else(|| SnapshotError::NotUtf8 {
                path: path.display().to_string(),
            })?;
            entry.target = Some(target.to_owned());
        }
        Kind::Char | Kind::Block => {
            let rdev = meta.rdev();
            entry.rdev = Some((libc::major(rdev) as u64, libc::minor(rdev) as u64));
        }
        Kind::Dir | Kind::Fifo | Kind::Socket => {}
    }
    Ok(entry)
}

fn read_xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, SnapshotError> {
    let mut xattrs = BTreeMap::new();
    for name in xattr::list(path).map_err(io_error(path))? {
        let Some(name) = name.to_str() else {
            return Err(SnapshotError::NotUtf8 {
                path: format!("{} (an xattr name)", path.display()),
            });
        };
        if IGNORED_XATTRS.contains(&name) {
            continue;
        }
        if let Some(value) = xattr::get(path, name).map_err(io_error(path))? {
            xattrs.insert(name.to_owned(), value);
        }
    }
    Ok(xattrs)
}

/// Streams the file: a layer may hold files larger than memory should.
pub fn sha256_file(path: &Path) -> Result<String, SnapshotError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An xattr value as text when it is printable UTF-8, else as `hex:…`.
pub fn show_bytes(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => format!("hex:{}", hex::encode(value)),
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04o} {}:{}",
            self.kind.name(),
            self.mode,
            self.uid,
            self.gid
        )?;
        if let (Some(size), Some(sha)) = (self.size, &self.sha256) {
            write!(f, " size={size} sha256={}", &sha[..12])?;
        }
        if let Some(target) = &self.target {
            write!(f, " -> {target:?}")?;
        }
        if let Some((major, minor)) = self.rdev {
            write!(f, " rdev={major}:{minor}")?;
        }
        if let Some(group) = &self.hardlink_group {
            write!(f, " hardlink-group={group}")?;
        }
        for (name, value) in &self.xattrs {
            write!(f, " xattr {name}={}", show_bytes(value))?;
        }
        Ok(())
    }
}

/// One path on which two snapshots disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDifference {
    pub path: String,
    pub left: Option<Entry>,
    pub right: Option<Entry>,
}

impl fmt::Display for PathDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |e: &Option<Entry>| e.as_ref().map_or("absent".to_owned(), Entry::to_string);
        write!(
            f,
            "{}: {} | {}",
            self.path,
            show(&self.left),
            show(&self.right)
        )
    }
}

/// Every path whose entries differ, in path order; paths for which `skip` holds are left out.
pub fn compare(
    left: &Snapshot,
    right: &Snapshot,
    skip: impl Fn(&str) -> bool,
) -> Vec<PathDifference> {
    let mut paths: Vec<&String> = left.entries.keys().chain(right.entries.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| !skip(p))
        .filter_map(|path| {
            let (l, r) = (left.entries.get(path), right.entries.get(path));
            (l != r).then(|| PathDifference {
                path: path.clone(),
                left: l.cloned(),
                right: r.cloned(),
            })
        })
        .collect()
}

/// Whether `path` is `root` or lies below it.
pub fn is_within(path: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    root.is_empty()
        || path == root
        || (path.len() > root.len()
            && path.starts_with(root)
            && path.as_bytes()[root.len()] == b'/')
}
