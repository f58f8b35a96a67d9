//! OverlayLayer mode against the kernel: layers extracted one per directory and stacked as
//! overlayfs lower layers must show exactly the tree Flatten builds by applying them in order
//! (whiteout devices, `trusted.overlay.opaque`, type changes, recreated directories).

mod layer_fixtures;

use std::fs;
use std::path::{Path, PathBuf};

use layer_fixtures::{Entry, TarFixture, Tree, snapshot};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use stratum_builder::layer::{ApplyMode, ApplyOptions, apply_layer};

fn layer_one() -> Vec<u8> {
    TarFixture::new()
        .add(Entry::dir("./").mode(0o755).mtime(1))
        .add(Entry::dir("etc/").mtime(2))
        .add(Entry::file("etc/passwd", b"root:x:0:0\n").mtime(3))
        .add(Entry::file("etc/group", b"root:x:0:\n").mtime(3))
        .add(Entry::dir("usr/").mtime(2))
        .add(Entry::dir("usr/bin/").mtime(2))
        .add(Entry::file("usr/bin/tool", b"tool").mode(0o755).mtime(3))
        .add(Entry::symlink("usr/bin/sh", "tool").mtime(3))
        .add(Entry::dir("a/").mtime(2))
        .add(Entry::dir("a/b/").mtime(2))
        .add(Entry::file("a/b/foo", b"foo").mtime(3))
        .add(Entry::file("a/keep", b"keep").mtime(3))
        .add(Entry::dir("d/").mtime(2))
        .add(Entry::file("d/x", b"x").mtime(3))
        .add(Entry::dir("opq/").mtime(2))
        .add(Entry::file("opq/lower1", b"l1").mtime(3))
        .add(Entry::dir("opq/sub/").mtime(2))
        .add(Entry::file("opq/sub/lower2", b"l2").mtime(3))
        .add(Entry::file("t1", b"file becomes dir").mtime(3))
        .add(Entry::dir("t2/").mtime(2))
        .add(Entry::file("t2/child", b"dir becomes file").mtime(3))
        .add(Entry::dir("dev/").mtime(2))
        .add(Entry::char_device("dev/null", 1, 3).mode(0o666).mtime(3))
        .finish()
}

fn layer_two() -> Vec<u8> {
    TarFixture::new()
        .add(Entry::dir("./").mode(0o755).mtime(10))
        .add(Entry::dir("etc/").mtime(11))
        .add(Entry::file("etc/.wh.group", b""))
        .add(Entry::file("etc/passwd", b"root:x:0:0\nuser:x:1000:1000\n").mtime(12))
        .add(Entry::dir("usr/").mtime(11))
        .add(Entry::dir("usr/bin/").mtime(11))
        .add(
            Entry::file("usr/bin/tool", b"tool v2")
                .mode(0o700)
                .mtime(12),
        )
        .add(Entry::dir("opq/").mtime(11))
        .add(Entry::file("opq/new", b"new").mtime(12))
        .add(Entry::file("opq/.wh..wh..opq", b""))
        .add(Entry::file(".wh.d", b""))
        .add(Entry::dir("d/").mode(0o750).mtime(11))
        .add(Entry::file("d/y", b"y").mtime(12))
        .add(Entry::dir("t1/").mtime(11))
        .add(Entry::file("t1/inside", b"inside").mtime(12))
        .add(Entry::file("t2", b"now a file").mtime(12))
        .add(Entry::dir("a/").mtime(11))
        .add(Entry::dir("a/b/").mtime(11))
        .add(Entry::file("a/b/bar", b"bar").mtime(12))
        .finish()
}

fn layer_three() -> Vec<u8> {
    TarFixture::new()
        .add(Entry::dir("./").mode(0o755).mtime(20))
        .add(Entry::file(".wh.a", b""))
        .add(Entry::dir("opq/").mtime(21))
        .add(Entry::file("opq/.wh.new", b""))
        .add(Entry::file("opq/newer", b"newer").mtime(22))
        .add(Entry::dir("usr/").mtime(21))
        .add(Entry::dir("usr/bin/").mtime(21))
        .add(Entry::symlink("usr/bin/sh", "/usr/bin/tool").mtime(22))
        .add(
            Entry::file("usr/bin/sudo", b"sudo")
                .mode(0o4755)
                .mtime(22)
                .xattr("user.origin", "layer3"),
        )
        .add(Entry::dir("d/").mode(0o750).mtime(21))
        .add(Entry::file("d/z", b"z").mtime(22))
        .add(Entry::hardlink("d/z-link", "d/z"))
        .add(Entry::dir("etc/").mtime(21))
        .add(Entry::file("etc/.wh.passwd", b""))
        .add(Entry::file("etc/passwd", b"rewritten in the same layer").mtime(22))
        .finish()
}

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

fn without_link_counts(mut tree: Tree) -> Tree {
    // A lower inode keeps its own link count in the merged view; Flatten's copy may differ
    // when a later layer removes one name. Everything else must match.
    for node in tree.values_mut() {
        node.nlink = 0;
    }
    tree
}

fn apply(tar: &[u8], root: &Path, mode: ApplyMode) {
    apply_layer(tar, root, &ApplyOptions::new(mode))
        .unwrap_or_else(|err| panic!("{mode:?}: {err}"));
}

#[test]
fn overlay_lower_layers_merge_to_the_flattened_tree_kernel_overlayfs_rst() {
    let work = tempfile::tempdir().unwrap();
    let layers = [layer_one(), layer_two(), layer_three()];
    let flat = work.path().join("flat");
    fs::create_dir(&flat).unwrap();
    let mut lower_dirs = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        let dir = work.path().join(format!("l{index}"));
        fs::create_dir(&dir).unwrap();
        apply(layer, &dir, ApplyMode::OverlayLayer);
        apply(layer, &flat, ApplyMode::Flatten);
        lower_dirs.push(dir);
    }
    // The second layer's recreated `d` is opaque; its whiteouts are 0/0 devices.
    assert_eq!(
        xattr::get(lower_dirs[1].join("d"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr::get(lower_dirs[1].join("opq"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );

    let merged = work.path().join("merged");
    fs::create_dir(&merged).unwrap();
    let lowerdir: Vec<String> = lower_dirs
        .iter()
        .rev()
        .map(|dir| dir.display().to_string())
        .collect();
    let options = format!("lowerdir={}", lowerdir.join(":"));
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(options.as_str()),
    )
    .expect("mounting overlayfs (tests run as root)");
    let _mounted = Mounted(merged.clone());

    let merged_tree = without_link_counts(snapshot(&merged, None));
    let flat_tree = without_link_counts(snapshot(&flat, None));
    if merged_tree != flat_tree {
        let mut report = String::new();
        for (path, node) in &merged_tree {
            match flat_tree.get(path) {
                None => report.push_str(&format!("only in overlay: {path:?} {node:?}\n")),
                Some(other) if other != node => report.push_str(&format!(
                    "differs: {path:?}\n  overlay {node:?}\n  flat    {other:?}\n"
                )),
                Some(_) => {}
            }
        }
        for path in flat_tree
            .keys()
            .filter(|path| !merged_tree.contains_key(*path))
        {
            report.push_str(&format!("only in flat: {path:?}\n"));
        }
        panic!("overlay view and flattened tree differ:\n{report}");
    }
    // Spot checks that the comparison is about something.
    assert!(!flat.join("a").exists());
    assert!(!flat.join("etc/group").exists());
    assert_eq!(
        fs::read(flat.join("etc/passwd")).unwrap(),
        b"rewritten in the same layer"
    );
    assert_eq!(
        fs::read_dir(flat.join("opq")).unwrap().count(),
        1,
        "only `newer` survives"
    );
    assert_eq!(
        fs::read_dir(flat.join("d")).unwrap().count(),
        3,
        "y, z, z-link; x was hidden"
    );
    assert!(flat.join("t1/inside").is_file() && flat.join("t2").is_file());
    assert_eq!(
        xattr::get(merged.join("usr/bin/sudo"), "user.origin")
            .unwrap()
            .as_deref(),
        Some(&b"layer3"[..])
    );
}
