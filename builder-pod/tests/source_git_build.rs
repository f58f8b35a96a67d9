//! Git contexts end to end: `stratum build <url>#ref:dir` as a user runs it, and
//! `stratum pod-build` with a git BuildRequest reporting the commit it built — against
//! `git daemon` and smart HTTP on loopback, writing an OCI layout or pushing to a real registry.

mod git_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use git_support::daemon::GitDaemon;
use git_support::fixture::{Fixture, fixture};
use git_support::http::{self, HttpGit};
use git_support::repo::Repo;
use stratum_crds::contract::{BuiltSource, FailureReason, Outcome};
use support::registry::{Auth, TestRegistry};

fn stratum_build(cache: &Path, args: &[&str], context: &str) -> Output {
    stratum_build_with_env(cache, args, context, &[])
}

fn stratum_build_with_env(
    cache: &Path,
    args: &[&str],
    context: &str,
    env: &[(&str, &Path)],
) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratum"))
        .envs(env.iter().copied())
        .arg("build")
        .arg("--cache-dir")
        .arg(cache)
        .arg("--progress=plain")
        .args(args)
        .arg(context)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stratum failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn unpack(layout: &Path, tag: &str, into: &Path) -> PathBuf {
    let rootfs = into.join(format!("unpacked-{tag}"));
    let status = Command::new("umoci")
        .args(["raw", "unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&rootfs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "umoci unpack {}:{tag}", layout.display());
    rootfs
}

/// The fixture plus a commit whose `app/` context holds a symlink to the host's /etc/passwd.
fn repo_with_link() -> (Fixture, String) {
    let f = fixture();
    f.repo
        .write("app/Dockerfile", "FROM scratch\nCOPY . /\n")
        .symlink("app/passwd", "/etc/passwd");
    let commit = f.repo.commit("copy everything");
    f.repo.push();
    (f, commit)
}

#[test]
fn stratum_build_from_a_git_url_with_ref_and_subdir() {
    let (f, commit) = repo_with_link();
    let daemon = GitDaemon::start(&f.root);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let context = format!("{}#main:app", daemon.url("app.git"));
    let stderr = ok(&stratum_build(
        &work.path().join("cache"),
        &[
            "-t",
            "example.test/app:v1",
            "--output",
            &format!("type=oci,dest={}", layout.display()),
        ],
        &context,
    ));
    assert!(stderr.contains(&commit), "names the commit: {stderr}");
    let rootfs = unpack(&layout, "v1", work.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "hello v2\n"
    );
    // The link is copied as a link, never as the builder's /etc/passwd.
    let link = rootfs.join("passwd");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("/etc/passwd"));
    assert!(!rootfs.join(".git").exists());

    // `-f` is read inside the repository (app/Dockerfile is `COPY . /`, the context is the
    // repository root), and --keep-git-dir.
    let layout = work.path().join("layout-tag");
    ok(&stratum_build(
        &work.path().join("cache"),
        &[
            "-t",
            "example.test/app:v1",
            "-f",
            "app/Dockerfile",
            "--keep-git-dir",
            "--output",
            &format!("type=oci,dest={}", layout.display()),
        ],
        &format!("{}#main", daemon.url("app.git")),
    ));
    let second = work.path().join("second");
    std::fs::create_dir_all(&second).unwrap();
    let rootfs = unpack(&layout, "v1", &second);
    assert!(rootfs.join(".git").is_dir(), "--keep-git-dir keeps .git");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("app/hello.txt")).unwrap(),
        "hello v2\n"
    );
}

#[test]
fn stratum_build_refuses_hostile_or_missing_git_contexts() {
    let (f, _) = repo_with_link();
    f.repo.symlink("out", "/etc");
    f.repo.symlink("app/Evil", "/etc/shadow");
    f.repo.commit("hostile links");
    f.repo.push();
    let daemon = GitDaemon::start(&f.root);
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let url = daemon.url("app.git");
    for (context, args, expected) in [
        (format!("{url}#main:out"), &[][..], "outside the repository"),
        (
            format!("{url}#main:app"),
            &["-f", "Evil"][..],
            "outside the repository",
        ),
        (format!("{url}#main:../.."), &[][..], "'..'"),
        (format!("{url}#nope"), &[][..], "not found"),
        (format!("{url}#main:missing"), &[][..], "does not exist"),
    ] {
        let out = stratum_build(&cache, args, &context);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{context} built");
        assert!(stderr.contains(expected), "{context}: {stderr}");
        assert!(
            !stderr.contains("root:"),
            "{context} leaked a host file: {stderr}"
        );
    }
}

/// Runs `stratum pod-build` with `source` and returns its exit status and result.
fn pod_build(
    registry: &TestRegistry,
    work: &Path,
    source: &serde_json::Value,
    tag: &str,
) -> (bool, stratum_crds::BuildResult) {
    let request = serde_json::json!({
        "v": 1,
        "build": {"namespace": "default", "name": "demo", "generation": 1, "attempt": 1},
        "source": source,
        "dockerfile": "Dockerfile",
        "output": {
            "image": format!("{}/pods/git:{tag}", registry.host_port),
            "insecure": true
        },
        "timeoutSeconds": 600
    });
    let log = work.join(format!("termination-{tag}"));
    let out = Command::new(env!("CARGO_BIN_EXE_stratum"))
        .arg("pod-build")
        .arg("--cache-dir")
        .arg(work.join("cache"))
        .arg("--termination-log")
        .arg(&log)
        .env("STRATUM_BUILD_REQUEST", request.to_string())
        .output()
        .unwrap();
    let message = std::fs::read_to_string(&log).expect("a result is always written");
    let result = stratum_crds::parse_termination_message(&message).expect("a valid result");
    (out.status.success(), result)
}

#[test]
fn pod_build_fetches_the_pinned_commit_and_reports_it() {
    let (f, commit) = repo_with_link();
    let creds = Some(("alice".to_owned(), "s3cret-token".to_owned()));
    let server = HttpGit::start(
        &f.root,
        http::Options {
            credentials: creds,
            redirect_to: None,
        },
    );
    let registry = TestRegistry::start(Auth::None);
    let work = tempfile::tempdir().unwrap();
    let secret = work.path().join("secret");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("username"), "alice").unwrap();
    std::fs::write(secret.join("password"), "s3cret-token").unwrap();
    let source = |commit: &str, secret: &Path| {
        serde_json::json!({"git": {
            "url": server.url("app.git"),
            "commit": commit,
            "ref": "refs/heads/main",
            "contextDir": "app",
            "authDir": secret.display().to_string(),
        }})
    };
    let (ok, result) = pod_build(&registry, work.path(), &source(&commit, &secret), "v1");
    assert!(ok, "{result:?}");
    assert!(matches!(result.outcome, Outcome::Pushed(_)), "{result:?}");
    assert_eq!(result.source, Some(BuiltSource::Git { commit }));

    // The pinned commit is built, not the branch tip.
    let (ok, result) = pod_build(&registry, work.path(), &source(&f.first, &secret), "first");
    assert!(ok, "{result:?}");
    assert_eq!(
        result.source,
        Some(BuiltSource::Git {
            commit: f.first.clone()
        })
    );

    let wrong = work.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::write(wrong.join("username"), "alice").unwrap();
    std::fs::write(wrong.join("password"), "nope-token").unwrap();
    let (ok, result) = pod_build(&registry, work.path(), &source(&f.first, &wrong), "wrong");
    assert!(!ok);
    let Outcome::Failed(failure) = &result.outcome else {
        panic!("expected a failure, got {result:?}");
    };
    assert_eq!(
        failure.reason,
        FailureReason::SourceAuthFailed,
        "{failure:?}"
    );
    assert!(!failure.message.contains("nope-token"), "{failure:?}");

    let gone = "0123456789abcdef0123456789abcdef01234567";
    let (ok, result) = pod_build(&registry, work.path(), &source(gone, &secret), "gone");
    assert!(!ok);
    let Outcome::Failed(failure) = &result.outcome else {
        panic!("expected a failure, got {result:?}");
    };
    assert_eq!(failure.reason, FailureReason::FetchFailed, "{failure:?}");
    assert!(failure.message.contains(gone), "{failure:?}");
}

#[test]
fn stratum_build_fetches_submodules_like_docker() {
    let f = fixture();
    let lib = Repo::create(&f.root, "lib.git");
    lib.write("lib.txt", "from the submodule\n");
    let lib_commit = lib.commit("lib");
    lib.push();
    f.repo.write("app/Dockerfile", "FROM scratch\nCOPY . /\n");
    f.repo.add_submodule("app/lib", "../lib.git", &lib_commit);
    f.repo.commit_staged("with a submodule");
    f.repo.push();
    let daemon = GitDaemon::start(&f.root);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    ok(&stratum_build(
        &work.path().join("cache"),
        &[
            "-t",
            "example.test/app:v1",
            "--output",
            &format!("type=oci,dest={}", layout.display()),
        ],
        &format!("{}#main:app", daemon.url("app.git")),
    ));
    let rootfs = unpack(&layout, "v1", work.path());
    assert_eq!(
        std::fs::read_to_string(rootfs.join("lib/lib.txt")).unwrap(),
        "from the submodule\n"
    );
    assert!(!rootfs.join("lib/.git").exists());
}

#[test]
fn the_users_git_configuration_and_hooks_are_never_used() {
    let (f, _) = repo_with_link();
    let daemon = GitDaemon::start(&f.root);
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("hook-ran");
    let hooks = work.path().join("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    for hook in ["post-checkout", "post-merge", "reference-transaction"] {
        let path = hooks.join(hook);
        std::fs::write(&path, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    // A global config (and a HOME with a .gitconfig) that would run hooks and send every fetch
    // from the daemon to a closed port.
    let config = format!(
        "[core]\n\thooksPath = {}\n[url \"git://127.0.0.1:1/\"]\n\tinsteadOf = git://127.0.0.1:{}/\n",
        hooks.display(),
        daemon.port
    );
    let global = work.path().join("gitconfig");
    std::fs::write(&global, &config).unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".gitconfig"), &config).unwrap();
    let layout = work.path().join("layout");
    ok(&stratum_build_with_env(
        &work.path().join("cache"),
        &[
            "-t",
            "example.test/app:v1",
            "--output",
            &format!("type=oci,dest={}", layout.display()),
        ],
        &format!("{}#main:app", daemon.url("app.git")),
        &[("GIT_CONFIG_GLOBAL", &global), ("HOME", &home)],
    ));
    assert!(!marker.exists(), "a hook from the user's git config ran");
}
