//! Overlay mounts in the builder's own mount namespace, for the steps that change files without
//! running a program (COPY, ADD, WORKDIR) and for reading another stage (`COPY --from`).
//!
//! RUN mounts inside its sandbox's private namespace; these mounts cannot (the copier runs in
//! the builder), so they are kept short — mounted, used, unmounted within one step — and a guard
//! detaches them if the step fails half way. The option string comes from the sandbox's
//! [`overlay_mount`], so both kinds of mount use the same options. When the layer paths do not
//! fit in one page, the sandbox's trick (chdir to a tmpfs of short links) cannot be used from a
//! multi-threaded process, so short absolute links under `<store>/l/` stand in for the layers.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use crate::image::Digest;
use crate::sandbox::overlay::overlay_mount;
use crate::sandbox::{LinuxSyscalls, Syscalls};

/// A mounted overlay; unmounted (lazily, if need be) when dropped.
#[derive(Debug)]
pub(crate) struct Overlay {
    merged: Option<CString>,
}

impl Overlay {
    pub fn mount(
        lowers_top_first: &[PathBuf],
        upper: &Path,
        work: &Path,
        merged: &Path,
    ) -> Result<Self, String> {
        let sys = LinuxSyscalls;
        let mut plan = overlay_mount(lowers_top_first, upper, work).map_err(|e| e.to_string())?;
        if plan.links.is_some() {
            let short = short_links(lowers_top_first, upper)?;
            plan = overlay_mount(&short, upper, work).map_err(|e| e.to_string())?;
            if plan.links.is_some() {
                return Err(format!(
                    "{} layers do not fit in overlayfs' mount options even through short links",
                    lowers_top_first.len()
                ));
            }
        }
        let target = CString::new(merged.as_os_str().as_bytes())
            .map_err(|_| format!("{}: path contains NUL", merged.display()))?;
        let overlay = CString::new("overlay").expect("no NUL");
        let mount = |data: &CString| {
            sys.mount(
                Some(&overlay),
                &target,
                Some(&overlay),
                MsFlags::MS_NODEV,
                Some(data),
            )
        };
        match mount(&plan.data) {
            // Kernels before 5.13 do not know `uuid=off`.
            Err(Errno::EINVAL) => mount(&plan.data_compat),
            other => other,
        }
        .map_err(|e| format!("mount overlay on {}: {e}", merged.display()))?;
        Ok(Self {
            merged: Some(target),
        })
    }

    /// Unmounts now, reporting failure (a busy mount would leave the upper dir incomplete).
    pub fn unmount(mut self) -> Result<(), String> {
        let target = self.merged.take().expect("mounted until unmount or drop");
        LinuxSyscalls
            .umount2(&target, MntFlags::empty())
            .map_err(|e| format!("unmount {}: {e}", target.to_string_lossy()))
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Some(target) = self.merged.take() {
            // The step failed half way; detach so nothing stays mounted in the builder.
            let _ = LinuxSyscalls.umount2(&target, MntFlags::MNT_DETACH);
        }
    }
}

/// Short absolute links to the layer directories, in `<store>/l/` beside the upper dir's
/// scratch area: `l/<12 hex of the layer path's digest>`. Links are reused across steps.
fn short_links(lowers: &[PathBuf], upper: &Path) -> Result<Vec<PathBuf>, String> {
    // upper = <store>/tmp/step-XXXX/upper
    let store = upper
        .ancestors()
        .nth(3)
        .ok_or_else(|| format!("{}: not inside a store", upper.display()))?;
    let dir = store.join("l");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    lowers
        .iter()
        .map(|lower| {
            let id = Digest::of(lower.as_os_str().as_bytes());
            let link = dir.join(&id.hex()[..12]);
            match std::fs::read_link(&link) {
                Ok(existing) if existing == *lower => {}
                Ok(other) => {
                    return Err(format!(
                        "{} links to {} instead of {}",
                        link.display(),
                        other.display(),
                        lower.display()
                    ));
                }
                Err(_) => std::os::unix::fs::symlink(lower, &link)
                    .map_err(|e| format!("{}: {e}", link.display()))?,
            }
            Ok(link)
        })
        .collect()
}
