use std::path::PathBuf;

use super::*;
use crate::sandbox::overlay::overlay_mount;

const ALL_POINTS: [MountPoint; 5] = [
    MountPoint {
        rel: "proc",
        kind: TargetKind::Dir,
    },
    MountPoint {
        rel: "sys",
        kind: TargetKind::Dir,
    },
    MountPoint {
        rel: "dev",
        kind: TargetKind::Dir,
    },
    MountPoint {
        rel: "etc/resolv.conf",
        kind: TargetKind::File,
    },
    MountPoint {
        rel: "etc/hosts",
        kind: TargetKind::File,
    },
];

fn user() -> ResolvedUser {
    ResolvedUser {
        uid: 1000,
        gid: 100,
        additional_gids: vec![10, 50],
        home: "/home/app".into(),
    }
}

fn plan_with(layers: usize, new_netns: bool, points: &[MountPoint]) -> ChildPlan {
    let lowers: Vec<PathBuf> = (0..layers)
        .map(|i| PathBuf::from(format!("/store/layers/sha256/{i:064x}")))
        .collect();
    let user = user();
    build_plan(PlanInput {
        merged: Path::new("/m"),
        overlay: overlay_mount(&lowers, Path::new("/u"), Path::new("/w")).unwrap(),
        mount_points: points,
        resolv_conf: Some(Path::new("/host/resolv.conf")),
        hosts: Some(Path::new("/host/hosts")),
        hostname: "box",
        new_netns,
        user: &user,
        cwd: "/work",
        argv: vec![
            CString::new("/bin/sh").unwrap(),
            CString::new("-c").unwrap(),
            CString::new("true").unwrap(),
        ],
        envp: vec![CString::new("PATH=/bin").unwrap()],
        search_path: "/bin",
        nofile: 1024,
        nofile_fallback: 512,
        last_cap: 40,
    })
    .unwrap()
}

fn lines(plan: &ChildPlan) -> Vec<String> {
    plan.steps.iter().map(ToString::to_string).collect()
}

fn pos(lines: &[String], prefix: &str) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no step {prefix:?} in {lines:#?}"))
}

fn last_pos(lines: &[String], prefix: &str) -> usize {
    lines
        .iter()
        .rposition(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no step {prefix:?}"))
}

#[test]
fn steps_happen_in_the_documented_order() {
    let l = lines(&plan_with(2, false, &ALL_POINTS));
    let order = [
        "set the parent-death signal",
        "redirect stdout/stderr",
        "close inherited file descriptors",
        "set umask 0000",
        "make mounts recursively slave",
        "mount overlay on /m",
        "check mount target /proc",
        "mount proc on /m/proc",
        "check mount target /sys",
        "mount sysfs on /m/sys",
        "check mount target /dev",
        "mount tmpfs on /m/dev",
        "mknod /m/dev/null",
        "mount devpts on /m/dev/pts",
        "mount tmpfs on /m/dev/shm",
        "symlink /m/dev/ptmx -> pts/ptmx",
        "mask /m/proc/kcore",
        "make /m/proc/sys read-only",
        "check mount target /etc/resolv.conf",
        "mount /host/resolv.conf on /m/etc/resolv.conf",
        "mount (remount) on /m/etc/resolv.conf",
        "check mount target /etc/hosts",
        "mount /host/hosts on /m/etc/hosts",
        "pivot_root into /m",
        "set hostname box",
        "open /dev/null as stdin",
        "set rlimit",
        "drop capabilities",
        "enter WORKDIR /work",
        "find the program",
        "set supplementary groups [100, 10, 50]",
        "set gid 100",
        "set uid 1000",
        "set umask 0022",
        "exec",
    ];
    let positions: Vec<usize> = order.iter().map(|p| pos(&l, p)).collect();
    for (w, pair) in positions.windows(2).enumerate() {
        assert!(
            pair[0] < pair[1],
            "{:?} must come before {:?}",
            order[w],
            order[w + 1]
        );
    }
    assert_eq!(l.last().unwrap(), "exec");
    // every mount happens before pivot_root; nothing is mounted after it
    assert!(last_pos(&l, "mount") < pos(&l, "pivot_root"));
}

#[test]
fn every_image_target_is_verified_right_before_its_mount() {
    let plan = plan_with(1, false, &ALL_POINTS);
    for (i, step) in plan.steps.iter().enumerate() {
        if let Step::Mount(m) = step {
            let target = m.target.to_str().unwrap();
            let in_image = [
                "/m/proc",
                "/m/sys",
                "/m/dev",
                "/m/etc/resolv.conf",
                "/m/etc/hosts",
            ]
            .contains(&target);
            if in_image && m.source.is_some() {
                match &plan.steps[i - 1] {
                    Step::VerifyTarget { rel, .. } => {
                        assert_eq!(format!("/m/{}", rel.to_str().unwrap()), target)
                    }
                    other => panic!("mount on {target} not preceded by a check but by {other}"),
                }
            }
        }
    }
}

#[test]
fn mount_flags_match_the_hardening() {
    let plan = plan_with(1, false, &ALL_POINTS);
    let mount = |target: &str, remount: bool| {
        plan.steps
            .iter()
            .find_map(|s| match s {
                Step::Mount(m)
                    if m.target.to_str() == Ok(target) && m.source.is_none() == remount =>
                {
                    Some(m)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no mount on {target}"))
    };
    let nsne = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    assert_eq!(mount("/m/proc", false).flags, nsne);
    assert_eq!(mount("/m/sys", false).flags, nsne | MsFlags::MS_RDONLY);
    assert!(mount("/m/dev", false).flags.contains(MsFlags::MS_NOSUID));
    assert_eq!(
        mount("/m/dev/pts", false).data.as_deref(),
        Some(c"newinstance,ptmxmode=0666,mode=0620,gid=5")
    );
    for target in ["/m/etc/resolv.conf", "/m/etc/hosts"] {
        assert_eq!(mount(target, false).flags, MsFlags::MS_BIND);
        let remount = mount(target, true).flags;
        assert!(
            remount.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_BIND | nsne),
            "{target}"
        );
    }
    // device nodes are our own, in our own tmpfs
    let nodes: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Mknod {
                path, mode, dev, ..
            } => Some(format!(
                "{} {mode:o} {}:{}",
                path.to_str().unwrap(),
                nix::sys::stat::major(*dev),
                nix::sys::stat::minor(*dev)
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        nodes,
        [
            "/m/dev/null 666 1:3",
            "/m/dev/zero 666 1:5",
            "/m/dev/full 666 1:7",
            "/m/dev/random 666 1:8",
            "/m/dev/urandom 666 1:9",
            "/m/dev/tty 666 5:0"
        ]
    );
    // masked paths are covered with *our* /dev/null, never the image's
    for step in &plan.steps {
        if let Step::MaskPath { dev_null, .. } = step {
            assert_eq!(dev_null.to_str().unwrap(), "/m/dev/null");
        }
    }
}

#[test]
fn network_none_gets_a_new_netns_with_loopback() {
    let host = plan_with(1, false, &ALL_POINTS);
    assert!(!host.clone_flags.contains(CloneFlags::CLONE_NEWNET));
    assert!(!lines(&host).iter().any(|l| l.contains("loopback")));
    let none = plan_with(1, true, &ALL_POINTS);
    let want = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    assert_eq!(none.clone_flags, want);
    let l = lines(&none);
    assert!(pos(&l, "pivot_root") < pos(&l, "bring up the loopback"));
}

#[test]
fn many_layers_mount_through_links_on_a_private_tmpfs() {
    let l = lines(&plan_with(60, false, &ALL_POINTS));
    let tmpfs = pos(&l, "mount tmpfs on /m");
    assert!(tmpfs < pos(&l, "symlink /m/0 -> /store/layers/sha256/"));
    let is_layer_link = |s: &&String| {
        s.strip_prefix("symlink /m/")
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    };
    assert_eq!(l.iter().filter(is_layer_link).count(), 60);
    let chdir = pos(&l, "chdir /m");
    let overlay = pos(&l, "mount overlay on /m (lowerdir=0:1:2:");
    assert!(last_pos(&l, "symlink /m/59") < chdir && chdir < overlay);
    assert_eq!(l[overlay + 1], "chdir /");
}

#[test]
fn unusable_mount_points_are_left_out() {
    let l = lines(&plan_with(1, false, &ALL_POINTS[..3]));
    assert!(!l.iter().any(|s| s.contains("/etc/")));
    let err = build_plan(PlanInput {
        merged: Path::new("/m"),
        overlay: overlay_mount(&[PathBuf::from("/l")], Path::new("/u"), Path::new("/w")).unwrap(),
        mount_points: &ALL_POINTS[..1],
        resolv_conf: None,
        hosts: None,
        hostname: "h",
        new_netns: false,
        user: &user(),
        cwd: "/",
        argv: vec![CString::new("x").unwrap()],
        envp: vec![],
        search_path: "/bin",
        nofile: 1024,
        nofile_fallback: 512,
        last_cap: 40,
    });
    assert!(err.is_err(), "proc alone is not enough");
}

#[test]
fn capabilities_keep_dockers_default_set_only() {
    let plan = plan_with(1, false, &ALL_POINTS);
    let keep = plan
        .steps
        .iter()
        .find_map(|s| match s {
            Step::DropBoundingCaps { keep, .. } => Some(*keep),
            _ => None,
        })
        .unwrap();
    assert_eq!(keep.count_ones() as usize, DEFAULT_CAPABILITIES.len());
    for (cap, name) in [
        (21, "CAP_SYS_ADMIN"),
        (16, "CAP_SYS_MODULE"),
        (17, "CAP_SYS_RAWIO"),
        (12, "CAP_NET_ADMIN"),
    ] {
        assert_eq!(keep & (1 << cap), 0, "{name} must be dropped");
    }
    for cap in [0, 6, 7, 27] {
        assert_ne!(keep & (1 << cap), 0);
    }
}
