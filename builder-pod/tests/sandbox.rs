//! The RUN sandbox for real: overlayfs, namespaces and a busybox image, as root.
//! Hostile images are in sandbox_hostile.rs.

mod sandbox_support;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sandbox_support::*;
use stratum_builder::sandbox::{
    CancelToken, ExitStatus, Network, SandboxError, non_zero_exit_message, shell_argv,
};

#[test]
fn output_is_streamed_per_stream() {
    let s = step("echo hello; echo oops >&2; printf 'no newline'");
    let out = run_step(&s.spec);
    assert_eq!(out.result.unwrap(), ExitStatus::Exited(0));
    assert_eq!(out.stdout, "hello\nno newline\n");
    assert_eq!(out.stderr, "oops\n");
}

#[test]
fn exit_code_is_returned_with_dockers_message() {
    let s = step("exit 3");
    let status = run_step(&s.spec).result.unwrap();
    assert_eq!(status, ExitStatus::Exited(3));
    assert_eq!(
        non_zero_exit_message(&s.spec.argv, status),
        "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    );
    // The step is its pid namespace's init, which ignores signals it has no handler for, even
    // SIGKILL from inside (as RUN under Docker); a child killed by a signal shows as 128+N.
    let s = step("kill -9 $$; echo survived; sh -c 'kill -9 $$'; exit $?");
    let out = run_step(&s.spec);
    assert_eq!(out.result.unwrap(), ExitStatus::Exited(137));
    assert_eq!(out.stdout, "survived\n");
}

#[test]
fn user_is_resolved_from_the_images_passwd_and_group() {
    let cases = [
        ("", "0 0 0"),
        ("app", "1000 1000 1000 10 50"),
        ("1000", "1000 1000 1000 10 50"),
        ("app:staff", "1000 50 50"),
        ("1000:4242", "1000 4242 4242"),
        ("4242", "4242 0 0"),
        ("daemon", "1 1 1 50"),
    ];
    for (user, want) in cases {
        let mut s = step("echo $(id -u) $(id -g) $(id -G)");
        s.spec.user = user.into();
        assert_eq!(run_step(&s.spec).ok(), want, "USER {user:?}");
    }
    let mut s = step("true");
    s.spec.user = "nobody".into();
    let err = run_step(&s.spec).result.unwrap_err();
    assert!(matches!(err, SandboxError::User { .. }), "{err}");
}

#[test]
fn home_follows_the_user_unless_set() {
    let mut s = step("echo $HOME");
    s.spec.user = "app".into();
    assert_eq!(run_step(&s.spec).ok(), "/home/app");
    s = step("echo $HOME");
    s.spec.env.push(("HOME".into(), "/custom".into()));
    assert_eq!(run_step(&s.spec).ok(), "/custom");
}

/// What RLIMIT_NOFILE a step gets here: Docker's 1048576, or the builder's own hard limit when it
/// lacks CAP_SYS_RESOURCE to raise it (as on machines and pods that drop that capability).
fn expected_nofile() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    let can_raise = u64::from_str_radix(cap_eff, 16).unwrap() & (1 << 24) != 0; // CAP_SYS_RESOURCE
    let nr_open: u64 = fs::read_to_string("/proc/sys/fs/nr_open")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let target = nr_open.min(1 << 20);
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    if can_raise { target } else { target.min(hard) }
}

#[test]
fn workdir_env_umask_hostname_rlimit() {
    let mut s = step("pwd; echo $FOO; umask; hostname; ulimit -n; ulimit -Hn");
    s.spec.cwd = "/tmp".into();
    s.spec.env.push(("FOO".into(), "bar baz".into()));
    let n = expected_nofile();
    assert_eq!(
        run_step(&s.spec).ok(),
        format!("/tmp\nbar baz\n0022\nstratum-test\n{n}\n{n}")
    );
}

#[test]
fn missing_workdir_is_a_clear_error() {
    let mut s = step("true");
    s.spec.cwd = "/does/not/exist".into();
    let err = run_step(&s.spec).result.unwrap_err();
    assert!(
        matches!(&err, SandboxError::Workdir { cwd, .. } if cwd == "/does/not/exist"),
        "{err}"
    );
}

#[test]
fn proc_is_mounted_and_the_step_is_pid_1() {
    let s = step("echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'");
    let out = run_step(&s.spec);
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "1");
    assert_eq!(
        lines[1].trim(),
        "/bin/sh -c echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'"
    );
    // only the step's own processes are visible (sh, ls, grep and their pipes)
    let visible: usize = lines[2].parse().unwrap();
    assert!(visible <= 4, "{visible} processes visible");
}

#[test]
fn dev_has_working_device_nodes() {
    let s = step(
        "echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c && \
         echo $(ls /dev) && stat -c '%t:%T' /dev/null /dev/tty && \
         (echo x > /dev/full) 2>/dev/null || echo full-is-full",
    );
    let out = run_step(&s.spec);
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0].trim(), "3");
    assert_eq!(lines[1].trim(), "4");
    assert_eq!(
        lines[2].trim(),
        "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero"
    );
    assert_eq!(&lines[3..], ["1:3", "5:0", "full-is-full"]);
}

#[test]
fn sys_is_read_only_and_proc_sys_too() {
    let s = step(
        "grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
         touch /sys/x 2>/dev/null || echo sys-ro; \
         (echo x > /proc/sys/kernel/hostname) 2>/dev/null || echo procsys-ro; \
         head -c 1 /proc/timer_list | wc -c",
    );
    // /proc/timer_list is never empty unless masked (Docker's default masked paths)
    assert!(fs::metadata("/proc/timer_list").is_ok());
    assert_eq!(run_step(&s.spec).ok(), "ro\nsys-ro\nprocsys-ro\n0");
}

#[test]
fn capabilities_are_dockers_default_set() {
    let s = step("grep CapBnd /proc/self/status | cut -f2");
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW
    // SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP: what `docker run` shows
    assert_eq!(run_step(&s.spec).ok(), "00000000a80425fb");
    let s = step("mount -t tmpfs none /tmp 2>/dev/null || echo no-mount");
    assert_eq!(run_step(&s.spec).ok(), "no-mount");
}

#[test]
fn network_none_has_only_loopback_and_it_is_up() {
    let mut s = step("ls /sys/class/net; cat /sys/class/net/lo/flags");
    s.spec.network = Network::None;
    let out = run_step(&s.spec);
    let lines: Vec<&str> = out.ok().lines().collect();
    assert_eq!(lines[0], "lo");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo must be IFF_UP");
    // the host network has more than lo
    let s = step("ls /sys/class/net | wc -l");
    assert!(run_step(&s.spec).ok().trim().parse::<u32>().unwrap() > 1);
}

#[test]
fn resolv_conf_and_hosts_are_bound_read_only() {
    let mut s =
        step("cat /etc/resolv.conf /etc/hosts; (echo x >> /etc/hosts) 2>/dev/null || echo ro");
    let resolv = s.tmp.path().join("resolv.conf");
    let hosts = s.tmp.path().join("hosts");
    fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    s.spec.resolv_conf = Some(resolv);
    s.spec.hosts = Some(hosts.clone());
    assert_eq!(
        run_step(&s.spec).ok(),
        "nameserver 192.0.2.53\n127.0.0.1 localhost\nro"
    );
    assert_eq!(fs::read_to_string(hosts).unwrap(), "127.0.0.1 localhost\n");
}

#[test]
fn a_step_that_changes_nothing_leaves_the_upper_dir_empty() {
    // Once over an image lacking every mount point (all stubs), once over one that has them all
    // (nothing to create; binding over the image's own files must not copy them up).
    let tmp = tempfile::tempdir().unwrap();
    let complete = extra_layer(tmp.path(), "complete");
    for dir in ["proc", "sys", "dev", "etc"] {
        fs::create_dir_all(complete.join(dir)).unwrap();
    }
    fs::write(complete.join("etc/hosts"), "image hosts\n").unwrap();
    fs::write(complete.join("etc/resolv.conf"), "image resolv\n").unwrap();
    for lowers in [
        vec![busybox_layer().to_owned()],
        vec![complete.clone(), busybox_layer().to_owned()],
    ] {
        let mut s = step_with(lowers, shell_argv(&[], "true"));
        let resolv = s.tmp.path().join("resolv.conf");
        fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
        s.spec.resolv_conf = Some(resolv.clone());
        s.spec.hosts = Some(resolv);
        run_step(&s.spec).ok();
        assert_eq!(listing(&s.spec.upper_dir), Vec::<String>::new());
    }
    assert_eq!(
        fs::read_to_string(complete.join("etc/hosts")).unwrap(),
        "image hosts\n"
    );
}

#[test]
fn mount_point_leftovers_never_reach_the_layer() {
    // The image has /etc (with passwd and group) but no proc, sys, dev, hosts or resolv.conf; the
    // step writes into /etc and / and under /tmp.
    let mut s = step("echo hi > /etc/motd && mkdir /data && echo x > /tmp/t");
    let resolv = s.tmp.path().join("resolv.conf");
    fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    s.spec.resolv_conf = Some(resolv.clone());
    s.spec.hosts = Some(resolv);
    run_step(&s.spec).ok();
    assert_eq!(
        listing(&s.spec.upper_dir),
        ["data", "etc", "etc/motd", "tmp", "tmp/t"]
    );
}

#[test]
fn exec_form_runs_directly_with_path_lookup() {
    let s = step_with(
        vec![busybox_layer().to_owned()],
        vec!["echo".into(), "a  b".into(), "$HOME".into()],
    );
    assert_eq!(run_step(&s.spec).ok(), "a  b $HOME");
    let s = step_with(
        vec![busybox_layer().to_owned()],
        vec!["no-such-program".into()],
    );
    let err = run_step(&s.spec).result.unwrap_err();
    assert!(
        matches!(&err, SandboxError::ProgramNotFound { program } if program == "no-such-program"),
        "{err}"
    );
}

#[test]
fn a_custom_shell_is_used_for_the_shell_form() {
    let shell = vec!["/bin/sh".to_owned(), "-e".to_owned(), "-c".to_owned()];
    let s = step_with(
        vec![busybox_layer().to_owned()],
        shell_argv(&shell, "false; echo unreachable"),
    );
    assert_eq!(run_step(&s.spec).result.unwrap(), ExitStatus::Exited(1));
}

#[test]
fn sixty_layers_are_stacked_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    // Long store-like paths so the lowerdir option cannot fit in one page.
    let mut lowers: Vec<PathBuf> = (0..60)
        .map(|i| {
            let dir = tmp
                .path()
                .join("store/layers/sha256")
                .join(format!("{i:064x}"));
            fs::create_dir_all(dir.join("layers")).unwrap();
            fs::write(dir.join(format!("layers/{i:02}")), "").unwrap();
            fs::write(dir.join("which"), format!("{i}\n")).unwrap();
            dir
        })
        .collect();
    lowers.push(busybox_layer().to_owned());
    let s = step_with(lowers, shell_argv(&[], "ls /layers | wc -l; cat /which"));
    // layer 0 is the top, so its /which wins
    assert_eq!(run_step(&s.spec).ok(), "60\n0");
    assert!(listing(&s.spec.upper_dir).is_empty());
}

#[test]
fn timeout_kills_the_whole_tree_and_leaves_no_mounts() {
    let marker = "31415926";
    let mut s = step(&format!("sleep {marker} & sleep {marker}"));
    s.spec.timeout = Some(Duration::from_millis(700));
    let started = Instant::now();
    let out = run_step(&s.spec); // asserts no mounts remain
    assert!(
        matches!(out.result, Err(SandboxError::TimedOut { .. })),
        "{:?}",
        out.result
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        processes_with(&format!("sleep {marker}")),
        Vec::<String>::new()
    );
    assert!(listing(&s.spec.upper_dir).is_empty());
}

#[test]
fn cancel_kills_the_whole_tree() {
    let marker = "27182818";
    let s = step(&format!("(sleep {marker}; echo never) & sleep {marker}"));
    let cancel = CancelToken::new();
    let canceller = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        canceller.cancel();
    });
    let out = run_step_cancellable(&s.spec, &cancel);
    t.join().unwrap();
    assert!(
        matches!(out.result, Err(SandboxError::Cancelled)),
        "{:?}",
        out.result
    );
    assert_eq!(
        processes_with(&format!("sleep {marker}")),
        Vec::<String>::new()
    );
}

#[test]
fn a_background_process_dies_with_the_step() {
    // Docker semantics: when the step's init exits, the pid namespace is torn down.
    let marker = "16180339";
    let s = step(&format!("sleep {marker} & echo started"));
    let started = Instant::now();
    assert_eq!(run_step(&s.spec).ok(), "started");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        processes_with(&format!("sleep {marker}")),
        Vec::<String>::new()
    );
}

#[test]
fn upper_dir_on_a_fresh_step_must_be_empty() {
    let s = step("true");
    fs::create_dir_all(s.spec.upper_dir.join("stale")).unwrap();
    let err = run_step(&s.spec).result.unwrap_err();
    assert!(
        matches!(
            err,
            SandboxError::InvalidSpec {
                field: "upper_dir",
                ..
            }
        ),
        "{err}"
    );
}
