//! `run` against the recording double: the parent/child sequence, error mapping, timeout and
//! cancellation, stub cleanup. Real mounts and processes are in tests/sandbox*.rs.

use std::sync::{Arc, Mutex};

use super::*;
use crate::sandbox::RecordingSyscalls;

struct Fixture {
    _tmp: tempfile::TempDir,
    spec: RunSpec,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("etc")).unwrap();
    fs::write(
        lower.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(lower.join("etc/group"), "root:x:0:\nwheel:x:10:app\n").unwrap();
    let resolv = tmp.path().join("resolv.conf");
    fs::write(&resolv, "nameserver 10.0.0.1\n").unwrap();
    let spec = RunSpec {
        lower_dirs: vec![lower],
        upper_dir: tmp.path().join("upper"),
        work_dir: tmp.path().join("work"),
        merged_dir: tmp.path().join("merged"),
        argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: "/work".into(),
        user: "app".into(),
        hostname: String::new(),
        network: Network::Host,
        timeout: None,
        resolv_conf: Some(resolv),
        hosts: None,
    };
    Fixture { _tmp: tmp, spec }
}

fn run_recorded(
    spec: &RunSpec,
    sys: &RecordingSyscalls,
) -> (Result<ExitStatus, SandboxError>, Vec<(Stream, String)>) {
    let mut lines = Vec::new();
    let result = run(
        spec,
        sys,
        &mut |s, l| lines.push((s, String::from_utf8_lossy(l).into_owned())),
        &CancelToken::new(),
    );
    (result, lines)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

fn pos(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call {prefix:?} in {calls:#?}"))
}

#[test]
fn parent_and_child_calls_interleave_in_order_and_stubs_are_gone_after() {
    let f = fixture();
    let upper = f.spec.upper_dir.clone();
    let seen_at_spawn = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&seen_at_spawn);
    let sys = RecordingSyscalls::new().on_spawn(move || *seen.lock().unwrap() = listing(&upper));
    let (result, _) = run_recorded(&f.spec, &sys);
    assert_eq!(result.unwrap(), ExitStatus::Exited(0));
    // stubs existed while the step ran, and are gone now
    assert_eq!(
        *seen_at_spawn.lock().unwrap(),
        ["dev", "etc", "etc/resolv.conf", "proc", "sys"]
    );
    assert!(listing(&f.spec.upper_dir).is_empty());

    let calls = sys.calls();
    let merged = fs::canonicalize(&f.spec.merged_dir)
        .unwrap()
        .display()
        .to_string();
    let order = [
        "spawn CloneFlags(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID)".to_owned(),
        "prctl PR_SET_PDEATHSIG".to_owned(),
        "dup2 -> 1".to_owned(),
        "close_range".to_owned(),
        "mount - / - MsFlags(MS_REC | MS_SLAVE)".to_owned(),
        format!("mount overlay {merged} overlay"),
        format!("verify_beneath {merged} proc Dir"),
        format!("mount proc {merged}/proc proc"),
        "mount /".to_owned(),
        "open_dir /".to_owned(),
        "pivot_root . .".to_owned(),
        "umount2 . MntFlags(MNT_DETACH)".to_owned(),
        "sethostname buildkitsandbox".to_owned(),
        "open_rdwr /dev/null".to_owned(),
        "dup2 -> 0".to_owned(),
        "setrlimit 7".to_owned(),
        "drop_bounding_caps".to_owned(),
        "chdir /work".to_owned(),
        "getcwd".to_owned(),
        "verify_exec_chain /bin/sh".to_owned(),
        "setgroups [1000, 10]".to_owned(),
        "setresgid 1000".to_owned(),
        "setresuid 1000".to_owned(),
        "umask 0022".to_owned(),
        "execve /bin/sh [/bin/sh -c true] [PATH=/usr/bin:/bin HOME=/home/app]".to_owned(),
        "child returned 0".to_owned(),
        "wait 4242".to_owned(),
    ];
    let positions: Vec<usize> = order.iter().map(|p| pos(&calls, p)).collect();
    for (i, pair) in positions.windows(2).enumerate() {
        assert!(
            pair[0] <= pair[1],
            "{:?} must come before {:?}:\n{calls:#?}",
            order[i],
            order[i + 1]
        );
    }
    // the resolv.conf bind happens before pivot_root and is made read-only
    let bind = pos(
        &calls,
        &format!("mount {}", f.spec.resolv_conf.as_ref().unwrap().display()),
    );
    let ro = pos(
        &calls,
        &format!("mount - {merged}/etc/resolv.conf - MsFlags(MS_RDONLY"),
    );
    assert!(bind < ro && ro < pos(&calls, "pivot_root"));
}

#[test]
fn program_is_looked_up_in_the_steps_path() {
    let mut f = fixture();
    f.spec.argv = vec!["ls".into(), "-l".into()];
    let sys = RecordingSyscalls::new();
    run_recorded(&f.spec, &sys).0.unwrap();
    let calls = sys.calls();
    assert!(
        pos(&calls, "is_executable_file /usr/bin/ls = false")
            < pos(&calls, "is_executable_file /bin/ls = true")
    );
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("execve /bin/ls [ls -l]")),
        "{calls:#?}"
    );

    f.spec.argv = vec!["nope".into()];
    let sys = RecordingSyscalls::new();
    assert!(
        matches!(run_recorded(&f.spec, &sys).0, Err(SandboxError::ProgramNotFound { program }) if program == "nope")
    );
    assert!(
        !sys.calls()
            .iter()
            .any(|c| c.starts_with("execve") || c.starts_with("setresuid"))
    );
}

#[test]
fn child_failures_map_to_actionable_errors_and_stubs_are_still_removed() {
    type Check = fn(&SandboxError) -> bool;
    let cases: Vec<(&str, Errno, Check)> = vec![
        (
            "mount proc",
            Errno::EPERM,
            |e| matches!(e, SandboxError::Setup { step, source: Errno::EPERM } if step.starts_with("mount proc on ")),
        ),
        ("verify_exec_chain", Errno::ELOOP, |e| {
            matches!(e, SandboxError::ExecThroughMagicLink { .. })
        }),
        (
            "chdir /work",
            Errno::ENOENT,
            |e| matches!(e, SandboxError::Workdir { cwd, source: Errno::ENOENT } if cwd == "/work"),
        ),
        ("execve", Errno::EACCES, |e| {
            matches!(
                e,
                SandboxError::Exec {
                    source: Errno::EACCES,
                    ..
                }
            )
        }),
        (
            "pivot_root",
            Errno::EINVAL,
            |e| matches!(e, SandboxError::Setup { step, .. } if step.starts_with("pivot_root")),
        ),
        (
            "verify_beneath",
            Errno::ELOOP,
            |e| matches!(e, SandboxError::Setup { step, .. } if step.contains("is not a symlink")),
        ),
    ];
    for (prefix, errno, check) in cases {
        let f = fixture();
        let sys = RecordingSyscalls::new().failing(prefix, errno);
        let err = run_recorded(&f.spec, &sys).0.unwrap_err();
        assert!(check(&err), "{prefix}: got {err:?}");
        assert!(
            listing(&f.spec.upper_dir).is_empty(),
            "{prefix}: stubs left behind"
        );
        let calls = sys.calls();
        assert!(
            calls.iter().any(|c| c.starts_with("child returned 127")),
            "{prefix}: {calls:#?}"
        );
        assert!(
            calls.last().unwrap().starts_with("wait"),
            "{prefix}: must reap"
        );
    }
}

#[test]
fn a_cwd_outside_the_root_is_refused() {
    let f = fixture();
    // What the kernel's getcwd reports after chdir("/proc/self/fd/N") to a leaked host directory.
    let sys = RecordingSyscalls::new().cwd_outside_root();
    let err = run_recorded(&f.spec, &sys).0.unwrap_err();
    assert!(
        matches!(&err, SandboxError::WorkdirOutsideRoot { cwd } if cwd == "/work"),
        "{err:?}"
    );
    assert!(!sys.calls().iter().any(|c| c.starts_with("execve")));
}

#[test]
fn timeout_kills_reaps_then_cleans_up() {
    let mut f = fixture();
    f.spec.timeout = Some(Duration::from_millis(200));
    let sys = RecordingSyscalls::new().hanging();
    let started = Instant::now();
    let err = run_recorded(&f.spec, &sys).0.unwrap_err();
    assert!(
        matches!(err, SandboxError::TimedOut { after } if after == Duration::from_millis(200)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let calls = sys.calls();
    assert!(pos(&calls, "kill SIGKILL") < pos(&calls, "wait"));
    assert!(listing(&f.spec.upper_dir).is_empty());
}

#[test]
fn cancel_from_another_thread_kills_the_step() {
    let f = fixture();
    let sys = RecordingSyscalls::new().hanging();
    let cancel = CancelToken::new();
    let canceller = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        canceller.cancel();
    });
    let err = run(&f.spec, &sys, &mut |_, _| {}, &cancel).unwrap_err();
    t.join().unwrap();
    assert!(matches!(err, SandboxError::Cancelled), "{err:?}");
    assert!(pos(&sys.calls(), "kill SIGKILL") < pos(&sys.calls(), "wait"));
}

#[test]
fn an_already_cancelled_token_runs_nothing() {
    let f = fixture();
    let sys = RecordingSyscalls::new();
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = run(&f.spec, &sys, &mut |_, _| {}, &cancel).unwrap_err();
    assert!(matches!(err, SandboxError::Cancelled), "{err:?}");
    assert!(sys.calls().is_empty());
    assert!(listing(&f.spec.upper_dir).is_empty());
}

#[test]
fn output_is_streamed_as_lines_and_exit_codes_pass_through() {
    let f = fixture();
    let sys = RecordingSyscalls::new()
        .printing(b"hello\nwor")
        .exiting(ExitStatus::Exited(3));
    let (result, lines) = run_recorded(&f.spec, &sys);
    assert_eq!(result.unwrap(), ExitStatus::Exited(3));
    assert_eq!(
        lines,
        [
            (Stream::Stdout, "hello".to_owned()),
            (Stream::Stdout, "wor".to_owned())
        ]
    );
}

#[test]
fn bad_specs_fail_before_anything_runs() {
    type Mutate = fn(&mut RunSpec);
    let cases: Vec<(Mutate, &str)> = vec![
        (|s| s.user = "nobody".into(), "unable to find user"),
        (|s| s.argv.clear(), "the command is empty"),
        (|s| s.cwd = "relative".into(), "not absolute"),
        (|s| s.hostname = "h".repeat(65), "longer than 64"),
        (|s| s.lower_dirs = vec![], "at least one lower dir"),
        (
            |s| s.resolv_conf = Some("/nonexistent/resolv.conf".into()),
            "not a regular file",
        ),
        (
            |s| s.env.push(("A=B".into(), "x".into())),
            "invalid variable",
        ),
        (|s| s.upper_dir = "relative/upper".into(), "not absolute"),
    ];
    for (mutate, want) in cases {
        let mut f = fixture();
        mutate(&mut f.spec);
        let sys = RecordingSyscalls::new();
        let err = run_recorded(&f.spec, &sys).0.unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?}, got {err:?}");
        assert!(sys.calls().is_empty(), "{want}: nothing may run");
    }
    // a non-empty upper dir
    let f = fixture();
    fs::create_dir_all(f.spec.upper_dir.join("leftover")).unwrap();
    let err = run_recorded(&f.spec, &RecordingSyscalls::new())
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not empty"), "{err}");
}
