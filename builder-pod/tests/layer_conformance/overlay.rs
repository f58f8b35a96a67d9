//! A real overlayfs stack for the conformance suite: per-layer lower dirs, an upper and work dir,
//! and the merged mount point, all in one temp dir that is unmounted and removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// The options the executor mounts RUN overlays with (design.md §4): no redirect xattrs, no
/// metacopy, no inode index, so the upper dir alone describes every change.
pub const EXECUTOR_OPTIONS: &str = "redirect_dir=off,metacopy=off,index=off";

pub struct Stack {
    pub tmp: tempfile::TempDir,
    /// Bottom first; each is one layer's own directory.
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
    mounted: Vec<PathBuf>,
}

impl Stack {
    /// `layers` empty lower dirs (bottom first) plus upper, work and merged.
    pub fn new(layers: usize) -> Result<Self> {
        let tmp = tempfile::Builder::new().prefix("layer-conf").tempdir()?;
        let dir = |name: &str| -> Result<PathBuf> {
            let path = tmp.path().join(name);
            std::fs::create_dir_all(&path)?;
            Ok(path)
        };
        let lowers = (0..layers)
            .map(|i| dir(&format!("lower{i}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            upper: dir("upper")?,
            work: dir("work")?,
            merged: dir("merged")?,
            lowers,
            tmp,
            mounted: Vec::new(),
        })
    }

    /// The lower dirs top-first, as `diff_upper` and `lowerdir=` take them.
    pub fn lowers_top_first(&self) -> Vec<PathBuf> {
        self.lowers.iter().rev().cloned().collect()
    }

    fn lowerdir(&self) -> String {
        let dirs: Vec<_> = self
            .lowers_top_first()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!("lowerdir={}", dirs.join(":"))
    }

    /// Mounts the writable overlay at `merged` with extra `options`.
    pub fn mount(&mut self, options: &str) -> Result<()> {
        let data = format!(
            "{},upperdir={},workdir={},{options}",
            self.lowerdir(),
            self.upper.display(),
            self.work.display()
        );
        let merged = self.merged.clone();
        self.mount_at(&merged, &data)
    }

    fn mount_at(&mut self, target: &Path, data: &str) -> Result<()> {
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(data),
        )
        .with_context(|| format!("mount -t overlay -o {data} {}", target.display()))?;
        self.mounted.push(target.to_path_buf());
        Ok(())
    }

    pub fn unmount(&mut self) -> Result<()> {
        // Popped only once unmounted, so a failure leaves it to `Drop`'s lazy detach.
        while let Some(target) = self.mounted.last() {
            unmount(target)?;
            self.mounted.pop();
        }
        Ok(())
    }

    /// The lower stack as one plain directory: what the merged view showed before the step.
    /// Copied out of a read-only overlay of the lowers with `cp -a` (hardlinks, owners, modes,
    /// xattrs; overlay hides its own `trusted.overlay.*` from the copy).
    pub fn flatten_lowers(&self, dest: &Path) -> Result<()> {
        self.with_view(None, |view| copy_tree(view, dest))
    }

    /// Runs `f` on a read-only overlay of the lowers, with `top` (an unpacked layer in overlay
    /// encoding) stacked above them when given.
    pub fn with_view<T>(
        &self,
        top: Option<&Path>,
        f: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<T> {
        let view = tempfile::Builder::new()
            .prefix("view")
            .tempdir_in(self.tmp.path())?;
        let mut lowers: Vec<String> = self
            .lowers_top_first()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if let Some(top) = top {
            lowers.insert(0, top.display().to_string());
        }
        // No upperdir: overlayfs mounts the lowers read-only.
        let data = format!("lowerdir={}", lowers.join(":"));
        mount(
            Some("overlay"),
            view.path(),
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .with_context(|| format!("mount -t overlay -o {data}"))?;
        let guard = Unmount(view.path().to_path_buf());
        let result = f(view.path());
        std::mem::forget(guard);
        unmount(view.path())?;
        result
    }
}

/// Unmounts `target`, retrying while it is busy: the tests run in parallel threads of one
/// process, and a child another test forks holds copies of this process's open descriptors
/// (some under this mount) until it execs.
fn unmount(target: &Path) -> Result<()> {
    for _ in 0..100 {
        match umount2(target, MntFlags::empty()) {
            Err(nix::errno::Errno::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            other => return other.with_context(|| format!("umount {}", target.display())),
        }
    }
    bail!("umount {}: still busy after 2 s", target.display())
}

/// Detaches a mount if the code using it panics.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = umount2(&self.0, MntFlags::MNT_DETACH);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for target in self.mounted.drain(..).rev() {
            let _ = umount2(&target, MntFlags::MNT_DETACH);
        }
    }
}

/// `cp -a src/. dest` (dest created).
pub fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dest))
}

/// Runs a command and fails with its output when it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("spawn {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs a shell script with `dir` as working directory, like a RUN step.
pub fn sh(dir: &Path, script: &str) -> Result<()> {
    run(Command::new("sh").arg("-ec").arg(script).current_dir(dir))
}
