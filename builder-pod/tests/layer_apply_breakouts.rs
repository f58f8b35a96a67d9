//! threats-and-faults §2.1: traversal, symlink and hard-link breakouts. Every test runs the
//! sentinel oracle: nothing outside `dest` may change, whatever the outcome.

mod layer_fixtures;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use layer_fixtures::{Entry, Sandbox, TarFixture};
use stratum_builder::layer::{ApplyError, ApplyMode};

const MODES: [ApplyMode; 2] = [ApplyMode::Flatten, ApplyMode::OverlayLayer];

fn same_inode(a: &Path, b: &Path) -> bool {
    let (a, b) = (
        fs::symlink_metadata(a).unwrap(),
        fs::symlink_metadata(b).unwrap(),
    );
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn assert_dest_empty(sandbox: &Sandbox) {
    assert_eq!(
        fs::read_dir(&sandbox.dest).unwrap().count(),
        0,
        "dest must be empty"
    );
}

/// Applies `tar` in Flatten mode to a fresh sandbox, requires success and containment.
fn contained(tar: &[u8]) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox
        .apply(tar, ApplyMode::Flatten)
        .unwrap_or_else(|err| panic!("expected success: {err}"));
    sandbox.assert_outside_unchanged();
    sandbox
}

// --- #1 parent traversal in entry names -----------------------------------------------------

#[test]
fn breakout_parent_traversal_names_moby_untar_invalid_filenames_kaniko_cve_2026_28406() {
    for name in [
        "../victim/dotdot",
        "/../victim/slash-dotdot",
        "..",
        "../../pwned",
        "../outside.txt",
        "a/../../b",
    ] {
        for mode in MODES {
            let sandbox = Sandbox::new();
            let tar = TarFixture::new().add(Entry::file(name, b"bad")).finish();
            let err = sandbox.apply(&tar, mode).unwrap_err();
            assert!(
                matches!(err, ApplyError::PathEscapes { .. }),
                "{name:?} {mode:?}: {err:?}"
            );
            sandbox.assert_outside_unchanged();
            assert_dest_empty(&sandbox);
        }
    }
}

// --- #2 absolute symlink, then a write through it (containerd TestBreakouts) -----------------

fn assert_unbroken(sandbox: &Sandbox) {
    assert_eq!(fs::read(sandbox.at("etc/unbroken")).unwrap(), b"unbroken");
}

#[test]
fn breakout_absolute_symlink_write_through_containerd_symlink_absolute() {
    let tar = TarFixture::new()
        .add(Entry::dir("etc"))
        .add(Entry::symlink("localetc", "/etc"))
        .add(Entry::file("/localetc/unbroken", b"unbroken"))
        .finish();
    assert_unbroken(&contained(&tar));
}

#[test]
fn breakout_symlink_up_and_out_containerd_symlink_up_and_out() {
    let tar = TarFixture::new()
        .add(Entry::dir("etc"))
        .add(Entry::dir("dummy"))
        .add(Entry::symlink("localetc", "/dummy/../etc"))
        .add(Entry::file("/localetc/unbroken", b"unbroken"))
        .finish();
    assert_unbroken(&contained(&tar));
}

#[test]
fn breakout_chained_absolute_symlinks_containerd_symlink_multiple_absolute() {
    let tar = TarFixture::new()
        .add(Entry::dir("etc"))
        .add(Entry::dir("dummy"))
        .add(Entry::symlink("/dummy/etc", "/etc"))
        .add(Entry::symlink("localetc", "/dummy/etc"))
        .add(Entry::file("/dummy/etc/unbroken", b"unbroken"))
        .finish();
    assert_unbroken(&contained(&tar));
}

#[test]
fn breakout_relative_link_to_a_link_containerd_symlink_multiple_relative() {
    let tar = TarFixture::new()
        .add(Entry::dir("etc"))
        .add(Entry::dir("dummy"))
        .add(Entry::symlink("/dummy/etc", "/etc"))
        .add(Entry::symlink("localetc", "./dummy/etc"))
        .add(Entry::file("/localetc/unbroken", b"unbroken"))
        .finish();
    assert_unbroken(&contained(&tar));
}

#[test]
fn breakout_truncate_through_symlink_containerd_symlink_empty_file() {
    let tar = TarFixture::new()
        .add(Entry::dir("etc"))
        .add(Entry::file("etc/emptied", b"notempty"))
        .add(Entry::symlink("localetc", "/etc"))
        .add(Entry::file("/localetc/emptied", b""))
        .finish();
    let sandbox = contained(&tar);
    assert_eq!(fs::read(sandbox.at("etc/emptied")).unwrap(), b"");
    // The host's /etc is the real target of the literal link text: it must be untouched.
    assert!(fs::metadata("/etc/emptied").is_err());
}

#[test]
fn breakout_absolute_symlink_to_host_path_is_rooted_containerd_symlink_absolute() {
    // The link text names the real victim directory on the host; inside the root it means
    // `<root><host path>`.
    let sandbox = Sandbox::new();
    let host_victim = sandbox.victim.display().to_string();
    let tar = TarFixture::new()
        .add(Entry::symlink("hostlink", &host_victim))
        .add(Entry::file("hostlink/hello", b"overwritten"))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    let rooted = sandbox
        .dest
        .join(host_victim.trim_start_matches('/'))
        .join("hello");
    assert_eq!(fs::read(rooted).unwrap(), b"overwritten");
}

// --- #3 relative escaping symlinks (moby TestUntarInvalidSymlink, tar-rs #238) ----------------

#[test]
fn breakout_relative_escaping_symlink_moby_untar_invalid_symlink() {
    // Each case: entries, then what must hold inside dest (the oracle covers outside).
    type Check = fn(&Sandbox);
    let cases: Vec<(&str, Vec<Entry>, Check)> = vec![
        (
            "reading victim/hello (../)",
            vec![Entry::symlink("dotdot", "../victim/hello")],
            |s| {
                assert_eq!(
                    fs::read_link(s.at("dotdot")).unwrap().to_str(),
                    Some("../victim/hello")
                );
            },
        ),
        (
            "reading victim/hello (/../)",
            vec![Entry::symlink("slash-dotdot", "/../victim/hello")],
            |s| {
                assert!(
                    fs::symlink_metadata(s.at("slash-dotdot"))
                        .unwrap()
                        .file_type()
                        .is_symlink()
                );
            },
        ),
        (
            "writing victim/file",
            vec![
                Entry::symlink("loophole-victim", "../victim"),
                Entry::file("loophole-victim/file", b"x"),
            ],
            |s| assert_eq!(fs::read(s.at("victim/file")).unwrap(), b"x"),
        ),
        (
            "reading victim/hello (symlink, symlink)",
            vec![
                Entry::symlink("loophole-victim", "../victim"),
                Entry::symlink("symlink", "loophole-victim/hello"),
            ],
            |s| {
                assert!(
                    fs::symlink_metadata(s.at("symlink"))
                        .unwrap()
                        .file_type()
                        .is_symlink()
                )
            },
        ),
        (
            "removing victim directory (symlink)",
            vec![
                Entry::symlink("loophole-victim", "../victim"),
                Entry::file("loophole-victim", b"file"),
            ],
            |s| assert_eq!(fs::read(s.at("loophole-victim")).unwrap(), b"file"),
        ),
        (
            "writing victim/newdir/newfile with a symlink in the path",
            vec![
                Entry::symlink("dir/loophole", "../../victim"),
                Entry::file("dir/loophole/newdir/newfile", b"x"),
            ],
            |s| assert_eq!(fs::read(s.at("victim/newdir/newfile")).unwrap(), b"x"),
        ),
    ];
    for (label, entries, check) in cases {
        let sandbox = Sandbox::new();
        let tar = entries
            .into_iter()
            .fold(TarFixture::new(), TarFixture::add)
            .finish();
        sandbox
            .apply(&tar, ApplyMode::Flatten)
            .unwrap_or_else(|err| panic!("{label}: {err}"));
        sandbox.assert_outside_unchanged();
        check(&sandbox);
    }
    // The hard-link variant: the target resolves to `<root>/victim/hello`, which does not exist.
    let sandbox = Sandbox::new();
    let tar = TarFixture::new()
        .add(Entry::symlink("loophole-victim", "../victim"))
        .add(Entry::hardlink("hardlink", "loophole-victim/hello"))
        .finish();
    assert!(matches!(
        sandbox.apply(&tar, ApplyMode::Flatten),
        Err(ApplyError::Hardlink { .. })
    ));
    sandbox.assert_outside_unchanged();
}

#[test]
fn breakout_no_parent_dirs_created_outside_tar_rs_238_cve_2021_38511() {
    // tar-rs created `exploit/foo` outside dst with create_dir_all before refusing the write.
    let tar = TarFixture::new()
        .add(Entry::symlink("exploit", "../victim/created-dir"))
        .add(Entry::file("exploit/foo/bar", b"x"))
        .finish();
    let sandbox = contained(&tar);
    assert!(!sandbox.victim.join("created-dir").exists());
    assert_eq!(
        fs::read(sandbox.at("victim/created-dir/foo/bar")).unwrap(),
        b"x"
    );
}

// --- #4 two-hop chain -------------------------------------------------------------------------

#[test]
fn breakout_two_hop_symlink_chain_moby_untar_symlink_breakout() {
    let tar = TarFixture::new()
        .add(Entry::dir("inner"))
        .add(Entry::symlink("inner/go_up", ".."))
        .add(Entry::symlink("inner/go_up/escape", "../victim"))
        .add(Entry::file("inner/go_up/escape/newfile", b"x"))
        .finish();
    for mode in MODES {
        let sandbox = Sandbox::new();
        sandbox.apply(&tar, mode).unwrap();
        sandbox.assert_outside_unchanged();
        assert!(!sandbox.victim.join("newfile").exists());
        assert_eq!(
            fs::read_link(sandbox.at("escape")).unwrap().to_str(),
            Some("../victim")
        );
        assert_eq!(fs::read(sandbox.at("victim/newfile")).unwrap(), b"x");
    }
}

// --- #5 dangling escaping symlink, then a same-named file -------------------------------------

#[test]
fn breakout_dangling_symlink_then_file_aqua_4992_tar_rs_129() {
    let sandbox = Sandbox::new();
    let outside = sandbox.victim.join("created");
    let tar = TarFixture::new()
        .add(Entry::symlink("pwn", outside.to_str().unwrap()))
        .add(Entry::file("pwn", b"regular"))
        .add(Entry::symlink("pwn2", "../victim/created2"))
        .add(Entry::file("pwn2", b"regular2"))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert!(
        fs::symlink_metadata(sandbox.at("pwn"))
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(fs::read(sandbox.at("pwn2")).unwrap(), b"regular2");
}

#[test]
fn breakout_link_then_duplicate_rewrites_nothing_rustsec_2018_0002() {
    let sandbox = Sandbox::new();
    let tar = TarFixture::new()
        .add(Entry::symlink(
            "link",
            sandbox.victim.join("hello").to_str().unwrap(),
        ))
        .add(Entry::file("link", b"owned"))
        .add(Entry::symlink("rel", "../victim/passwd"))
        .add(Entry::file("rel", b"owned"))
        .finish();
    for mode in MODES {
        let sandbox = Sandbox::new();
        sandbox.apply(&tar, mode).unwrap();
        sandbox.assert_outside_unchanged();
        assert_eq!(fs::read(sandbox.at("link")).unwrap(), b"owned");
    }
}

// --- #6 symlink, then a directory entry with the same name ------------------------------------

#[test]
fn breakout_symlink_then_directory_chmod_tar_rs_cve_2026_33056() {
    let sandbox = Sandbox::new();
    let tar = TarFixture::new()
        .add(Entry::symlink("d", sandbox.victim.to_str().unwrap()))
        .add(Entry::dir("d/").mode(0o777).owner(1234, 1234))
        .add(Entry::symlink("e", "../victim"))
        .add(Entry::dir("e/").mode(0o777))
        .finish();
    for mode in MODES {
        let sandbox = Sandbox::new();
        sandbox.apply(&tar, mode).unwrap();
        sandbox.assert_outside_unchanged();
        let d = fs::symlink_metadata(sandbox.at("d")).unwrap();
        assert!(d.is_dir(), "the link was replaced by a directory");
        assert_eq!((d.mode() & 0o7777, d.uid()), (0o777, 1234));
    }
}

#[test]
fn breakout_hardlink_symlink_chmod_containerd_cve_2021_32760() {
    // containerd HardlinkSymlinkChmod: a link to a symlink that names a 0400 host file; the
    // host file must stay 0400 whatever metadata the archive sets.
    let sandbox = Sandbox::new();
    let perm400 = sandbox.victim.join("perm400");
    let exists_outside = sandbox.victim.join("also-exists-outside-root");
    let tar = TarFixture::new()
        .add(Entry::symlink(
            exists_outside.to_str().unwrap(),
            perm400.to_str().unwrap(),
        ))
        .add(Entry::hardlink("sketchylink", exists_outside.to_str().unwrap()).mode(0o777))
        .add(Entry::file("sketchylink-dup", b"x").mode(0o777))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(fs::metadata(&perm400).unwrap().mode() & 0o7777, 0o400);
    assert!(
        fs::symlink_metadata(sandbox.at("sketchylink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

// --- #7 hard links out of the root ------------------------------------------------------------

#[test]
fn breakout_hardlink_outside_root_moby_untar_invalid_hardlink() {
    let cases: Vec<(&str, Vec<Entry>)> = vec![
        ("../", vec![Entry::hardlink("dotdot", "../victim/hello")]),
        (
            "/../",
            vec![Entry::hardlink("slash-dotdot", "/../victim/hello")],
        ),
        (
            "to a directory",
            vec![
                Entry::hardlink("loophole-victim", "../victim"),
                Entry::file("loophole-victim/file", b"x"),
            ],
        ),
        (
            "deep",
            vec![Entry::hardlink("passwd", "../../../../../etc/passwd")],
        ),
        (
            "sibling of dest",
            vec![Entry::hardlink("grab", "../dest-evil/secret")],
        ),
    ];
    for (label, entries) in cases {
        for mode in MODES {
            let sandbox = Sandbox::new();
            let tar = entries
                .clone()
                .into_iter()
                .fold(TarFixture::new(), TarFixture::add)
                .finish();
            let result = sandbox.apply(&tar, mode);
            assert!(
                matches!(result, Err(ApplyError::Hardlink { .. })),
                "{label} {mode:?}: {result:?}"
            );
            sandbox.assert_outside_unchanged();
        }
    }
}

#[test]
fn breakout_hardlink_through_symlinked_parent_is_contained_containerd_hardlink_cases() {
    // containerd HardlinkRelative, DownAndOut, Absolute, RelativeLong, RelativeUpAndOut,
    // DirectRelative, DirectAbsolute: all resolve inside the root and share /etc/passwd's inode.
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "HardlinkRelative",
            vec![
                Entry::dir("breakouts"),
                Entry::symlink("breakouts/d1", "../../etc"),
                Entry::hardlink("breakouts/mypasswd", "/breakouts/d1/passwd"),
            ],
            "breakouts/mypasswd",
        ),
        (
            "HardlinkDownAndOut",
            vec![
                Entry::dir("breakouts"),
                Entry::dir("downandout"),
                Entry::symlink("breakouts/d1", "../downandout/../../etc"),
                Entry::hardlink("breakouts/mypasswd", "/breakouts/d1/passwd"),
            ],
            "breakouts/mypasswd",
        ),
        (
            "HardlinkAbsolute",
            vec![
                Entry::symlink("localetc", "/etc"),
                Entry::hardlink("localpasswd", "/localetc/passwd"),
            ],
            "localpasswd",
        ),
        (
            "HardlinkRelativeLong",
            vec![
                Entry::symlink("localetc", "../../../../../../../etc"),
                Entry::hardlink("localpasswd", "/localetc/passwd"),
            ],
            "localpasswd",
        ),
        (
            "HardlinkDirectRelative",
            vec![Entry::hardlink("localpasswd", "../../../../../etc/passwd")],
            "localpasswd",
        ),
        (
            "HardlinkDirectAbsolute",
            vec![Entry::hardlink("localpasswd", "/etc/passwd")],
            "localpasswd",
        ),
    ];
    for (label, entries, link) in cases {
        let tar = [
            Entry::dir("etc").mode(0o770),
            Entry::file("/etc/passwd", b"inside"),
        ]
        .into_iter()
        .chain(entries)
        .fold(TarFixture::new(), TarFixture::add)
        .finish();
        let sandbox = Sandbox::new();
        sandbox
            .apply(&tar, ApplyMode::Flatten)
            .unwrap_or_else(|err| panic!("{label}: {err}"));
        sandbox.assert_outside_unchanged();
        assert!(
            same_inode(&sandbox.at(link), &sandbox.at("etc/passwd")),
            "{label}"
        );
        assert_eq!(
            fs::metadata(sandbox.at("etc/passwd")).unwrap().nlink(),
            2,
            "{label}"
        );
    }
}

#[test]
fn breakout_hardlink_through_dangling_up_and_out_link_containerd_hardlink_relative_up_and_out() {
    // `localetc -> upandout/../../../etc` with no `upandout`: the kernel (and openat2
    // RESOLVE_IN_ROOT, which our resolver follows) fails the lookup at `upandout`, so inside
    // the container the link dangles. containerd cleans the link text lexically and succeeds;
    // we refuse with a typed error. Either way nothing leaves the root.
    let tar = TarFixture::new()
        .add(Entry::dir("etc").mode(0o770))
        .add(Entry::file("/etc/passwd", b"inside"))
        .add(Entry::symlink("localetc", "upandout/../../../etc"))
        .add(Entry::hardlink("localpasswd", "/localetc/passwd"))
        .finish();
    let sandbox = Sandbox::new();
    let result = sandbox.apply(&tar, ApplyMode::Flatten);
    assert!(
        matches!(result, Err(ApplyError::Hardlink { .. })),
        "{result:?}"
    );
    sandbox.assert_outside_unchanged();
    // With `upandout` present the same link resolves, clamped at the root.
    let tar = TarFixture::new()
        .add(Entry::dir("etc").mode(0o770))
        .add(Entry::file("/etc/passwd", b"inside"))
        .add(Entry::dir("upandout"))
        .add(Entry::symlink("localetc", "upandout/../../../etc"))
        .add(Entry::hardlink("localpasswd", "/localetc/passwd"))
        .finish();
    let sandbox = contained(&tar);
    assert!(same_inode(
        &sandbox.at("localpasswd"),
        &sandbox.at("etc/passwd")
    ));
}

// --- #8 hard link to a symlink ----------------------------------------------------------------

#[test]
fn hardlink_to_symlink_links_the_symlink_moby_untar_hardlink_to_symlink_11099() {
    let tar = TarFixture::new()
        .add(Entry::symlink("symlink1", "regfile"))
        .add(Entry::hardlink("symlink2", "symlink1"))
        .add(Entry::file("regfile", b"data"))
        .finish();
    for mode in MODES {
        let sandbox = Sandbox::new();
        sandbox.apply(&tar, mode).unwrap();
        sandbox.assert_outside_unchanged();
        assert!(
            fs::symlink_metadata(sandbox.at("symlink2"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(same_inode(&sandbox.at("symlink1"), &sandbox.at("symlink2")));
        assert_eq!(fs::read(sandbox.at("symlink2")).unwrap(), b"data");
    }
}

#[test]
fn hardlink_to_symlink_before_target_exists_containerd_hardlink_symlink_before_create_target() {
    let tar = TarFixture::new()
        .add(Entry::dir("etc").mode(0o770))
        .add(Entry::symlink("localpasswd", "/etc/passwd"))
        .add(Entry::hardlink("localpasswd-dup", "localpasswd"))
        .add(Entry::file("/etc/passwd", b"after"))
        .finish();
    let sandbox = contained(&tar);
    assert!(same_inode(
        &sandbox.at("localpasswd"),
        &sandbox.at("localpasswd-dup")
    ));
    assert!(
        fs::symlink_metadata(sandbox.at("localpasswd-dup"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(sandbox.at("etc/passwd")).unwrap(), b"after");
}

// --- #9 prefix sibling ------------------------------------------------------------------------

#[test]
fn breakout_prefix_sibling_moby_untar_sibling_prefix_contained() {
    let tar = TarFixture::new()
        .add(Entry::hardlink("grab", "../dest-evil/secret"))
        .finish();
    let sandbox = Sandbox::new();
    let result = sandbox.apply(&tar, ApplyMode::Flatten);
    assert!(
        matches!(result, Err(ApplyError::Hardlink { .. })),
        "{result:?}"
    );
    sandbox.assert_outside_unchanged();
    assert!(!sandbox.at("grab").exists());
    // The symlink flavour: writing through `link -> ../dest-evil` stays inside.
    let tar = TarFixture::new()
        .add(Entry::symlink("link", "../dest-evil"))
        .add(Entry::file("link/secret", b"overwritten"))
        .finish();
    let sandbox = contained(&tar);
    assert_eq!(fs::read(sandbox.evil.join("secret")).unwrap(), b"secret");
    assert_eq!(
        fs::read(sandbox.at("dest-evil/secret")).unwrap(),
        b"overwritten"
    );
}

// --- #10 escape split across layers -----------------------------------------------------------

#[test]
fn breakout_split_across_layers_gnu_tar_cve_2025_45582() {
    let sandbox = Sandbox::new();
    let first = TarFixture::new()
        .add(Entry::symlink("x", "../../../../victim/dir"))
        .finish();
    let second = TarFixture::new()
        .add(Entry::file(
            "x/authorized_keys",
            b"ssh-ed25519 AAAA attacker",
        ))
        .finish();
    sandbox.apply(&first, ApplyMode::Flatten).unwrap();
    sandbox.apply(&second, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert!(!sandbox.victim.join("dir/authorized_keys").exists());
    assert!(sandbox.at("victim/dir/authorized_keys").is_file());
}

fn lower_etc_passwd(sandbox: &Sandbox) {
    fs::create_dir_all(sandbox.at("etc")).unwrap();
    fs::write(sandbox.at("etc/passwd"), b"inside").unwrap();
}

#[test]
fn breakout_symlink_replaces_lower_directory_containerd_symlink_override_directory() {
    for target in ["/etc", "../../etc"] {
        let sandbox = Sandbox::new();
        lower_etc_passwd(&sandbox);
        fs::create_dir_all(sandbox.at("localetc")).unwrap();
        let tar = TarFixture::new()
            .add(Entry::symlink("localetc", target))
            .add(Entry::hardlink("/localetc/localpasswd", "/etc/passwd"))
            .finish();
        sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
        sandbox.assert_outside_unchanged();
        assert!(
            same_inode(&sandbox.at("etc/localpasswd"), &sandbox.at("etc/passwd")),
            "{target}"
        );
    }
}

#[test]
fn breakout_directory_over_lower_symlink_containerd_directory_override_symlink() {
    let sandbox = Sandbox::new();
    lower_etc_passwd(&sandbox);
    symlink("/etc", sandbox.at("localetc")).unwrap();
    let tar = TarFixture::new()
        .add(Entry::dir("/localetc/"))
        .add(Entry::hardlink("/localetc/localpasswd", "/etc/passwd"))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert!(
        fs::symlink_metadata(sandbox.at("localetc"))
            .unwrap()
            .is_dir()
    );
    assert!(same_inode(
        &sandbox.at("localetc/localpasswd"),
        &sandbox.at("etc/passwd")
    ));
}

#[test]
fn breakout_directory_over_symlink_and_hardlink_containerd_directory_override_symlink_and_hardlink()
{
    let sandbox = Sandbox::new();
    lower_etc_passwd(&sandbox);
    symlink("etc", sandbox.at("localetc")).unwrap();
    fs::hard_link(sandbox.at("etc/passwd"), sandbox.at("etc/localpasswd")).unwrap();
    let tar = TarFixture::new()
        .add(Entry::dir("/localetc/"))
        .add(Entry::file("/localetc/localpasswd", b"different"))
        .finish();
    sandbox.apply(&tar, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert!(!same_inode(
        &sandbox.at("localetc/localpasswd"),
        &sandbox.at("etc/passwd")
    ));
    assert_eq!(fs::read(sandbox.at("etc/passwd")).unwrap(), b"inside");
}

// --- #11 degenerate names ---------------------------------------------------------------------

#[test]
fn degenerate_symlink_named_dotdot_is_refused_containerd_symlink_parent_directory() {
    let tar = TarFixture::new()
        .add(Entry::dir("etc"))
        .add(Entry::symlink("..", "/etc/"))
        .finish();
    let sandbox = Sandbox::new();
    let before = fs::metadata(&sandbox.dest).unwrap().mode();
    assert!(matches!(
        sandbox.apply(&tar, ApplyMode::Flatten),
        Err(ApplyError::PathEscapes { .. })
    ));
    sandbox.assert_outside_unchanged();
    assert_eq!(fs::metadata(&sandbox.dest).unwrap().mode(), before);
}

#[test]
fn degenerate_empty_symlink_name_cannot_replace_root_containerd_symlink_empty_filename() {
    for name in ["", ".", "./", "/"] {
        let tar = TarFixture::new()
            .add(Entry::dir("etc"))
            .add(Entry::symlink(name, "/etc/"))
            .finish();
        let sandbox = Sandbox::new();
        let result = sandbox.apply(&tar, ApplyMode::Flatten);
        assert!(
            matches!(result, Err(ApplyError::ReplaceRoot { .. })),
            "{name:?}: {result:?}"
        );
        sandbox.assert_outside_unchanged();
        assert!(fs::symlink_metadata(&sandbox.dest).unwrap().is_dir());
    }
}

#[test]
fn degenerate_empty_directory_name_sets_root_metadata_tianon_badtars_empty_filename() {
    // An empty name is `.` (docker/cli #7111): a directory entry for it updates the root's
    // metadata and nothing else.
    let tar = TarFixture::new()
        .add(Entry::dir("").mode(0o711))
        .add(Entry::file("f", b"x"))
        .finish();
    let sandbox = contained(&tar);
    assert_eq!(fs::metadata(&sandbox.dest).unwrap().mode() & 0o7777, 0o711);
    assert_eq!(fs::read(sandbox.at("f")).unwrap(), b"x");
}

#[test]
fn degenerate_dotdot_inside_name_containerd_symlink_parent_relative() {
    let tar = TarFixture::new()
        .add(Entry::dir("etc").mode(0o770))
        .add(Entry::file("/etc/passwd", b"inside"))
        .add(Entry::symlink("localetc/sub/..", "/etc/"))
        .add(Entry::hardlink("/localetc/localpasswd", "/etc/passwd"))
        .finish();
    let sandbox = contained(&tar);
    assert!(
        fs::symlink_metadata(sandbox.at("localetc"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(same_inode(
        &sandbox.at("etc/localpasswd"),
        &sandbox.at("etc/passwd")
    ));
}

#[test]
fn degenerate_trailing_slash_containerd_symlink_slash_ended() {
    let tar = TarFixture::new()
        .add(Entry::dir("etc").mode(0o770))
        .add(Entry::file("/etc/passwd", b"inside"))
        .add(Entry::dir("localetc/").mode(0o770))
        .add(Entry::hardlink("/localetc/localpasswd", "/etc/passwd"))
        .finish();
    let sandbox = contained(&tar);
    assert!(same_inode(
        &sandbox.at("localetc/localpasswd"),
        &sandbox.at("etc/passwd")
    ));
}

// --- #12 symlink chains longer than PATH_MAX --------------------------------------------------

#[test]
fn symlink_chain_longer_than_path_max_cpython_135034_cve_2025_4517() {
    // Nested 247-byte directory names reached through one-letter links: the resolved path is
    // longer than PATH_MAX, where realpath()-style checks stop resolving and fall back to a
    // lexical answer. The final link climbs back with one `..` per *link*, which lexically stays
    // inside but really climbs out — unless resolution never stops.
    let component = "d".repeat(247);
    let mut fixture = TarFixture::new();
    let mut link_path = String::new();
    for step in 0..17 {
        let real_dir = if link_path.is_empty() {
            component.clone()
        } else {
            format!("{link_path}/{component}")
        };
        fixture.push(Entry::dir(&real_dir));
        let link = if link_path.is_empty() {
            format!("{}", (b'a' + step) as char)
        } else {
            format!("{link_path}/{}", (b'a' + step) as char)
        };
        fixture.push(Entry::symlink(&link, &component));
        link_path = link;
    }
    let climb = vec![".."; 17].join("/");
    fixture.push(Entry::symlink(
        format!("{link_path}/escape"),
        format!("{climb}/../victim"),
    ));
    fixture.push(Entry::file(format!("{link_path}/escape/pwned"), b"x"));
    let sandbox = Sandbox::new();
    let result = sandbox.apply(&fixture.finish(), ApplyMode::Flatten);
    sandbox.assert_outside_unchanged();
    assert!(result.is_ok(), "{result:?}");
    assert!(!sandbox.victim.join("pwned").exists());
    assert!(sandbox.at("victim/pwned").is_file(), "clamped at the root");
}

#[test]
fn symlink_chain_beyond_hop_limit_is_refused_cpython_135034() {
    // 50 links, each pointing at the next: more than Linux's 40 hops.
    let mut fixture = TarFixture::new();
    for index in 0..50 {
        fixture.push(Entry::symlink(
            format!("l{index}"),
            format!("l{}", index + 1),
        ));
    }
    fixture.push(Entry::dir("l50"));
    fixture.push(Entry::file("l0/file", b"x"));
    let sandbox = Sandbox::new();
    let result = sandbox.apply(&fixture.finish(), ApplyMode::Flatten);
    assert!(
        matches!(result, Err(ApplyError::SymlinkLoop { .. })),
        "{result:?}"
    );
    sandbox.assert_outside_unchanged();
}

// --- #13 positive controls --------------------------------------------------------------------

#[test]
fn positive_control_symlink_with_excess_dotdots_amazoncorretto_kaniko_440() {
    let tar = TarFixture::new()
        .add(Entry::file("etc/pki/java/cacerts", b"certs"))
        .add(Entry::symlink(
            "usr/lib/jvm/java/lib/security/cacerts",
            "../../../../../../../../../../etc/pki/java/cacerts",
        ))
        .add(Entry::file(
            "usr/lib/jvm/java/lib/security/cacerts-next",
            b"ok",
        ))
        .finish();
    let sandbox = contained(&tar);
    assert_eq!(
        fs::read_link(sandbox.at("usr/lib/jvm/java/lib/security/cacerts"))
            .unwrap()
            .to_str(),
        Some("../../../../../../../../../../etc/pki/java/cacerts"),
        "link text kept verbatim"
    );
    // A later layer writing through the link is clamped at the root too.
    let next = TarFixture::new()
        .add(Entry::file(
            "usr/lib/jvm/java/lib/security/cacerts",
            b"replaced",
        ))
        .finish();
    sandbox.apply(&next, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(
        fs::read(sandbox.at("usr/lib/jvm/java/lib/security/cacerts")).unwrap(),
        b"replaced"
    );
}

#[test]
fn positive_control_bin_sh_overwrite_no_loop_kaniko_330() {
    let sandbox = Sandbox::new();
    let lower = TarFixture::new()
        .add(Entry::file("bin/dash", b"dash"))
        .add(Entry::symlink("bin/sh", "dash"))
        .finish();
    sandbox.apply(&lower, ApplyMode::Flatten).unwrap();
    let upper = TarFixture::new()
        .add(Entry::symlink("bin/sh", "dash"))
        .add(Entry::file("bin/sh-user", b"x"))
        .finish();
    sandbox.apply(&upper, ApplyMode::Flatten).unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(
        fs::read_link(sandbox.at("bin/sh")).unwrap().to_str(),
        Some("dash")
    );
    assert!(
        fs::symlink_metadata(sandbox.at("bin/dash"))
            .unwrap()
            .is_file(),
        "no dash -> dash loop"
    );
    assert_eq!(fs::read(sandbox.at("bin/sh")).unwrap(), b"dash");
}

#[test]
fn positive_control_absolute_hardlink_name_moby_untar_absolute_hardlink_kaniko_326() {
    let tar = TarFixture::new()
        .add(Entry::file("usr/bin/perlbug", b"hello").mode(0o755))
        .add(Entry::hardlink("usr/bin/perlthanks", "/usr/bin/perlbug"))
        .finish();
    for mode in MODES {
        let sandbox = Sandbox::new();
        sandbox.apply(&tar, mode).unwrap();
        sandbox.assert_outside_unchanged();
        assert!(same_inode(
            &sandbox.at("usr/bin/perlbug"),
            &sandbox.at("usr/bin/perlthanks")
        ));
    }
}

// --- #14 symlink-exchange race ----------------------------------------------------------------

#[test]
fn toctou_symlink_exchange_race_cve_2018_15664() {
    // A "process in the container" keeps swapping dest/a between a directory and a symlink to
    // the victim while we extract hundreds of files into a/. The executor never does this (it
    // never extracts into a live rootfs), but the descriptor-based walk must still never write
    // through the swapped link: the extraction may fail, it may not escape.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let sandbox = Sandbox::new();
    fs::create_dir_all(sandbox.at("a")).unwrap();
    let mut fixture = TarFixture::new();
    for index in 0..400 {
        fixture.push(Entry::file(format!("a/f{index}"), b"data").mode(0o600));
        fixture.push(Entry::dir(format!("a/d{index}/")).mode(0o777));
    }
    let tar = fixture.finish();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, dest, victim) = (stop.clone(), sandbox.dest.clone(), sandbox.victim.clone());
        std::thread::spawn(move || {
            let (a, parked, link) = (dest.join("a"), dest.join("a.parked"), dest.join("a.link"));
            let _ = symlink(&victim, &link);
            while !stop.load(Ordering::Relaxed) {
                let _ = fs::rename(&a, &parked);
                let _ = fs::rename(&link, &a);
                std::thread::yield_now();
                let _ = fs::rename(&a, &link);
                let _ = fs::rename(&parked, &a);
            }
        })
    };
    for _ in 0..5 {
        let _ = sandbox.apply(&tar, ApplyMode::Flatten);
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    sandbox.assert_outside_unchanged();
    assert_eq!(
        fs::metadata(&sandbox.victim).unwrap().permissions().mode() & 0o7777,
        0o755
    );
}

// --- #15 never resolve names from the tree ----------------------------------------------------

#[test]
fn owner_names_are_never_resolved_cve_2019_14271() {
    // A layer shipping its own NSS configuration and module: ownership comes from the numeric
    // ids only, and nothing of the tree is ever loaded (no getpwnam inside the image).
    let tar = TarFixture::new()
        .add(Entry::file(
            "etc/nsswitch.conf",
            b"passwd: evil\ngroup: evil\n",
        ))
        .add(Entry::file(
            "lib/x86_64-linux-gnu/libnss_evil.so.2",
            b"\x7fELF not really",
        ))
        .add(Entry::file(
            "etc/passwd",
            b"root:x:4242:4242::/root:/bin/sh\n",
        ))
        .add(Entry::file("owned", b"x").owner(4242, 4343).uname("root"))
        .finish();
    let sandbox = contained(&tar);
    let meta = fs::metadata(sandbox.at("owned")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
}
