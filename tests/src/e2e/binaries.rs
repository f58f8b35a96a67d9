//! Where the binaries under test are: the cargo target directory the test executable was built
//! into. `cargo test --workspace` builds every package's binaries before running any test; a
//! test of this package alone (`cargo test -p stratum-e2e`) does not build other packages'
//! binaries, hence the explicit errors for a missing or stale binary.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};

/// The builder (`stratum`, package `stratum-builder`).
pub const STRATUM: &str = "stratum";
/// The operator (`stratum-operator`).
pub const OPERATOR: &str = "stratum-operator";

/// The source directories each binary is built from (relative to the repository root).
fn sources(name: &str) -> &'static [&'static str] {
    match name {
        STRATUM => &["builder-pod/src", "crds/src"],
        OPERATOR => &["operator/src", "builder-pod/src", "crds/src"],
        _ => &[],
    }
}

/// The directory holding this profile's binaries: `target/<profile>`, the parent of the `deps`
/// directory test executables live in. `STRATUM_E2E_BIN_DIR` overrides it.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("STRATUM_E2E_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// The path of binary `name`, or an error that says how to build it. A binary older than a
/// source file it is built from is refused too: the test would exercise old code.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(name);
    let how = "run `cargo build --workspace --bins` first (or `cargo test --workspace`, which \
               builds them), or point STRATUM_E2E_BIN_DIR at a directory holding `stratum` and \
               `stratum-operator`";
    let Ok(meta) = std::fs::metadata(&path) else {
        bail!("{} not found: {how}", path.display());
    };
    if std::env::var_os("STRATUM_E2E_BIN_DIR").is_none() {
        let built = meta.modified().context("reading the binary's mtime")?;
        let root = super::repo_root();
        for dir in sources(name) {
            if let Some(newer) = newer_than(&root.join(dir), built) {
                bail!(
                    "{} is older than {}: {how}",
                    path.display(),
                    newer.display()
                );
            }
        }
    }
    Ok(path)
}

/// A file under `dir` modified after `time`, if any.
fn newer_than(dir: &Path, time: SystemTime) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if let Some(found) = newer_than(&path, time) {
                return Some(found);
            }
        } else if meta.modified().is_ok_and(|m| m > time) {
            return Some(path);
        }
    }
    None
}
