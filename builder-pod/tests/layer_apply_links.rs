//! threats-and-faults §2.1 #7-#11, #13, #15: hard links, prefix siblings, escapes split across
//! layers, degenerate names and the positive controls real images need. Every test runs the
//! sentinel oracle.

mod layer_fixtures;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};

use layer_fixtures::{Entry, MODES, Sandbox, TarFixture, contained, same_inode};
use stratum_builder::layer::{ApplyError, ApplyMode};

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

#[test]
fn hardlink_to_a_target_whited_out_in_the_same_layer_is_refused_in_both_modes() {
    // OverlayLayer renders the deletion as a 0/0 device; linking to it would plant a second
    // whiteout, so both modes agree that the target is gone.
    let tar = TarFixture::new()
        .add(Entry::file(".wh.x", b""))
        .add(Entry::hardlink("y", "x"))
        .finish();
    for mode in MODES {
        let sandbox = Sandbox::new();
        let result = sandbox.apply(&tar, mode);
        assert!(
            matches!(result, Err(ApplyError::Hardlink { .. })),
            "{mode:?}: {result:?}"
        );
        sandbox.assert_outside_unchanged();
    }
}
