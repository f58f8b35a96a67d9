//! Hostile archives served as build contexts over HTTPS (threats-and-faults §2.1–§2.3, §2.6
//! #37): every case is refused or contained, a refused one leaves the context directory
//! empty, and nothing beside it — here a `victim/` directory next to the context — changes.

mod source_object_support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use source_object_support::{Entry, HttpsServer, ZipEntry, gzip, tar, tree, zip, zstd};
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::object::{self, FetchedObject, ObjectAuth, ObjectError, ObjectFetch};

const MIB: u64 = 1 << 20;

/// `<tmp>/victim/hello` beside the context `<tmp>/tree`.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tree")).unwrap();
        std::fs::create_dir(dir.path().join("victim")).unwrap();
        std::fs::write(dir.path().join("victim/hello"), b"untouched").unwrap();
        Self { dir }
    }

    fn victim(&self) -> String {
        self.dir.path().join("victim").display().to_string()
    }

    fn tree(&self) -> std::path::PathBuf {
        self.dir.path().join("tree")
    }

    /// Nothing outside the context changed: the victim holds only its file, as it was, and no
    /// spool or stray directory is left beside the context.
    fn assert_outside_untouched(&self, case: &str) {
        let outside: Vec<String> = tree(self.dir.path())
            .into_iter()
            .filter(|p| !p.starts_with("tree/") && p != "tree")
            .collect();
        assert_eq!(outside, ["victim", "victim/hello"], "{case}");
        let hello = self.dir.path().join("victim/hello");
        assert_eq!(std::fs::read(&hello).unwrap(), b"untouched", "{case}");
        assert_eq!(
            std::fs::metadata(&hello).unwrap().nlink(),
            1,
            "{case}: no hard link to it"
        );
    }
}

fn fetch(
    server: &HttpsServer,
    site: &Site,
    name: &str,
    bytes: &[u8],
    max_bytes: u64,
) -> Result<FetchedObject, ObjectError> {
    server.put(name, bytes);
    let ca = server.secret(&[]);
    let auth = ObjectAuth::from_secret_dir(ca.path()).unwrap();
    let spec = ObjectFetch {
        url: &server.url(&format!("files/{name}")),
        sha256: None,
        max_bytes,
    };
    object::fetch(&spec, &auth, &site.tree())
}

/// A refused archive: a typed Invalid error and an empty context.
fn assert_refused(
    result: Result<FetchedObject, ObjectError>,
    site: &Site,
    case: &str,
) -> ObjectError {
    let err = match result {
        Ok(fetched) => panic!(
            "{case}: accepted ({fetched:?}), tree {:?}",
            tree(&site.tree())
        ),
        Err(err) => err,
    };
    assert_eq!(err.kind(), SourceErrorKind::Invalid, "{case}: {err}");
    assert!(
        tree(&site.tree()).is_empty(),
        "{case}: partial context left: {:?}",
        tree(&site.tree())
    );
    site.assert_outside_untouched(case);
    err
}

#[test]
fn parent_traversal_names_are_refused_kaniko_ghsa_6rxq() {
    let server = HttpsServer::start();
    for (i, name) in [
        "../victim/dotdot",
        "/../victim/slash-dotdot",
        "..",
        "../../pwned",
        "a/../../victim/x",
    ]
    .into_iter()
    .enumerate()
    {
        let site = Site::new();
        let archive = tar(&[
            Entry::File("ok.txt", b"fine"),
            Entry::File(name, b"escaped"),
        ]);
        assert_refused(
            fetch(&server, &site, &format!("t{i}.tar"), &archive, MIB),
            &site,
            name,
        );
    }
}

#[test]
fn absolute_names_are_contained_in_the_context() {
    let server = HttpsServer::start();
    let site = Site::new();
    let archive = tar(&[Entry::File("/etc/stratum-abs-test", b"inside")]);
    fetch(&server, &site, "abs.tar", &archive, MIB).unwrap();
    assert_eq!(
        std::fs::read(site.tree().join("etc/stratum-abs-test")).unwrap(),
        b"inside"
    );
    assert!(!Path::new("/etc/stratum-abs-test").exists());
    site.assert_outside_untouched("absolute name");
}

#[test]
fn writes_through_escaping_symlinks_never_leave_the_context() {
    let server = HttpsServer::start();
    let probe = Site::new();
    let absolute = probe.victim();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "absolute symlink then write",
            tar(&[
                Entry::Symlink("escape", &absolute),
                Entry::File("escape/pwned", b"x"),
            ]),
        ),
        (
            "relative symlink then write",
            tar(&[
                Entry::Symlink("up", "../victim"),
                Entry::File("up/pwned", b"x"),
            ]),
        ),
        (
            "two-hop chain",
            tar(&[
                Entry::Dir("inner"),
                Entry::Symlink("inner/go_up", ".."),
                Entry::Symlink("inner/go_up/escape", "../victim"),
                Entry::File("inner/go_up/escape/pwned", b"x"),
            ]),
        ),
        (
            "dangling link then same-name file",
            tar(&[
                Entry::Symlink("pwn", "../victim/created"),
                Entry::File("pwn", b"x"),
            ]),
        ),
    ];
    for (i, (case, archive)) in cases.iter().enumerate() {
        let site = Site::new();
        // Contained (the write lands inside the context) or refused: both are safe.
        let _ = fetch(&server, &site, &format!("s{i}.tar"), archive, MIB);
        site.assert_outside_untouched(case);
        assert!(!site.dir.path().join("victim/pwned").exists(), "{case}");
        assert!(!site.dir.path().join("victim/created").exists(), "{case}");
    }
}

#[test]
fn hardlinks_to_outside_never_share_an_inode_with_it() {
    let server = HttpsServer::start();
    for (i, target) in [
        "../victim/hello",
        "/../victim/hello",
        "../../../../../victim/hello",
    ]
    .into_iter()
    .enumerate()
    {
        let site = Site::new();
        let archive = tar(&[Entry::Hardlink("grab", target)]);
        let result = fetch(&server, &site, &format!("h{i}.tar"), &archive, MIB);
        // The target is clamped into the context, where it does not exist.
        assert_refused(result, &site, target);
    }
}

#[test]
fn zip_slip_is_refused_and_zip_absolute_names_are_contained() {
    let server = HttpsServer::start();
    let site = Site::new();
    let archive = zip(&[
        ZipEntry::File("ok.txt", b"fine"),
        ZipEntry::File("../victim/zipslip", b"x"),
    ]);
    assert_refused(
        fetch(&server, &site, "slip.zip", &archive, MIB),
        &site,
        "zip slip",
    );

    let site = Site::new();
    let archive = zip(&[ZipEntry::File("/abs/zipped", b"inside")]);
    fetch(&server, &site, "abs.zip", &archive, MIB).unwrap();
    assert_eq!(
        std::fs::read(site.tree().join("abs/zipped")).unwrap(),
        b"inside"
    );
    site.assert_outside_untouched("zip absolute");
}

#[test]
fn zip_symlink_then_write_stays_inside() {
    let server = HttpsServer::start();
    let site = Site::new();
    let victim = site.victim();
    let archive = zip(&[
        ZipEntry::Symlink("link", &victim),
        ZipEntry::File("link/pwned", b"x"),
    ]);
    let _ = fetch(&server, &site, "link.zip", &archive, MIB);
    site.assert_outside_untouched("zip symlink then write");
    assert!(!site.dir.path().join("victim/pwned").exists());
}

#[test]
fn decompression_bombs_hit_the_extracted_size_cap() {
    let server = HttpsServer::start();
    // 64 MiB of zeros compress to well under 256 KiB; the cap is 64 × 256 KiB = 16 MiB.
    let zeros = vec![0u8; 64 << 20];
    let max_bytes = 256 << 10;
    let bomb_tar = tar(&[Entry::File("zeros", &zeros)]);
    let cases = [
        ("gzip bomb", "bomb.tar.gz", gzip(&bomb_tar)),
        ("zstd bomb", "bomb.tar.zst", zstd(&bomb_tar)),
        (
            "zip bomb",
            "bomb.zip",
            zip(&[ZipEntry::File("zeros", &zeros)]),
        ),
    ];
    for (case, name, archive) in cases {
        assert!(
            (archive.len() as u64) < max_bytes,
            "{case}: fixture too big"
        );
        let site = Site::new();
        let err = assert_refused(
            fetch(&server, &site, name, &archive, max_bytes),
            &site,
            case,
        );
        let text = err.to_string();
        assert!(text.contains("limit"), "{case}: {text}");
    }
}

#[test]
fn a_truncated_gzip_is_refused_with_nothing_left() {
    let server = HttpsServer::start();
    let body: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let full = gzip(&tar(&[
        Entry::File("a.txt", b"first"),
        Entry::File("noise", &body),
    ]));
    let site = Site::new();
    let err = assert_refused(
        fetch(&server, &site, "cut.tar.gz", &full[..full.len() / 2], MIB),
        &site,
        "truncated gzip",
    );
    assert!(matches!(err, ObjectError::Archive { .. }), "{err}");
}

#[test]
fn a_truncated_zip_is_refused() {
    let server = HttpsServer::start();
    let full = zip(&[
        ZipEntry::File("a.txt", b"first"),
        ZipEntry::File("b.txt", &[1u8; 4096]),
    ]);
    let site = Site::new();
    assert_refused(
        fetch(&server, &site, "cut.zip", &full[..full.len() - 30], MIB),
        &site,
        "truncated zip",
    );
}

#[test]
fn a_zip_entry_that_inflates_past_its_declared_size_is_refused() {
    let server = HttpsServer::start();
    let mut archive = zip(&[ZipEntry::File("liar", &[b'z'; 100_000])]);
    // Rewrite the declared uncompressed size (local header offset 22, central directory
    // entry offset 24) from 100000 to 10: the deflate stream still inflates to 100000.
    let declared = 100_000u32.to_le_bytes();
    let mut patched = 0;
    for i in 0..archive.len() - 4 {
        let local = archive[i..].starts_with(b"PK\x03\x04") && archive[i + 22..i + 26] == declared;
        let central =
            archive[i..].starts_with(b"PK\x01\x02") && archive[i + 24..i + 28] == declared;
        if local || central {
            let at = if local { i + 22 } else { i + 24 };
            archive[at..at + 4].copy_from_slice(&10u32.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "fixture: both size fields rewritten");
    let site = Site::new();
    let err = assert_refused(
        fetch(&server, &site, "liar.zip", &archive, MIB),
        &site,
        "lying zip",
    );
    assert!(matches!(err, ObjectError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("declared"), "{err}");
}
