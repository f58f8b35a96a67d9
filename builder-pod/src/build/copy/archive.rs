//! ADD's "is this local file an archive?" test, by content, as Docker does it.
//!
//! moby's `IsArchivePath` detects the compression from the first bytes, decompresses, and asks
//! Go's tar reader for the first header: the file is an archive only if that succeeds. So a
//! gzipped text file, an empty tar (two zero blocks) or a `.tar.gz` that is not one are copied
//! as files, and a tar named `foo.txt` is extracted. gzip and zstd are decoded in process;
//! bzip2 and xz through the system `bzip2`/`xz` (moby also shells out for xz), reading only the
//! first two blocks. The extraction itself is the layer applier's job.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};

/// The compression of an archive ADD would extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    TarGzip,
    TarBzip2,
    TarXz,
    TarZstd,
}

const BLOCK: usize = 512;

/// `Some(kind)` when `path` holds a tar archive (possibly compressed) that ADD extracts.
pub fn is_archive(path: &Path) -> io::Result<Option<ArchiveKind>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 6];
    let n = read_up_to(&mut file, &mut magic)?;
    let magic = &magic[..n];
    let file = File::open(path)?;
    let (kind, head) = if magic.starts_with(&[0x1f, 0x8b, 0x08]) {
        (
            ArchiveKind::TarGzip,
            head_of(flate2::read::GzDecoder::new(file)),
        )
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = zstd::stream::read::Decoder::new(file)?;
        (ArchiveKind::TarZstd, head_of(decoder))
    } else if magic.starts_with(b"BZh") {
        (ArchiveKind::TarBzip2, head_of_command("bzip2", file)?)
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        (ArchiveKind::TarXz, head_of_command("xz", file)?)
    } else {
        (ArchiveKind::Tar, head_of(file))
    };
    // A stream that fails to decompress is not an archive (Docker copies the file as is).
    Ok(head.ok().filter(|h| first_header_is_valid(h)).map(|_| kind))
}

/// Up to two blocks of the decompressed stream.
fn head_of(mut reader: impl Read) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 2 * BLOCK];
    let n = read_up_to(&mut reader, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn head_of_command(program: &str, file: File) -> io::Result<io::Result<Vec<u8>>> {
    let mut child = Command::new(program)
        .arg("-dc")
        .stdin(Stdio::from(file))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("ADD needs `{program}` to inspect a {program}-compressed file: {e}"),
            )
        })?;
    let head = match child.stdout.take() {
        Some(stdout) => head_of(stdout),
        None => Err(io::Error::other("no stdout")),
    };
    // Only the head is needed; the decompressor may still be writing.
    let _ = child.kill();
    let _ = child.wait();
    Ok(head)
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Go's `tar.Reader.Next` on the first header: a zero block followed by a zero block is the end
/// (no entry), anything else must carry a checksum that matches (unsigned or signed sum, as Go
/// accepts both) and a parsable size.
fn first_header_is_valid(head: &[u8]) -> bool {
    if head.len() < BLOCK {
        return false;
    }
    let block = &head[..BLOCK];
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let Some(recorded) = parse_octal(&block[148..156]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    let checksum_ok = recorded == unsigned || i64::try_from(recorded) == Ok(signed);
    let size = &block[124..136];
    let size_ok = size[0] & 0x80 != 0 || parse_octal(size).is_some();
    checksum_ok && size_ok
}

/// Go's `parseOctal`: spaces and NULs trimmed at both ends, empty is 0.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let start = field.iter().position(|&b| b != b' ' && b != 0);
    let Some(start) = start else {
        return Some(0);
    };
    let end = field.iter().rposition(|&b| b != b' ' && b != 0)? + 1;
    let text = std::str::from_utf8(&field[start..end]).ok()?;
    u64::from_str_radix(text, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_bytes() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_path("hello.txt").unwrap();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, &b"hello"[..]).unwrap();
        builder.into_inner().unwrap()
    }

    fn compress(program: &str, data: &[u8]) -> Vec<u8> {
        let mut child = Command::new(program)
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        child.wait_with_output().unwrap().stdout
    }

    #[test]
    fn detection_is_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let mut gz_text = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz_text.write_all(b"just text, not a tar").unwrap();
        let gz_text = gz_text.finish().unwrap();
        let table: Vec<(&str, Vec<u8>, Option<ArchiveKind>)> = vec![
            ("a.txt", tar.clone(), Some(ArchiveKind::Tar)),
            ("b.bin", gz, Some(ArchiveKind::TarGzip)),
            (
                "c",
                zstd::encode_all(&tar[..], 3).unwrap(),
                Some(ArchiveKind::TarZstd),
            ),
            ("d", compress("bzip2", &tar), Some(ArchiveKind::TarBzip2)),
            ("e", compress("xz", &tar), Some(ArchiveKind::TarXz)),
            ("notes.tar.gz", gz_text, None),
            ("empty.tar", vec![0u8; 1024], None),
            ("plain.tar", b"hello world".to_vec(), None),
            ("zero", Vec::new(), None),
            ("truncated.tar", tar[..300].to_vec(), None),
        ];
        for (name, bytes, want) in table {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(is_archive(&path).unwrap(), want, "{name}");
        }
        // A corrupted checksum is not a tar header.
        let mut bad = tar_bytes();
        bad[148] = b'9';
        let path = dir.path().join("bad.tar");
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(is_archive(&path).unwrap(), None);
    }
}
