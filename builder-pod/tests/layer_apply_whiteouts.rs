//! threats-and-faults §2.2: whiteouts and opaque directories.

mod layer_fixtures;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, symlink};

use layer_fixtures::{Entry, Sandbox, TarFixture};
use stratum_builder::layer::{ApplyError, ApplyMode};

fn lower_etc(sandbox: &Sandbox) {
    fs::create_dir_all(sandbox.at("etc")).unwrap();
    fs::write(sandbox.at("etc/passwd"), b"all users").unwrap();
    fs::write(sandbox.at("etc/whitedout"), b"ahhhh whiteout").unwrap();
}

fn whiteout(name: &str) -> Entry {
    Entry::file(name, b"")
}

// --- #16 / #17 ---------------------------------------------------------------------------------

#[test]
fn whiteout_naming_dot_or_dotdot_is_refused_containerd_whiteout_root_parent_2001() {
    for name in [".wh..", ".wh...", "etc/.wh..", "etc/.wh..."] {
        for mode in [ApplyMode::Flatten, ApplyMode::OverlayLayer] {
            let sandbox = Sandbox::new();
            if mode == ApplyMode::Flatten {
                lower_etc(&sandbox);
            }
            let tar = TarFixture::new().add(whiteout(name)).finish();
            let result = sandbox.apply(&tar, mode);
            assert!(
                matches!(result, Err(ApplyError::InvalidWhiteout { .. })),
                "{name} {mode:?}: {result:?}"
            );
            sandbox.assert_outside_unchanged();
            if mode == ApplyMode::Flatten {
                assert_eq!(
                    fs::read(sandbox.at("etc/passwd")).unwrap(),
                    b"all users",
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn whiteout_bare_prefix_is_refused_image_spec_1314_stereoscope_647() {
    for name in [".wh.", "etc/.wh."] {
        let sandbox = Sandbox::new();
        lower_etc(&sandbox);
        let tar = TarFixture::new().add(whiteout(name)).finish();
        let result = sandbox.apply(&tar, ApplyMode::Flatten);
        assert!(
            matches!(result, Err(ApplyError::InvalidWhiteout { .. })),
            "{name}: {result:?}"
        );
        sandbox.assert_outside_unchanged();
        assert_eq!(fs::read(sandbox.at("etc/passwd")).unwrap(), b"all users");
    }
}

// --- #18 whiteouts through symlinked or dead parents -------------------------------------------

#[test]
fn whiteout_through_symlinked_parent_containerd_whiteout_symlink_path() {
    let sandbox = Sandbox::new();
    lower_etc(&sandbox);
    symlink("/etc", sandbox.at("localetc")).unwrap();
    let tar = TarFixture::new()
        .add(whiteout("localetc/.wh.whitedout"))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert!(!sandbox.at("etc/whitedout").exists());
    assert_eq!(fs::read(sandbox.at("etc/passwd")).unwrap(), b"all users");
}

#[test]
fn whiteout_of_a_symlink_removes_the_link_containerd_whiteout_symlink() {
    let sandbox = Sandbox::new();
    lower_etc(&sandbox);
    symlink("/etc", sandbox.at("localetc")).unwrap();
    symlink(&sandbox.victim, sandbox.at("hostlink")).unwrap();
    let tar = TarFixture::new()
        .add(whiteout(".wh.localetc"))
        .add(whiteout(".wh.hostlink"))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert!(fs::symlink_metadata(sandbox.at("localetc")).is_err());
    assert!(fs::symlink_metadata(sandbox.at("hostlink")).is_err());
    assert_eq!(fs::read(sandbox.at("etc/passwd")).unwrap(), b"all users");
}

#[test]
fn whiteout_under_dead_symlink_parent_is_a_noop_containerd_whiteout_dead_symlink_parent() {
    let sandbox = Sandbox::new();
    lower_etc(&sandbox);
    symlink("/dne", sandbox.at("localetc")).unwrap();
    let tar = TarFixture::new().add(whiteout("localetc/.wh.etc")).finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(fs::read(sandbox.at("etc/passwd")).unwrap(), b"all users");
    assert!(!sandbox.at("dne").exists(), "a whiteout creates nothing");
}

#[test]
fn whiteout_relative_path_resolves_lexically_containerd_whiteout_relative_path() {
    let sandbox = Sandbox::new();
    lower_etc(&sandbox);
    symlink("/dne", sandbox.at("localetc")).unwrap();
    let tar = TarFixture::new().add(whiteout("dne/../.wh.etc")).finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert!(!sandbox.at("etc").exists());
}

#[test]
fn whiteout_through_escaping_links_stays_inside_containerd_whiteout_symlink() {
    // Lower links that point out of the root (relative and absolute host paths): whiteouts
    // under them resolve inside the root, where there is nothing to delete.
    let sandbox = Sandbox::new();
    symlink("../victim", sandbox.at("up")).unwrap();
    symlink(&sandbox.victim, sandbox.at("abs")).unwrap();
    let tar = TarFixture::new()
        .add(whiteout("up/.wh.hello"))
        .add(whiteout("abs/.wh.hello"))
        .add(whiteout("up/.wh.dir"))
        .add(Entry::file("up/.wh..wh..opq", b""))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
}

// --- #19 -----------------------------------------------------------------------------------------

#[test]
fn whiteout_prefix_in_directory_component_is_plain_containerd_whiteout_directory_name() {
    let sandbox = Sandbox::new();
    lower_etc(&sandbox);
    let tar = TarFixture::new()
        .add(Entry::file(".wh.etc/somefile", b"non-empty"))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(fs::read(sandbox.at("etc/passwd")).unwrap(), b"all users");
    assert_eq!(
        fs::read(sandbox.at(".wh.etc/somefile")).unwrap(),
        b"non-empty"
    );
}

// --- #20 opaque marker parsing -------------------------------------------------------------------

fn lower_a(sandbox: &Sandbox) {
    fs::create_dir_all(sandbox.at("a/b")).unwrap();
    fs::write(sandbox.at("a/b/foo"), b"lower").unwrap();
    fs::write(sandbox.at("a/lower"), b"lower").unwrap();
}

#[test]
fn opaque_marker_is_matched_exactly_go_containerregistry_2372() {
    let sandbox = Sandbox::new();
    lower_a(&sandbox);
    let tar = TarFixture::new()
        .add(Entry::dir("a/"))
        .add(Entry::file("a/.wh..wh..opq", b""))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert!(sandbox.at("a").is_dir());
    assert_eq!(
        fs::read_dir(sandbox.at("a")).unwrap().count(),
        0,
        "lower children hidden"
    );
    assert!(
        !sandbox.at("a/.wh..opq").exists() && !sandbox.at("a/.wh..wh..opq").exists(),
        "no phantom marker file"
    );

    // `.wh..opq` (one `.wh.`) is an ordinary whiteout of a file named `.opq`.
    let sandbox = Sandbox::new();
    lower_a(&sandbox);
    fs::write(sandbox.at("a/.opq"), b"x").unwrap();
    let tar = TarFixture::new().add(whiteout("a/.wh..opq")).finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    assert!(!sandbox.at("a/.opq").exists());
    assert_eq!(fs::read(sandbox.at("a/b/foo")).unwrap(), b"lower");
}

#[test]
fn unknown_meta_whiteouts_are_refused_go_containerregistry_1897_container_inspector_39() {
    for name in ["a/.wh..wh.plnk", ".wh..wh.aufs", "a/.wh..wh..opq.extra"] {
        for mode in [ApplyMode::Flatten, ApplyMode::OverlayLayer] {
            let sandbox = Sandbox::new();
            let tar = TarFixture::new().add(whiteout(name)).finish();
            let result = sandbox.apply(&tar, mode);
            assert!(
                matches!(result, Err(ApplyError::InvalidWhiteout { .. })),
                "{name}: {result:?}"
            );
            sandbox.assert_outside_unchanged();
        }
    }
}

#[test]
fn opaque_marker_in_overlay_layer_sets_the_xattr_moby_43279() {
    let sandbox = Sandbox::new();
    let tar = TarFixture::new()
        .add(Entry::dir("a/"))
        .add(Entry::file("a/new", b"new"))
        .add(Entry::file("a/.wh..wh..opq", b""))
        .add(whiteout(".wh.gone"))
        .finish();
    sandbox.apply(&tar, ApplyMode::OverlayLayer).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(
        xattr::get(sandbox.at("a"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read(sandbox.at("a/new")).unwrap(), b"new");
    let gone = fs::symlink_metadata(sandbox.at("gone")).unwrap();
    assert!(
        gone.file_type().is_char_device() && gone.rdev() == 0,
        "overlay whiteout"
    );
    assert_eq!(
        fs::read_dir(sandbox.at("a")).unwrap().count(),
        1,
        "no marker file materialised"
    );
}

// --- #21 order independence, per-layer application ---------------------------------------------

#[test]
fn opaque_applies_first_regardless_of_position_image_spec_1215_umoci_232() {
    let sandbox = Sandbox::new();
    fs::create_dir_all(sandbox.at("a/b/c")).unwrap();
    fs::write(sandbox.at("a/b/c/bar"), b"lower").unwrap();
    fs::write(sandbox.at("a/lower"), b"lower").unwrap();
    let tar = TarFixture::new()
        .add(Entry::dir("a/"))
        .add(Entry::dir("a/b/"))
        .add(Entry::dir("a/b/c/"))
        .add(Entry::file("a/b/c/foo", b"new"))
        .add(Entry::file("a/.wh..wh..opq", b""))
        .add(Entry::file("a/after", b"after"))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(
        fs::read(sandbox.at("a/b/c/foo")).unwrap(),
        b"new",
        "written before the marker, kept"
    );
    assert_eq!(fs::read(sandbox.at("a/after")).unwrap(), b"after");
    assert!(
        !sandbox.at("a/b/c/bar").exists(),
        "lower child at depth hidden"
    );
    assert!(!sandbox.at("a/lower").exists());
}

#[test]
fn whiteout_after_its_target_in_the_same_layer_keeps_the_target_image_spec_196() {
    // Whiteouts only hide lower layers: `x` then `.wh.x` in one layer leaves this layer's `x`,
    // and a directory whited out after this layer wrote into it keeps this layer's children.
    let sandbox = Sandbox::new();
    fs::write(sandbox.at("x"), b"lower").unwrap();
    fs::create_dir_all(sandbox.at("d")).unwrap();
    fs::write(sandbox.at("d/lower"), b"lower").unwrap();
    let tar = TarFixture::new()
        .add(Entry::file("x", b"upper"))
        .add(whiteout(".wh.x"))
        .add(Entry::file("d/upper", b"upper"))
        .add(whiteout(".wh.d"))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(fs::read(sandbox.at("x")).unwrap(), b"upper");
    assert_eq!(fs::read(sandbox.at("d/upper")).unwrap(), b"upper");
    assert!(!sandbox.at("d/lower").exists());
}

#[test]
fn whiteouts_apply_per_layer_kernel_hypeman_95() {
    let sandbox = Sandbox::new();
    let first = TarFixture::new()
        .add(Entry::file("f", b"one"))
        .add(Entry::file("g", b"one"))
        .finish();
    let second = TarFixture::new().add(whiteout(".wh.f")).finish();
    let third = TarFixture::new().add(Entry::file("f", b"three")).finish();
    sandbox.apply(&first, ApplyMode::Flatten).unwrap();
    sandbox.apply(&second, ApplyMode::Flatten).unwrap();
    assert!(!sandbox.at("f").exists());
    sandbox.apply(&third, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(fs::read(sandbox.at("f")).unwrap(), b"three");
    assert_eq!(fs::read(sandbox.at("g")).unwrap(), b"one");
}

// --- #22 ------------------------------------------------------------------------------------------

#[test]
fn root_level_whiteout_hides_only_its_own_path_fuse_overlayfs_151() {
    let sandbox = Sandbox::new();
    fs::create_dir_all(sandbox.at("root")).unwrap();
    fs::write(sandbox.at("root/test"), b"keep").unwrap();
    fs::write(sandbox.at("test"), b"hide").unwrap();
    let tar = TarFixture::new().add(whiteout("/.wh.test")).finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert!(!sandbox.at("test").exists());
    assert_eq!(fs::read(sandbox.at("root/test")).unwrap(), b"keep");
}
