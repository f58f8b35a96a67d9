//! Hostile base images against the RUN sandbox (threats-and-faults §2.7 #38–#41, §2.1 #15, #42).
//! Each test is named after the attack it pins. Root is required (overlayfs, namespaces).

mod sandbox_support;

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use sandbox_support::*;
use stratum_builder::sandbox::{SandboxError, shell_argv};

/// A host directory outside every image, holding one sentinel file.
fn host_sentinel_dir(tmp: &Path) -> std::path::PathBuf {
    let dir = tmp.join("host-side");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("HOST-SENTINEL"), "host data\n").unwrap();
    dir
}

fn executable(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// threats §2.7 #40, CVE-2026-41579 and runc CVE-2019-19921: `/dev`, `/proc` and `/sys` are
/// symlinks to host paths. The step must get its own /dev, /proc and /sys, nothing may be mounted
/// or written through the links, and the image's links survive unchanged.
#[test]
fn dev_proc_sys_symlinks_to_the_host_are_shadowed_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_sentinel_dir(tmp.path());
    let top = extra_layer(tmp.path(), "hostile");
    symlink(&host, top.join("dev")).unwrap();
    symlink(
        format!("../../../../../../../..{}", host.display()),
        top.join("proc"),
    )
    .unwrap();
    symlink("/", top.join("sys")).unwrap();
    let s = step_with(
        vec![top.clone(), busybox_layer().to_owned()],
        shell_argv(
            &[],
            "echo x > /dev/null; echo $(ls /dev); echo $$; ls /sys | grep -c class; touch /dev/new",
        ),
    );
    let out = run_step(&s.spec);
    assert_eq!(
        out.ok(),
        "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero\n1\n1"
    );
    assert_eq!(listing(&host), ["HOST-SENTINEL"]);
    assert_eq!(fs::read_link(top.join("dev")).unwrap(), host);
    assert_eq!(fs::read_link(top.join("sys")).unwrap(), Path::new("/"));
    assert!(
        listing(&s.spec.upper_dir).is_empty(),
        "{:?}",
        listing(&s.spec.upper_dir)
    );
}

/// threats §2.7 #40, runc CVE-2025-31133 / CVE-2025-52565: the image's `/dev/null` is a symlink to
/// a procfs file and `/dev/pts/0` to a host file. The step's /dev is a fresh tmpfs with our own
/// nodes, and the masked paths are covered with *that* /dev/null.
#[test]
fn dev_null_symlink_to_procfs_is_never_used() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_sentinel_dir(tmp.path());
    let top = extra_layer(tmp.path(), "hostile");
    fs::create_dir_all(top.join("dev/pts")).unwrap();
    symlink("/proc/sys/kernel/hostname", top.join("dev/null")).unwrap();
    symlink(host.join("HOST-SENTINEL"), top.join("dev/pts/0")).unwrap();
    symlink("/proc/sys/kernel/domainname", top.join("dev/console")).unwrap();
    // (writing to /dev/pts/0 fails: it is a devpts node nobody opened, not the image's link)
    let host_name_before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let s = step_with(
        vec![top, busybox_layer().to_owned()],
        shell_argv(
            &[],
            "stat -c '%F %t:%T' /dev/null; echo pwned > /dev/null; (echo pwned > /dev/pts/0) 2>/dev/null; \
             hostname; ls /dev/pts; stat -c '%t:%T' /proc/timer_list; ls /proc/acpi | wc -l",
        ),
    );
    let out = run_step(&s.spec);
    // masked procfs paths (present on this kernel) are covered by the step's own /dev/null (a file)
    // or an empty read-only tmpfs (a directory)
    assert!(Path::new("/proc/timer_list").exists() && Path::new("/proc/acpi").is_dir());
    assert_eq!(
        out.ok(),
        "character special file 1:3\nstratum-test\nptmx\n1:3\n0"
    );
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name_before
    );
    assert_eq!(
        fs::read_to_string(host.join("HOST-SENTINEL")).unwrap(),
        "host data\n"
    );
    assert!(listing(&s.spec.upper_dir).is_empty());
}

/// threats §2.7 #38, runc CVE-2024-21626 ("Leaky Vessels"): `WORKDIR /proc/self/fd/N` where the
/// builder has a host directory open (here deliberately without O_CLOEXEC, as the leak was). Every
/// N must fail or see only the image.
#[test]
fn workdir_through_a_leaked_fd_never_reaches_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_sentinel_dir(tmp.path());
    let leaked = nix::fcntl::open(
        &host,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let leaked_n = leaked.as_raw_fd();
    let mut fds: Vec<i32> = (3..=32).collect();
    fds.push(leaked_n);
    for n in fds {
        let mut s = step("ls; ls ..; ls ../../..; cat HOST-SENTINEL");
        s.spec.cwd = format!("/proc/self/fd/{n}");
        let out = run_step(&s.spec);
        assert!(
            !out.stdout.contains("HOST-SENTINEL") && !out.stdout.contains("host data"),
            "fd {n} leaked the host: {}",
            out.stdout
        );
        if n == leaked_n {
            let err = out.result.unwrap_err();
            assert!(
                matches!(
                    err,
                    SandboxError::Workdir { .. } | SandboxError::WorkdirOutsideRoot { .. }
                ),
                "{err}"
            );
        }
    }
    drop(leaked);
}

/// threats §2.7 #39, runc CVE-2019-5736: the image's shell leads the kernel to `/proc/self/exe`,
/// which before the exec is the builder's own binary. Every variant must be refused before exec,
/// and the builder binary (here the test binary) must be unchanged.
#[test]
fn bin_sh_reaching_proc_self_exe_is_refused() {
    let me = std::env::current_exe().unwrap();
    let before = sha256_file(&me);
    let tmp = tempfile::tempdir().unwrap();
    type Plant = fn(&Path);
    let variants: Vec<(&str, Plant)> = vec![
        ("shebang", |bin| {
            executable(&bin.join("sh"), b"#!/proc/self/exe\n")
        }),
        ("symlink", |bin| {
            symlink("/proc/self/exe", bin.join("sh")).unwrap()
        }),
        ("nested shebang", |bin| {
            executable(&bin.join("evil"), b"#! /proc/thread-self/exe -x\n");
            executable(&bin.join("sh"), b"#!/bin/evil\n");
        }),
        ("pid 1", |bin| {
            executable(&bin.join("sh"), b"#!/proc/1/exe\n")
        }),
        ("unreadable shebang", |bin| {
            executable(&bin.join("sh"), b"#!/proc/self/exe\n");
            fs::set_permissions(bin.join("sh"), fs::Permissions::from_mode(0o111)).unwrap();
        }),
        ("ELF loader", |bin| {
            // A real dynamic binary whose PT_INTERP is patched to /proc/self/exe.
            let mut elf = fs::read("/bin/ls").unwrap();
            let interp = b"/lib64/ld-linux-x86-64.so.2\0";
            let at = elf
                .windows(interp.len())
                .position(|w| w == interp)
                .expect("PT_INTERP of /bin/ls");
            let evil = b"/proc/self/exe\0";
            elf[at..at + evil.len()].copy_from_slice(evil);
            executable(&bin.join("sh"), &elf);
        }),
    ];
    for (name, plant) in variants {
        let top = extra_layer(tmp.path(), &name.replace(' ', "-"));
        fs::create_dir_all(top.join("bin")).unwrap();
        plant(&top.join("bin"));
        let mut s = step_with(
            vec![top, busybox_layer().to_owned()],
            shell_argv(&[], "echo ran"),
        );
        s.spec.user = "app".into();
        let out = run_step(&s.spec);
        assert!(
            matches!(out.result, Err(SandboxError::ExecThroughMagicLink { .. })),
            "{name}: {:?} stdout={:?} stderr={:?}",
            out.result,
            out.stdout,
            out.stderr
        );
        assert_eq!(out.stdout, "", "{name}");
        assert!(listing(&s.spec.upper_dir).is_empty(), "{name}");
    }
    assert_eq!(sha256_file(&me), before);
}

/// A normal #! chain still works (the check must not over-reject, threats §7.2).
#[test]
fn ordinary_interpreter_chains_still_run() {
    let tmp = tempfile::tempdir().unwrap();
    let top = extra_layer(tmp.path(), "scripts");
    fs::create_dir_all(top.join("usr/local/bin")).unwrap();
    executable(
        &top.join("usr/local/bin/hello"),
        b"#!/bin/sh\necho hello from $0\n",
    );
    let s = step_with(vec![top, busybox_layer().to_owned()], vec!["hello".into()]);
    assert_eq!(run_step(&s.spec).ok(), "hello from /usr/local/bin/hello");
}

/// `/etc/resolv.conf` is a symlink out of the image (as on systemd-resolved images, but hostile):
/// the bind goes onto a stub that shadows it; the host file is neither read into nor written.
#[test]
fn resolv_conf_symlink_out_of_the_image_is_shadowed() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_sentinel_dir(tmp.path());
    let top = extra_layer(tmp.path(), "hostile");
    fs::create_dir_all(top.join("etc")).unwrap();
    let target = format!(
        "../../../../../../../../..{}",
        host.join("HOST-SENTINEL").display()
    );
    symlink(&target, top.join("etc/resolv.conf")).unwrap();
    let mut s = step_with(
        vec![top.clone(), busybox_layer().to_owned()],
        shell_argv(
            &[],
            "cat /etc/resolv.conf; (echo pwned > /etc/resolv.conf) 2>/dev/null || echo ro",
        ),
    );
    let resolv = s.tmp.path().join("resolv.conf");
    fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    s.spec.resolv_conf = Some(resolv);
    assert_eq!(run_step(&s.spec).ok(), "nameserver 192.0.2.53\nro");
    assert_eq!(
        fs::read_to_string(host.join("HOST-SENTINEL")).unwrap(),
        "host data\n"
    );
    assert_eq!(
        fs::read_link(top.join("etc/resolv.conf")).unwrap(),
        Path::new(&target)
    );
    assert!(
        listing(&s.spec.upper_dir).is_empty(),
        "{:?}",
        listing(&s.spec.upper_dir)
    );
}

/// `/etc` itself is a symlink to `/`: nothing is mounted through it (the binds are skipped) and the
/// step still runs, leaving no trace.
#[test]
fn etc_symlink_skips_the_binds() {
    let tmp = tempfile::tempdir().unwrap();
    let top = extra_layer(tmp.path(), "hostile");
    symlink("/", top.join("etc")).unwrap();
    let mut s = step_with(
        vec![top, busybox_layer().to_owned()],
        shell_argv(&[], "ls /hosts 2>&1 || echo absent"),
    );
    let hosts = s.tmp.path().join("hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    s.spec.hosts = Some(hosts);
    assert!(run_step(&s.spec).ok().ends_with("absent"));
    assert!(listing(&s.spec.upper_dir).is_empty());
}

/// threats §2.1 #15 and #42: `/etc/passwd` is a symlink to a host file that defines a root user.
/// USER is resolved inside the image root (the link leads nowhere there), never on the host.
#[test]
fn passwd_symlink_to_the_host_is_resolved_inside_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let host = host_sentinel_dir(tmp.path());
    fs::write(host.join("passwd"), "evil:x:0:0::/:/bin/sh\n").unwrap();
    let top = extra_layer(tmp.path(), "hostile");
    fs::create_dir_all(top.join("etc")).unwrap();
    symlink(host.join("passwd"), top.join("etc/passwd")).unwrap();
    let mut s = step_with(
        vec![top, busybox_layer().to_owned()],
        shell_argv(&[], "id -u"),
    );
    s.spec.user = "evil".into();
    let err = run_step(&s.spec).result.unwrap_err();
    assert!(matches!(err, SandboxError::User { .. }), "{err}");
}

/// threats §2.7 #41(d): the step tries to remove, unmount or move its mount points so that
/// cleanup would act on something else. Mount points cannot be removed or unmounted (no
/// CAP_SYS_ADMIN), the host file behind the bind is untouched, and what the step really changed
/// stays while the stub inside it goes: `mv` falls back to copy + delete (overlayfs refuses to
/// rename a merged directory with `redirect_dir=off`), leaving whiteouts in the stub `/etc`.
#[test]
fn the_step_cannot_swap_its_mount_points() {
    let mut s = step(
        "umount /etc/hosts 2>/dev/null; rm -f /etc/hosts 2>/dev/null; mv /etc /etc2 2>/dev/null; \
         rmdir /proc 2>/dev/null; umount /proc 2>/dev/null; ls /proc/1 >/dev/null && echo done",
    );
    let hosts = s.tmp.path().join("hosts");
    fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    s.spec.hosts = Some(hosts.clone());
    assert_eq!(run_step(&s.spec).ok(), "done");
    assert_eq!(fs::read_to_string(&hosts).unwrap(), "127.0.0.1 localhost\n");
    let upper = &s.spec.upper_dir;
    assert_eq!(
        listing(upper),
        [
            "etc",
            "etc/group",
            "etc/passwd",
            "etc2",
            "etc2/group",
            "etc2/hosts",
            "etc2/passwd"
        ]
    );
    for whiteout in ["etc/group", "etc/passwd"] {
        let m = fs::symlink_metadata(upper.join(whiteout)).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()),
            "{whiteout}"
        );
    }
    // the copy holds the bound file's content, as `docker build` would
    assert_eq!(
        fs::read_to_string(upper.join("etc2/hosts")).unwrap(),
        "127.0.0.1 localhost\n"
    );
}
