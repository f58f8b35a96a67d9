//! The sentinel oracle (threats-and-faults §2, the containerd/moby harness style).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use stratum_builder::layer::{ApplyError, ApplyMode, ApplyOptions, ApplyStats, apply_layer};

/// What we record of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u64,
    pub mtime: (i64, i64),
    pub rdev: u64,
    pub sha256: Option<String>,
    pub link: Option<PathBuf>,
    /// Extended attributes, sorted (`trusted.*` included: we run as root).
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Relative path → node, for a whole tree.
pub type Tree = BTreeMap<PathBuf, Node>;

/// Records `root` and everything below it (links not followed), skipping `exclude` and its
/// subtree.
pub fn snapshot(root: &Path, exclude: Option<&Path>) -> Tree {
    let mut tree = Tree::new();
    let walker = walkdir::WalkDir::new(root).follow_links(false).into_iter();
    for item in walker.filter_entry(|item| Some(item.path()) != exclude) {
        let item = item.expect("walking the sandbox");
        let meta = item.path().symlink_metadata().expect("lstat");
        let file_type = meta.file_type();
        let kind = if file_type.is_dir() {
            'd'
        } else if file_type.is_symlink() {
            'l'
        } else if file_type.is_file() {
            'f'
        } else {
            'o'
        };
        let sha256 = file_type
            .is_file()
            .then(|| hex::encode(Sha256::digest(fs::read(item.path()).expect("read"))));
        let link = file_type
            .is_symlink()
            .then(|| fs::read_link(item.path()).expect("readlink"));
        let mut xattrs: Vec<(String, Vec<u8>)> = xattr::list(item.path())
            .expect("listxattr")
            .map(|name| {
                let value = xattr::get(item.path(), &name)
                    .expect("getxattr")
                    .unwrap_or_default();
                (name.to_string_lossy().into_owned(), value)
            })
            .collect();
        xattrs.sort();
        let relative = item
            .path()
            .strip_prefix(root)
            .expect("below root")
            .to_path_buf();
        tree.insert(
            relative,
            Node {
                kind,
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                size: if file_type.is_dir() { 0 } else { meta.size() },
                nlink: meta.nlink(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
                rdev: meta.rdev(),
                sha256,
                link,
                xattrs,
            },
        );
    }
    tree
}

/// `tmp/sandbox/{dest, victim, dest-evil}` with sentinels, recorded at creation.
pub struct Sandbox {
    _tmp: tempfile::TempDir,
    pub top: PathBuf,
    pub sandbox: PathBuf,
    pub dest: PathBuf,
    pub victim: PathBuf,
    pub evil: PathBuf,
    before: Tree,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let top = tmp.path().to_path_buf();
        let sandbox = top.join("sandbox");
        let dest = sandbox.join("dest");
        let victim = sandbox.join("victim");
        let evil = sandbox.join("dest-evil");
        for dir in [&dest, &victim, &evil, &victim.join("dir")] {
            fs::create_dir_all(dir).expect("mkdir");
        }
        fs::write(victim.join("hello"), b"hello").unwrap();
        fs::write(victim.join("passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(victim.join("perm400"), b"...").unwrap();
        fs::set_permissions(
            victim.join("perm400"),
            std::os::unix::fs::PermissionsExt::from_mode(0o400),
        )
        .unwrap();
        fs::write(victim.join("dir/file"), b"in dir").unwrap();
        fs::hard_link(victim.join("hello"), victim.join("hello-link")).unwrap();
        symlink("hello", victim.join("hello-symlink")).unwrap();
        fs::write(evil.join("secret"), b"secret").unwrap();
        xattr::set(victim.join("hello"), "user.sentinel", b"untouched")
            .expect("user xattrs on the test filesystem");
        let before = snapshot(&top, Some(&dest));
        Self {
            _tmp: tmp,
            top,
            sandbox,
            dest,
            victim,
            evil,
            before,
        }
    }

    /// Applies `tar` (uncompressed) to `dest`.
    pub fn apply(&self, tar: &[u8], mode: ApplyMode) -> Result<ApplyStats, ApplyError> {
        apply_layer(tar, &self.dest, &ApplyOptions::new(mode))
    }

    /// Applies with custom options.
    pub fn apply_with(&self, tar: &[u8], options: &ApplyOptions) -> Result<ApplyStats, ApplyError> {
        apply_layer(tar, &self.dest, options)
    }

    /// A path inside `dest`.
    pub fn at(&self, relative: &str) -> PathBuf {
        self.dest.join(relative)
    }

    /// The oracle: nothing outside `dest` was created, changed or removed.
    pub fn assert_outside_unchanged(&self) {
        let after = snapshot(&self.top, Some(&self.dest));
        if after != self.before {
            let mut report = String::new();
            for (path, node) in &after {
                match self.before.get(path) {
                    None => report.push_str(&format!("created: {path:?} {node:?}\n")),
                    Some(old) if old != node => report.push_str(&format!(
                        "changed: {path:?}\n  before {old:?}\n  after  {node:?}\n"
                    )),
                    Some(_) => {}
                }
            }
            for path in self.before.keys().filter(|path| !after.contains_key(*path)) {
                report.push_str(&format!("removed: {path:?}\n"));
            }
            panic!("the sentinel tree outside dest changed:\n{report}");
        }
    }
}

/// Both extraction modes, for tests that must hold in each.
pub const MODES: [ApplyMode; 2] = [ApplyMode::Flatten, ApplyMode::OverlayLayer];

/// Whether two paths (not followed) are the same inode.
pub fn same_inode(a: &Path, b: &Path) -> bool {
    let (a, b) = (
        fs::symlink_metadata(a).expect("lstat"),
        fs::symlink_metadata(b).expect("lstat"),
    );
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Applies `tar` in Flatten mode to a fresh sandbox and requires success and containment.
pub fn contained(tar: &[u8]) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox
        .apply(tar, ApplyMode::Flatten)
        .unwrap_or_else(|err| panic!("expected success: {err}"));
    sandbox.assert_outside_unchanged();
    sandbox
}
