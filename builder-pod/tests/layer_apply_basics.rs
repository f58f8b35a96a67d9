//! Ordinary layers extract faithfully: types, modes (setuid/setgid/sticky), owners (above
//! 65535), times, xattrs, long names, and the decompression front end.

mod layer_fixtures;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use layer_fixtures::{Entry, Sandbox, TarFixture};
use stratum_builder::layer::{ApplyError, ApplyMode, decompress};

fn sample_layer() -> Vec<u8> {
    TarFixture::new()
        .add(Entry::dir("./"))
        .add(Entry::dir("usr/").mode(0o755))
        .add(Entry::dir("usr/bin/").mode(0o755))
        .add(
            Entry::file("usr/bin/sudo", b"#!/bin/true\n")
                .mode(0o4755)
                .owner(0, 0),
        )
        .add(
            Entry::file("usr/bin/wall", b"wall")
                .mode(0o2755)
                .owner(0, 5),
        )
        .add(Entry::dir("tmp/").mode(0o1777))
        .add(
            Entry::file("home/user/big-ids", b"x")
                .owner(100_000, 200_000)
                .mtime(1_234_567_890),
        )
        .add(Entry::symlink("usr/bin/sh", "dash"))
        .add(Entry::file("usr/bin/dash", b"dash").mode(0o755))
        .add(Entry::hardlink("usr/bin/dash-link", "usr/bin/dash"))
        .add(Entry::fifo("run/fifo").mode(0o600))
        .add(Entry::char_device("dev/null", 1, 3).mode(0o666))
        .add(Entry::dir("ro/").mode(0o555).mtime(1_000_000_000))
        .add(Entry::file("ro/file", b"inside a read-only dir").mode(0o444))
        .finish()
}

#[test]
fn flatten_extracts_types_modes_owners_and_times() {
    let sandbox = Sandbox::new();
    let stats = sandbox.apply(&sample_layer(), ApplyMode::Flatten).unwrap();
    assert_eq!(stats.entries, 14);

    let mode = |path: &str| fs::symlink_metadata(sandbox.at(path)).unwrap().mode() & 0o7777;
    assert_eq!(mode("usr/bin/sudo"), 0o4755, "setuid kept");
    assert_eq!(mode("usr/bin/wall"), 0o2755, "setgid kept");
    assert_eq!(mode("tmp"), 0o1777, "sticky kept");
    assert_eq!(
        mode("ro"),
        0o555,
        "read-only directory mode applied after its children"
    );
    assert_eq!(
        fs::read(sandbox.at("ro/file")).unwrap(),
        b"inside a read-only dir"
    );

    let ids = fs::metadata(sandbox.at("home/user/big-ids")).unwrap();
    assert_eq!(
        (ids.uid(), ids.gid()),
        (100_000, 200_000),
        "ids above 65535"
    );
    assert_eq!(ids.mtime(), 1_234_567_890);
    assert_eq!(
        fs::metadata(sandbox.at("ro")).unwrap().mtime(),
        1_000_000_000,
        "directory mtime set last"
    );
    assert_eq!(
        fs::metadata(sandbox.at("home")).unwrap().mode() & 0o7777,
        0o755,
        "implicit parent"
    );

    assert_eq!(
        fs::read_link(sandbox.at("usr/bin/sh")).unwrap().to_str(),
        Some("dash")
    );
    let dash = fs::metadata(sandbox.at("usr/bin/dash")).unwrap();
    let link = fs::metadata(sandbox.at("usr/bin/dash-link")).unwrap();
    assert_eq!(
        (dash.ino(), dash.nlink()),
        (link.ino(), 2),
        "hard link shares the inode"
    );
    assert!(
        fs::symlink_metadata(sandbox.at("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    let null = fs::symlink_metadata(sandbox.at("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    sandbox.assert_outside_unchanged();
}

#[test]
fn long_names_from_pax_and_gnu_records() {
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}", "f".repeat(200));
    let long_target = format!("/{long_dir}/{}", "t".repeat(150));
    let mut fixture = TarFixture::new();
    fixture.push(Entry::file(&long_name, b"pax"));
    fixture.gnu_long_name(format!("{long_dir}/gnu-{}", "g".repeat(150)).as_bytes());
    fixture.push(Entry::file("truncated-in-header", b"gnu"));
    fixture.push(Entry::symlink("long-link", &long_target));
    let sandbox = Sandbox::new();
    sandbox
        .apply(&fixture.finish(), ApplyMode::Flatten)
        .unwrap();
    assert_eq!(fs::read(sandbox.at(&long_name)).unwrap(), b"pax");
    assert_eq!(
        fs::read(sandbox.at(&format!("{long_dir}/gnu-{}", "g".repeat(150)))).unwrap(),
        b"gnu"
    );
    assert_eq!(
        fs::read_link(sandbox.at("long-link")).unwrap().to_str(),
        Some(long_target.as_str())
    );
    assert!(!sandbox.at("truncated-in-header").exists());
    sandbox.assert_outside_unchanged();
}

#[test]
fn user_xattrs_and_file_capabilities_are_kept() {
    // cap_net_bind_service+ep as a VFS_CAP_REVISION_2 value; byte 0x0a makes the PAX value
    // contain a newline, which a line-splitting PAX parser mangles.
    let capability: [u8; 20] = [
        0x01, 0x00, 0x00, 0x02, 0x0a, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let layer = TarFixture::new()
        .add(
            Entry::file("bin/ping", b"ping")
                .mode(0o755)
                .xattr("security.capability", capability)
                .xattr("user.comment", "kept"),
        )
        .add(Entry::dir("data/").xattr("user.dir", "dir value"))
        .finish();
    let sandbox = Sandbox::new();
    sandbox.apply(&layer, ApplyMode::Flatten).unwrap();
    assert_eq!(
        xattr::get(sandbox.at("bin/ping"), "security.capability")
            .unwrap()
            .as_deref(),
        Some(&capability[..])
    );
    assert_eq!(
        xattr::get(sandbox.at("bin/ping"), "user.comment")
            .unwrap()
            .as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        xattr::get(sandbox.at("data"), "user.dir")
            .unwrap()
            .as_deref(),
        Some(&b"dir value"[..])
    );
    sandbox.assert_outside_unchanged();
}

#[test]
fn decompress_sniffs_gzip_zstd_and_plain() {
    let layer = TarFixture::new()
        .add(Entry::file("hello", b"world"))
        .finish();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&layer).unwrap();
    let gzip = gzip.finish().unwrap();
    let zstd = zstd::encode_all(&layer[..], 3).unwrap();
    for (label, bytes) in [("plain", layer.clone()), ("gzip", gzip), ("zstd", zstd)] {
        let sandbox = Sandbox::new();
        let reader = decompress(std::io::Cursor::new(bytes)).unwrap();
        stratum_builder::layer::apply_layer(
            reader,
            &sandbox.dest,
            &stratum_builder::layer::ApplyOptions::new(ApplyMode::Flatten),
        )
        .unwrap_or_else(|err| panic!("{label}: {err}"));
        assert_eq!(fs::read(sandbox.at("hello")).unwrap(), b"world", "{label}");
    }
    for (format, magic) in [
        ("bzip2", &b"BZh91AY&SY"[..]),
        ("xz", &[0xfd, b'7', b'z', b'X', b'Z', 0, 0][..]),
    ] {
        match decompress(std::io::Cursor::new(magic.to_vec())) {
            Err(ApplyError::UnsupportedCompression { format: found }) => assert_eq!(found, format),
            other => panic!("{format}: {:?}", other.map(|_| ())),
        }
    }
    let short = decompress(std::io::Cursor::new(b"\x1f".to_vec())).map(|_| ());
    assert!(
        short.is_ok(),
        "a one-byte stream is plain (and then an invalid tar), not a panic"
    );
}

#[test]
fn directory_entry_over_existing_directory_merges() {
    let sandbox = Sandbox::new();
    fs::create_dir_all(sandbox.at("etc")).unwrap();
    fs::write(sandbox.at("etc/lower"), b"lower").unwrap();
    fs::set_permissions(sandbox.at("etc"), fs::Permissions::from_mode(0o700)).unwrap();
    let layer = TarFixture::new()
        .add(Entry::dir("etc/").mode(0o751))
        .add(Entry::file("etc/upper", b"up"))
        .finish();
    sandbox.apply(&layer, ApplyMode::Flatten).unwrap();
    assert_eq!(fs::read(sandbox.at("etc/lower")).unwrap(), b"lower");
    assert_eq!(fs::read(sandbox.at("etc/upper")).unwrap(), b"up");
    assert_eq!(
        fs::metadata(sandbox.at("etc")).unwrap().mode() & 0o7777,
        0o751
    );
    sandbox.assert_outside_unchanged();
}

#[test]
fn same_owner_false_keeps_the_extracting_user() {
    let layer = TarFixture::new()
        .add(Entry::dir("d/").owner(1234, 1234))
        .add(Entry::file("d/f", b"x").owner(1234, 1234).mode(0o640))
        .add(Entry::symlink("d/l", "f").owner(1234, 1234))
        .finish();
    let sandbox = Sandbox::new();
    let options = stratum_builder::layer::ApplyOptions {
        same_owner: false,
        ..stratum_builder::layer::ApplyOptions::new(ApplyMode::Flatten)
    };
    sandbox.apply_with(&layer, &options).unwrap();
    let euid = nix::unistd::geteuid().as_raw();
    for path in ["d", "d/f", "d/l"] {
        assert_eq!(
            fs::symlink_metadata(sandbox.at(path)).unwrap().uid(),
            euid,
            "{path}"
        );
    }
    assert_eq!(
        fs::metadata(sandbox.at("d/f")).unwrap().mode() & 0o7777,
        0o640
    );
    sandbox.assert_outside_unchanged();
}
