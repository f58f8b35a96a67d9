//! Git sources against real servers on loopback: `git daemon` (git://), smart HTTP through
//! `git http-backend` with basic auth, and OpenSSH (ssh:// with a key and known_hosts).
//! Resolution, fetching each revision kind, context directories, submodules, credentials, and
//! hostile repositories (threats-and-faults §2.6).

mod git_support;
#[path = "source_git/hostile.rs"]
mod hostile;
#[path = "source_git/lfs.rs"]
mod lfs;
#[path = "source_git/submodules.rs"]
mod submodules;

use git_support::daemon::GitDaemon;
use git_support::fixture::fixture;
use git_support::http::{self, HttpGit};
use git_support::sshd::Sshd;
use stratum_builder::sandbox::CancelToken;
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::git::{
    FetchControl, Fetched, GitAuth, GitError, GitFetch, Resolved, context_dir, fetch, fetch_with,
    resolve,
};

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
            redirect_to: None,
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

fn spec<'a>(url: &'a str, commit: &'a str, reference: Option<&'a str>) -> GitFetch<'a> {
    GitFetch {
        url,
        commit,
        reference,
        submodules: false,
        depth: None,
        keep_git_dir: false,
    }
}

fn read(dir: &std::path::Path, path: &str) -> String {
    std::fs::read_to_string(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn fetch_a_branch_tip_tag_and_non_tip_commit_over_git_daemon() {
    let f = fixture();
    let daemon = GitDaemon::start(&f.root);
    let url = daemon.url("app.git");
    let tip = resolve(&url, Some("main"), &anonymous()).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let fetched = fetch(
        &spec(&url, &tip.commit, tip.reference.as_deref()),
        &anonymous(),
        dest.path(),
    )
    .unwrap();
    assert_eq!(
        fetched,
        Fetched {
            commit: f.second.clone(),
            author: Some("Ada Author <ada@example.com>".into()),
            subject: Some("second commit".into()),
        }
    );
    assert_eq!(read(dest.path(), "app/hello.txt"), "hello v2\n");
    assert!(!dest.path().join(".git").exists(), ".git must be removed");

    // The first commit is no branch tip on `main`; protocol v2 hands it out by itself.
    let dest = tempfile::tempdir().unwrap();
    let fetched = fetch(&spec(&url, &f.first, None), &anonymous(), dest.path()).unwrap();
    assert_eq!(fetched.commit, f.first);
    assert_eq!(read(dest.path(), "app/hello.txt"), "hello v1\n");

    let tag = resolve(&url, Some("v1"), &anonymous()).unwrap();
    let dest = tempfile::tempdir().unwrap();
    fetch(
        &spec(&url, &tag.commit, tag.reference.as_deref()),
        &anonymous(),
        dest.path(),
    )
    .unwrap();
    assert_eq!(read(dest.path(), "app/hello.txt"), "hello v1\n");
}

#[test]
fn keep_git_dir_and_depth() {
    let f = fixture();
    let daemon = GitDaemon::start(&f.root);
    let url = daemon.url("app.git");
    let dest = tempfile::tempdir().unwrap();
    let mut s = spec(&url, &f.second, Some("refs/heads/main"));
    s.keep_git_dir = true;
    s.depth = Some(2);
    fetch(&s, &anonymous(), dest.path()).unwrap();
    let log = git_support::repo::git(dest.path(), &["log", "--format=%H"]);
    assert_eq!(log.lines().collect::<Vec<_>>(), [&f.second, &f.first]);
    // Nothing from git's templates: no hooks directory to run anything from.
    assert!(!dest.path().join(".git/hooks").exists());
    // The remote URL kept in .git/config carries no credentials.
    assert_eq!(
        git_support::repo::git(dest.path(), &["remote", "get-url", "origin"]),
        url
    );
}

#[test]
fn fetch_falls_back_when_the_server_refuses_unadvertised_commits() {
    let f = fixture();
    // The test sshd passes no GIT_PROTOCOL (no AcceptEnv), so upload-pack speaks protocol v0,
    // and a v0 server without uploadpack.allowReachableSHA1InWant refuses a commit no ref
    // advertises: after a third commit, the second is such a commit.
    f.repo.write("app/hello.txt", "hello v3\n");
    let third = f.repo.commit("third commit");
    f.repo.push();
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&tmp.path().join("sshd"));
    let url = sshd.url(&f.repo.bare);
    let auth = GitAuth::SshKey {
        private_key: sshd.client_key.clone(),
        known_hosts: Some(sshd.known_hosts.clone()),
    };
    let dest = tempfile::tempdir().unwrap();
    let mut s = spec(&url, &f.second, Some("refs/heads/main"));
    s.keep_git_dir = true;
    let fetched = fetch(&s, &auth, dest.path()).unwrap();
    assert_eq!(fetched.commit, f.second);
    assert_eq!(read(dest.path(), "app/hello.txt"), "hello v2\n");
    // The fall-back fetched the ref (proof the server did refuse the bare commit).
    assert_eq!(
        git_support::repo::git(dest.path(), &["rev-parse", "refs/stratum/fetched"]),
        third
    );

    // Without a ref, every branch and tag is fetched to find it.
    let dest = tempfile::tempdir().unwrap();
    fetch(&spec(&url, &f.second, None), &auth, dest.path()).unwrap();
    assert_eq!(read(dest.path(), "app/hello.txt"), "hello v2\n");

    // A commit that no ref reaches (a force-pushed branch) is NotFound, naming the commit.
    let gone = "0123456789abcdef0123456789abcdef01234567";
    let dest = tempfile::tempdir().unwrap();
    let err = fetch(
        &spec(&url, gone, Some("refs/heads/main")),
        &auth,
        dest.path(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(gone), "{err}");
}

#[test]
fn fetch_over_http_with_basic_auth() {
    let f = fixture();
    let server = HttpGit::start(
        &f.root,
        http::Options {
            credentials: Some(("alice".into(), "s3cret-token".into())),
            redirect_to: None,
        },
    );
    let url = server.url("app.git");
    let good = GitAuth::Basic {
        username: "alice".into(),
        password: "s3cret-token".into(),
    };
    let dest = tempfile::tempdir().unwrap();
    fetch(
        &spec(&url, &f.second, Some("refs/heads/main")),
        &good,
        dest.path(),
    )
    .unwrap();
    assert_eq!(read(dest.path(), "app/hello.txt"), "hello v2\n");

    let wrong = GitAuth::Basic {
        username: "alice".into(),
        password: "wrong-password".into(),
    };
    let dest = tempfile::tempdir().unwrap();
    let err = fetch(&spec(&url, &f.second, None), &wrong, dest.path()).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    assert!(
        !format!("{err} {err:?}").contains("wrong-password"),
        "{err}"
    );
}

#[test]
fn fetch_over_ssh() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&tmp.path().join("sshd"));
    let url = sshd.url(&f.repo.bare);
    let auth = GitAuth::SshKey {
        private_key: sshd.client_key.clone(),
        known_hosts: Some(sshd.known_hosts.clone()),
    };
    let dest = tempfile::tempdir().unwrap();
    fetch(&spec(&url, &f.second, None), &auth, dest.path()).unwrap();
    assert_eq!(read(dest.path(), "app/hello.txt"), "hello v2\n");
}

#[test]
fn context_dir_of_a_checkout() {
    let f = fixture();
    let daemon = GitDaemon::start(&f.root);
    let url = daemon.url("app.git");
    let dest = tempfile::tempdir().unwrap();
    fetch(&spec(&url, &f.second, None), &anonymous(), dest.path()).unwrap();
    let ctx = context_dir(&url, dest.path(), Some("app")).unwrap();
    assert_eq!(read(&ctx, "hello.txt"), "hello v2\n");
    let err = context_dir(&url, dest.path(), Some("nope")).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::NotFound, "{err}");
}

#[test]
fn fetch_of_an_unknown_repository_or_host() {
    let f = fixture();
    let daemon = GitDaemon::start(&f.root);
    let dest = tempfile::tempdir().unwrap();
    let err = fetch(
        &spec(&daemon.url("none.git"), &f.second, None),
        &anonymous(),
        dest.path(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::NotFound, "{err}");
    let closed = git_support::free_port();
    let url = format!("http://127.0.0.1:{closed}/app.git");
    let dest = tempfile::tempdir().unwrap();
    let err = fetch(&spec(&url, &f.second, None), &anonymous(), dest.path()).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Unavailable, "{err}");
    // The destination must be empty: a fetch never mixes into existing files.
    let dest = tempfile::tempdir().unwrap();
    std::fs::write(dest.path().join("x"), "").unwrap();
    assert!(
        fetch(
            &spec(&daemon.url("app.git"), &f.second, None),
            &anonymous(),
            dest.path()
        )
        .is_err()
    );
}

/// A server that accepts connections and never answers: git waits until it is killed.
fn silent_server() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "git://127.0.0.1:{}/app.git",
        listener.local_addr().unwrap().port()
    );
    (listener, url)
}

#[test]
fn a_hanging_fetch_times_out_or_is_cancelled() {
    let (_listener, url) = silent_server();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let control = FetchControl {
        timeout: std::time::Duration::from_secs(2),
        ..FetchControl::default()
    };
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_with(
        &spec(&url, commit, None),
        &anonymous(),
        dest.path(),
        &control,
    )
    .unwrap_err();
    assert!(matches!(err, GitError::Timeout { .. }), "{err}");
    assert_eq!(err.kind(), SourceErrorKind::Unavailable);

    let cancel = CancelToken::new();
    let control = FetchControl {
        cancel: Some(cancel.clone()),
        ..FetchControl::default()
    };
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        cancel.cancel();
    });
    let started = std::time::Instant::now();
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_with(
        &spec(&url, commit, None),
        &anonymous(),
        dest.path(),
        &control,
    )
    .unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(err, GitError::Cancelled { .. }), "{err}");
    // Far below the 30-minute default timeout: the cancel killed git.
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let f = fixture();
    let creds = Some(("alice".to_owned(), "s3cret-token".to_owned()));
    let elsewhere = HttpGit::start(
        &f.root,
        http::Options {
            credentials: creds,
            redirect_to: None,
        },
    );
    let redirector = HttpGit::start(
        &f.root,
        http::Options {
            credentials: None,
            redirect_to: Some(format!("http://127.0.0.1:{}", elsewhere.port)),
        },
    );
    let auth = GitAuth::Basic {
        username: "alice".into(),
        password: "s3cret-token".into(),
    };
    // The same credentials work on the other server when it is the one named...
    assert_eq!(
        resolve(&elsewhere.url("app.git"), Some("main"), &auth)
            .unwrap()
            .commit,
        f.second
    );
    // ...but are not handed to it after a redirect from the server that was named.
    let err = resolve(&redirector.url("app.git"), Some("main"), &auth).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");
    // Refused by the askpass origin check, not by the server rejecting a password.
    assert!(err.to_string().contains("could not read Username"), "{err}");
}
