//! Submodules: opt-in, recursive, relative and absolute URLs; every level's `.gitmodules` is
//! checked, and credentials go only to the superproject's own origin.

use super::git_support::daemon::GitDaemon;
use super::git_support::http::{self, HttpGit};
use super::git_support::repo::Repo;
use super::{anonymous, read, spec};
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::git::{GitAuth, GitError, fetch};

struct Tree {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    app: Repo,
    lib: Repo,
    nested: Repo,
}

/// `app.git` ─ lib (`../lib.git`) ─ nested (`../nested.git`), each with one file.
fn tree() -> Tree {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("srv");
    std::fs::create_dir_all(&root).unwrap();
    let nested = Repo::create(&root, "nested.git");
    nested.write("n.txt", "nested\n");
    let nested_commit = nested.commit("nested");
    nested.push();
    let lib = Repo::create(&root, "lib.git");
    lib.write("lib.txt", "lib\n");
    lib.add_submodule("nested", "../nested.git", &nested_commit);
    let lib_commit = lib.commit_staged("lib");
    lib.push();
    let app = Repo::create(&root, "app.git");
    app.write("Dockerfile", "FROM scratch\n");
    app.add_submodule("lib", "../lib.git", &lib_commit);
    app.commit_staged("app");
    app.push();
    Tree {
        _tmp: tmp,
        root,
        app,
        lib,
        nested,
    }
}

#[test]
fn submodules_are_fetched_recursively_only_when_asked() {
    let t = tree();
    let daemon = GitDaemon::start(&t.root);
    let url = daemon.url("app.git");
    let commit = t.app.git(&["rev-parse", "HEAD"]);

    let dest = tempfile::tempdir().unwrap();
    fetch(&spec(&url, &commit, None), &anonymous(), dest.path()).unwrap();
    assert!(
        !dest.path().join("lib/lib.txt").exists(),
        "submodules are opt-in"
    );

    let dest = tempfile::tempdir().unwrap();
    let mut s = spec(&url, &commit, None);
    s.submodules = true;
    fetch(&s, &anonymous(), dest.path()).unwrap();
    assert_eq!(read(dest.path(), "lib/lib.txt"), "lib\n");
    assert_eq!(read(dest.path(), "lib/nested/n.txt"), "nested\n");
    for git in [".git", "lib/.git", "lib/nested/.git"] {
        assert!(!dest.path().join(git).exists(), "{git} must be removed");
    }
}

#[test]
fn local_and_option_submodule_urls_are_refused() {
    let t = tree();
    let daemon = GitDaemon::start(&t.root);
    let url = daemon.url("app.git");
    let lib_commit = t.lib.git(&["rev-parse", "HEAD"]);
    let marker = t.root.join("pwned");
    let hostile = [
        format!("file://{}", t.lib.bare.display()),
        t.lib.bare.display().to_string(),
        format!("--upload-pack=touch {}", marker.display()),
        format!("ext::sh -c touch% {}", marker.display()),
    ];
    for (i, bad) in hostile.iter().enumerate() {
        let branch = format!("hostile-{i}");
        t.app.git(&["checkout", "-q", "-b", &branch, "main"]);
        t.app.drop_submodule("lib");
        t.app.add_submodule("lib", bad, &lib_commit);
        let commit = t.app.commit_staged("hostile submodule");
        t.app.push();
        let dest = tempfile::tempdir().unwrap();
        let mut s = spec(&url, &commit, None);
        s.submodules = true;
        let err = fetch(&s, &anonymous(), dest.path()).unwrap_err();
        assert!(
            matches!(err, GitError::HostileSubmodule { .. }),
            "{bad}: {err}"
        );
        assert_eq!(err.kind(), SourceErrorKind::Invalid);
        assert!(!dest.path().join("lib/lib.txt").exists(), "{bad}");
        assert!(!marker.exists(), "{bad} ran a command");
    }
}

#[test]
fn a_hostile_url_one_level_down_is_refused_too() {
    let t = tree();
    let daemon = GitDaemon::start(&t.root);
    let url = daemon.url("app.git");
    // lib's own .gitmodules points at a local path; app's points at lib normally.
    t.lib.drop_submodule("nested");
    let nested_commit = t.nested.git(&["rev-parse", "HEAD"]);
    t.lib.add_submodule(
        "nested",
        &format!("file://{}", t.nested.bare.display()),
        &nested_commit,
    );
    let lib_commit = t.lib.commit_staged("hostile nested");
    t.lib.push();
    t.app.git(&[
        "update-index",
        "--cacheinfo",
        &format!("160000,{lib_commit},lib"),
    ]);
    let commit = t.app.commit_staged("bump lib");
    t.app.push();
    let dest = tempfile::tempdir().unwrap();
    let mut s = spec(&url, &commit, None);
    s.submodules = true;
    let err = fetch(&s, &anonymous(), dest.path()).unwrap_err();
    assert!(
        matches!(err, GitError::HostileSubmodule { ref name, .. } if name == "nested"),
        "{err}"
    );
    assert!(!dest.path().join("lib/nested/n.txt").exists());
}

#[test]
fn credentials_go_only_to_the_superprojects_origin() {
    let t = tree();
    let creds = Some(("alice".to_owned(), "s3cret-token".to_owned()));
    let home = HttpGit::start(
        &t.root,
        http::Options {
            credentials: creds.clone(),
            redirect_to: None,
        },
    );
    // Another server (standing in for another host) that would accept the same token.
    let other = HttpGit::start(
        &t.root,
        http::Options {
            credentials: creds,
            redirect_to: None,
        },
    );
    let home_url = home.url("app.git");
    let lib_commit = t.lib.git(&["rev-parse", "HEAD"]);
    t.app.drop_submodule("lib");
    t.app
        .add_submodule("lib", &other.url("lib.git"), &lib_commit);
    let commit = t.app.commit_staged("lib elsewhere");
    t.app.push();
    let auth = GitAuth::Basic {
        username: "alice".into(),
        password: "s3cret-token".into(),
    };
    let dest = tempfile::tempdir().unwrap();
    let mut s = spec(&home_url, &commit, None);
    s.submodules = true;
    let err = fetch(&s, &auth, dest.path()).unwrap_err();
    assert_eq!(err.kind(), SourceErrorKind::Auth, "{err}");

    // The same layout with a relative URL stays on the origin and gets the credentials.
    t.app.drop_submodule("lib");
    t.app.add_submodule("lib", "../lib.git", &lib_commit);
    let commit = t.app.commit_staged("lib relative");
    t.app.push();
    let dest = tempfile::tempdir().unwrap();
    let mut s = spec(&home_url, &commit, None);
    s.submodules = true;
    fetch(&s, &auth, dest.path()).unwrap();
    assert_eq!(read(dest.path(), "lib/nested/n.txt"), "nested\n");
}
