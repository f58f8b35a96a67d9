//! Building repositories with the git CLI, isolated from the machine's git config.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs git with no system/global config and fixed identities and dates.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let home = std::env::temp_dir();
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", &home)
        .env("GIT_AUTHOR_NAME", "Ada Author")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Author")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_ALLOW_PROTOCOL", "file:https:http:ssh:git")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A working repository whose commits are pushed to a bare repository under a server root.
pub struct Repo {
    pub work: PathBuf,
    pub bare: PathBuf,
    /// The bare repository's path relative to the server root, e.g. `app.git`.
    pub name: String,
}

impl Repo {
    /// `root/<name>` is the bare repository; the working copy lives in `root/../work-<name>`.
    pub fn create(root: &Path, name: &str) -> Repo {
        let bare = root.join(name);
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--bare", "-q", "-b", "main"]);
        let work = root
            .parent()
            .unwrap()
            .join(format!("work-{}", name.replace('/', "-")));
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Repo {
            work,
            bare,
            name: name.to_owned(),
        }
    }

    pub fn write(&self, path: &str, contents: &str) -> &Self {
        let p = self.work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
        self
    }

    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let p = self.work.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }

    /// Commits everything and returns the commit id.
    pub fn commit(&self, subject: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", subject],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(&self.work, args)
    }

    /// Pushes every branch and tag to the bare repository.
    pub fn push(&self) {
        git(
            &self.work,
            &[
                "push",
                "-q",
                "--force",
                "origin",
                "refs/heads/*:refs/heads/*",
                "refs/tags/*:refs/tags/*",
            ],
        );
    }

    /// Stages the working tree, then a gitlink at `path` → `commit` and a `.gitmodules` entry
    /// with `url`, without cloning anything (so hostile URLs are as easy to write as good
    /// ones). Commit with [`Repo::commit_staged`]: `git add -A` would drop the gitlink, whose
    /// directory is empty.
    pub fn add_submodule(&self, path: &str, url: &str, commit: &str) {
        self.git(&["add", "-A"]);
        let gitmodules = self.work.join(".gitmodules");
        let mut text = std::fs::read_to_string(&gitmodules).unwrap_or_default();
        text.push_str(&format!(
            "[submodule \"{path}\"]\n\tpath = {path}\n\turl = {url}\n"
        ));
        std::fs::write(&gitmodules, text).unwrap();
        self.git(&["add", ".gitmodules"]);
        self.git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{commit},{path}"),
        ]);
    }

    /// Forgets the submodule at `path` (and the whole `.gitmodules`).
    pub fn drop_submodule(&self, path: &str) {
        self.git(&["update-index", "--force-remove", path]);
        std::fs::remove_file(self.work.join(".gitmodules")).unwrap();
    }

    /// Commits what is staged and returns the commit id.
    pub fn commit_staged(&self, subject: &str) -> String {
        self.git(&["commit", "-q", "-m", subject]);
        self.git(&["rev-parse", "HEAD"])
    }
}
