//! Differ tests on hand-made upper and lower dirs (the overlay encoding written directly: mknod
//! 0/0 whiteouts and `trusted.overlay.*` xattrs, which needs root). The same cases on a real
//! overlay mount are in tests/layer_conformance.rs.

use super::*;
use std::os::unix::fs::PermissionsExt;

use ChangeKind::{Added, Deleted, Modified, Opaque, Parent};

/// A directory tree built step by step.
struct Tree(PathBuf);

impl Tree {
    fn new(root: PathBuf) -> Self {
        std::fs::create_dir_all(&root).unwrap();
        Self(root)
    }
    fn dir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.0.join(rel)).unwrap();
        self
    }
    fn file(&self, rel: &str) -> &Self {
        std::fs::write(self.0.join(rel), rel).unwrap();
        self
    }
    fn whiteout(&self, rel: &str) -> &Self {
        use nix::sys::stat::{Mode, SFlag, mknod};
        mknod(&self.0.join(rel), SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
        self
    }
    fn xattr(&self, rel: &str, name: &str, value: &[u8]) -> &Self {
        xattr::set(self.0.join(rel), name, value).unwrap();
        self
    }
    fn opaque(&self, rel: &str) -> &Self {
        self.xattr(rel, OPAQUE_XATTR, b"y")
    }
    fn chmod(&self, rel: &str, mode: u32) -> &Self {
        std::fs::set_permissions(self.0.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    upper: Tree,
    lowers: Vec<Tree>,
}

impl Fixture {
    fn new(lowers: usize) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let upper = Tree::new(tmp.path().join("upper"));
        let lowers = (0..lowers)
            .map(|i| Tree::new(tmp.path().join(format!("lower{i}"))))
            .collect();
        Self {
            _tmp: tmp,
            upper,
            lowers,
        }
    }

    fn diff(&self) -> Result<Vec<Change>, DiffError> {
        let lowers: Vec<_> = self.lowers.iter().map(|t| t.0.clone()).collect();
        diff_upper(&self.upper.0, &lowers)
    }

    fn changes(&self) -> Vec<(String, ChangeKind)> {
        self.diff()
            .unwrap()
            .into_iter()
            .map(|c| (c.path.to_str().unwrap().to_owned(), c.kind))
            .collect()
    }
}

fn expect(list: &[(&str, ChangeKind)]) -> Vec<(String, ChangeKind)> {
    list.iter().map(|(p, k)| ((*p).to_owned(), *k)).collect()
}

#[test]
fn plain_tree_is_all_additions_in_depth_first_name_order() {
    let f = Fixture::new(0);
    f.upper
        .dir("b")
        .file("b/z")
        .file("b/a")
        .file("a.txt")
        .dir("a")
        .file("a/x");
    assert_eq!(
        f.changes(),
        expect(&[
            ("a", Added),
            ("a/x", Added),
            ("a.txt", Added),
            ("b", Added),
            ("b/a", Added),
            ("b/z", Added),
        ])
    );
}

#[test]
fn whiteouts_only_for_paths_that_exist_below() {
    let f = Fixture::new(1);
    f.lowers[0].dir("etc").file("etc/passwd").file("gone");
    f.upper
        .dir("etc")
        .whiteout("etc/passwd")
        .whiteout("etc/never-existed")
        .whiteout("gone");
    assert_eq!(
        f.changes(),
        expect(&[("etc", Parent), ("etc/passwd", Deleted), ("gone", Deleted)])
    );
}

#[test]
fn opaque_dir_over_lower_dir_emits_marker_then_additions() {
    // rm -rf /x && mkdir /x && touch /x/new (threats §2.5 #30a).
    let f = Fixture::new(1);
    f.lowers[0].dir("x/sub").file("x/sub/old").file("x/old");
    f.upper
        .dir("x/sub")
        .opaque("x")
        .file("x/new")
        .file("x/sub/f")
        .whiteout("x/old2");
    assert_eq!(
        f.changes(),
        expect(&[
            ("x", Modified),
            ("x", Opaque),
            ("x/new", Added),
            ("x/sub", Added),
            ("x/sub/f", Added),
        ])
    );
}

#[test]
fn empty_opaque_replacement_still_hides_the_lower_content() {
    // rm -rf /a1 && mkdir /a1 (threats §2.5 #30b).
    let f = Fixture::new(1);
    f.lowers[0].dir("a1").file("a1/f");
    f.upper.dir("a1").opaque("a1");
    assert_eq!(f.changes(), expect(&[("a1", Modified), ("a1", Opaque)]));
}

#[test]
fn opaque_dir_with_no_dir_below_gets_no_marker() {
    // The kernel marks directories opaque when created over a whiteout or moved by a copy
    // fallback; only a directory that hides one below needs the marker (threats §2.5 #30c).
    let f = Fixture::new(1);
    f.lowers[0].file("was-a-file");
    f.upper
        .dir("brand-new")
        .opaque("brand-new")
        .file("brand-new/f");
    f.upper.dir("was-a-file").opaque("was-a-file");
    assert_eq!(
        f.changes(),
        expect(&[
            ("brand-new", Added),
            ("brand-new/f", Added),
            ("was-a-file", Modified),
        ])
    );
}

#[test]
fn unchanged_parents_precede_their_first_change_and_only_then() {
    let f = Fixture::new(1);
    f.lowers[0]
        .dir("etc/ssl")
        .dir("usr/lib/deep")
        .dir("var")
        .file("var/x");
    // usr/lib/deep holds only a whiteout of something that never existed below, and var was
    // copied up and its only child created and removed: neither is part of the layer.
    f.upper
        .dir("etc/ssl")
        .file("etc/ssl/cert")
        .dir("usr/lib/deep")
        .dir("var");
    f.upper.whiteout("usr/lib/deep/tmp");
    assert_eq!(
        f.changes(),
        expect(&[
            ("etc", Parent),
            ("etc/ssl", Parent),
            ("etc/ssl/cert", Added)
        ])
    );
}

#[test]
fn nothing_changed_means_no_changes() {
    let f = Fixture::new(1);
    f.lowers[0].dir("a/b/c");
    f.upper.dir("a/b/c");
    assert_eq!(f.changes(), expect(&[]));
}

#[test]
fn dir_metadata_changes_are_modifications() {
    let f = Fixture::new(1);
    f.lowers[0].dir("chmodded").dir("tagged").dir("tagged-same");
    f.lowers[0].xattr("tagged-same", "user.k", b"v");
    f.upper.dir("chmodded").chmod("chmodded", 0o700);
    f.upper.dir("tagged").xattr("tagged", "user.k", b"v");
    // Bookkeeping xattrs are not metadata the layer carries.
    f.upper
        .dir("tagged-same")
        .xattr("tagged-same", "user.k", b"v");
    f.upper
        .xattr("tagged-same", "trusted.overlay.origin", b"\0");
    assert_eq!(
        f.changes(),
        expect(&[("chmodded", Modified), ("tagged", Modified)])
    );
}

#[test]
fn files_are_added_or_modified_by_what_is_below() {
    let f = Fixture::new(2);
    f.lowers[1].file("in-bottom").dir("d").file("d/hidden");
    f.lowers[0].dir("d").opaque("d").file("in-top");
    f.upper
        .file("in-bottom")
        .file("in-top")
        .file("new")
        .dir("d")
        .file("d/hidden");
    assert_eq!(
        f.changes(),
        expect(&[
            ("d", Parent),
            // An opaque dir in an upper lower hides the bottom layer's d/hidden.
            ("d/hidden", Added),
            ("in-bottom", Modified),
            ("in-top", Modified),
            ("new", Added),
        ])
    );
}

#[test]
fn lower_whiteouts_hide_paths_from_deletion() {
    let f = Fixture::new(2);
    f.lowers[1].dir("etc").file("etc/passwd").file("etc/group");
    f.lowers[0].dir("etc").whiteout("etc/passwd");
    f.upper
        .dir("etc")
        .whiteout("etc/passwd")
        .whiteout("etc/group");
    assert_eq!(
        f.changes(),
        expect(&[("etc", Parent), ("etc/group", Deleted)])
    );
}

#[test]
fn whiteout_names_created_by_the_step_fail_the_diff() {
    // threats §2.5 #29: never turned into whiteouts, never silently dropped.
    for name in [".wh.sbin", ".wh..wh..opq", "x/.wh.y", ".wh."] {
        let f = Fixture::new(1);
        f.lowers[0].dir("sbin");
        f.upper.dir("x");
        if name == ".wh.sbin" {
            f.upper.dir(name);
        } else {
            f.upper.file(name);
        }
        match f.diff() {
            Err(DiffError::WhiteoutName { path }) => assert_eq!(path, Path::new(name)),
            other => panic!("{name}: expected WhiteoutName, got {other:?}"),
        }
        let message = f.diff().unwrap_err().to_string();
        assert!(message.contains(name), "{message}");
    }
}

#[test]
fn redirect_and_metacopy_upper_dirs_are_refused() {
    for (xattr, is_dir) in [
        ("trusted.overlay.redirect", true),
        ("trusted.overlay.metacopy", false),
    ] {
        let f = Fixture::new(1);
        f.lowers[0].dir("d").file("d/f");
        f.upper.dir("d");
        let rel = if is_dir { "d" } else { "d/f" };
        if !is_dir {
            f.upper.file(rel);
        }
        f.upper.xattr(rel, xattr, b"/elsewhere");
        match f.diff() {
            Err(DiffError::OverlayFeature {
                path, xattr: got, ..
            }) => {
                assert_eq!((path.as_path(), got), (Path::new(rel), xattr));
            }
            other => panic!("{xattr}: expected OverlayFeature, got {other:?}"),
        }
    }
}

#[test]
fn sockets_are_omitted() {
    let f = Fixture::new(0);
    f.upper.dir("run");
    let _listener = std::os::unix::net::UnixListener::bind(f.upper.0.join("run/sock")).unwrap();
    f.upper.file("run/pid");
    assert_eq!(f.changes(), expect(&[("run", Added), ("run/pid", Added)]));
}
