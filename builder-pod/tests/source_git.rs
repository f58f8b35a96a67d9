//! Git sources against real servers on loopback: `git daemon` (git://), smart HTTP through
//! `git http-backend` with basic auth, and OpenSSH (ssh:// with a key and known_hosts).
//! Resolution, fetching each revision kind, context directories, submodules, credentials, and
//! hostile repositories (threats-and-faults §2.6).

mod git_support;

use git_support::daemon::GitDaemon;
use git_support::http::{self, HttpGit};
use git_support::repo::Repo;
use git_support::sshd::Sshd;
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::git::{GitAuth, GitError, Resolved, resolve};

/// A served root with one repository: `main` has two commits, `v1` (annotated) and `light`
/// (lightweight) tag the first, branch `old` points at the first.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    repo: Repo,
    first: String,
    second: String,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("srv");
    std::fs::create_dir_all(&root).unwrap();
    let repo = Repo::create(&root, "app.git");
    repo.write("Dockerfile", "FROM scratch\nCOPY . /\n")
        .write("app/Dockerfile", "FROM scratch\nCOPY hello.txt /\n")
        .write("app/hello.txt", "hello v1\n");
    let first = repo.commit("first commit");
    repo.git(&["tag", "-a", "-m", "release 1", "v1"]);
    repo.git(&["tag", "light"]);
    repo.git(&["branch", "old"]);
    repo.write("app/hello.txt", "hello v2\n");
    let second = repo.commit("second commit");
    repo.push();
    Fixture {
        _tmp: tmp,
        root,
        repo,
        first,
        second,
    }
}

fn anonymous() -> GitAuth {
    GitAuth::Anonymous
}

fn resolved(commit: &str, reference: &str) -> Resolved {
    Resolved {
        commit: commit.to_owned(),
        reference: Some(reference.to_owned()),
    }
}

#[test]
fn resolve_each_revision_kind_over_git_daemon() {
    let f = fixture();
    let daemon = GitDaemon::start(&f.root);
    let url = daemon.url("app.git");
    let auth = anonymous();
    assert_eq!(
        resolve(&url, None, &auth).unwrap(),
        resolved(&f.second, "refs/heads/main")
    );
    assert_eq!(
        resolve(&url, Some("main"), &auth).unwrap(),
        resolved(&f.second, "refs/heads/main")
    );
    assert_eq!(
        resolve(&url, Some("old"), &auth).unwrap(),
        resolved(&f.first, "refs/heads/old")
    );
    // An annotated tag resolves to the commit it tags, not to the tag object.
    assert_eq!(
        resolve(&url, Some("v1"), &auth).unwrap(),
        resolved(&f.first, "refs/tags/v1")
    );
    assert_eq!(
        resolve(&url, Some("light"), &auth).unwrap(),
        resolved(&f.first, "refs/tags/light")
    );
    assert_eq!(
        resolve(&url, Some("refs/heads/old"), &auth).unwrap(),
        resolved(&f.first, "refs/heads/old")
    );
    assert_eq!(
        resolve(&url, Some(&f.first), &auth).unwrap(),
        Resolved {
            commit: f.first.clone(),
            reference: None
        }
    );
}

#[test]
fn resolve_follows_a_moved_branch() {
    let f = fixture();
    let daemon = GitDaemon::start(&f.root);
    let url = daemon.url("app.git");
    assert_eq!(
        resolve(&url, Some("main"), &anonymous()).unwrap().commit,
        f.second
    );
    f.repo.write("app/hello.txt", "hello v3\n");
    let third = f.repo.commit("third commit");
    f.repo.push();
    assert_eq!(
        resolve(&url, Some("main"), &anonymous()).unwrap().commit,
        third
    );
}

#[test]
fn resolve_failures_are_classified() {
    let f = fixture();
    let daemon = GitDaemon::start(&f.root);
    let err = resolve(&daemon.url("app.git"), Some("nope"), &anonymous()).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::NotFound, "{err}");
    assert!(matches!(err, GitError::RefNotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");

    let err = resolve(&daemon.url("missing.git"), None, &anonymous()).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::NotFound, "{err}");

    let closed = git_support::free_port();
    let err = resolve(
        &format!("git://127.0.0.1:{closed}/app.git"),
        None,
        &anonymous(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Unavailable, "{err}");

    let err = resolve("https://no-such-host.invalid/app.git", None, &anonymous()).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Unavailable, "{err}");
}

#[test]
fn resolve_over_http_with_basic_auth() {
    let f = fixture();
    let server = HttpGit::start(
        &f.root,
        http::Options {
            credentials: Some(("alice".into(), "s3cret-token".into())),
            protocol_v0: false,
        },
    );
    let url = server.url("app.git");
    let good = GitAuth::Basic {
        username: "alice".into(),
        password: "s3cret-token".into(),
    };
    assert_eq!(
        resolve(&url, Some("main"), &good).unwrap(),
        resolved(&f.second, "refs/heads/main")
    );
    // Credentials in the URL are taken out of it and used the same way.
    let with_userinfo = url.replace("http://", "http://alice:s3cret-token@");
    assert_eq!(
        resolve(&with_userinfo, Some("main"), &anonymous())
            .unwrap()
            .commit,
        f.second
    );

    let wrong = GitAuth::Basic {
        username: "alice".into(),
        password: "wrong-password".into(),
    };
    let err = resolve(&url, Some("main"), &wrong).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("wrong-password"), "{err}");
    let err = resolve(&url, Some("main"), &anonymous()).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    let err = resolve(
        &url.replace("http://", "http://alice:bad-in-url@"),
        Some("main"),
        &anonymous(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("bad-in-url"), "{err}");
}

#[test]
fn resolve_over_ssh_with_a_key_and_known_hosts() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&tmp.path().join("sshd"));
    let url = sshd.url(&f.repo.bare);
    let key = |known_hosts: Option<std::path::PathBuf>| GitAuth::SshKey {
        private_key: sshd.client_key.clone(),
        known_hosts,
    };
    assert_eq!(
        resolve(&url, Some("main"), &key(Some(sshd.known_hosts.clone()))).unwrap(),
        resolved(&f.second, "refs/heads/main")
    );
    // No known_hosts: refused before connecting, never accept-new.
    let err = resolve(&url, Some("main"), &key(None)).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    assert!(err.to_string().contains("known_hosts"), "{err}");
    // A host key that does not match known_hosts.
    let err = resolve(
        &url,
        Some("main"),
        &key(Some(sshd.wrong_known_hosts.clone())),
    )
    .unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    assert!(
        err.to_string().contains("Host key verification failed"),
        "{err}"
    );
    // A key the server does not accept.
    let stranger = tmp.path().join("stranger");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    let err = resolve(
        &url,
        Some("main"),
        &GitAuth::SshKey {
            private_key: stranger,
            known_hosts: Some(sshd.known_hosts.clone()),
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
}
