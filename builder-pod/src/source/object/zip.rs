//! Zip contexts. The `zip` crate reads the archive (central directory, deflate, CRC); its
//! entries are then re-framed as a tar stream into the confined layer extractor, so a zip gets
//! exactly the containment a tar gets — zip slip (`../x`), absolute names, symlink-then-write,
//! caps — from one implementation instead of a second, zip-specific one (threats §2.1, §2.3).
//!
//! A zip's declared sizes are not trusted: the sum is checked against the cap before anything
//! is written, and each entry must inflate to exactly its declared size (a bomb that lies about
//! its size is refused when it overruns, not after).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use zip::ZipArchive;

use super::error::ObjectError;
use crate::layer::{self, ApplyMode, ApplyOptions, Limits};

/// The longest symlink target accepted (PATH_MAX, as for tar entries).
const MAX_LINK_TARGET: u64 = 4096;

/// Unpacks the zip `file` into `dest` through the layer extractor.
pub(crate) fn extract(
    file: &File,
    dest: &Path,
    limits: &Limits,
    shown: &str,
) -> Result<(), ObjectError> {
    let corrupt = |reason: String| ObjectError::Corrupt {
        url: shown.to_owned(),
        format: "zip",
        reason,
    };
    let reader = file
        .try_clone()
        .map_err(|e| ObjectError::io("cannot read the spool for", dest, e))?;
    let mut archive =
        ZipArchive::new(BufReader::new(reader)).map_err(|e| corrupt(e.to_string()))?;
    if archive.len() as u64 > limits.max_entries {
        return Err(corrupt(format!(
            "it has {} entries, more than the limit of {}",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut declared: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| corrupt(e.to_string()))?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > limits.max_bytes {
        return Err(corrupt(format!(
            "its entries declare {declared} bytes uncompressed, more than the {}-byte limit \
             (a zip bomb, or a context too large to build from)",
            limits.max_bytes
        )));
    }

    let (pipe_reader, pipe_writer) =
        io::pipe().map_err(|e| ObjectError::io("cannot create a pipe for", dest, e))?;
    let options = ApplyOptions {
        limits: limits.clone(),
        ..ApplyOptions::new(ApplyMode::Flatten)
    };
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || write_tar(&mut archive, pipe_writer, shown));
        let applied = layer::apply_layer(pipe_reader, dest, &options);
        let produced = producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        match (produced, applied) {
            // The extractor stopping early (a refused entry, a cap) breaks the pipe: its error
            // is the one that explains.
            (Err(ObjectError::Io { source, .. }), Err(applied))
                if source.kind() == io::ErrorKind::BrokenPipe =>
            {
                Err(ObjectError::Archive {
                    url: shown.to_owned(),
                    source: applied,
                })
            }
            (Err(produced), _) => Err(produced),
            (Ok(()), Err(applied)) => Err(ObjectError::Archive {
                url: shown.to_owned(),
                source: applied,
            }),
            (Ok(()), Ok(_)) => Ok(()),
        }
    })
}

/// Writes every zip entry as a GNU tar entry with the zip's raw name; names are judged by the
/// extractor, not here.
fn write_tar<R: Read + io::Seek>(
    archive: &mut ZipArchive<R>,
    out: impl Write,
    shown: &str,
) -> Result<(), ObjectError> {
    let corrupt = |reason: String| ObjectError::Corrupt {
        url: shown.to_owned(),
        format: "zip",
        reason,
    };
    let pipe_error = |e| ObjectError::io("cannot stream the zip into the extractor", "<pipe>", e);
    let mut out = BufWriter::with_capacity(256 << 10, out);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| corrupt(e.to_string()))?;
        let name = entry.name_raw().to_vec();
        let shown_name = String::from_utf8_lossy(&name).into_owned();
        if name.contains(&0) {
            return Err(corrupt(format!(
                "the entry name {shown_name:?} contains a NUL byte"
            )));
        }
        let perm = entry.unix_mode().map(|m| m & 0o7777);
        let mtime = entry.last_modified().map_or(0, |t| {
            epoch_seconds(
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            )
        });
        if entry.is_dir() {
            let header = header(tar::EntryType::Directory, perm.unwrap_or(0o755), mtime, 0);
            write_entry(&mut out, header, &name, None).map_err(pipe_error)?;
        } else if entry.is_symlink() {
            let mut target = Vec::new();
            (&mut entry)
                .take(MAX_LINK_TARGET + 1)
                .read_to_end(&mut target)
                .map_err(|e| corrupt(format!("{shown_name}: {e}")))?;
            if target.len() as u64 > MAX_LINK_TARGET || target.contains(&0) {
                return Err(corrupt(format!(
                    "{shown_name}: the symlink target is not a path"
                )));
            }
            let header = header(tar::EntryType::Symlink, perm.unwrap_or(0o777), mtime, 0);
            write_entry(&mut out, header, &name, Some(&target)).map_err(pipe_error)?;
        } else {
            let size = entry.size();
            let header = header(tar::EntryType::Regular, perm.unwrap_or(0o644), mtime, size);
            write_entry(&mut out, header, &name, None).map_err(pipe_error)?;
            copy_exactly(&mut entry, &mut out, size, &shown_name, shown)?;
        }
    }
    // End of archive: two zero blocks.
    out.write_all(&[0; 1024]).map_err(pipe_error)?;
    out.flush().map_err(pipe_error)
}

/// Copies exactly `size` bytes of the entry and its tar padding. The entry must end there:
/// reading one byte more also makes the zip crate check the CRC.
fn copy_exactly(
    entry: &mut impl Read,
    out: &mut impl Write,
    size: u64,
    name: &str,
    shown: &str,
) -> Result<(), ObjectError> {
    let corrupt = |reason: String| ObjectError::Corrupt {
        url: shown.to_owned(),
        format: "zip",
        reason: format!("{name}: {reason}"),
    };
    let pipe_error = |e| ObjectError::io("cannot stream the zip into the extractor", "<pipe>", e);
    let mut buf = vec![0u8; 64 << 10];
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = entry
            .read(&mut buf[..want])
            .map_err(|e| corrupt(e.to_string()))?;
        if n == 0 {
            return Err(corrupt(format!(
                "the entry ends {left} bytes before its declared size of {size}"
            )));
        }
        out.write_all(&buf[..n]).map_err(pipe_error)?;
        left -= n as u64;
    }
    let mut extra = [0u8; 1];
    if entry.read(&mut extra).map_err(|e| corrupt(e.to_string()))? != 0 {
        return Err(corrupt(format!(
            "the entry inflates past its declared size of {size} bytes (a zip bomb lying about \
             its size)"
        )));
    }
    out.write_all(&[0; 512][..padding(size)])
        .map_err(pipe_error)
}

fn header(kind: tar::EntryType, mode: u32, mtime: u64, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Writes the header with the raw `name` (and link target), preceded by GNU long-name /
/// long-link records when they do not fit the 100-byte fields.
fn write_entry(
    out: &mut impl Write,
    mut header: tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
) -> io::Result<()> {
    if name.len() > 100 {
        write_long(out, tar::EntryType::GNULongName, name)?;
    }
    if let Some(link) = link.filter(|l| l.len() > 100) {
        write_long(out, tar::EntryType::GNULongLink, link)?;
    }
    let gnu = header.as_gnu_mut().expect("a GNU header");
    let n = name.len().min(100);
    gnu.name[..n].copy_from_slice(&name[..n]);
    if let Some(link) = link {
        let n = link.len().min(100);
        gnu.linkname[..n].copy_from_slice(&link[..n]);
    }
    header.set_cksum();
    out.write_all(header.as_bytes())
}

fn write_long(out: &mut impl Write, kind: tar::EntryType, text: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(text.len() as u64 + 1);
    header.as_gnu_mut().expect("a GNU header").name[..13].copy_from_slice(b"././@LongLink");
    header.set_cksum();
    out.write_all(header.as_bytes())?;
    out.write_all(text)?;
    out.write_all(&[0])?;
    out.write_all(&[0; 512][..padding(text.len() as u64 + 1)])
}

fn padding(len: u64) -> usize {
    ((512 - len % 512) % 512) as usize
}

/// Seconds since the epoch of a zip's (timezone-less, taken as UTC) DOS date and time, by
/// Howard Hinnant's days-from-civil algorithm.
fn epoch_seconds(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> u64 {
    let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    u64::try_from(secs).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times_convert_to_epoch_seconds() {
        assert_eq!(epoch_seconds(1980, 1, 1, 0, 0, 0), 315_532_800);
        assert_eq!(epoch_seconds(2024, 2, 29, 12, 30, 15), 1_709_209_815);
    }
}
