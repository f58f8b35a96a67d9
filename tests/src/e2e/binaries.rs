//! Where the binaries under test are: the cargo target directory the test executable was built
//! into. `cargo test --workspace` builds every package's binaries before running any test; a
//! test of this package alone (`cargo test -p stratum-e2e`) does not build other packages'
//! binaries, hence the explicit error.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The builder (`stratum`, package `stratum-builder`).
pub const STRATUM: &str = "stratum";
/// The operator (`stratum-operator`).
pub const OPERATOR: &str = "stratum-operator";

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

/// The path of binary `name`, or an error that says how to build it.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir()?.join(name);
    if !path.is_file() {
        bail!(
            "{} not found: run `cargo build --workspace --bins` first (or `cargo test --workspace`, \
             which builds them), or point STRATUM_E2E_BIN_DIR at a directory holding `{STRATUM}` \
             and `{OPERATOR}`",
            path.display()
        );
    }
    Ok(path)
}
