//! The standard test repository.

use super::repo::Repo;

/// A served root with one repository: `main` has two commits, `v1` (annotated) and `light`
/// (lightweight) tag the first, branch `old` points at the first.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub root: std::path::PathBuf,
    pub repo: Repo,
    pub first: String,
    pub second: String,
}

pub fn fixture() -> Fixture {
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
        tmp,
        root,
        repo,
        first,
        second,
    }
}
