//! What a fetched object is (by its magic bytes, never its name) and how it becomes the
//! context: tars through the confined layer extractor, zips converted entry by entry into a tar
//! stream for that same extractor ([`super::zip`]), anything else as the context's only file.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::NamedTempFile;

use super::error::ObjectError;
use crate::layer::{self, ApplyMode, ApplyOptions, Limits};

/// What the fetched bytes were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    TarGz,
    TarZst,
    Zip,
    /// Not an archive: the object became the context's only file.
    File,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// A local file header, or the end-of-central-directory record of an empty zip.
const ZIP_MAGICS: [&[u8]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];

/// Sniffs the spooled object. A gzip or zstd stream is a tar only when its first decompressed
/// block is a valid tar header; otherwise it is a compressed file kept as it is.
pub(crate) fn sniff(path: &Path, shown: &str) -> Result<ArchiveKind, ObjectError> {
    let open = || File::open(path).map_err(|e| ObjectError::io("cannot read the spool", path, e));
    let head =
        read_block(open()?).map_err(|e| ObjectError::io("cannot read the spool", path, e))?;
    if ZIP_MAGICS.iter().any(|m| head.starts_with(m)) {
        return Ok(ArchiveKind::Zip);
    }
    let corrupt = |format: &'static str, e: io::Error| ObjectError::Corrupt {
        url: shown.to_owned(),
        format,
        reason: e.to_string(),
    };
    if head.starts_with(GZIP_MAGIC) {
        let block = read_block(flate2::read::MultiGzDecoder::new(open()?))
            .map_err(|e| corrupt("gzip", e))?;
        return Ok(if is_tar_block(&block) {
            ArchiveKind::TarGz
        } else {
            ArchiveKind::File
        });
    }
    if head.starts_with(ZSTD_MAGIC) {
        let decoder = zstd::stream::read::Decoder::new(open()?).map_err(|e| corrupt("zstd", e))?;
        let block = read_block(decoder).map_err(|e| corrupt("zstd", e))?;
        return Ok(if is_tar_block(&block) {
            ArchiveKind::TarZst
        } else {
            ArchiveKind::File
        });
    }
    Ok(if is_tar_block(&head) {
        ArchiveKind::Tar
    } else {
        ArchiveKind::File
    })
}

/// Up to the first 512 bytes.
fn read_block(reader: impl Read) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(512);
    reader.take(512).read_to_end(&mut block)?;
    Ok(block)
}

/// A full 512-byte block that is either all zeros (an empty archive's end marker) or a header
/// whose checksum field matches its bytes (POSIX ustar; old v7 tars have no magic, so the
/// checksum is the test, as GNU `file` and Go's archive/tar use it).
fn is_tar_block(block: &[u8]) -> bool {
    if block.len() != 512 {
        return false;
    }
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let Ok(recorded) = u32::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u32::from(b' ')
            } else {
                u32::from(b)
            }
        })
        .sum();
    recorded == sum
}

/// Limits for what one fetched archive may unpack to. The decompressed-byte cap is a multiple
/// of the download cap (a context of source text compresses 5–15×; a gzip bomb 1000×); the
/// entry count needs no separate derivation: every tar entry costs at least a 512-byte header
/// against the byte cap, and every zip entry at least 76 bytes of the capped download.
pub(crate) fn extract_limits(max_bytes: u64) -> Limits {
    Limits {
        max_bytes: max_bytes.saturating_mul(MAX_EXPANSION),
        ..Limits::default()
    }
}

/// Decompressed bytes allowed per fetched byte.
pub const MAX_EXPANSION: u64 = 64;

/// Unpacks the spooled object into the empty directory `dest`. On failure `dest` is emptied
/// again: a half-extracted context never reaches a build.
pub(crate) fn extract(
    spool: NamedTempFile,
    kind: ArchiveKind,
    file_name: Option<String>,
    dest: &Path,
    max_bytes: u64,
    shown: &str,
) -> Result<(), ObjectError> {
    let result = match kind {
        ArchiveKind::Tar | ArchiveKind::TarGz | ArchiveKind::TarZst => {
            extract_tar(spool.path(), dest, max_bytes, shown)
        }
        ArchiveKind::Zip => {
            super::zip::extract(spool.as_file(), dest, &extract_limits(max_bytes), shown)
        }
        ArchiveKind::File => place_file(spool, file_name, dest, shown),
    };
    if result.is_err()
        && let Err(cleanup) = empty_dir(dest)
    {
        tracing::warn!(dest = %dest.display(), error = %cleanup, "emptying a failed context directory");
    }
    result
}

fn extract_tar(spool: &Path, dest: &Path, max_bytes: u64, shown: &str) -> Result<(), ObjectError> {
    let archive = |source| ObjectError::Archive {
        url: shown.to_owned(),
        source,
    };
    // Opened afresh: the spool's own handle is positioned at its end.
    let reader =
        File::open(spool).map_err(|e| ObjectError::io("cannot read the spool", spool, e))?;
    let tar = layer::decompress(reader).map_err(archive)?;
    let options = ApplyOptions {
        limits: extract_limits(max_bytes),
        ..ApplyOptions::new(ApplyMode::Flatten)
    };
    layer::apply_layer(tar, dest, &options).map_err(archive)?;
    Ok(())
}

/// A non-archive object becomes `dest/<last URL segment>`, mode 0644 (what `ADD <url>` gives
/// a downloaded file). The spool sits beside `dest`, so this is a rename.
fn place_file(
    spool: NamedTempFile,
    file_name: Option<String>,
    dest: &Path,
    shown: &str,
) -> Result<(), ObjectError> {
    let name = file_name.ok_or_else(|| ObjectError::NoFileName {
        url: shown.to_owned(),
    })?;
    let target = dest.join(&name);
    let file = spool
        .persist_noclobber(&target)
        .map_err(|e| ObjectError::io("cannot place the fetched file at", &target, e.error))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| ObjectError::io("cannot set the mode of", &target, e))
}

fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // file_type() does not follow links: a link to a directory is unlinked, never descended.
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sniffed(bytes: &[u8]) -> ArchiveKind {
        let mut file = NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        sniff(file.path(), "https://h/x").unwrap()
    }

    fn tar_of(name: &str, body: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, body).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn kinds_come_from_magic_bytes() {
        let tar = tar_of("Dockerfile", b"FROM scratch\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let mut text_gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        text_gz.write_all(b"just some text, not a tar").unwrap();
        let text_gz = text_gz.finish().unwrap();
        let table: &[(&[u8], ArchiveKind)] = &[
            (&tar, ArchiveKind::Tar),
            (&gz, ArchiveKind::TarGz),
            (&zst, ArchiveKind::TarZst),
            (b"PK\x03\x04rest", ArchiveKind::Zip),
            (b"PK\x05\x06", ArchiveKind::Zip),
            (b"FROM scratch\n", ArchiveKind::File),
            (&text_gz, ArchiveKind::File),
            (&[0u8; 1024], ArchiveKind::Tar),
            (&[0u8; 100], ArchiveKind::File),
            (b"", ArchiveKind::File),
        ];
        for (i, (bytes, kind)) in table.iter().enumerate() {
            assert_eq!(sniffed(bytes), *kind, "case {i}");
        }
    }

    #[test]
    fn a_tar_header_with_a_wrong_checksum_is_not_a_tar() {
        let mut tar = tar_of("f", b"x");
        tar[0] ^= 1;
        assert_eq!(sniffed(&tar), ArchiveKind::File);
    }

    #[test]
    fn a_corrupt_gzip_head_is_an_error_not_a_file() {
        let err = {
            let mut file = NamedTempFile::new().unwrap();
            file.write_all(&[0x1f, 0x8b, 0x08, 0xff, 0xff, 0xff])
                .unwrap();
            sniff(file.path(), "https://h/x").unwrap_err()
        };
        assert!(
            matches!(err, ObjectError::Corrupt { format: "gzip", .. }),
            "{err}"
        );
    }
}
