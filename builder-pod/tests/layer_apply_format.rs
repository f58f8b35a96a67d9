//! threats-and-faults §2.3 #23, #25, #26: parser differentials, header edge cases, duplicates.

mod layer_fixtures;

use std::fs;
use std::os::unix::fs::MetadataExt;

use layer_fixtures::gnu_tar::{gnu_listing, our_listing};
use layer_fixtures::tar_builder::{fix_checksum, header_block, pax_record};
use layer_fixtures::{Entry, Sandbox, TarFixture};
use stratum_builder::layer::{ApplyError, ApplyMode, TarDefect};

/// What our reader must do with a fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// GNU tar and Go read it the same way: we must accept it and list exactly what GNU tar
    /// lists.
    Agree,
    /// The reference readers disagree (or the input is broken): we must refuse it.
    Refuse,
}

/// §2.3 #23 fixtures with the reason for each expectation.
fn fixtures() -> Vec<(&'static str, Expect, Vec<u8>)> {
    let mut out = Vec::new();
    // (a) TARmageddon: PAX size=N, ustar size 0, a smuggled header inside the body. GNU tar and
    // Go both honour PAX `size` (tokio-tar did not).
    let inner = TarFixture::new()
        .add(Entry::file("smuggled", b"evil"))
        .finish();
    out.push((
        "pax size, ustar 0",
        Expect::Agree,
        TarFixture::new()
            .add(
                Entry::file("outer", &inner)
                    .header_size(0)
                    .pax("size", inner.len().to_string()),
            )
            .finish(),
    ));
    // (a') PAX size 0, ustar size N: everyone honours PAX, so everyone sees the inner entry.
    out.push((
        "pax 0, ustar N",
        Expect::Agree,
        TarFixture::new()
            .add(Entry::file("outer", &inner).pax("size", "0"))
            .finish(),
    ));
    // (b) x, L, file: the PAX record describes the file, not the L record (tar-rs #454).
    let mut f = TarFixture::new();
    f.pax_header(b'x', b"PaxHeaders/x", &[("size", b"4")]);
    f.gnu_long_name(b"long-name-from-L");
    let mut file = Entry::file("short", b"data");
    file.header_size = Some(0);
    f.push(file);
    out.push(("x size, L, file", Expect::Agree, f.finish()));
    // (b') PAX path and GNU long name both present: GNU tar takes PAX, Go the long name.
    let mut f = TarFixture::new();
    f.pax_header(b'x', b"PaxHeaders/x", &[("path", b"from-pax")]);
    f.gnu_long_name(b"from-gnu");
    f.push(Entry::file("short", b"data"));
    out.push(("x path, L, file", Expect::Refuse, f.finish()));
    // A malformed record before `size`: tar-rs drops the size, GNU tar errors.
    let mut f = TarFixture::new();
    let mut body = b"5 a=b\n".to_vec();
    body.extend(pax_record("size", b"4"));
    f.special(b'x', b"PaxHeaders/x", &body);
    let mut file = Entry::file("f", b"data");
    file.header_size = Some(0);
    f.push(file);
    out.push(("malformed then size", Expect::Refuse, f.finish()));
    // One zero block then more headers: GNU tar and tar-rs stop, Go returns ErrHeader.
    let mut f = TarFixture::new();
    f.push(Entry::file("a", b"a"));
    f.raw(&[0u8; 512]);
    f.push(Entry::file("b", b"b"));
    out.push(("lone zero block", Expect::Refuse, f.finish()));
    // A symlink with a body: GNU tar skips the body, Go treats the type as header-only.
    let mut f = TarFixture::new();
    let mut link = Entry::symlink("l", "t");
    link.data = inner.clone();
    f.push(link);
    out.push(("symlink with body", Expect::Refuse, f.finish()));
    // A directory with a body: GNU tar and Go ignore the size, tar-rs skips the body.
    let mut f = TarFixture::new();
    let mut dir = Entry::dir("d/");
    dir.data = inner;
    f.push(dir);
    out.push(("dir with body", Expect::Refuse, f.finish()));
    // '0' with a trailing slash: GNU tar makes a directory, Go a file named `x/`. With the
    // old '\0' type both make a directory.
    out.push((
        "reg with slash",
        Expect::Refuse,
        TarFixture::new().add(Entry::file("x/", b"")).finish(),
    ));
    out.push((
        "areg with slash",
        Expect::Agree,
        TarFixture::new()
            .add(Entry::file("x/", b"").typeflag(0))
            .finish(),
    ));
    // Two x (or two L) headers for one entry: GNU tar and Go keep the last, tar-rs errors.
    let mut f = TarFixture::new();
    f.pax_header(b'x', b"P/1", &[("path", b"one")]);
    f.pax_header(b'x', b"P/2", &[("path", b"two")]);
    f.push(Entry::file("f", b""));
    out.push(("two x", Expect::Refuse, f.finish()));
    let mut f = TarFixture::new();
    f.gnu_long_name(b"one");
    f.gnu_long_name(b"two");
    f.push(Entry::file("f", b""));
    out.push(("two L", Expect::Refuse, f.finish()));
    // Global headers: GNU tar applies their keywords to later entries, Go and Docker do not.
    let mut f = TarFixture::new();
    f.pax_header(b'g', b"pax_global_header", &[("path", b"global")]);
    f.push(Entry::file("f", b""));
    f.push(Entry::file("g", b""));
    out.push(("global path", Expect::Refuse, f.finish()));
    let mut f = TarFixture::new();
    f.pax_header(
        b'g',
        b"pax_global_header",
        &[("comment", b"abc"), ("mtime", b"5")],
    );
    f.push(Entry::file("f", b""));
    out.push(("global mtime", Expect::Refuse, f.finish()));
    // An empty PAX path means "unset" to POSIX and an empty name to Go.
    out.push((
        "empty pax path",
        Expect::Refuse,
        TarFixture::new()
            .add(Entry::file("f", b"").pax("path", ""))
            .finish(),
    ));
    // NUL in a PAX path: GNU tar cuts the name there, Go keeps it.
    out.push((
        "nul pax path",
        Expect::Refuse,
        TarFixture::new()
            .add(Entry::file("f", b"").pax("path", b"a\0b"))
            .finish(),
    ));
    // A blank size field: 0 for both GNU tar and Go.
    let mut f = TarFixture::new();
    let mut block = header_block(&Entry::file("f", b""));
    block[124..136].copy_from_slice(&[0u8; 12]);
    fix_checksum(&mut block);
    f.raw(&block);
    out.push(("blank size", Expect::Agree, f.finish()));
    // ustar magic with a bad version: GNU tar uses the prefix field, Go does not.
    let mut block = header_block(&Entry::file("name", b""));
    block[263..265].copy_from_slice(b"\0\0");
    block[345..351].copy_from_slice(b"prefix");
    fix_checksum(&mut block);
    let mut f = TarFixture::new();
    f.raw(&block);
    out.push(("ustar bad version prefix", Expect::Refuse, f.finish()));
    // A negative base-256 size: GNU tar refuses it; tar-rs reads a huge positive number.
    let mut block = header_block(&Entry::file("neg", b""));
    block[124..136].copy_from_slice(&[0xff; 12]);
    fix_checksum(&mut block);
    let mut f = TarFixture::new();
    f.raw(&block);
    out.push(("negative size", Expect::Refuse, f.finish()));
    // An unknown type: POSIX says read it as a regular file, GNU tar lists it as unknown.
    out.push((
        "unknown type Z",
        Expect::Refuse,
        TarFixture::new()
            .add(Entry::file("z", b"zz").typeflag(b'Z'))
            .finish(),
    ));
    // No end-of-archive blocks: both accept EOF at a header boundary.
    out.push((
        "no end marker",
        Expect::Agree,
        TarFixture::new().add(Entry::file("f", b"x")).unterminated(),
    ));
    out
}

#[test]
fn differential_reader_oracle_against_gnu_tar_tarmageddon_class() {
    // GNU tar runs here; Go's archive/tar does not, so its reading of each fixture is recorded
    // in the comments of `fixtures()` (from its reader.go). Where any two readers differ, we
    // must refuse; where they agree, we must list exactly what GNU tar lists.
    for (label, expect, bytes) in fixtures() {
        let ours = our_listing(&bytes);
        match expect {
            Expect::Agree => {
                let gnu = gnu_listing(&bytes)
                    .unwrap_or_else(|err| panic!("{label}: GNU tar failed: {err}"));
                assert_eq!(
                    ours.as_ref().ok(),
                    Some(&gnu),
                    "{label}: our listing differs from GNU tar's"
                );
            }
            Expect::Refuse => assert!(ours.is_err(), "{label}: accepted {ours:?}"),
        }
    }
}

#[test]
fn pax_size_overrides_zero_ustar_size_tarmageddon_cve_2025_62518() {
    let inner = TarFixture::new()
        .add(Entry::file("smuggled", b"evil"))
        .finish();
    let tar = TarFixture::new()
        .add(
            Entry::file("outer", &inner)
                .header_size(0)
                .pax("size", inner.len().to_string()),
        )
        .add(Entry::file("after", b"after"))
        .finish();
    assert_eq!(our_listing(&tar), gnu_listing(&tar));
    let sandbox = Sandbox::new();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(
        fs::read(sandbox.at("outer")).unwrap(),
        inner,
        "the body is file content"
    );
    assert!(
        !sandbox.at("smuggled").exists(),
        "nothing smuggled out of the body"
    );
    assert_eq!(fs::read(sandbox.at("after")).unwrap(), b"after");
}

#[test]
fn pax_header_then_gnu_longname_applies_to_the_file_tar_rs_454_ghsa_3cv2_h65g_fgmm() {
    let mut fixture = TarFixture::new();
    fixture.pax_header(
        b'x',
        b"PaxHeaders/x",
        &[("size", b"4"), ("mtime", b"1000.5")],
    );
    fixture.gnu_long_name(b"dir/long-name-from-L");
    fixture.push(Entry::file("short", b"data").header_size(0));
    let tar = fixture.finish();
    assert_eq!(our_listing(&tar), gnu_listing(&tar));
    let sandbox = Sandbox::new();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    let meta = fs::metadata(sandbox.at("dir/long-name-from-L")).unwrap();
    assert_eq!(
        (meta.size(), meta.mtime(), meta.mtime_nsec()),
        (4, 1000, 500_000_000)
    );
    sandbox.assert_outside_unchanged();
}

#[test]
fn pax_path_and_gnu_longname_disagreeing_is_refused_astral_tokio_tar_ghsa_fp55_jw48_c537() {
    let mut fixture = TarFixture::new();
    fixture.pax_header(b'x', b"PaxHeaders/x", &[("path", b"from-pax")]);
    fixture.gnu_long_name(b"from-gnu");
    fixture.push(Entry::file("short", b"data"));
    let sandbox = Sandbox::new();
    let err = sandbox
        .apply(&fixture.finish(), ApplyMode::Flatten)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::Tar {
                defect: TarDefect::ConflictingNames { .. },
                ..
            }
        ),
        "{err:?}"
    );
    sandbox.assert_outside_unchanged();
}

// --- #25 header edge cases -------------------------------------------------------------------------

#[test]
fn global_header_creates_no_parent_moby_x_global_no_parent() {
    let mut fixture = TarFixture::new();
    fixture.pax_header(b'g', b"foo/bar", &[]);
    fixture.pax_header(
        b'g',
        b"pax_global_header",
        &[("comment", b"0123456789abcdef0123456789abcdef01234567")],
    );
    fixture.push(Entry::file("file", b"x"));
    let sandbox = Sandbox::new();
    sandbox
        .apply(&fixture.finish(), ApplyMode::Flatten)
        .unwrap();
    sandbox.assert_outside_unchanged();
    assert!(!sandbox.at("foo").exists());
    assert!(
        !sandbox.at("pax_global_header").exists(),
        "git archive's comment header is not a file"
    );
    assert_eq!(fs::read(sandbox.at("file")).unwrap(), b"x");
}

#[test]
fn global_header_that_gnu_tar_would_apply_is_refused_go_containerregistry_1414() {
    let mut fixture = TarFixture::new();
    fixture.pax_header(
        b'g',
        b"pax_global_header",
        &[("path", b"everything-is-named-this")],
    );
    fixture.push(Entry::file("file", b"x"));
    let sandbox = Sandbox::new();
    let err = sandbox
        .apply(&fixture.finish(), ApplyMode::Flatten)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::Tar {
                defect: TarDefect::GlobalHeaderKey { .. },
                ..
            }
        ),
        "{err:?}"
    );
    sandbox.assert_outside_unchanged();
}

#[test]
fn ustar_prefix_split_and_huge_uid_moby_prefix_header_readable() {
    // name = 95 × 'a' + "/foo" stored as prefix "aaa…" + name "foo"; uid 0o10000000 needs the
    // base-256 encoding of the 8-byte field.
    let entry = Entry::file("foo", b"x").owner(0o10000000, 0o10000001);
    let mut block = header_block(&entry);
    block[345..440].copy_from_slice("a".repeat(95).as_bytes());
    fix_checksum(&mut block);
    let mut fixture = TarFixture::new();
    fixture.raw(&block);
    fixture.raw(b"x");
    fixture.raw(&[0u8; 511]);
    let tar = fixture.finish();
    assert_eq!(our_listing(&tar), gnu_listing(&tar));
    let sandbox = Sandbox::new();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    let meta = fs::metadata(sandbox.at(&format!("{}/foo", "a".repeat(95)))).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0o10000000, 0o10000001));
}

#[test]
fn gnu_longlink_and_pax_ids_go_containerregistry_1414() {
    let target = format!("/{}", "t".repeat(300));
    let mut fixture = TarFixture::new();
    let mut body = target.clone().into_bytes();
    body.push(0);
    fixture.special(b'K', b"././@LongLink", &body);
    fixture.push(Entry::symlink("link", "truncated"));
    fixture.push(
        Entry::file("ids", b"x")
            .pax("uid", "70000")
            .pax("gid", "4294967294"),
    );
    let tar = fixture.finish();
    assert_eq!(our_listing(&tar), gnu_listing(&tar));
    let sandbox = Sandbox::new();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(
        fs::read_link(sandbox.at("link")).unwrap().to_str(),
        Some(target.as_str())
    );
    let meta = fs::metadata(sandbox.at("ids")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (70000, 4294967294));
}

#[test]
fn invalid_utf8_backslash_and_nul_in_names_tianon_badtars_invalid_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let raw_name: &[u8] = b"caf\xe9-\xff\xfe";
    let name = [b"caf".as_slice(), &[0xe9], b"-", &[0xff, 0xfe]].concat();
    let tar = TarFixture::new()
        .add(Entry::file(&name, b"latin1"))
        .add(Entry::file("back\\slash", b"bs"))
        .finish();
    let sandbox = Sandbox::new();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(
        fs::read(sandbox.dest.join(std::ffi::OsStr::from_bytes(&name))).unwrap(),
        b"latin1",
        "{raw_name:?}"
    );
    assert_eq!(fs::read(sandbox.at("back\\slash")).unwrap(), b"bs");
    // A NUL inside a PAX path is cut by GNU tar and kept by Go: refused.
    let tar = TarFixture::new()
        .add(Entry::file("f", b"").pax("path", b"a\0b"))
        .finish();
    let sandbox = Sandbox::new();
    let err = sandbox.apply(&tar, ApplyMode::Flatten).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::Tar {
                defect: TarDefect::PaxValue { .. },
                ..
            }
        ),
        "{err:?}"
    );
    sandbox.assert_outside_unchanged();
}

// --- #26 duplicates --------------------------------------------------------------------------------

#[test]
fn duplicate_entries_last_wins_type_changes_replace_image_spec_196_syft_1445() {
    for mode in [ApplyMode::Flatten, ApplyMode::OverlayLayer] {
        let tar = TarFixture::new()
            .add(Entry::file("f", b"first"))
            .add(Entry::file("f", b"second").mode(0o600))
            .add(Entry::file("g", b"file"))
            .add(Entry::dir("g/"))
            .add(Entry::file("g/child", b"child"))
            .add(Entry::symlink("g", "../victim"))
            .add(Entry::symlink("h", "../victim/hello"))
            .add(Entry::file("h", b"replaced link"))
            .add(Entry::hardlink("i", "f"))
            .add(Entry::file("i", b"unlinked"))
            .finish();
        let sandbox = Sandbox::new();
        sandbox.apply(&tar, mode).unwrap();
        sandbox.assert_outside_unchanged();
        assert_eq!(fs::read(sandbox.at("f")).unwrap(), b"second");
        assert_eq!(
            fs::metadata(sandbox.at("f")).unwrap().mode() & 0o7777,
            0o600
        );
        assert_eq!(
            fs::read_link(sandbox.at("g")).unwrap().to_str(),
            Some("../victim")
        );
        assert_eq!(fs::read(sandbox.at("h")).unwrap(), b"replaced link");
        assert_eq!(fs::read(sandbox.at("i")).unwrap(), b"unlinked");
        assert_eq!(
            fs::metadata(sandbox.at("f")).unwrap().nlink(),
            1,
            "replacing `i` broke the link, not `f`"
        );
    }
}
