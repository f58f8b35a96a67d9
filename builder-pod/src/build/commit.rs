//! Turning an overlay upper directory into a layer: diff it against the lowers, write the tar
//! once (diffID and blob digest in the same streaming pass) into the store, and move the upper
//! directory itself into `layers/<diffID>` — it already is the layer unpacked in overlay form,
//! so nothing is extracted again.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::BuildError;
use super::error::io_err;
use super::executor::Executor;
use crate::layer::diff::diff_upper;
use crate::layer::writer::{WriteOptions, write_layer};
use crate::output::LayerInfo;

/// Scratch directories for one filesystem-changing step, inside the store (same filesystem as
/// `layers/`, so the upper can be renamed into place; never on overlayfs).
pub(crate) struct StepDirs {
    /// Owns the directories: dropping it removes whatever the step left behind.
    pub _scratch: tempfile::TempDir,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

impl StepDirs {
    /// Creates upper, work and merged directories. The upper's root takes the metadata of the
    /// image's root directory: overlayfs shows the upper root's mode and owner as `/`, and a
    /// fresh temporary directory is 0700 — unusable for a non-root `USER`.
    pub fn new(exec: &Executor, lowers_top_first: &[PathBuf]) -> Result<Self, BuildError> {
        let scratch = exec.store().scratch_dir("step")?;
        let dirs = Self {
            upper: scratch.path().join("upper"),
            work: scratch.path().join("work"),
            merged: scratch.path().join("merged"),
            _scratch: scratch,
        };
        for dir in [&dirs.upper, &dirs.work, &dirs.merged] {
            fs::create_dir(dir).map_err(io_err(dir))?;
        }
        let (mode, uid, gid) = lowers_top_first
            .iter()
            .find_map(|l| fs::metadata(l).ok())
            .map_or((0o755, 0, 0), |m| (m.mode() & 0o7777, m.uid(), m.gid()));
        fs::set_permissions(&dirs.upper, fs::Permissions::from_mode(mode))
            .map_err(io_err(&dirs.upper))?;
        std::os::unix::fs::chown(&dirs.upper, Some(uid), Some(gid)).map_err(io_err(&dirs.upper))?;
        Ok(dirs)
    }
}

/// Commits `upper` as a layer. `None` when the step changed nothing: no layer is added, as
/// BuildKit does for an empty diff.
pub(crate) fn commit(
    exec: &Executor,
    upper: &Path,
    lowers_top_first: &[PathBuf],
) -> Result<Option<(LayerInfo, PathBuf)>, BuildError> {
    let changes = diff_upper(upper, lowers_top_first).map_err(|e| {
        BuildError::Other(format!(
            "computing the layer diff of {}: {e}",
            upper.display()
        ))
    })?;
    if changes.is_empty() {
        return Ok(None);
    }
    let options = WriteOptions {
        compression: exec.spec().compression,
        source_date_epoch: exec.spec().source_date_epoch,
        threads: exec.threads(),
    };
    let writer = exec.store().blob_writer(None)?;
    let (blob, writer) = write_layer(&changes, upper, writer, &options)
        .map_err(|e| BuildError::Other(format!("writing the layer of {}: {e}", upper.display())))?;
    let (digest, size) = writer.commit()?;
    debug_assert_eq!(digest, blob.digest);
    let dir = exec.store().adopt_layer(&blob.diff_id, upper)?;
    Ok(Some((
        LayerInfo {
            digest,
            diff_id: blob.diff_id,
            size,
            media_type: blob.media_type.to_owned(),
        },
        dir,
    )))
}
