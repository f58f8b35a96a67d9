//! Hostile repositories (threats-and-faults §2.6): symlinks out of the checkout, a `.git` path
//! smuggled into a tree, huge files.

use super::git_support::daemon::GitDaemon;
use super::git_support::fixture::fixture;
use super::git_support::repo::git;
use super::{anonymous, spec};
use stratum_builder::source::SourceErrorKind;
use stratum_builder::source::git::{FetchControl, GitError, context_dir, fetch, fetch_with};

#[test]
fn symlinks_stay_symlinks_and_cannot_be_the_context() {
    let f = fixture();
    f.repo
        .symlink("app/passwd", "/etc/passwd")
        .symlink("ctx", "/etc")
        .symlink("app/up", "../..");
    let commit = f.repo.commit("links");
    f.repo.push();
    let daemon = GitDaemon::start(&f.root);
    let url = daemon.url("app.git");
    let dest = tempfile::tempdir().unwrap();
    fetch(&spec(&url, &commit, None), &anonymous(), dest.path()).unwrap();
    // Checked out as a link, never as a copy of the host's file.
    let link = dest.path().join("app/passwd");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        std::path::Path::new("/etc/passwd")
    );
    for dir in ["ctx", "app/up", "ctx/ssl"] {
        let err = context_dir(&url, dest.path(), Some(dir)).unwrap_err();
        assert!(matches!(err, GitError::ContextDir { .. }), "{dir}: {err}");
        assert_eq!(err.kind(), SourceErrorKind::Invalid, "{dir}: {err}");
    }
}

#[test]
fn a_tree_with_a_dot_git_entry_is_refused_and_its_hook_never_runs() {
    let f = fixture();
    let marker = f.tmp.path().join("hook-ran");
    let work = &f.repo.work;
    let script = format!("#!/bin/sh\ntouch {}\n", marker.display());
    let blob_file = f.tmp.path().join("hook");
    std::fs::write(&blob_file, script).unwrap();
    let blob = git(work, &["hash-object", "-w", blob_file.to_str().unwrap()]);
    let mktree = |entries: String| {
        let input = f.tmp.path().join("tree-input");
        std::fs::write(&input, entries).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("git mktree < {}", input.display()))
            .current_dir(work)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let hooks = mktree(format!("100755 blob {blob}\tpost-checkout\n"));
    let dotgit = mktree(format!("040000 tree {hooks}\thooks\n"));
    let root = mktree(format!("040000 tree {dotgit}\t.git\n"));
    let commit = git(work, &["commit-tree", "-m", "evil", &root]);
    git(
        work,
        &["push", "-q", "origin", &format!("{commit}:refs/heads/evil")],
    );
    let daemon = GitDaemon::start(&f.root);
    let dest = tempfile::tempdir().unwrap();
    let err = fetch(
        &spec(&daemon.url("app.git"), &commit, None),
        &anonymous(),
        dest.path(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid path"), "{err}");
    assert!(!marker.exists(), "a hook from the repository ran");
}

#[test]
fn a_checkout_over_the_size_limit_is_refused_before_it_is_written() {
    let f = fixture();
    f.repo.write("big.bin", &"x".repeat(3 << 20));
    let commit = f.repo.commit("big file");
    f.repo.push();
    let daemon = GitDaemon::start(&f.root);
    let url = daemon.url("app.git");
    let control = FetchControl {
        max_checkout_bytes: Some(1 << 20),
        ..FetchControl::default()
    };
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_with(
        &spec(&url, &commit, None),
        &anonymous(),
        dest.path(),
        &control,
    )
    .unwrap_err();
    assert!(matches!(err, GitError::TooLarge { .. }), "{err}");
    assert_eq!(err.kind(), SourceErrorKind::Invalid);
    assert!(!dest.path().join("big.bin").exists());
    // Under a higher limit the same commit is fine.
    let control = FetchControl {
        max_checkout_bytes: Some(8 << 20),
        ..FetchControl::default()
    };
    let dest = tempfile::tempdir().unwrap();
    fetch_with(
        &spec(&url, &commit, None),
        &anonymous(),
        dest.path(),
        &control,
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(dest.path().join("big.bin"))
            .unwrap()
            .len(),
        3 << 20
    );
}
