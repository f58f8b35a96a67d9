//! Tests of the harness itself: a comparison that could not see a difference would make the
//! whole suite pass vacuously. These run as root (chown, mknod) without any builder.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use serde_json::json;

use crate::case;
use crate::config::{self, ConfigSubset};
use crate::expect::{PathExpectation, check_config, check_path};
use crate::harness::{Image, check_buildah, check_deterministic, check_stratum, strip_mount_stubs};
use crate::setup::{self, SetupOp, expand_repeats};
use crate::snapshot::{self, Kind, Snapshot, sha256_bytes};

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory")
}

fn expectation(value: serde_json::Value) -> PathExpectation {
    serde_json::from_value(value).expect("a valid expectation")
}

/// A small tree with one of everything a layer can hold.
fn populate(root: &Path) {
    fs::create_dir_all(root.join("d/sub")).unwrap();
    fs::write(root.join("d/f"), "hello\n").unwrap();
    fs::set_permissions(root.join("d/f"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(root.join("d/sub"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::hard_link(root.join("d/f"), root.join("link2")).unwrap();
    symlink("../d/f", root.join("d/sub/ln")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &root.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    std::os::unix::fs::lchown(root.join("d/sub/ln"), Some(7), Some(8)).unwrap();
    std::os::unix::fs::chown(root.join("fifo"), Some(1000), Some(1001)).unwrap();
    xattr::set(root.join("d/f"), "user.note", b"kept").unwrap();
}

#[test]
fn snapshot_records_type_mode_owner_content_target_device_links_and_xattrs() {
    let dir = tempdir();
    populate(dir.path());
    let snap = Snapshot::capture(dir.path()).unwrap();

    let f = &snap.entries["/d/f"];
    assert_eq!((f.kind, f.mode, f.size), (Kind::File, 0o4755, Some(6)));
    assert_eq!(f.sha256.as_deref(), Some(sha256_bytes(b"hello\n").as_str()));
    assert_eq!(f.hardlink_group.as_deref(), Some("/d/f"));
    assert_eq!(
        snap.entries["/link2"].hardlink_group.as_deref(),
        Some("/d/f")
    );
    assert_eq!(
        f.xattrs.get("user.note").map(Vec::as_slice),
        Some(&b"kept"[..])
    );

    let ln = &snap.entries["/d/sub/ln"];
    assert_eq!(
        (ln.kind, ln.mode, ln.uid, ln.gid),
        (Kind::Symlink, 0o777, 7, 8)
    );
    assert_eq!(ln.target.as_deref(), Some("../d/f"));
    assert_eq!(snap.entries["/d/sub"].mode, 0o1777);
    let fifo = &snap.entries["/fifo"];
    assert_eq!(
        (fifo.kind, fifo.mode, fifo.uid, fifo.gid),
        (Kind::Fifo, 0o640, 1000, 1001)
    );
    assert_eq!(snap.entries["/null"].rdev, Some((1, 3)));
    assert_eq!(snap.entries["/"].kind, Kind::Dir);
    assert_eq!(snap.entries.len(), 8, "{:?}", snap.entries.keys());
}

#[test]
fn comparison_names_hardlink_groups_by_path_not_inode_and_sees_every_change() {
    let (a, b) = (tempdir(), tempdir());
    populate(a.path());
    populate(b.path());
    let left = Snapshot::capture(a.path()).unwrap();
    assert!(snapshot::compare(&left, &Snapshot::capture(b.path()).unwrap(), |_| false).is_empty());

    // Same content and mode, but the pair is no longer linked.
    fs::remove_file(b.path().join("link2")).unwrap();
    fs::copy(b.path().join("d/f"), b.path().join("link2")).unwrap();
    fs::set_permissions(b.path().join("link2"), fs::Permissions::from_mode(0o4755)).unwrap();
    xattr::set(b.path().join("link2"), "user.note", b"kept").unwrap();
    fs::write(b.path().join("extra"), "").unwrap();
    fs::set_permissions(b.path().join("fifo"), fs::Permissions::from_mode(0o600)).unwrap();
    xattr::remove(b.path().join("d/f"), "user.note").unwrap();
    let right = Snapshot::capture(b.path()).unwrap();
    let paths: Vec<String> = snapshot::compare(&left, &right, |_| false)
        .into_iter()
        .map(|d| d.path)
        .collect();
    assert_eq!(paths, ["/d/f", "/extra", "/fifo", "/link2"]);
    let paths: Vec<String> = snapshot::compare(&left, &right, |p| snapshot::is_within(p, "/d"))
        .into_iter()
        .map(|d| d.path)
        .collect();
    assert_eq!(paths, ["/extra", "/fifo", "/link2"]);
}

#[test]
fn expectations_check_each_stated_fact() {
    let dir = tempdir();
    populate(dir.path());
    let snap = Snapshot::capture(dir.path()).unwrap();
    let good = expectation(json!({
        "type": "file", "mode": "4755", "uid": 0, "gid": 0, "content": "hello\n", "size": 6,
        "hardlinked_with": ["/link2"], "xattrs": {"user.note": "kept"}
    }));
    assert_eq!(check_path(&snap, "/d/f", &good), Vec::<String>::new());
    assert!(check_path(&snap, "/nope", &expectation(json!("absent"))).is_empty());
    assert!(check_path(&snap, "/fifo", &expectation(json!("present"))).is_empty());
    assert!(
        check_path(
            &snap,
            "/null",
            &expectation(json!({"type": "char", "rdev": "1:3"}))
        )
        .is_empty()
    );
    assert!(
        check_path(
            &snap,
            "/d/sub/ln",
            &expectation(json!({"target": "../d/f", "uid": 7}))
        )
        .is_empty()
    );

    let bad = expectation(json!({
        "type": "dir", "mode": "0644", "uid": 1, "content": "bye", "not_hardlinked": true,
        "xattrs": {}
    }));
    assert_eq!(
        check_path(&snap, "/d/f", &bad).len(),
        6,
        "{:?}",
        check_path(&snap, "/d/f", &bad)
    );
    assert_eq!(
        check_path(&snap, "/d/f", &expectation(json!("absent"))).len(),
        1
    );
    assert_eq!(check_path(&snap, "/nope", &expectation(json!({}))).len(), 1);
    assert!(serde_json::from_value::<PathExpectation>(json!({"mdoe": "0644"})).is_err());
    assert!(serde_json::from_value::<PathExpectation>(json!("gone")).is_err());
}

#[test]
fn mount_stubs_are_stripped_only_when_empty_and_new() {
    let (base, built) = (tempdir(), tempdir());
    fs::create_dir_all(base.path().join("etc")).unwrap();
    fs::create_dir_all(base.path().join("run")).unwrap();
    for dir in ["etc", "proc", "dev", "run", "sys/kernel"] {
        fs::create_dir_all(built.path().join(dir)).unwrap();
    }
    fs::write(built.path().join("etc/hosts"), "").unwrap();
    fs::write(built.path().join("etc/resolv.conf"), "nameserver 1.1.1.1\n").unwrap();
    let base: BTreeSet<String> = Snapshot::capture(base.path())
        .unwrap()
        .entries
        .into_keys()
        .collect();
    let mut built = Snapshot::capture(built.path()).unwrap();
    let removed = strip_mount_stubs(&mut built, &base);
    // /run was in the base; /sys is not empty; resolv.conf has content.
    assert_eq!(removed, ["/dev", "/proc", "/etc/hosts"]);
    assert!(built.entries.contains_key("/run") && built.entries.contains_key("/sys/kernel"));
    assert!(built.entries.contains_key("/etc/resolv.conf"));
}

#[test]
fn config_subset_treats_empty_as_absent_and_compares_each_field() {
    let a = ConfigSubset::of_image_config(&json!({"config": {
        "Env": ["A=1"], "Cmd": null, "Entrypoint": [], "Labels": {}, "WorkingDir": "",
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 0, "Retries": 3},
        "Hostname": "ignored"
    }}))
    .unwrap();
    let b = ConfigSubset::of_image_config(&json!({"config": {
        "Env": ["A=1"], "Healthcheck": {"Test": ["CMD", "true"], "Retries": 3}
    }}))
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.0.keys().collect::<Vec<_>>(), ["Env", "Healthcheck"]);
    let c =
        ConfigSubset::of_image_config(&json!({"config": {"Env": ["A=2"], "User": "1"}})).unwrap();
    let fields: Vec<String> = config::compare(&a, &c, |_| false)
        .into_iter()
        .map(|d| d.field)
        .collect();
    assert_eq!(fields, ["Env", "User", "Healthcheck"]);
    let expected: BTreeMap<String, serde_json::Value> = [
        ("User".to_owned(), json!("1")),
        ("Cmd".to_owned(), json!(null)),
    ]
    .into();
    assert!(check_config(&c, &expected).is_empty());
    assert_eq!(check_config(&a, &expected).len(), 1);
}

#[test]
fn case_files_are_strict() {
    let dir = tempdir();
    let case_dir = dir.path().join("some-case");
    fs::create_dir_all(&case_dir).unwrap();
    fs::write(case_dir.join("Dockerfile"), "ARG BASE\nFROM ${BASE}\n").unwrap();
    let write =
        |json: serde_json::Value| fs::write(case_dir.join("case.json"), json.to_string()).unwrap();

    write(json!({"about": "x", "base": "busybox", "expect": {"/<a*3>": "absent"}}));
    let loaded = case::load(&case_dir).unwrap();
    assert!(loaded.file.expect.contains_key("/aaa"));

    for bad in [
        json!({"about": "x", "base": "busybox", "expcet": {}}),
        json!({"about": "x", "base": "alpine"}),
        json!({"about": "x", "base": "busybox", "expect": {"etc/x": "absent"}}),
        json!({"about": "x", "base": "busybox", "expect_config": {"Hostname": "h"}}),
        json!({"about": "x", "base": "busybox", "buildah_differs": [
            {"path": "/a", "docker": "absent", "buildah": "present", "why": ""}]}),
        json!({"about": "x", "base": "busybox", "buildah_differs": [
            {"path": "/a", "config": "Cmd", "docker": "absent", "buildah": "present", "why": "w"}]}),
    ] {
        write(bad.clone());
        assert!(case::load(&case_dir).is_err(), "accepted {bad}");
    }
}

#[test]
fn context_setup_adds_what_git_cannot_hold() {
    let dir = tempdir();
    let committed = dir.path().join("committed");
    fs::create_dir_all(&committed).unwrap();
    fs::write(committed.join("plain"), "p").unwrap();
    fs::set_permissions(committed.join("plain"), fs::Permissions::from_mode(0o664)).unwrap();
    let ops: Vec<SetupOp> = serde_json::from_value(json!([
        {"op": "write", "path": "a/<n*200>", "content": "long", "mode": "0600"},
        {"op": "hardlink", "path": "a/twin", "to": "a/<n*200>"},
        {"op": "chown", "path": "a/twin", "uid": 5, "gid": 6},
        {"op": "xattr", "path": "plain", "name": "user.k", "value": "v"},
        {"op": "mkdir", "path": "empty", "mode": "0700"},
        {"op": "symlink", "path": "ln", "target": "/abs"},
        {"op": "write", "path": "t/x", "content": "in tar"},
        {"op": "tar", "path": "t.tar.gz", "from": "t", "gzip": true}
    ]))
    .unwrap();
    let context = dir.path().join("context");
    setup::prepare_context(&committed, &context, &ops).unwrap();
    let snap = Snapshot::capture(&context).unwrap();
    let long = format!("/a/{}", "n".repeat(200));
    assert_eq!(
        (snap.entries[&long].mode, snap.entries[&long].uid),
        (0o600, 5)
    );
    assert_eq!(
        snap.entries["/a/twin"].hardlink_group.as_deref(),
        Some(long.as_str())
    );
    assert_eq!(
        snap.entries["/plain"].mode, 0o644,
        "git's modes, whatever the umask"
    );
    assert_eq!(snap.entries["/empty"].mode, 0o700);
    assert_eq!(snap.entries["/ln"].target.as_deref(), Some("/abs"));
    assert!(
        !snap.entries.contains_key("/t"),
        "the tar source is removed"
    );
    let listing = std::process::Command::new("tar")
        .args(["-tzf"])
        .arg(context.join("t.tar.gz"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "./\n./x\n");

    assert!(
        setup::apply(
            &context,
            &serde_json::from_value::<Vec<SetupOp>>(json!([
        {"op": "write", "path": "../escape"}]))
            .unwrap()
        )
        .is_err()
    );
    assert!(
        serde_json::from_value::<Vec<SetupOp>>(json!([{"op": "write", "path": "x", "mdoe": "1"}]))
            .is_err()
    );
    assert_eq!(expand_repeats("x<y*3>z<-*2>").unwrap(), "xyyyz--");
    assert!(expand_repeats("<ab*2>").is_err() && expand_repeats("<a*>").is_err());
}

/// A case with one Docker fact, one recorded path difference and one recorded config difference.
fn case_with_differences(dir: &Path) -> case::Case {
    let case_dir = dir.join("differs");
    fs::create_dir_all(&case_dir).unwrap();
    fs::write(case_dir.join("Dockerfile"), "ARG BASE\nFROM ${BASE}\n").unwrap();
    let json = json!({
        "about": "x", "base": "busybox",
        "expect": {"/a": {"content": "a"}},
        "expect_config": {"User": "u"},
        "buildah_differs": [
            {"path": "/w", "docker": {"type": "dir"}, "buildah": "absent", "why": "lazy WORKDIR"},
            {"config": "Cmd", "docker": ["sh", "-ec", "x"], "buildah": ["sh", "-c", "x"], "why": "SHELL"}
        ]
    });
    fs::write(case_dir.join("case.json"), json.to_string()).unwrap();
    case::load(&case_dir).unwrap()
}

fn image(files: &[(&str, &str)], dirs: &[&str], config: &serde_json::Value) -> Image {
    let dir = tempdir();
    for d in dirs {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    for (path, content) in files {
        fs::write(dir.path().join(path), content).unwrap();
    }
    let snap = Snapshot::capture(dir.path()).unwrap();
    Image {
        raw: snap.clone(),
        normalised: snap,
        config: ConfigSubset::of_image_config(&json!({ "config": config })).unwrap(),
    }
}

#[test]
fn stratum_is_held_to_docker_facts_and_to_buildah_outside_recorded_differences() {
    let dir = tempdir();
    let case = case_with_differences(dir.path());
    let buildah = image(
        &[("a", "a"), ("b", "b")],
        &[],
        &json!({"User": "u", "Cmd": ["sh", "-c", "x"]}),
    );
    assert_eq!(check_buildah(&case, &buildah), Vec::<String>::new());
    assert_eq!(
        check_deterministic(&buildah, &buildah),
        Vec::<String>::new()
    );

    let good = image(
        &[("a", "a"), ("b", "b")],
        &["w"],
        &json!({"User": "u", "Cmd": ["sh", "-ec", "x"]}),
    );
    assert_eq!(check_stratum(&case, &good, &buildah), Vec::<String>::new());
    // Buildah's recorded behaviour is checked too: a Buildah that created /w would be noticed.
    assert_eq!(
        check_buildah(&case, &good).len(),
        2,
        "{:?}",
        check_buildah(&case, &good)
    );

    // Wrong content for a Docker fact, a missing Docker-side difference, an extra file, a
    // different unrelated file, the Buildah-side Cmd, a wrong User.
    let bad = image(
        &[("a", "x"), ("b", "c"), ("extra", "")],
        &[],
        &json!({"User": "v", "Cmd": ["sh", "-c", "x"]}),
    );
    let problems = check_stratum(&case, &bad, &buildah);
    for needle in [
        "/a: content",
        "/w: expected present",
        "/extra",
        "/b:",
        "config Cmd",
        "config User",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "no {needle:?} in {problems:#?}"
        );
    }
    assert!(!check_deterministic(&buildah, &bad).is_empty());
}
