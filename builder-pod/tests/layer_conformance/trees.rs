//! Lower trees and step operations for the suite: a hand-written base image with every kind of
//! entry and awkward name, a second lower layer with its own whiteouts and opaque dir, and a
//! seeded generator of random trees and random RUN-like operations.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use anyhow::Result;
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::unistd::{Gid, Uid, chown, mkfifo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::overlay::sh;

/// A version-2 file capability granting cap_net_raw (linux/capability.h `vfs_cap_data`).
pub const CAP_NET_RAW: [u8; 20] = [
    0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// cap_dac_override + cap_fowner: the permitted mask's first byte is 0x0a, a newline inside a
/// PAX record value (readers that split records on '\n' break on it).
pub const CAP_WITH_NEWLINE: [u8; 20] = [
    0, 0, 0, 2, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn write(root: &Path, rel: &str, content: &[u8]) -> Result<PathBuf> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, content)?;
    Ok(path)
}

fn chmod(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn own(path: &Path, uid: u32, gid: u32) -> Result<()> {
    chown(path, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    Ok(())
}

/// Names a layer must carry faithfully: long (ustar prefix split, PAX path), non-ASCII,
/// whitespace, newline, shell- and tar-special characters, and look-alikes of whiteouts.
pub fn special_names() -> Vec<String> {
    vec![
        "with space".into(),
        "ünïcødé-файл".into(),
        "new\nline".into(),
        "-leading-dash".into(),
        "back\\slash".into(),
        "equals=sign".into(),
        "PaxHeaders".into(),
        "wh.not-a-whiteout".into(),
        ".whx".into(),
        "x.wh.y".into(),
        "n".repeat(255),
    ]
}

/// The base image: bottom lower layer.
pub fn base_lower(root: &Path) -> Result<()> {
    for dir in [
        "etc",
        "usr/bin",
        "usr/lib",
        "usr/share/doc",
        "home/user",
        "srv/app",
        "tmp",
    ] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    write(
        root,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
    )?;
    write(root, "etc/hostname", b"base\n")?;
    write(root, "etc/to-delete", b"bye\n")?;
    write(root, "etc/to-move", b"moving\n")?;
    write(
        root,
        "etc/removed-in-l1",
        b"gone in the upper lower layer\n",
    )?;
    let su = write(root, "usr/bin/su", b"#!/bin/sh\n")?;
    chmod(&su, 0o4755)?;
    let ping = write(root, "usr/bin/ping", b"\x7fELF ping")?;
    xattr::set(&ping, "security.capability", &CAP_NET_RAW)?;
    let nl_cap = write(root, "usr/bin/nl-cap", b"\x7fELF nl")?;
    xattr::set(&nl_cap, "security.capability", &CAP_WITH_NEWLINE)?;
    let lib = write(root, "usr/lib/libx.so.1", &vec![0x5a; 70_000])?;
    xattr::set(&lib, "user.comment", b"a library")?;
    symlink("libx.so.1", root.join("usr/lib/libx.so"))?;
    symlink("/etc/passwd", root.join("usr/lib/abs-link"))?;
    symlink("../nowhere", root.join("usr/lib/dangling"))?;
    symlink("usr/lib", root.join("lib"))?;
    let doc = write(root, "usr/share/doc/readme", b"docs\n")?;
    chmod(&doc, 0o644)?;
    write(root, "usr/share/doc/owned", b"owned\n")?;
    write(root, "usr/share/doc/linked-orig", b"orig\n")?;
    // A hardlink pair in the base layer.
    write(root, "usr/share/doc/pair-a", b"pair\n")?;
    std::fs::hard_link(
        root.join("usr/share/doc/pair-a"),
        root.join("usr/share/doc/pair-b"),
    )?;
    let home = root.join("home/user");
    write(root, "home/user/.profile", b"export A=1\n")?;
    own(&home.join(".profile"), 1000, 1000)?;
    own(&home, 1000, 1000)?;
    chmod(&home, 0o750)?;
    let app = root.join("srv/app");
    own(&app, 1000, 1000)?;
    chmod(&app, 0o2775)?;
    write(root, "srv/app/config", b"k=v\n")?;
    let big_id = write(root, "srv/app/big-id", b"")?;
    own(&big_id, 3_000_000, 3_000_001)?;
    xattr::set(root.join("srv"), "user.dir-tag", b"srv")?;
    chmod(&root.join("tmp"), 0o1777)?;
    for dir in ["x/sub", "a1", "gone-dir/nested", "ren/in", "opq/keep"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    for file in [
        "x/f",
        "x/sub/g",
        "a1/old",
        "gone-dir/nested/f",
        "ren/in/g",
        "ren/top",
        "opq/keep/f",
    ] {
        write(root, file, file.as_bytes())?;
    }
    mknod(
        &root.join("null"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(1, 3),
    )?;
    mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o644))?;
    let deep = "deep/".repeat(30);
    write(root, &format!("{deep}leaf"), b"deep\n")?;
    for name in special_names() {
        write(root, &format!("names/{name}"), name.as_bytes())?;
    }
    // Linux names are bytes, not UTF-8 (Latin-1 "café").
    std::fs::write(
        root.join("names").join(OsStr::from_bytes(b"caf\xe9")),
        b"latin1",
    )?;
    Ok(())
}

/// The second (upper) lower layer, in overlay's own encoding: a whiteout, an opaque dir that
/// hides the base layer's content, and an addition.
pub fn second_lower(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root.join("etc"))?;
    mknod(
        &root.join("etc/removed-in-l1"),
        SFlag::S_IFCHR,
        Mode::empty(),
        0,
    )?;
    std::fs::create_dir_all(root.join("opq"))?;
    xattr::set(root.join("opq"), "trusted.overlay.opaque", b"y")?;
    write(root, "opq/from-l1", b"l1\n")?;
    write(root, "etc/added-in-l1", b"l1\n")?;
    Ok(())
}

/// The scripted step of the main scenario: every operation the issue lists.
pub const MAIN_SCRIPT: &str = r#"
echo new > etc/newfile
echo more >> etc/hostname
rm etc/to-delete
rm -rf x && mkdir x && echo fresh > x/fresh
rm -rf a1 && mkdir a1
rm -rf gone-dir
mkdir -p brand/new/dir && echo hi > brand/new/dir/f
ln brand/new/dir/f brand/new/f-link
mv ren ren2
mv etc/to-move etc/moved
chmod 600 usr/share/doc/readme
chown 1000:1000 usr/share/doc/owned
mkdir -p brand/links && ln usr/share/doc/linked-orig brand/links/to-lower
echo through-a >> usr/share/doc/pair-a
rm opq/from-l1
echo shadow > etc/removed-in-l1
ln -s ../etc/newfile brand/sym
mkfifo brand/fifo
touch deep/deep/deep/new-leaf
chmod 4711 usr/bin/su
cp -a usr/bin/ping usr/bin/ping-copy
cp -a usr/bin/nl-cap usr/bin/nl-cap-copy
chown 1000 usr/bin/ping
touch usr/lib/libx.so.1
echo "$(printf 'n%.0s' $(seq 1 200))" > "brand/$(printf 'L%.0s' $(seq 1 200))"
echo grow >> srv/app/big-id
rm "names/with space"
latin1=$(printf 'names/caf\351') && echo changed >> "$latin1" && echo new > "$latin1-new"
echo changed > "names/new
line"
"#;

/// A seeded random tree (a generated base image).
pub fn random_lower(root: &Path, rng: &mut StdRng) -> Result<()> {
    let mut dirs = vec![PathBuf::new()];
    for i in 0..60 {
        let parent = dirs[rng.random_range(0..dirs.len())].clone();
        let name = format!("{}{i}", ["d", "f", "s", "h"][rng.random_range(0..4)]);
        let path = root.join(&parent).join(&name);
        match &name[..1] {
            "d" => {
                std::fs::create_dir_all(&path)?;
                dirs.push(parent.join(&name));
            }
            "f" => {
                let len = [0, 10, 700, 5000][rng.random_range(0..4)];
                std::fs::write(&path, vec![rng.random::<u8>(); len])?;
                chmod(&path, [0o644, 0o755, 0o600, 0o4755][rng.random_range(0..4)])?;
            }
            "s" => symlink(format!("target{}", rng.random_range(0..5)), &path)?,
            _ => {
                std::fs::write(&path, b"linked")?;
                std::fs::hard_link(&path, root.join(&parent).join(format!("{name}-twin")))?;
            }
        }
    }
    Ok(())
}

/// Seeded random RUN-like operations inside the merged dir, as shell commands (so renames of
/// lower dirs take `mv`'s copy-and-delete fallback exactly as a RUN would).
pub fn random_ops(merged: &Path, rng: &mut StdRng, count: usize) -> Result<()> {
    for i in 0..count {
        let entries: Vec<PathBuf> = walkdir::WalkDir::new(merged)
            .min_depth(1)
            .into_iter()
            .filter_map(|e| e.ok())
            .map(|e| e.path().strip_prefix(merged).unwrap().to_path_buf())
            .collect();
        let pick = |rng: &mut StdRng| entries[rng.random_range(0..entries.len())].clone();
        let dirs: Vec<&PathBuf> = entries.iter().filter(|p| merged.join(p).is_dir()).collect();
        let dir = if dirs.is_empty() || rng.random_bool(0.2) {
            PathBuf::from(".")
        } else {
            dirs[rng.random_range(0..dirs.len())].clone()
        };
        let target = pick(rng);
        let t = shell_quote(&target);
        let d = shell_quote(&dir);
        let script = match rng.random_range(0..12) {
            0 => format!("echo op{i} > {d}/new{i}"),
            1 => format!("[ -f {t} ] && [ ! -L {t} ] && echo op{i} >> {t} || true"),
            2 => format!("rm -rf {t}"),
            3 => format!("[ -d {t} ] && rm -rf {t} && mkdir {t} && echo re > {t}/re{i} || true"),
            4 => format!("mkdir -p {d}/dir{i}/sub && echo x > {d}/dir{i}/sub/f"),
            5 => format!("mv {t} {d}/moved{i} 2>/dev/null || true"),
            6 => format!(
                "chmod {:o} {t} 2>/dev/null || true",
                [0o700, 0o644, 0o2755, 0o4755][i % 4]
            ),
            7 => format!(
                "chown -h {}:{} {t}",
                [0, 1000, 65534][i % 3],
                [0, 100, 4242][i % 3]
            ),
            8 => format!("[ -f {t} ] && [ ! -L {t} ] && ln {t} {d}/hl{i} || true"),
            9 => format!("ln -s ../{t} {d}/sym{i}"),
            10 => format!("mkfifo {d}/fifo{i}"),
            _ => {
                let path = merged.join(&target);
                if path.is_file() && !path.is_symlink() {
                    xattr::set(&path, format!("user.op{i}"), format!("v{i}").as_bytes())?;
                }
                continue;
            }
        };
        sh(merged, &script)?;
    }
    Ok(())
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}
