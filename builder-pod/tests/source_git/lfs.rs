//! Git LFS: objects are fetched from the LFS server with the repository's credentials, so the
//! build sees the real content, never pointer files; a missing object fails the fetch.

use sha2::Digest as _;

use super::git_support::fixture::fixture;
use super::git_support::http::{self, HttpGit};
use super::{read, spec};
use stratum_builder::source::git::{GitAuth, fetch};

/// Commits `model.bin` as an LFS pointer and returns (commit, real content, oid).
fn commit_lfs_file(f: &super::git_support::fixture::Fixture, content: &str) -> (String, String) {
    let oid = hex::encode(sha2::Sha256::digest(content.as_bytes()));
    f.repo
        .write(
            ".gitattributes",
            "*.bin filter=lfs diff=lfs merge=lfs -text\n",
        )
        .write(
            "model.bin",
            &format!(
                "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {}\n",
                content.len()
            ),
        );
    let commit = f.repo.commit("lfs");
    f.repo.push();
    (commit, oid)
}

#[test]
fn lfs_objects_are_fetched_with_the_repository_credentials() {
    let f = fixture();
    let content = "the real model weights\n";
    let (commit, oid) = commit_lfs_file(&f, content);
    let store = f.root.join("lfs-objects");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join(&oid), content).unwrap();
    let server = HttpGit::start(
        &f.root,
        http::Options {
            credentials: Some(("alice".into(), "s3cret-token".into())),
            redirect_to: None,
        },
    );
    let auth = GitAuth::Basic {
        username: "alice".into(),
        password: "s3cret-token".into(),
    };
    let dest = tempfile::tempdir().unwrap();
    fetch(
        &spec(&server.url("app.git"), &commit, None),
        &auth,
        dest.path(),
    )
    .unwrap();
    assert_eq!(read(dest.path(), "model.bin"), content);
    assert!(!dest.path().join(".git").exists());
}

#[test]
fn a_missing_lfs_object_fails_the_fetch() {
    let f = fixture();
    let (commit, _) = commit_lfs_file(&f, "never uploaded\n");
    let server = HttpGit::start(
        &f.root,
        http::Options {
            credentials: None,
            redirect_to: None,
        },
    );
    let dest = tempfile::tempdir().unwrap();
    let err = fetch(
        &spec(&server.url("app.git"), &commit, None),
        &GitAuth::Anonymous,
        dest.path(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("lfs pull"), "{err}");
}
