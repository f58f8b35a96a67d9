use super::*;
use std::io::Read;

/// Encodes entries (with `size` bytes of content each) into a whole archive.
fn archive(entries: &[EntryHeader]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        encode(entry, &mut out);
        if entry.entry_type == EntryType::Regular {
            out.extend(std::iter::repeat_n(b'c', entry.size as usize));
            out.resize(out.len() + padding(entry.size), 0);
        }
    }
    out.extend_from_slice(&END_OF_ARCHIVE);
    out
}

/// What an independent reader (the `tar` crate, PAX-aware) sees, per entry.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    path: Vec<u8>,
    link: Option<Vec<u8>>,
    kind: tar::EntryType,
    mode: u32,
    size: u64,
    pax: Vec<(String, Vec<u8>)>,
}

fn read_back(bytes: &[u8]) -> Vec<Seen> {
    let mut archive = tar::Archive::new(bytes);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let pax = match entry.pax_extensions().unwrap() {
            Some(exts) => exts
                .map(|e| {
                    let e = e.unwrap();
                    (e.key().unwrap().to_owned(), e.value_bytes().to_vec())
                })
                .collect(),
            None => Vec::new(),
        };
        let header = entry.header();
        assert!(header.as_ustar().is_some(), "not a ustar header");
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        assert_eq!(header.groupname_bytes(), Some(&b""[..]));
        let mut item = Seen {
            path: entry.path_bytes().into_owned(),
            link: entry.link_name_bytes().map(|l| l.into_owned()),
            kind: header.entry_type(),
            mode: header.mode().unwrap(),
            size: entry.size(),
            pax,
        };
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        assert_eq!(content.len() as u64, item.size);
        item.size = content.len() as u64;
        seen.push(item);
    }
    seen
}

fn file(name: &str, size: u64) -> EntryHeader {
    let mut e = EntryHeader::new(name.as_bytes().to_vec(), EntryType::Regular);
    e.mode = 0o644;
    e.size = size;
    e.mtime = 1_700_000_000;
    e
}

#[test]
fn short_names_are_plain_ustar_with_valid_checksums() {
    let mut dir = EntryHeader::new(b"etc/".to_vec(), EntryType::Directory);
    dir.mode = 0o4755;
    let mut link = EntryHeader::new(b"etc/link".to_vec(), EntryType::Symlink);
    link.link_name = b"../target".to_vec();
    link.mode = 0o777;
    let bytes = archive(&[dir, file("etc/passwd", 5), link]);
    // Three headers, one content block, the end marker: no PAX.
    assert_eq!(bytes.len(), 4 * BLOCK + 2 * BLOCK);
    let seen = read_back(&bytes);
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].path, b"etc/");
    assert_eq!(seen[0].kind, tar::EntryType::Directory);
    assert_eq!(seen[0].mode, 0o4755);
    assert_eq!(seen[1].path, b"etc/passwd");
    assert_eq!(seen[1].size, 5);
    assert_eq!(seen[2].link.as_deref(), Some(&b"../target"[..]));
    assert!(seen.iter().all(|s| s.pax.is_empty()));
    // The raw checksum field layout: six octal digits, NUL, space.
    assert_eq!(bytes[154], 0);
    assert_eq!(bytes[155], b' ');
    assert_eq!(&bytes[257..265], b"ustar\x0000");
}

#[test]
fn ustar_split_follows_go_archive_tar() {
    let long_dir = "d".repeat(120);
    let table: &[(String, Option<(usize, usize)>)] = &[
        ("a".repeat(100), Some((0, 100))),
        (format!("{long_dir}/file"), Some((120, 4))),
        (format!("{long_dir}/dir/"), Some((120, 4))),
        // No `/` to split at, or the last component alone is over 100 bytes.
        ("a".repeat(101), None),
        (format!("x/{}", "n".repeat(101)), None),
        // The prefix may hold at most 155 bytes.
        (format!("{}/f", "p".repeat(156)), None),
        ("ünïcødé".to_owned(), None),
    ];
    for (path, expected) in table {
        let got = split_ustar_path(path.as_bytes()).map(|(p, n)| (p.len(), n.len()));
        assert_eq!(got, *expected, "{path}");
    }
}

#[test]
fn long_and_non_ascii_names_and_links_use_pax() {
    let long = format!("{}/{}", "dir".repeat(40), "n".repeat(150));
    let mut hardlink = EntryHeader::new(b"short".to_vec(), EntryType::HardLink);
    hardlink.link_name = long.clone().into_bytes();
    let names = [
        long.clone(),
        "ünïcødé/файл".to_owned(),
        format!("{}/f", "p".repeat(200)),
    ];
    let mut entries: Vec<_> = names.iter().map(|n| file(n, 3)).collect();
    entries.push(hardlink);
    let seen = read_back(&archive(&entries));
    for (seen, name) in seen.iter().zip(&names) {
        assert_eq!(seen.path, name.as_bytes());
        assert_eq!(
            seen.pax,
            vec![("path".to_owned(), name.clone().into_bytes())]
        );
    }
    assert_eq!(seen[3].link.as_deref(), Some(long.as_bytes()));
    assert_eq!(
        seen[3].pax,
        vec![("linkpath".to_owned(), long.into_bytes())]
    );
}

#[test]
fn big_ids_and_xattrs_use_sorted_pax_records() {
    let mut entry = file("bin/ping", 0);
    entry.uid = 3_000_000;
    entry.gid = 65_534;
    entry.xattrs = vec![
        (
            OsString::from("security.capability"),
            vec![1, 0, 0, 2, 0x20, 0, 0, 0],
        ),
        (
            OsString::from("user.comment"),
            b"binary \0 and = and".to_vec(),
        ),
    ];
    let bytes = archive(&[entry]);
    let seen = read_back(&bytes);
    assert_eq!(
        seen[0].pax,
        vec![
            (
                "SCHILY.xattr.security.capability".to_owned(),
                vec![1, 0, 0, 2, 0x20, 0, 0, 0]
            ),
            (
                "SCHILY.xattr.user.comment".to_owned(),
                b"binary \0 and = and".to_vec()
            ),
            ("uid".to_owned(), b"3000000".to_vec()),
        ]
    );
    // The gid fits ustar and stays there.
    let header = tar::Header::from_byte_slice(&bytes[2 * BLOCK..3 * BLOCK]);
    assert_eq!(header.gid().unwrap(), 65_534);
    assert_eq!(header.uid().unwrap(), 0);
}

#[test]
fn pax_record_lengths_count_themselves() {
    // Lengths around the 1→2→3 digit boundaries.
    for value_len in [0usize, 1, 2, 80, 88, 89, 90, 91, 92, 993, 994, 995, 996] {
        let value = vec![b'v'; value_len];
        let mut out = Vec::new();
        pax_record(b"path", &value, &mut out);
        let space = out.iter().position(|&b| b == b' ').unwrap();
        let declared: usize = std::str::from_utf8(&out[..space]).unwrap().parse().unwrap();
        assert_eq!(declared, out.len(), "value of {value_len} bytes");
        assert_eq!(out.last(), Some(&b'\n'));
    }
}

#[test]
fn identical_entries_encode_to_identical_bytes() {
    let mut entry = file(&"long/".repeat(40), 10);
    entry.xattrs = vec![(OsString::from("user.a"), b"1".to_vec())];
    assert_eq!(archive(&[entry.clone()]), archive(&[entry]));
}

#[test]
fn devices_and_fifos() {
    let mut null = EntryHeader::new(b"dev/null".to_vec(), EntryType::Char);
    null.dev_major = 1;
    null.dev_minor = 3;
    let fifo = EntryHeader::new(b"run/fifo".to_vec(), EntryType::Fifo);
    let bytes = archive(&[null, fifo]);
    let first = tar::Header::from_byte_slice(&bytes[..BLOCK]);
    assert_eq!(first.entry_type(), tar::EntryType::Char);
    assert_eq!(first.device_major().unwrap(), Some(1));
    assert_eq!(first.device_minor().unwrap(), Some(3));
    let second = tar::Header::from_byte_slice(&bytes[BLOCK..2 * BLOCK]);
    assert_eq!(second.entry_type(), tar::EntryType::Fifo);
}

#[test]
fn pax_values_are_length_delimited_so_newlines_survive() {
    // A capability blob can hold 0x0a (e.g. cap_dac_override + cap_fowner). POSIX records are
    // length-delimited; the `tar` crate splits on '\n' and cannot read such a record, so this
    // parses by length as GNU tar and Go do.
    let mut entry = file("f", 0);
    let value = vec![0x0a, b'=', 0, 0x0a];
    entry.xattrs = vec![(OsString::from("user.nl"), value.clone())];
    let mut out = Vec::new();
    encode(&entry, &mut out);
    let size = tar::Header::from_byte_slice(&out[..BLOCK]).size().unwrap() as usize;
    let records = &out[BLOCK..BLOCK + size];
    let space = records.iter().position(|&b| b == b' ').unwrap();
    let len: usize = std::str::from_utf8(&records[..space])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, records.len());
    let key_value = &records[space + 1..len - 1];
    assert_eq!(key_value, [&b"SCHILY.xattr.user.nl="[..], &value].concat());
}
