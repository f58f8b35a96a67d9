//! Finishing a case's build context: git stores neither owners, hardlinks, xattrs, empty
//! directories nor permissions other than 0644/0755, so `context_setup` adds them to a copy of
//! the committed context before each build.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// One step, applied in order. Paths are relative to the context root; `<c*N>` in a path
/// stands for the character `c` repeated N times (for 255-byte names).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum SetupOp {
    /// A regular file (parents created 0755).
    Write {
        path: String,
        #[serde(default)]
        content: String,
        #[serde(default)]
        mode: Option<String>,
    },
    Mkdir {
        path: String,
        #[serde(default)]
        mode: Option<String>,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// `path` becomes a second name of the existing `to`.
    Hardlink {
        path: String,
        to: String,
    },
    Chmod {
        path: String,
        mode: String,
    },
    Chown {
        path: String,
        uid: u32,
        gid: u32,
    },
    /// An extended attribute (e.g. `user.note`) on `path`, not following a symlink.
    Xattr {
        path: String,
        name: String,
        value: String,
    },
    /// Packs the directory `from` (which is then removed from the context) into the archive
    /// `path` with GNU tar: POSIX format, numeric owners, xattrs, hardlinks; gzip when asked.
    Tar {
        path: String,
        from: String,
        #[serde(default)]
        gzip: bool,
    },
}

/// Expands `<c*N>` into N copies of `c`.
pub fn expand_repeats(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after
            .find('>')
            .ok_or_else(|| format!("{text:?}: `<` without `>`"))?;
        let spec = &after[..end];
        let (ch, count) = spec
            .split_once('*')
            .ok_or_else(|| format!("{text:?}: <{spec}> is not <c*N>"))?;
        let mut chars = ch.chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return Err(format!("{text:?}: <{spec}> repeats one character"));
        };
        let count: usize = count
            .parse()
            .map_err(|_| format!("{text:?}: <{spec}>: {count:?} is not a count"))?;
        out.extend(std::iter::repeat_n(c, count));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_mode(mode: &str) -> Result<u32, String> {
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("mode {mode:?} is not octal between 0 and 7777"))
}

/// `relative` resolved under `root`, refusing absolute paths and `..`.
fn inside(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let expanded = expand_repeats(relative)?;
    let path = Path::new(&expanded);
    if expanded.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!(
            "{relative:?} is not a relative path inside the context"
        ));
    }
    Ok(root.join(path))
}

fn create_parents(path: &Path) -> Result<(), String> {
    match path.parent() {
        Some(parent) => {
            fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))
        }
        None => Ok(()),
    }
}

fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {:o} {}: {e}", mode, path.display()))
}

/// Applies `ops` to the context at `root`.
pub fn apply(root: &Path, ops: &[SetupOp]) -> Result<(), String> {
    for op in ops {
        apply_one(root, op).map_err(|e| format!("context_setup {op:?}: {e}"))?;
    }
    Ok(())
}

fn apply_one(root: &Path, op: &SetupOp) -> Result<(), String> {
    match op {
        SetupOp::Write {
            path,
            content,
            mode,
        } => {
            let path = inside(root, path)?;
            create_parents(&path)?;
            fs::write(&path, content).map_err(|e| format!("write {}: {e}", path.display()))?;
            chmod(&path, mode.as_deref().map_or(Ok(0o644), parse_mode)?)
        }
        SetupOp::Mkdir { path, mode } => {
            let path = inside(root, path)?;
            fs::create_dir_all(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
            chmod(&path, mode.as_deref().map_or(Ok(0o755), parse_mode)?)
        }
        SetupOp::Symlink { path, target } => {
            let path = inside(root, path)?;
            create_parents(&path)?;
            symlink(expand_repeats(target)?, &path)
                .map_err(|e| format!("symlink {}: {e}", path.display()))
        }
        SetupOp::Hardlink { path, to } => {
            let (path, to) = (inside(root, path)?, inside(root, to)?);
            create_parents(&path)?;
            fs::hard_link(&to, &path).map_err(|e| format!("link {}: {e}", path.display()))
        }
        SetupOp::Chmod { path, mode } => chmod(&inside(root, path)?, parse_mode(mode)?),
        SetupOp::Chown { path, uid, gid } => {
            let path = inside(root, path)?;
            std::os::unix::fs::lchown(&path, Some(*uid), Some(*gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))
        }
        SetupOp::Xattr { path, name, value } => {
            let path = inside(root, path)?;
            xattr::set(&path, name, value.as_bytes())
                .map_err(|e| format!("setxattr {name} on {}: {e}", path.display()))
        }
        SetupOp::Tar { path, from, gzip } => {
            let (archive, from) = (inside(root, path)?, inside(root, from)?);
            create_parents(&archive)?;
            let status = Command::new("tar")
                .args([
                    "--create",
                    "--format=posix",
                    "--pax-option=delete=atime,delete=ctime",
                    "--sort=name",
                    "--mtime=@0",
                    "--numeric-owner",
                    "--xattrs",
                    "--xattrs-include=*",
                ])
                // gzip -n: no name or timestamp in the gzip header, the same bytes every run.
                .arg(if *gzip {
                    "--use-compress-program=gzip -n"
                } else {
                    "--no-auto-compress"
                })
                .arg("--file")
                .arg(&archive)
                .arg("-C")
                .arg(&from)
                .arg(".")
                .status()
                .map_err(|e| format!("cannot run tar: {e}"))?;
            if !status.success() {
                return Err(format!("tar exited with {status}"));
            }
            fs::remove_dir_all(&from).map_err(|e| format!("rm -r {}: {e}", from.display()))
        }
    }
}

/// Copies the committed context (when there is one) to `dest` and applies the setup steps.
pub fn prepare_context(committed: &Path, dest: &Path, ops: &[SetupOp]) -> Result<(), String> {
    fs::create_dir_all(dest).map_err(|e| format!("mkdir {}: {e}", dest.display()))?;
    if committed.is_dir() {
        // cp -a keeps what git stored (symlinks, the executable bit) exactly.
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", committed.display()))
            .arg(dest)
            .status()
            .map_err(|e| format!("cannot run cp: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cp -a {} {} exited with {status}",
                committed.display(),
                dest.display()
            ));
        }
    }
    normalise_modes(dest)?;
    apply(dest, ops)
}

/// Git records only "executable or not": give every committed file and directory the mode a
/// checkout under umask 022 gives it, so the results do not depend on the machine's umask.
fn normalise_modes(root: &Path) -> Result<(), String> {
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.map_err(|e| format!("walk {}: {e}", root.display()))?;
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(|e| format!("stat {}: {e}", entry.path().display()))?;
        let mode = if meta.is_dir() {
            0o755
        } else if meta.is_file() {
            if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            }
        } else {
            continue;
        };
        chmod(entry.path(), mode)?;
    }
    Ok(())
}
