//! threats-and-faults §2.1 #1-#6, #12, #14: traversal names and symlink breakouts. Every test
//! runs the sentinel oracle: nothing outside `dest` may change, whatever the outcome.

mod layer_fixtures;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use layer_fixtures::{Entry, MODES, Sandbox, TarFixture, contained};
use stratum_builder::layer::{ApplyError, ApplyMode};

fn assert_dest_empty(sandbox: &Sandbox) {
    assert_eq!(
        fs::read_dir(&sandbox.dest).unwrap().count(),
        0,
        "dest must be empty"
    );
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
