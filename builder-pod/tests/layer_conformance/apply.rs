//! Appliers the suite checks layers with, each independent of the writer under test.
//!
//! GNU tar is the reference applier (containerd keeps one as a second implementation in its own
//! suite): tar knows nothing of OCI whiteouts, so they are applied here first, as image-spec
//! layer.md describes — an opaque marker empties its directory, `.wh.<name>` removes `<name>`,
//! both only against what was below — and an entry whose type differs from what is below
//! replaces it. Then `tar -x` extracts everything else.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use super::overlay::run;

/// One tar member as a minimal, independent PAX-aware reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Vec<u8>,
    pub pax: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Member {
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

fn octal(field: &[u8]) -> Result<u64> {
    let text = std::str::from_utf8(field)?.trim_matches(|c| c == '\0' || c == ' ');
    if text.is_empty() {
        return Ok(0);
    }
    Ok(u64::from_str_radix(text, 8)?)
}

fn cstr(field: &[u8]) -> &[u8] {
    &field[..field.iter().position(|&b| b == 0).unwrap_or(field.len())]
}

/// Lists an uncompressed tar. Written for the suite (not the `tar` crate, which splits PAX
/// records on newlines): PAX records are parsed by their length prefix, checksums verified.
pub fn list(tar: &[u8]) -> Result<Vec<Member>> {
    let mut members = Vec::new();
    let mut pos = 0;
    let mut pax: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    loop {
        let block = tar.get(pos..pos + 512).context("truncated archive")?;
        if block.iter().all(|&b| b == 0) {
            ensure!(
                tar[pos..].iter().all(|&b| b == 0) && tar.len() - pos >= 1024,
                "bad end of archive"
            );
            return Ok(members);
        }
        let stored = octal(&block[148..156])?;
        let sum: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        ensure!(sum == stored, "bad checksum at offset {pos}");
        ensure!(
            &block[257..265] == b"ustar\x0000",
            "not ustar at offset {pos}"
        );
        let size = octal(&block[124..136])?;
        let mut size = pax
            .get(&b"size"[..])
            .map(|s| std::str::from_utf8(s).unwrap().parse().unwrap())
            .unwrap_or(size);
        let typeflag = block[156];
        let data_start = pos + 512;
        if typeflag == b'x' {
            size = octal(&block[124..136])?;
            let mut records = &tar[data_start..data_start + size as usize];
            while !records.is_empty() {
                let space = records.iter().position(|&b| b == b' ').context("pax")?;
                let len: usize = std::str::from_utf8(&records[..space])?.parse()?;
                let record = &records[space + 1..len - 1];
                ensure!(
                    records[len - 1] == b'\n',
                    "pax record not newline-terminated"
                );
                let eq = record.iter().position(|&b| b == b'=').context("pax =")?;
                pax.insert(record[..eq].to_vec(), record[eq + 1..].to_vec());
                records = &records[len..];
            }
        } else {
            let prefix = cstr(&block[345..500]);
            let mut name = cstr(&block[0..100]).to_vec();
            if !prefix.is_empty() {
                name = [prefix, b"/", &name].concat();
            }
            let take = |key: &[u8], default: Vec<u8>| pax.get(key).cloned().unwrap_or(default);
            let num = |key: &[u8], field: &[u8]| -> Result<u64> {
                match pax.get(key) {
                    Some(v) => Ok(std::str::from_utf8(v)?.parse()?),
                    None => octal(field),
                }
            };
            members.push(Member {
                name: take(b"path", name),
                typeflag,
                mode: octal(&block[100..108])? as u32,
                uid: num(b"uid", &block[108..116])?,
                gid: num(b"gid", &block[116..124])?,
                mtime: octal(&block[136..148])?,
                link: take(b"linkpath", cstr(&block[157..257]).to_vec()),
                pax: std::mem::take(&mut pax),
            });
        }
        pos = data_start + (size as usize).div_ceil(512) * 512;
    }
}

/// Decompresses a gzip or zstd blob (by magic) or returns a plain tar as is.
pub fn decompress(blob: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match blob {
        [0x1f, 0x8b, ..] => {
            flate2::read::GzDecoder::new(blob).read_to_end(&mut out)?;
        }
        [0x28, 0xb5, 0x2f, 0xfd, ..] => out = zstd::decode_all(blob)?,
        _ => out = blob.to_vec(),
    }
    Ok(out)
}

fn split(name: &[u8]) -> (&[u8], &[u8]) {
    let name = name.strip_suffix(b"/").unwrap_or(name);
    match name.iter().rposition(|&b| b == b'/') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (b"", name),
    }
}

fn remove_any(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path)?,
        Ok(_) => std::fs::remove_file(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Applies an uncompressed layer tar onto `root` with GNU tar plus OCI whiteout handling.
pub fn gnu_tar(layer_tar: &Path, root: &Path) -> Result<()> {
    let members = list(&std::fs::read(layer_tar)?)?;
    let join = |rel: &[u8]| -> PathBuf { root.join(OsStr::from_bytes(rel)) };
    for m in &members {
        let (dir, base) = split(&m.name);
        if base == b".wh..wh..opq" {
            let dir = join(dir);
            if dir.is_dir() {
                for child in std::fs::read_dir(&dir)? {
                    remove_any(&child?.path())?;
                }
            }
        } else if let Some(hidden) = base.strip_prefix(b".wh.") {
            ensure!(
                !hidden.is_empty() && hidden != b"." && hidden != b"..",
                "bad whiteout"
            );
            remove_any(&join(dir).join(OsStr::from_bytes(hidden)))?;
        } else {
            let path = join(m.name.strip_suffix(b"/").unwrap_or(&m.name));
            if let Ok(existing) = std::fs::symlink_metadata(&path)
                && existing.is_dir() != (m.typeflag == b'5')
            {
                remove_any(&path)?;
            }
        }
    }
    let mut cmd = Command::new("tar");
    cmd.args([
        "-x",
        "-p",
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
    ])
    .args(["--exclude=.wh.*", "-f"])
    .arg(layer_tar)
    .arg("-C")
    .arg(root);
    run(&mut cmd)
}

/// Checks the invariants every Stratum layer keeps, whatever the tree.
pub fn check_layer_invariants(members: &[Member]) -> Result<()> {
    for m in members {
        let name = m.name_str();
        ensure!(!m.name.starts_with(b"/"), "{name}: absolute");
        ensure!(
            !m.name.split(|&b| b == b'/').any(|c| c == b".."),
            "{name}: has a .. component"
        );
        if split(&m.name).1.starts_with(b".wh.") {
            ensure!(
                (m.typeflag, m.mode, m.uid, m.gid, m.mtime) == (b'0', 0, 0, 0, 0),
                "{name}: whiteout metadata {m:?}"
            );
        }
        for key in m.pax.keys() {
            if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                ensure!(
                    x == b"security.capability"
                        || (x.starts_with(b"user.") && !x.starts_with(b"user.overlay.")),
                    "{name}: xattr {} must not be in a layer",
                    String::from_utf8_lossy(x)
                );
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for m in members {
        if !seen.insert(&m.name) {
            bail!("{} appears twice", m.name_str());
        }
    }
    Ok(())
}
