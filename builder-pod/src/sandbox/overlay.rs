//! The overlayfs mount of a RUN step, as data: the option string and, when the layer paths do not
//! fit in it, the short symlinks that stand in for them. Pure.
//!
//! Options, and why:
//! - `redirect_dir=off,metacopy=off` (design §4): a renamed directory or a chmod-ed lower file must be
//!   a full copy in the upper dir, because the layer differ reads the upper dir as plain files;
//!   BuildKit's `WriteUpperdir` refuses mounts with these features for the same reason.
//! - `index=off`: no inode index in the work dir and no `origin` bookkeeping.
//! - `uuid=off`: since Linux 6.6 a new overlay writes `trusted.overlay.uuid` on the upper root, which
//!   would make every upper dir non-empty. Kernels before 5.13 do not know the option (and do not
//!   write the xattr), so a second string without it is kept for the fallback.
//!
//! The whole string must fit in one page (`mount(2)` copies at most `PAGE_SIZE` bytes of data), so
//! with ~40 layers of `…/sha256/<64 hex>` paths it overflows. Then the child mounts a private tmpfs
//! on the merged dir, makes symlinks `0`, `1`, … to the layer dirs in it, `chdir`s there and passes
//! `lowerdir=0:1:…` (overlayfs resolves the names at mount time, relative to the cwd). This works on
//! every kernel, unlike `fsconfig(…, "lowerdir+", …)` which needs Linux 6.8; the tmpfs lives only in
//! the step's mount namespace and is covered by the overlay, so nothing is left on disk.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::SandboxError;

/// Longest mount data the kernel accepts (one 4 KiB page including the NUL).
pub(crate) const MOUNT_DATA_MAX: usize = 4095;

/// overlayfs' limit on lower layers (`OVL_MAX_STACK`).
pub(crate) const MAX_LOWER_LAYERS: usize = 500;

const FIXED_OPTIONS: &str = "redirect_dir=off,metacopy=off,index=off";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OverlayMount {
    /// Mount data for `mount(2)`.
    pub data: CString,
    /// The same without `uuid=off`, for kernels that reject it with EINVAL.
    pub data_compat: CString,
    /// When set, `lowerdir` names these links: (link name, layer dir) to create in a tmpfs on the
    /// merged dir, which must be the cwd while mounting.
    pub links: Option<Vec<(CString, CString)>>,
}

/// Builds the mount of `lowers` (top-first) with `upper` and `work`.
pub(crate) fn overlay_mount(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<OverlayMount, SandboxError> {
    if lowers.is_empty() {
        return Err(SandboxError::InvalidSpec {
            field: "lower_dirs",
            reason:
                "overlayfs needs at least one lower dir (use an empty directory for FROM scratch)"
                    .into(),
        });
    }
    if lowers.len() > MAX_LOWER_LAYERS {
        return Err(SandboxError::InvalidSpec {
            field: "lower_dirs",
            reason: format!(
                "{} layers exceed overlayfs' limit of {MAX_LOWER_LAYERS}",
                lowers.len()
            ),
        });
    }
    for (field, path) in lowers
        .iter()
        .map(|p| ("lower_dirs", p.as_path()))
        .chain([("upper_dir", upper), ("work_dir", work)])
    {
        check_option_path(field, path)?;
    }
    let tail = format!(
        "upperdir={},workdir={},{FIXED_OPTIONS}",
        upper.display(),
        work.display()
    );
    let direct: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let direct = format!("lowerdir={},{tail}", direct.join(":"));
    let with_uuid = |s: &str| format!("{s},uuid=off");
    if with_uuid(&direct).len() <= MOUNT_DATA_MAX {
        return Ok(OverlayMount {
            data: cstring(&with_uuid(&direct))?,
            data_compat: cstring(&direct)?,
            links: None,
        });
    }
    let names: Vec<String> = (0..lowers.len()).map(|i| i.to_string()).collect();
    let short = format!("lowerdir={},{tail}", names.join(":"));
    if with_uuid(&short).len() > MOUNT_DATA_MAX {
        return Err(SandboxError::InvalidSpec {
            field: "upper_dir",
            reason: "the upper and work dir paths are too long for overlayfs' mount options".into(),
        });
    }
    let links = names
        .iter()
        .zip(lowers)
        .map(|(name, lower)| {
            Ok((
                cstring(name)?,
                CString::new(lower.as_os_str().as_bytes()).map_err(nul)?,
            ))
        })
        .collect::<Result<Vec<_>, SandboxError>>()?;
    Ok(OverlayMount {
        data: cstring(&with_uuid(&short))?,
        data_compat: cstring(&short)?,
        links: Some(links),
    })
}

/// overlayfs splits options at `,` and lower dirs at `:` (with `\` as escape); paths come from our
/// own store, so instead of escaping we refuse anything that would need it.
fn check_option_path(field: &'static str, path: &Path) -> Result<(), SandboxError> {
    let bytes = path.as_os_str().as_bytes();
    if !path.is_absolute()
        || bytes
            .iter()
            .any(|b| matches!(b, b',' | b':' | b'\\' | b'\n' | 0))
    {
        return Err(SandboxError::InvalidSpec {
            field,
            reason: format!(
                "{} must be absolute and free of ',', ':', '\\' and newlines",
                path.display()
            ),
        });
    }
    Ok(())
}

fn cstring(s: &str) -> Result<CString, SandboxError> {
    CString::new(s).map_err(nul)
}

fn nul(_: std::ffi::NulError) -> SandboxError {
    SandboxError::InvalidSpec {
        field: "lower_dirs",
        reason: "a path contains NUL".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(n: usize, prefix: &str) -> Vec<PathBuf> {
        (0..n)
            .map(|i| PathBuf::from(format!("{prefix}/{i:064x}")))
            .collect()
    }

    #[test]
    fn few_layers_are_named_directly() {
        let m = overlay_mount(&layers(2, "/s"), Path::new("/u"), Path::new("/w")).unwrap();
        let a = format!("{:064x}", 0);
        let b = format!("{:064x}", 1);
        assert_eq!(
            m.data.to_str().unwrap(),
            format!(
                "lowerdir=/s/{a}:/s/{b},upperdir=/u,workdir=/w,redirect_dir=off,metacopy=off,index=off,uuid=off"
            )
        );
        assert_eq!(
            m.data_compat.to_str().unwrap(),
            format!(
                "lowerdir=/s/{a}:/s/{b},upperdir=/u,workdir=/w,redirect_dir=off,metacopy=off,index=off"
            )
        );
        assert_eq!(m.links, None);
    }

    #[test]
    fn many_layers_go_through_short_links() {
        let lowers = layers(60, "/var/lib/stratum/store/layers/sha256");
        let m = overlay_mount(&lowers, Path::new("/u"), Path::new("/w")).unwrap();
        let links = m.links.expect("links");
        assert_eq!(links.len(), 60);
        assert_eq!(links[0].0.to_str().unwrap(), "0");
        assert_eq!(links[59].1.to_str().unwrap(), lowers[59].to_str().unwrap());
        let data = m.data.to_str().unwrap();
        assert!(data.starts_with("lowerdir=0:1:2:"), "{data}");
        assert!(data.contains(":58:59,upperdir=/u,"), "{data}");
        assert!(data.len() <= MOUNT_DATA_MAX);
    }

    #[test]
    fn the_page_limit_is_the_switch() {
        // Find the largest layer count that still fits directly, then one more must not.
        let prefix = "/p";
        let fits = |n| {
            overlay_mount(&layers(n, prefix), Path::new("/u"), Path::new("/w"))
                .unwrap()
                .links
                .is_none()
        };
        let n = (1..200).take_while(|n| fits(*n)).last().unwrap();
        assert!(n > 40 && n < 100, "{n}");
        assert!(!fits(n + 1));
        let m = overlay_mount(&layers(n, prefix), Path::new("/u"), Path::new("/w")).unwrap();
        assert!(m.data.as_bytes().len() <= MOUNT_DATA_MAX);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let u = Path::new("/u");
        let w = Path::new("/w");
        assert!(overlay_mount(&[], u, w).is_err());
        assert!(overlay_mount(&layers(501, "/p"), u, w).is_err());
        for bad in ["rel/dir", "/a,b", "/a:b", "/a\\b", "/a\nb"] {
            assert!(
                overlay_mount(&[PathBuf::from(bad)], u, w).is_err(),
                "{bad:?}"
            );
            assert!(
                overlay_mount(&[PathBuf::from("/l")], Path::new(bad), w).is_err(),
                "{bad:?}"
            );
        }
        let long_upper = PathBuf::from(format!("/{}", "u".repeat(3000)));
        assert!(overlay_mount(&layers(1, "/p"), &long_upper, &long_upper).is_err());
    }
}
