//! Positive controls with a real writer (§7 promise 2, no over-rejection): archives made by GNU
//! tar from a real tree — POSIX and GNU formats, long names, hard links, symlinks, fifos,
//! setuid bits, big ids, xattrs — extract to exactly what GNU tar itself extracts, and to the
//! source tree.

mod layer_fixtures;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use layer_fixtures::{Tree, snapshot};
use stratum_builder::layer::{ApplyMode, ApplyOptions, apply_layer};

fn build_source(root: &Path) {
    let long_dir = root.join("d".repeat(120)).join("e".repeat(150));
    fs::create_dir_all(&long_dir).unwrap();
    fs::write(long_dir.join("f".repeat(200)), b"long path").unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/sudo"), b"sudo").unwrap();
    fs::set_permissions(
        root.join("usr/bin/sudo"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    fs::write(root.join("usr/bin/perlbug"), b"perl").unwrap();
    fs::hard_link(
        root.join("usr/bin/perlbug"),
        root.join("usr/bin/perlthanks"),
    )
    .unwrap();
    symlink("perlbug", root.join("usr/bin/perl-link")).unwrap();
    symlink(format!("/{}", "t".repeat(180)), root.join("usr/long-link")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    nix::unistd::mkfifo(
        &root.join("tmp/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    fs::write(root.join("owned"), b"ids").unwrap();
    nix::unistd::chown(
        &root.join("owned"),
        Some(nix::unistd::Uid::from_raw(3_000_000)),
        Some(nix::unistd::Gid::from_raw(70_000)),
    )
    .unwrap();
    fs::write(root.join("with-xattr"), b"x").unwrap();
    xattr::set(root.join("with-xattr"), "user.note", b"kept\nwith newline").unwrap();
    fs::create_dir_all(root.join("ro")).unwrap();
    fs::write(root.join("ro/file"), b"in read-only dir").unwrap();
    fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let times = [nix::sys::time::TimeSpec::new(1_500_000_000, 123_456_789); 2];
    for path in ["owned", "usr/bin/sudo", "ro", "tmp", "usr"] {
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &root.join(path),
            &times[0],
            &times[1],
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
}

fn gnu_tar(args: &[&str]) {
    let status = Command::new("tar").args(args).status().expect("GNU tar");
    assert!(status.success(), "tar {args:?}");
}

fn mtimes_in_seconds(mut tree: Tree) -> Tree {
    for node in tree.values_mut() {
        node.mtime.1 = 0;
    }
    tree
}

#[test]
fn gnu_tar_archives_extract_like_gnu_tar_posix_and_gnu_formats() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir(&source).unwrap();
    build_source(&source);
    // Directory mtimes of the source change as the test builds it; pin the top ones last.
    // GNU tar stores xattrs and sub-second times only in the POSIX format.
    for (format, posix) in [("posix", true), ("gnu", false)] {
        let xattrs: &[&str] = if posix {
            &["--xattrs", "--xattrs-include=user.*"]
        } else {
            &[]
        };
        let archive = work.path().join(format!("{format}.tar"));
        let format_flag = format!("--format={format}");
        let create = [
            "--numeric-owner",
            &format_flag,
            "-C",
            source.to_str().unwrap(),
            "-cf",
            archive.to_str().unwrap(),
            ".",
        ];
        gnu_tar(&[xattrs, &create].concat());
        let by_gnu = work.path().join(format!("{format}-gnu"));
        let by_us = work.path().join(format!("{format}-ours"));
        fs::create_dir(&by_gnu).unwrap();
        fs::create_dir(&by_us).unwrap();
        let extract = [
            "--numeric-owner",
            "--same-owner",
            "-p",
            "-C",
            by_gnu.to_str().unwrap(),
            "-xf",
            archive.to_str().unwrap(),
        ];
        gnu_tar(&[xattrs, &extract].concat());
        for mode in [ApplyMode::Flatten, ApplyMode::OverlayLayer] {
            if by_us.exists() {
                fs::remove_dir_all(&by_us).unwrap();
            }
            fs::create_dir(&by_us).unwrap();
            let bytes = fs::read(&archive).unwrap();
            apply_layer(&bytes[..], &by_us, &ApplyOptions::new(mode))
                .unwrap_or_else(|err| panic!("{format} {mode:?}: {err}"));
            let (ours, theirs, original) = if posix {
                (
                    snapshot(&by_us, None),
                    snapshot(&by_gnu, None),
                    snapshot(&source, None),
                )
            } else {
                (
                    mtimes_in_seconds(snapshot(&by_us, None)),
                    mtimes_in_seconds(snapshot(&by_gnu, None)),
                    mtimes_in_seconds(snapshot(&source, None)),
                )
            };
            assert_eq!(
                ours, theirs,
                "{format} {mode:?}: ours vs GNU tar's extraction"
            );
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                original.keys().collect::<Vec<_>>(),
                "{format}: same paths as the source"
            );
            let note = xattr::get(by_us.join("with-xattr"), "user.note").unwrap();
            let expected = posix.then_some(&b"kept\nwith newline"[..]);
            assert_eq!(note.as_deref(), expected, "{format}");
        }
    }
}
