use super::*;
use crate::layer::diff::diff_upper;
use std::os::unix::fs::{PermissionsExt, symlink};

fn opts(compression: Compression) -> WriteOptions {
    WriteOptions {
        compression,
        source_date_epoch: None,
        threads: 2,
    }
}

fn write(changes: &[Change], upper: &Path, opts: &WriteOptions) -> (LayerBlob, Vec<u8>) {
    write_layer(changes, upper, Vec::new(), opts).unwrap()
}

/// One tar entry as the `tar` crate reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    content: Vec<u8>,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn entries(tar_bytes: &[u8]) -> Vec<Entry> {
    use std::io::Read;
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut xattrs = Vec::new();
        let mut uid = entry.header().uid().unwrap();
        if let Some(exts) = entry.pax_extensions().unwrap() {
            for ext in exts {
                let ext = ext.unwrap();
                let key = ext.key().unwrap();
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
                } else if key == "uid" {
                    uid = ext.value().unwrap().parse().unwrap();
                }
            }
        }
        let header = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        out.push(Entry {
            name: String::from_utf8(entry.path_bytes().into_owned()).unwrap(),
            kind: header.entry_type(),
            mode: header.mode().unwrap(),
            uid,
            gid: header.gid().unwrap(),
            mtime: header.mtime().unwrap(),
            link: entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap()),
            content,
            xattrs,
        });
    }
    out
}

fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

/// A small tree with every kind of entry a layer can hold.
fn sample_tree(root: &Path) {
    use nix::sys::stat::{Mode, SFlag, mknod};
    use nix::unistd::{Gid, Uid, chown};
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("usr/bin/su"), b"#!/bin/true\n").unwrap();
    std::fs::set_permissions(root.join("usr/bin/su"), PermissionsExt::from_mode(0o4755)).unwrap();
    std::fs::write(root.join("usr/bin/ping"), b"ping").unwrap();
    xattr::set(
        root.join("usr/bin/ping"),
        "security.capability",
        &CAP_NET_RAW,
    )
    .unwrap();
    xattr::set(root.join("usr/bin/ping"), "user.overlay.opaque", b"y").unwrap();
    std::fs::write(root.join("a"), vec![7u8; 5000]).unwrap();
    std::fs::hard_link(root.join("a"), root.join("usr/a-link")).unwrap();
    symlink("../a", root.join("usr/sym")).unwrap();
    mknod(
        &root.join("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::write(root.join("owned"), b"").unwrap();
    chown(
        &root.join("owned"),
        Some(Uid::from_raw(3_000_000)),
        Some(Gid::from_raw(1000)),
    )
    .unwrap();
    for p in [
        "usr/bin/su",
        "usr/bin/ping",
        "a",
        "usr/sym",
        "null",
        "fifo",
        "owned",
        "usr/bin",
        "usr",
    ] {
        set_mtime(&root.join(p), 1_600_000_000, 999_999_999);
    }
}

/// A version-2 file capability blob granting cap_net_raw (linux/capability.h `vfs_cap_data`).
const CAP_NET_RAW: [u8; 20] = [
    0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn every_entry_kind_round_trips_through_a_tar_reader() {
    let tmp = tempfile::tempdir().unwrap();
    sample_tree(tmp.path());
    let changes = diff_upper(tmp.path(), &[]).unwrap();
    let (blob, bytes) = write(&changes, tmp.path(), &opts(Compression::None));
    assert_eq!(blob.digest, blob.diff_id);
    assert_eq!(blob.size, bytes.len() as u64);
    assert_eq!(blob.entries, 10);
    let got = entries(&bytes);
    let names: Vec<_> = got.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "a",
            "fifo",
            "null",
            "owned",
            "usr/",
            "usr/a-link",
            "usr/bin/",
            "usr/bin/ping",
            "usr/bin/su",
            "usr/sym"
        ]
    );
    let by = |n: &str| got.iter().find(|e| e.name == n).unwrap().clone();
    assert_eq!(by("a").content, vec![7u8; 5000]);
    assert_eq!(by("a").mtime, 1_600_000_000, "mtime truncated, not rounded");
    assert_eq!(by("usr/a-link").kind, tar::EntryType::Link);
    assert_eq!(by("usr/a-link").link.as_deref(), Some("a"));
    assert_eq!(by("usr/sym").link.as_deref(), Some("../a"));
    assert_eq!(by("usr/bin/su").mode, 0o4755);
    assert_eq!(by("null").kind, tar::EntryType::Char);
    assert_eq!(by("fifo").kind, tar::EntryType::Fifo);
    assert_eq!((by("owned").uid, by("owned").gid), (3_000_000, 1000));
    // security.capability kept, user.overlay.* dropped.
    assert_eq!(
        by("usr/bin/ping").xattrs,
        vec![("security.capability".to_owned(), CAP_NET_RAW.to_vec())]
    );
}

#[test]
fn whiteouts_and_opaque_markers_are_empty_root_files_at_the_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("x")).unwrap();
    let changes = [
        Change {
            path: "etc/passwd".into(),
            kind: ChangeKind::Deleted,
        },
        Change {
            path: "top".into(),
            kind: ChangeKind::Deleted,
        },
        Change {
            path: "x".into(),
            kind: ChangeKind::Modified,
        },
        Change {
            path: "x".into(),
            kind: ChangeKind::Opaque,
        },
    ];
    for epoch in [None, Some(1_700_000_000)] {
        let o = WriteOptions {
            source_date_epoch: epoch,
            ..opts(Compression::None)
        };
        let got = entries(&write(&changes, tmp.path(), &o).1);
        let names: Vec<_> = got.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["etc/.wh.passwd", ".wh.top", "x/", "x/.wh..wh..opq"]);
        for marker in got.iter().filter(|e| e.name.contains(".wh.")) {
            assert_eq!(
                (
                    marker.kind,
                    marker.mode,
                    marker.uid,
                    marker.gid,
                    marker.mtime,
                    marker.content.len()
                ),
                (tar::EntryType::Regular, 0, 0, 0, 0, 0),
                "{}",
                marker.name
            );
        }
    }
}

#[test]
fn source_date_epoch_clamps_later_mtimes_only() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("old"), b"").unwrap();
    std::fs::write(tmp.path().join("new"), b"").unwrap();
    set_mtime(&tmp.path().join("old"), 1_000_000_000, 500);
    set_mtime(&tmp.path().join("new"), 2_000_000_000, 0);
    let changes = diff_upper(tmp.path(), &[]).unwrap();
    let o = WriteOptions {
        source_date_epoch: Some(1_500_000_000),
        ..opts(Compression::None)
    };
    let got = entries(&write(&changes, tmp.path(), &o).1);
    let mtimes: Vec<_> = got.iter().map(|e| (e.name.as_str(), e.mtime)).collect();
    assert_eq!(mtimes, [("new", 1_500_000_000), ("old", 1_000_000_000)]);
}

#[test]
fn the_same_diff_written_30_times_has_one_digest() {
    // threats §2.5 #31 (containerd makeDiffTarReproTest: 30 iterations), for each codec and
    // whatever the thread count.
    let tmp = tempfile::tempdir().unwrap();
    sample_tree(tmp.path());
    let changes = diff_upper(tmp.path(), &[]).unwrap();
    for compression in [
        Compression::Gzip { level: 6 },
        Compression::Zstd { level: 3 },
    ] {
        let first = write(&changes, tmp.path(), &opts(compression)).0;
        for i in 0..30 {
            let o = WriteOptions {
                threads: 1 + i % 3,
                ..opts(compression)
            };
            assert_eq!(
                write(&changes, tmp.path(), &o).0,
                first,
                "{compression:?} run {i}"
            );
        }
    }
}

#[test]
fn compressed_blobs_decompress_to_the_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    sample_tree(tmp.path());
    let changes = diff_upper(tmp.path(), &[]).unwrap();
    let (plain, tar_bytes) = write(&changes, tmp.path(), &opts(Compression::None));
    for compression in [
        Compression::Gzip { level: 1 },
        Compression::Zstd { level: 3 },
    ] {
        let (blob, bytes) = write(&changes, tmp.path(), &opts(compression));
        assert_eq!(blob.diff_id, plain.diff_id);
        assert_eq!(blob.uncompressed_size, tar_bytes.len() as u64);
        assert_eq!(blob.digest, Digest::of(&bytes));
        assert_eq!(blob.size, bytes.len() as u64);
        assert_eq!(blob.media_type, compression.media_type());
        let mut back = Vec::new();
        match compression {
            Compression::Gzip { .. } => {
                use std::io::Read;
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut back)
                    .unwrap();
            }
            _ => back = zstd::decode_all(&bytes[..]).unwrap(),
        }
        assert!(back == tar_bytes, "{compression:?}");
    }
}

#[test]
fn no_changes_is_an_empty_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let (blob, bytes) = write(&[], tmp.path(), &opts(Compression::None));
    assert!(blob.is_empty());
    assert_eq!(bytes, vec![0u8; 1024]);
    assert_eq!(blob.diff_id, Digest::of(&[0u8; 1024]));
}

#[test]
fn a_lone_name_of_a_multiply_linked_inode_is_a_regular_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("f"), b"data").unwrap();
    std::fs::hard_link(tmp.path().join("f"), tmp.path().join("g")).unwrap();
    let only_g = [Change {
        path: "g".into(),
        kind: ChangeKind::Added,
    }];
    let got = entries(&write(&only_g, tmp.path(), &opts(Compression::None)).1);
    assert_eq!(
        (got[0].kind, got[0].content.as_slice()),
        (tar::EntryType::Regular, &b"data"[..])
    );
}

#[test]
fn errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = [Change {
        path: "missing".into(),
        kind: ChangeKind::Added,
    }];
    let err = write_layer(&missing, tmp.path(), Vec::new(), &opts(Compression::None)).unwrap_err();
    assert!(
        matches!(&err, LayerWriteError::Read { path, .. } if path.ends_with("missing")),
        "{err:?}"
    );
    let _sock = std::os::unix::net::UnixListener::bind(tmp.path().join("sock")).unwrap();
    let socket = [Change {
        path: "sock".into(),
        kind: ChangeKind::Added,
    }];
    let err = write_layer(&socket, tmp.path(), Vec::new(), &opts(Compression::None)).unwrap_err();
    assert!(matches!(err, LayerWriteError::Socket { .. }), "{err:?}");
}

#[test]
fn a_file_that_no_longer_matches_its_header_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f");
    std::fs::write(&path, b"short").unwrap();
    let header_meta = std::fs::metadata(&path).unwrap();
    let sink = LayerSink::new(Vec::new(), Compression::None, 1).unwrap();
    let mut writer = TarWriter {
        out: BufWriter::new(sink),
        upper: tmp.path(),
        epoch: None,
        first_name_of_inode: HashMap::new(),
        header: Vec::new(),
        buffer: vec![0; 16],
        entries: 0,
    };
    // Grew after the header was written.
    std::fs::write(&path, b"much longer now").unwrap();
    let err = writer.copy_content(&path, &header_meta).unwrap_err();
    assert!(matches!(err, LayerWriteError::Changed { .. }), "{err:?}");
    // Replaced by another inode.
    let meta = std::fs::metadata(&path).unwrap();
    // Written beside it first, so it cannot reuse the old inode number.
    std::fs::write(tmp.path().join("f.new"), b"much longer now").unwrap();
    std::fs::rename(tmp.path().join("f.new"), &path).unwrap();
    let err = writer.copy_content(&path, &meta).unwrap_err();
    assert!(matches!(err, LayerWriteError::Changed { .. }), "{err:?}");
}
