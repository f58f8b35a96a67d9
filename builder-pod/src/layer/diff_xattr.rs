//! Which extended attributes an upper-dir entry carries into a layer, and which ones are overlay
//! bookkeeping.
//!
//! Layers carry `security.capability` (file capabilities, e.g. `ping`) and `user.*`; everything
//! else is dropped (threats-and-faults §2.4 #28: an allowlist, as rkt and containerd do).
//! `trusted.overlay.*` records overlayfs state (opaque, origin, impure, redirect, metacopy) and
//! `user.overlay.*` would steer a rootless overlay that later mounts the layer, so neither ever
//! enters a layer (project-stacker/stacker #322).

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;

/// Redirect and metacopy upper entries describe data that lives elsewhere (a renamed lower dir, a
/// lower file's content); read literally they yield a wrong layer, so the differ refuses them, as
/// BuildKit's overlay differ refuses `redirect_dir` (util/overlay, `checkRedirect`).
pub const REFUSED_XATTRS: [&str; 2] = ["trusted.overlay.redirect", "trusted.overlay.metacopy"];

/// True when `name` belongs in a layer.
pub fn keep_in_layer(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name == b"security.capability"
        || (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
}

/// The names of all extended attributes of `path` (not following a symlink).
pub fn names(path: &Path) -> io::Result<Vec<OsString>> {
    match xattr::list(path) {
        Ok(names) => Ok(names.collect()),
        // Filesystems without xattr support have nothing to carry.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The first refused overlay xattr among `names`, if any.
pub fn refused(names: &[OsString]) -> Option<&'static str> {
    REFUSED_XATTRS
        .into_iter()
        .find(|refused| names.iter().any(|n| n == OsStr::new(refused)))
}

/// The layer-worthy xattrs of `path`, sorted by name so the tar bytes are deterministic.
pub fn layer_xattrs(path: &Path, names: &[OsString]) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let mut kept: Vec<_> = names.iter().filter(|n| keep_in_layer(n)).collect();
    kept.sort();
    let mut out = Vec::with_capacity(kept.len());
    for name in kept {
        // A value can vanish between list and get (ENODATA → None); then it is simply not there.
        if let Some(value) = xattr::get(path, name)? {
            out.push((name.clone(), value));
        }
    }
    Ok(out)
}

/// `layer_xattrs` with the listing done here.
pub fn read_layer_xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    layer_xattrs(path, &names(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist() {
        for (name, kept) in [
            ("security.capability", true),
            ("user.comment", true),
            ("user.mime_type", true),
            ("user.overlay.opaque", false),
            ("user.overlay.redirect", false),
            ("trusted.overlay.opaque", false),
            ("trusted.overlay.origin", false),
            ("trusted.other", false),
            ("security.selinux", false),
            ("security.ima", false),
            ("system.posix_acl_access", false),
            ("user", false),
            ("userx.foo", false),
        ] {
            assert_eq!(keep_in_layer(OsStr::new(name)), kept, "{name}");
        }
    }

    #[test]
    fn refused_overlay_features() {
        let names = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(refused(&names(&["trusted.overlay.opaque", "user.x"])), None);
        assert_eq!(
            refused(&names(&[
                "trusted.overlay.origin",
                "trusted.overlay.redirect"
            ])),
            Some("trusted.overlay.redirect")
        );
        assert_eq!(
            refused(&names(&["trusted.overlay.metacopy"])),
            Some("trusted.overlay.metacopy")
        );
    }

    #[test]
    fn layer_xattrs_are_filtered_and_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        std::fs::write(&f, "x").unwrap();
        xattr::set(&f, "user.zeta", b"z").unwrap();
        xattr::set(&f, "user.alpha", b"a").unwrap();
        xattr::set(&f, "user.overlay.opaque", b"y").unwrap();
        xattr::set(&f, "trusted.overlay.origin", b"\0\x01").unwrap();
        let got = read_layer_xattrs(&f).unwrap();
        assert_eq!(
            got,
            vec![
                (OsString::from("user.alpha"), b"a".to_vec()),
                (OsString::from("user.zeta"), b"z".to_vec()),
            ]
        );
    }
}
