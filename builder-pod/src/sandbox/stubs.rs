//! Mount-point stubs: the directories and empty files the sandbox must create in the upper
//! directory so that `/proc`, `/sys`, `/dev`, `/etc/hosts` and `/etc/resolv.conf` have something
//! to be mounted on, and their removal afterwards (design §4: no mount-point leftovers enter a layer;
//! a RUN that changes nothing leaves the upper directory empty).
//!
//! Stubs are made directly in the upper directory *before* overlayfs is mounted and removed
//! directly in it *after* the step's mount namespace is gone, never through the merged view: an
//! `rmdir` in the merged view of a name that exists below would leave a whiteout in the upper dir,
//! i.e. delete the image's file in the next layer. Creating in the upper dir, in contrast, only
//! shadows what is below while the step runs:
//! - a name the image lacks gets a new directory/file (mode 0755/0644, root);
//! - a name that is a non-directory where a directory is needed (threats §2.7 #40: `/dev` a symlink)
//!   is shadowed by a directory, so nothing is ever mounted through an image symlink;
//! - a parent the image has (`/etc` for `/etc/hosts`) is recreated with the image's mode, owner and
//!   xattrs, which is what an overlay copy-up would show.
//!
//! Removal is conservative: a stub is removed only if it is still exactly what we made (same inode,
//! ctime and mtime, checked for all stubs before any is removed); a parent the RUN wrote into keeps
//! its new content and stays. Every path is walked without following symlinks.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::rootfs::{LowerStack, Node, split};
use super::syscalls::TargetKind;

/// A path in the image (relative to its root) that a sandbox mount targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountPoint {
    pub rel: &'static str,
    pub kind: TargetKind,
}

/// What the image has at a path, as far as planning stubs is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    Absent,
    /// A directory; `top` is the host path of the topmost layer's directory (its metadata shows).
    Dir {
        top: PathBuf,
    },
    File,
    /// A symlink, device, fifo or socket.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StubAction {
    NewDir {
        rel: PathBuf,
    },
    /// A directory that exists in the image, recreated in the upper dir with its metadata.
    CopyDir {
        rel: PathBuf,
        from: PathBuf,
    },
    NewFile {
        rel: PathBuf,
    },
}

impl StubAction {
    fn rel(&self) -> &Path {
        match self {
            Self::NewDir { rel } | Self::CopyDir { rel, .. } | Self::NewFile { rel } => rel,
        }
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct StubPlan {
    pub actions: Vec<StubAction>,
    /// Mount points that are safe to mount on once the actions are done.
    pub usable: Vec<MountPoint>,
    /// Mount points left out, with why (logged; e.g. `/etc` is a symlink in the image).
    pub skipped: Vec<(MountPoint, &'static str)>,
}

/// Decides the stubs for `wanted`, given what the image has at each path (`find` must not follow
/// symlinks). Pure: `find` is the only view of the image.
pub(crate) fn plan_stubs(
    wanted: &[MountPoint],
    find: &mut dyn FnMut(&[OsString]) -> io::Result<Found>,
) -> io::Result<StubPlan> {
    let mut plan = StubPlan::default();
    let mut planned: HashSet<PathBuf> = HashSet::new();
    'points: for mp in wanted {
        let comps = split(Path::new(mp.rel));
        let mut parents = Vec::new();
        for depth in 1..comps.len() {
            let rel: PathBuf = comps[..depth].iter().collect();
            match find(&comps[..depth])? {
                Found::Dir { top } => parents.push(StubAction::CopyDir { rel, from: top }),
                Found::Absent => parents.push(StubAction::NewDir { rel }),
                Found::File | Found::Other => {
                    plan.skipped.push((
                        mp.clone(),
                        "a parent directory is not a directory in the image",
                    ));
                    continue 'points;
                }
            }
        }
        let rel: PathBuf = comps.iter().collect();
        let leaf = match (mp.kind, find(&comps)?) {
            (TargetKind::Dir, Found::Dir { .. }) | (TargetKind::File, Found::File) => None,
            (TargetKind::Dir, _) => Some(StubAction::NewDir { rel }),
            (TargetKind::File, Found::Dir { .. }) => {
                plan.skipped
                    .push((mp.clone(), "it is a directory in the image"));
                continue;
            }
            (TargetKind::File, Found::Absent | Found::Other) => Some(StubAction::NewFile { rel }),
        };
        if let Some(leaf) = leaf {
            for action in parents.into_iter().chain([leaf]) {
                if planned.insert(action.rel().to_owned()) {
                    plan.actions.push(action);
                }
            }
        }
        plan.usable.push(mp.clone());
    }
    Ok(plan)
}

/// `find` for [`plan_stubs`] over the stage's layers.
pub(crate) fn find_in_layers(stack: &LowerStack<'_>, comps: &[OsString]) -> io::Result<Found> {
    Ok(match stack.lookup(comps)? {
        Node::Absent => Found::Absent,
        Node::Dir { layers } => Found::Dir {
            top: stack.host_path(layers[0], comps),
        },
        Node::NonDir { meta, .. } if meta.file_type().is_file() => Found::File,
        Node::NonDir { .. } => Found::Other,
    })
}

/// Identity of a stub right after creation; a stub that still matches was not touched.
///
/// Not the ctime: overlayfs itself records `trusted.overlay.origin` on a merged directory the
/// first time it looks it up (and `impure` on its parent), which changes the ctime of an untouched
/// stub. Its own `trusted.overlay.*` xattrs are therefore left out of the comparison, too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    ino: u64,
    is_dir: bool,
    mode: u32,
    owner: (u32, u32),
    size: u64,
    mtime: (i64, i64),
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Fingerprint {
    fn of(path: &Path) -> io::Result<Option<Self>> {
        let Some(m) = fs::symlink_metadata(path)
            .map(Some)
            .or_else(not_found_is_none)?
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            ino: m.ino(),
            is_dir: m.is_dir(),
            mode: m.mode(),
            owner: (m.uid(), m.gid()),
            size: if m.is_dir() { 0 } else { m.size() },
            mtime: (m.mtime(), m.mtime_nsec()),
            xattrs: image_xattrs(path)?,
        }))
    }
}

fn not_found_is_none<T>(e: io::Error) -> io::Result<Option<T>> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(None)
    } else {
        Err(e)
    }
}

/// A path's xattrs except overlayfs' own, sorted.
fn image_xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if name.as_encoded_bytes().starts_with(b"trusted.overlay.") {
            continue;
        }
        if let Some(value) = xattr::get(path, &name)? {
            out.push((name, value));
        }
    }
    out.sort();
    Ok(out)
}

/// Stubs created in one upper directory, to be removed with [`Stubs::remove`].
#[derive(Debug)]
pub(crate) struct Stubs {
    upper: PathBuf,
    created: Vec<(PathBuf, Fingerprint)>,
}

impl Stubs {
    /// Carries out `plan` in `upper` (which must be the fresh, unmounted upper directory). On error,
    /// what was created so far is removed again.
    pub(crate) fn create(upper: &Path, plan: &StubPlan) -> io::Result<Self> {
        let mut made: Vec<PathBuf> = Vec::new();
        let result = plan.actions.iter().try_for_each(|action| {
            create_one(upper, action, &mut made).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("creating {}: {e}", action.rel().display()),
                )
            })
        });
        // Fingerprints are taken after everything exists: creating a child changes its parent.
        let fingerprints = result.and_then(|()| {
            made.iter()
                .map(|rel| {
                    Fingerprint::of(&upper.join(rel))?
                        .ok_or_else(|| io::Error::other(format!("stub {} vanished", rel.display())))
                })
                .collect::<io::Result<Vec<_>>>()
        });
        match fingerprints {
            Ok(fps) => Ok(Self {
                upper: upper.to_owned(),
                created: made.into_iter().zip(fps).collect(),
            }),
            Err(e) => {
                // Nothing has run in the upper dir yet: everything in `made` is ours.
                for rel in made.iter().rev() {
                    let path = upper.join(rel);
                    let _ = fs::remove_dir(&path).or_else(|_| fs::remove_file(&path));
                }
                Err(e)
            }
        }
    }

    /// Removes every stub that is still exactly as created, deepest first. Stubs the step changed
    /// stay (they are now real content of the layer). Must run only after the overlay is unmounted.
    pub(crate) fn remove(self) -> io::Result<()> {
        let untouched: Vec<bool> = self
            .created
            .iter()
            .map(|(rel, fp)| match beneath(&self.upper, rel)? {
                Some(path) => Ok(Fingerprint::of(&path)?.as_ref() == Some(fp)),
                None => Ok(false),
            })
            .collect::<io::Result<_>>()?;
        for ((rel, fp), untouched) in self.created.iter().zip(untouched).rev() {
            if !untouched {
                continue;
            }
            let path = self.upper.join(rel);
            let result = if fp.is_dir {
                fs::remove_dir(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => {}
                // The step added entries next to our own stubs: the directory is real content now.
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("removing stub {}: {e}", path.display()),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn create_one(upper: &Path, action: &StubAction, made: &mut Vec<PathBuf>) -> io::Result<()> {
    let path = upper.join(action.rel());
    let (mode, uid, gid) = match action {
        StubAction::NewDir { .. } => {
            DirBuilder::new().mode(0o700).create(&path)?;
            (0o755, 0, 0)
        }
        StubAction::CopyDir { from, .. } => {
            let src = fs::symlink_metadata(from)?;
            DirBuilder::new().mode(0o700).create(&path)?;
            made.push(action.rel().to_owned());
            copy_xattrs(from, &path)?;
            (src.mode() & 0o7777, src.uid(), src.gid())
        }
        StubAction::NewFile { .. } => {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            (0o644, 0, 0)
        }
    };
    if made.last().map(PathBuf::as_path) != Some(action.rel()) {
        made.push(action.rel().to_owned());
    }
    std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
    // chmod after chown: chown clears setuid/setgid bits.
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
}

/// `base/rel` if every directory on the way is a real directory (a symlink planted in the upper
/// dir is never followed); `None` if one is missing or is not a directory.
fn beneath(base: &Path, rel: &Path) -> io::Result<Option<PathBuf>> {
    let comps = split(rel);
    let mut path = base.to_owned();
    for (i, c) in comps.iter().enumerate() {
        path.push(c);
        if i + 1 == comps.len() {
            return Ok(Some(path));
        }
        match fs::symlink_metadata(&path)
            .map(Some)
            .or_else(not_found_is_none)?
        {
            Some(m) if m.is_dir() => {}
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Copies a directory's xattrs except overlayfs' private ones (`trusted.overlay.*` would steer the
/// mount, threats §2.4 #28).
fn copy_xattrs(from: &Path, to: &Path) -> io::Result<()> {
    let names = match xattr::list(from) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in names {
        if name.as_encoded_bytes().starts_with(b"trusted.overlay.") {
            continue;
        }
        if let Some(value) = xattr::get(from, &name)? {
            xattr::set(to, &name, &value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const PROC: MountPoint = MountPoint {
        rel: "proc",
        kind: TargetKind::Dir,
    };
    const DEV: MountPoint = MountPoint {
        rel: "dev",
        kind: TargetKind::Dir,
    };
    const HOSTS: MountPoint = MountPoint {
        rel: "etc/hosts",
        kind: TargetKind::File,
    };
    const RESOLV: MountPoint = MountPoint {
        rel: "etc/resolv.conf",
        kind: TargetKind::File,
    };

    fn plan(image: &[(&str, Found)], wanted: &[MountPoint]) -> StubPlan {
        let map: HashMap<PathBuf, Found> = image
            .iter()
            .map(|(p, f)| (PathBuf::from(p), f.clone()))
            .collect();
        plan_stubs(wanted, &mut |c| {
            Ok(map
                .get(&c.iter().collect::<PathBuf>())
                .cloned()
                .unwrap_or(Found::Absent))
        })
        .unwrap()
    }

    fn dir(top: &str) -> Found {
        Found::Dir { top: top.into() }
    }

    #[test]
    fn stub_table() {
        use StubAction::*;
        let p = |s: &str| PathBuf::from(s);
        // (image, wanted, expected actions, expected skipped)
        type Case<'a> = (
            Vec<(&'a str, Found)>,
            Vec<MountPoint>,
            Vec<StubAction>,
            usize,
        );
        let cases: Vec<Case<'_>> = vec![
            // everything present: nothing to create
            (
                vec![
                    ("proc", dir("/l/proc")),
                    ("etc", dir("/l/etc")),
                    ("etc/hosts", Found::File),
                ],
                vec![PROC, HOSTS],
                vec![],
                0,
            ),
            // empty image: new dirs, etc and both files created once
            (
                vec![],
                vec![PROC, DEV, HOSTS, RESOLV],
                vec![
                    NewDir { rel: p("proc") },
                    NewDir { rel: p("dev") },
                    NewDir { rel: p("etc") },
                    NewFile {
                        rel: p("etc/hosts"),
                    },
                    NewFile {
                        rel: p("etc/resolv.conf"),
                    },
                ],
                0,
            ),
            // /etc exists but has no hosts: copy /etc's metadata, add the file
            (
                vec![("etc", dir("/l1/etc"))],
                vec![HOSTS],
                vec![
                    CopyDir {
                        rel: p("etc"),
                        from: p("/l1/etc"),
                    },
                    NewFile {
                        rel: p("etc/hosts"),
                    },
                ],
                0,
            ),
            // hostile: /dev is a symlink -> shadowed by a real directory
            (
                vec![("dev", Found::Other)],
                vec![DEV],
                vec![NewDir { rel: p("dev") }],
                0,
            ),
            // /etc/resolv.conf is a symlink (systemd-resolved images) -> shadowed by a file
            (
                vec![("etc", dir("/l/etc")), ("etc/resolv.conf", Found::Other)],
                vec![RESOLV],
                vec![
                    CopyDir {
                        rel: p("etc"),
                        from: p("/l/etc"),
                    },
                    NewFile {
                        rel: p("etc/resolv.conf"),
                    },
                ],
                0,
            ),
            // /etc is a symlink: never mount through it, skip the binds
            (vec![("etc", Found::Other)], vec![HOSTS, RESOLV], vec![], 2),
            // /etc/hosts is a directory: cannot bind a file there
            (
                vec![("etc", dir("/l/etc")), ("etc/hosts", dir("/l/etc/hosts"))],
                vec![HOSTS],
                vec![],
                1,
            ),
            // /proc is a regular file: shadowed by a directory
            (
                vec![("proc", Found::File)],
                vec![PROC],
                vec![NewDir { rel: p("proc") }],
                0,
            ),
        ];
        for (i, (image, wanted, actions, skipped)) in cases.into_iter().enumerate() {
            let got = plan(&image, &wanted);
            assert_eq!(got.actions, actions, "case {i}");
            assert_eq!(got.skipped.len(), skipped, "case {i}");
            assert_eq!(got.usable.len() + skipped, wanted.len(), "case {i}");
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .map(|e| {
                e.unwrap()
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn untouched_stubs_are_removed_completely() {
        let tmp = tempfile::tempdir().unwrap();
        let lower_etc = tmp.path().join("lower/etc");
        fs::create_dir_all(&lower_etc).unwrap();
        fs::set_permissions(&lower_etc, fs::Permissions::from_mode(0o750)).unwrap();
        let upper = tmp.path().join("upper");
        fs::create_dir(&upper).unwrap();
        let plan = plan(&[("etc", Found::Dir { top: lower_etc })], &[PROC, HOSTS]);
        let stubs = Stubs::create(&upper, &plan).unwrap();
        assert_eq!(entries(&upper), ["etc", "etc/hosts", "proc"]);
        assert_eq!(
            fs::metadata(upper.join("etc")).unwrap().mode() & 0o7777,
            0o750
        );
        assert_eq!(
            fs::metadata(upper.join("etc/hosts")).unwrap().mode() & 0o7777,
            0o644
        );
        stubs.remove().unwrap();
        assert!(entries(&upper).is_empty());
    }

    #[test]
    fn a_parent_the_step_wrote_into_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path().join("upper");
        fs::create_dir(&upper).unwrap();
        let plan = plan(&[], &[PROC, HOSTS]);
        let stubs = Stubs::create(&upper, &plan).unwrap();
        // what a RUN writing /etc/motd and chmod-ing /proc's stub parent would leave
        fs::write(upper.join("etc/motd"), "hi").unwrap();
        stubs.remove().unwrap();
        assert_eq!(entries(&upper), ["etc", "etc/motd"]);
    }

    #[test]
    fn a_changed_stub_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path().join("upper");
        fs::create_dir(&upper).unwrap();
        let stubs = Stubs::create(&upper, &plan(&[], &[PROC, DEV])).unwrap();
        fs::set_permissions(upper.join("dev"), fs::Permissions::from_mode(0o700)).unwrap();
        stubs.remove().unwrap();
        assert_eq!(entries(&upper), ["dev"]);
    }

    #[test]
    fn a_symlink_planted_in_place_of_a_parent_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let upper = tmp.path().join("upper");
        let victim = tmp.path().join("victim");
        fs::create_dir_all(victim.join("etc")).unwrap();
        fs::write(victim.join("etc/hosts"), "").unwrap();
        fs::create_dir(&upper).unwrap();
        let stubs = Stubs::create(&upper, &plan(&[], &[HOSTS])).unwrap();
        fs::remove_file(upper.join("etc/hosts")).unwrap();
        fs::remove_dir(upper.join("etc")).unwrap();
        std::os::unix::fs::symlink(victim.join("etc"), upper.join("etc")).unwrap();
        stubs.remove().unwrap();
        assert!(victim.join("etc/hosts").exists());
    }
}
