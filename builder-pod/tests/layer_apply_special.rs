//! threats-and-faults §2.4: device nodes (#27) and permission bits, capabilities and xattrs
//! (#28).

mod layer_fixtures;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, symlink};

use layer_fixtures::{Entry, Sandbox, TarFixture};
use stratum_builder::layer::{ApplyError, ApplyMode};

const MODES: [ApplyMode; 2] = [ApplyMode::Flatten, ApplyMode::OverlayLayer];

// --- #27 device nodes -------------------------------------------------------------------------

#[test]
fn device_policy_refuses_host_hardware_nodes_squashfs_tools_371_sandlock_165() {
    let cases = [
        ("opt/disk", Entry::block_device("opt/disk", 8, 0)),
        ("opt/loop", Entry::block_device("opt/loop", 7, 0)),
        ("opt/mem", Entry::char_device("opt/mem", 1, 1)),
        ("opt/kmsg", Entry::char_device("opt/kmsg", 1, 11)),
        ("opt/tty1", Entry::char_device("opt/tty1", 4, 1)),
        ("opt/kvm", Entry::char_device("opt/kvm", 10, 232)),
        // 0/0 is an overlay whiteout to some builders and a plain node to others.
        ("opt/whiteout", Entry::char_device("opt/whiteout", 0, 0)),
    ];
    for (label, entry) in cases {
        for mode in MODES {
            let sandbox = Sandbox::new();
            let tar = TarFixture::new()
                .add(Entry::dir("opt/"))
                .add(entry.clone())
                .finish();
            let err = sandbox.apply(&tar, mode).unwrap_err();
            assert!(
                matches!(err, ApplyError::DeviceNotAllowed { .. }),
                "{label} {mode:?}: {err:?}"
            );
            assert!(
                fs::symlink_metadata(sandbox.at(label)).is_err(),
                "{label}: no node created"
            );
            sandbox.assert_outside_unchanged();
        }
    }
}

#[test]
fn device_policy_keeps_the_dev_tree_of_real_images_mmdebstrap_apptainer_5128() {
    // mmdebstrap's tarballs (and old distribution images) carry exactly these nodes.
    let tar = TarFixture::new()
        .add(Entry::dir("dev/"))
        .add(Entry::char_device("dev/console", 5, 1).mode(0o666))
        .add(Entry::symlink("dev/fd", "/proc/self/fd"))
        .add(Entry::char_device("dev/full", 1, 7).mode(0o666))
        .add(Entry::char_device("dev/null", 1, 3).mode(0o666))
        .add(Entry::char_device("dev/ptmx", 5, 2).mode(0o666))
        .add(Entry::dir("dev/pts/"))
        .add(Entry::char_device("dev/random", 1, 8).mode(0o666))
        .add(Entry::dir("dev/shm/"))
        .add(Entry::symlink("dev/stderr", "/proc/self/fd/2"))
        .add(Entry::char_device("dev/tty", 5, 0).mode(0o666))
        .add(Entry::char_device("dev/urandom", 1, 9).mode(0o666))
        .add(Entry::char_device("dev/zero", 1, 5).mode(0o666))
        .add(Entry::fifo("run/initctl").mode(0o600))
        .finish();
    for mode in MODES {
        let sandbox = Sandbox::new();
        sandbox.apply(&tar, mode).unwrap();
        sandbox.assert_outside_unchanged();
        for (name, major, minor) in [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("ptmx", 5, 2),
            ("console", 5, 1),
        ] {
            let meta = fs::symlink_metadata(sandbox.at(&format!("dev/{name}"))).unwrap();
            assert!(meta.file_type().is_char_device(), "{name}");
            assert_eq!(meta.rdev(), nix::sys::stat::makedev(major, minor), "{name}");
            assert_eq!(meta.mode() & 0o7777, 0o666, "{name}");
        }
        assert!(
            fs::symlink_metadata(sandbox.at("run/initctl"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
    }
}

// --- #28 permission bits, capabilities, xattrs -------------------------------------------------

#[test]
fn setuid_bits_apply_inside_the_root_only_containerd_cve_2021_32760() {
    // A lower link points at a host file; the layer's setuid file replaces the link instead of
    // chmod-ing the host file.
    let sandbox = Sandbox::new();
    fs::create_dir_all(sandbox.at("usr/bin")).unwrap();
    symlink(sandbox.victim.join("hello"), sandbox.at("usr/bin/sudo")).unwrap();
    symlink("../../../victim/passwd", sandbox.at("usr/bin/su")).unwrap();
    let tar = TarFixture::new()
        .add(Entry::file("usr/bin/sudo", b"sudo").mode(0o4755))
        .add(Entry::file("usr/bin/su", b"su").mode(0o6755))
        .add(Entry::dir("tmp/").mode(0o1777))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(
        fs::symlink_metadata(sandbox.at("usr/bin/sudo"))
            .unwrap()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::symlink_metadata(sandbox.at("usr/bin/su"))
            .unwrap()
            .mode()
            & 0o7777,
        0o6755
    );
    assert_eq!(
        fs::metadata(sandbox.at("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
}

#[test]
fn overlay_private_and_host_policy_xattrs_are_dropped_stacker_322_umoci_572_rkt_3305() {
    let capability: [u8; 20] = [
        0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let steering = |entry: Entry| {
        entry
            .xattr("trusted.overlay.opaque", "y")
            .xattr("trusted.overlay.redirect", "/etc")
            .xattr("trusted.overlay.metacopy", "")
            .xattr("user.overlay.opaque", "y")
            .xattr("security.selinux", "system_u:object_r:shadow_t:s0\0")
            .xattr("trusted.other", "x")
            .xattr("user.kept", "kept")
    };
    let tar = TarFixture::new()
        .add(steering(Entry::dir("hidden/")))
        .add(Entry::file("hidden/file", b"x"))
        .add(
            steering(Entry::file("bin/ping", b"ping").mode(0o755))
                .xattr("security.capability", capability),
        )
        .finish();
    for mode in MODES {
        let sandbox = Sandbox::new();
        sandbox.apply(&tar, mode).unwrap();
        sandbox.assert_outside_unchanged();
        for path in ["hidden", "bin/ping"] {
            let names: Vec<String> = xattr::list(sandbox.at(path))
                .unwrap()
                .map(|name| name.to_string_lossy().into_owned())
                .filter(|name| !name.starts_with("security.") || name == "security.capability")
                .collect();
            let expected: &[&str] = if path == "bin/ping" {
                &["security.capability", "user.kept"]
            } else {
                &["user.kept"]
            };
            let mut names = names;
            names.sort();
            assert_eq!(names, expected, "{path} {mode:?}");
        }
        assert_eq!(
            xattr::get(sandbox.at("bin/ping"), "security.capability")
                .unwrap()
                .as_deref(),
            Some(&capability[..])
        );
        assert_eq!(
            xattr::get(sandbox.at("hidden"), "security.selinux").unwrap(),
            None
        );
    }
}
