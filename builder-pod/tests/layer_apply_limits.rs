//! threats-and-faults §2.3 #24: decompression bombs, huge headers, entry floods, deep trees,
//! truncation — each a typed error, with the partial file removed and nothing outside touched.

mod layer_fixtures;

use std::io::{self, Read, Write};
use std::sync::Arc;

use layer_fixtures::tar_builder::header_block;
use layer_fixtures::{Entry, Sandbox, TarFixture};
use stratum_builder::layer::{
    ApplyError, ApplyMode, ApplyOptions, ByteBudget, LimitKind, Limits, TarDefect, apply_layer,
    decompress, list_entries,
};

fn options(limits: Limits) -> ApplyOptions {
    ApplyOptions {
        limits,
        ..ApplyOptions::new(ApplyMode::Flatten)
    }
}

fn assert_limit(result: Result<impl std::fmt::Debug, ApplyError>, kind: LimitKind) {
    match result {
        Err(ApplyError::LimitExceeded { limit, .. }) if limit == kind => {}
        other => panic!("expected {kind:?} limit, got {other:?}"),
    }
}

/// A tar stream holding one file `name` of `size` zero bytes, generated on the fly.
struct ZeroFile {
    header: Vec<u8>,
    position: u64,
    total: u64,
}

impl ZeroFile {
    fn new(name: &str, size: u64) -> Self {
        let mut entry = Entry::file(name, b"");
        entry.header_size = Some(size);
        let header = header_block(&entry).to_vec();
        let padded = size.div_ceil(512) * 512;
        Self {
            total: 512 + padded + 1024,
            header,
            position: 0,
        }
    }
}

impl Read for ZeroFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.total {
            return Ok(0);
        }
        let len = buf.len().min((self.total - self.position) as usize);
        buf[..len].fill(0);
        if self.position < 512 {
            let from = self.position as usize;
            let take = (512 - from).min(len);
            buf[..take].copy_from_slice(&self.header[from..from + take]);
        }
        self.position += len as u64;
        Ok(len)
    }
}

fn compress_gzip(mut source: impl Read) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    io::copy(&mut source, &mut encoder).unwrap();
    encoder.finish().unwrap()
}

fn compress_zstd(mut source: impl Read) -> Vec<u8> {
    let mut encoder = zstd::Encoder::new(Vec::new(), 19).unwrap();
    io::copy(&mut source, &mut encoder).unwrap();
    encoder.finish().unwrap()
}

// --- (a) giant PAX / GNU records ---------------------------------------------------------------

/// A header announcing a `size`-byte extension record, followed by endless zeros; counts what
/// was read so the test can prove the record was never buffered.
struct HugeRecord {
    header: [u8; 512],
    read: u64,
}

impl Read for HugeRecord {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for (index, byte) in buf.iter_mut().enumerate() {
            let at = self.read + index as u64;
            *byte = if at < 512 {
                self.header[at as usize]
            } else {
                b'a'
            };
        }
        self.read += buf.len() as u64;
        Ok(buf.len())
    }
}

#[test]
fn giant_pax_record_is_refused_unread_go_cve_2022_2879() {
    for typeflag in [b'x', b'L', b'K', b'g'] {
        let mut entry = Entry::file("PaxHeaders/huge", b"").typeflag(typeflag);
        entry.header_size = Some(1 << 30);
        let mut source = HugeRecord {
            header: header_block(&entry),
            read: 0,
        };
        let sandbox = Sandbox::new();
        assert_limit(
            apply_layer(
                &mut source,
                &sandbox.dest,
                &ApplyOptions::new(ApplyMode::Flatten),
            ),
            LimitKind::HeaderBytes,
        );
        assert!(
            source.read < 1 << 20,
            "{}: {} bytes read for a refused record",
            typeflag as char,
            source.read
        );
        sandbox.assert_outside_unchanged();
    }
}

// --- (b) decompression bombs --------------------------------------------------------------------

#[test]
fn gzip_bomb_hits_the_layer_cap_and_leaves_no_partial_file_kaniko_gzip_bomb_no_size_cap() {
    let bomb = compress_gzip(ZeroFile::new("bomb", 64 << 20));
    assert!(
        bomb.len() < 128 << 10,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let sandbox = Sandbox::new();
    let reader = decompress(io::Cursor::new(bomb)).unwrap();
    let limits = Limits {
        max_bytes: 16 << 20,
        ..Limits::default()
    };
    assert_limit(
        apply_layer(reader, &sandbox.dest, &options(limits)),
        LimitKind::LayerBytes,
    );
    assert!(!sandbox.at("bomb").exists(), "partial file removed");
    sandbox.assert_outside_unchanged();
}

#[test]
fn zstd_bomb_hits_the_layer_cap_boxlite_ghsa_gcpm_8w8q_gp9v() {
    let bomb = compress_zstd(ZeroFile::new("bomb", 64 << 20));
    assert!(
        bomb.len() < 64 << 10,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    for mode in [ApplyMode::Flatten, ApplyMode::OverlayLayer] {
        let sandbox = Sandbox::new();
        let reader = decompress(io::Cursor::new(bomb.clone())).unwrap();
        let limits = Limits {
            max_bytes: 16 << 20,
            ..Limits::default()
        };
        let opts = ApplyOptions {
            mode,
            limits,
            ..ApplyOptions::new(mode)
        };
        assert_limit(
            apply_layer(reader, &sandbox.dest, &opts),
            LimitKind::LayerBytes,
        );
        assert_eq!(
            std::fs::read_dir(&sandbox.dest).unwrap().count(),
            0,
            "{mode:?}: nothing committed"
        );
        sandbox.assert_outside_unchanged();
    }
}

#[test]
fn bomb_after_the_end_marker_still_counts_boxlite_1372() {
    // A valid archive, then 64 MiB of zeros: the drain after the end marker is counted too.
    let mut stream = TarFixture::new().add(Entry::file("ok", b"ok")).finish();
    stream.extend(std::iter::repeat_n(0u8, 1 << 20));
    let trailing = io::Cursor::new(stream).chain(io::repeat(0).take(64 << 20));
    let gzip = compress_gzip(trailing);
    let sandbox = Sandbox::new();
    let limits = Limits {
        max_bytes: 16 << 20,
        ..Limits::default()
    };
    assert_limit(
        apply_layer(
            decompress(io::Cursor::new(gzip)).unwrap(),
            &sandbox.dest,
            &options(limits),
        ),
        LimitKind::LayerBytes,
    );
    sandbox.assert_outside_unchanged();
}

#[test]
fn budget_is_shared_across_the_layers_of_an_image_boxlite_ghsa_gcpm_8w8q_gp9v() {
    let budget = Arc::new(ByteBudget::new(15 << 20));
    let sandbox = Sandbox::new();
    let opts = ApplyOptions {
        budget: Some(budget.clone()),
        ..ApplyOptions::new(ApplyMode::Flatten)
    };
    for index in 0..2 {
        apply_layer(
            ZeroFile::new(&format!("layer{index}"), 6 << 20),
            &sandbox.dest,
            &opts,
        )
        .unwrap();
    }
    assert_limit(
        apply_layer(ZeroFile::new("layer2", 6 << 20), &sandbox.dest, &opts),
        LimitKind::ImageBytes,
    );
    assert!(!sandbox.at("layer2").exists(), "partial file removed");
    assert!(budget.used() > 15 << 20);
    sandbox.assert_outside_unchanged();
}

// --- (c) entry floods ---------------------------------------------------------------------------

/// `count` whiteout entries for files that do not exist (cheap to apply), generated lazily.
struct EntryFlood {
    block: [u8; 512],
    remaining: u64,
    offset: usize,
}

impl Read for EntryFlood {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < buf.len() {
            if self.offset == 512 {
                if self.remaining == 0 {
                    break;
                }
                self.remaining -= 1;
                self.offset = 0;
            }
            let take = (512 - self.offset).min(buf.len() - written);
            buf[written..written + take]
                .copy_from_slice(&self.block[self.offset..self.offset + take]);
            self.offset += take;
            written += take;
        }
        Ok(written)
    }
}

fn flood(count: u64) -> EntryFlood {
    EntryFlood {
        block: header_block(&Entry::file(".wh.nothing-here", b"")),
        remaining: count,
        offset: 512,
    }
}

#[test]
fn million_entries_are_refused_go_getter_cve_2023_0475() {
    // A stream of 10^6 entries against a 10^4 cap (the default cap, 10^6, is pinned by the
    // `limits` unit tests; walking a million headers in a debug build takes half a minute).
    let limits = Limits {
        max_entries: 10_000,
        ..Limits::default()
    };
    assert_limit(list_entries(flood(1_000_000), &limits), LimitKind::Entries);
    let sandbox = Sandbox::new();
    let limits = Limits {
        max_entries: 10_000,
        ..Limits::default()
    };
    assert_limit(
        apply_layer(flood(1_000_000), &sandbox.dest, &options(limits)),
        LimitKind::Entries,
    );
    sandbox.assert_outside_unchanged();
}

// --- (d) sparse files ---------------------------------------------------------------------------

#[test]
fn sparse_files_are_refused_tianon_badtars() {
    let gnu_sparse = TarFixture::new()
        .add(Entry::file("sparse", b"").typeflag(b'S'))
        .finish();
    let pax_sparse = TarFixture::new()
        .add(
            Entry::file("sparse", b"")
                .pax("GNU.sparse.major", "1")
                .pax("GNU.sparse.realsize", "1099511627776"),
        )
        .finish();
    for tar in [gnu_sparse, pax_sparse] {
        let sandbox = Sandbox::new();
        let err = sandbox.apply(&tar, ApplyMode::Flatten).unwrap_err();
        assert!(
            matches!(
                err,
                ApplyError::Tar {
                    defect: TarDefect::Sparse,
                    ..
                }
            ),
            "{err:?}"
        );
        sandbox.assert_outside_unchanged();
        assert_eq!(std::fs::read_dir(&sandbox.dest).unwrap().count(), 0);
    }
}

// --- (e) depth and length -----------------------------------------------------------------------

#[test]
fn deep_trees_and_long_paths_are_refused_without_stack_overflow_vibed_51() {
    let deep = "d/".repeat(10_000) + "f"; // 10k-deep, longer than PATH_MAX
    let sandbox = Sandbox::new();
    let tar = TarFixture::new().add(Entry::file(&deep, b"x")).finish();
    assert_limit(
        sandbox.apply(&tar, ApplyMode::Flatten),
        LimitKind::PathLength,
    );
    let deep_but_short = "d/".repeat(300) + "f";
    let tar = TarFixture::new()
        .add(Entry::file(&deep_but_short, b"x"))
        .finish();
    assert_limit(sandbox.apply(&tar, ApplyMode::Flatten), LimitKind::Depth);
    // A tree built one level per entry stops at the depth cap too.
    let mut fixture = TarFixture::new();
    let mut path = String::new();
    for _ in 0..1_000 {
        path.push_str("d/");
        fixture.push(Entry::dir(&path));
    }
    assert_limit(
        sandbox.apply(&fixture.finish(), ApplyMode::Flatten),
        LimitKind::Depth,
    );
    sandbox.assert_outside_unchanged();
}

// --- (f) truncation and corruption ---------------------------------------------------------------

#[test]
fn truncated_stream_removes_the_partial_file_tianon_badtars_missing_contents() {
    let full = TarFixture::new()
        .add(Entry::file("big", vec![7u8; 100_000]))
        .finish();
    let truncated = &full[..50_000];
    for mode in [ApplyMode::Flatten, ApplyMode::OverlayLayer] {
        let sandbox = Sandbox::new();
        let err = sandbox.apply(truncated, mode).unwrap_err();
        assert!(
            matches!(
                err,
                ApplyError::Tar {
                    defect: TarDefect::Truncated,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            !sandbox.at("big").exists(),
            "{mode:?}: partial file removed"
        );
        sandbox.assert_outside_unchanged();
    }
    // Cut inside a header block.
    let sandbox = Sandbox::new();
    let err = sandbox.apply(&full[..300], ApplyMode::Flatten).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::Tar {
                defect: TarDefect::Truncated,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn bad_gzip_crc_and_truncated_gzip_are_decompress_errors_podman_desktop_19166() {
    let layer = TarFixture::new()
        .add(Entry::file("f", vec![1u8; 10_000]))
        .finish();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&layer).unwrap();
    let gzip = gzip.finish().unwrap();
    let mut bad_crc = gzip.clone();
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 0xff;
    let truncated = gzip[..gzip.len() / 2].to_vec();
    for (label, bytes) in [("bad crc", bad_crc), ("truncated", truncated)] {
        let sandbox = Sandbox::new();
        let result = apply_layer(
            decompress(io::Cursor::new(bytes)).unwrap(),
            &sandbox.dest,
            &ApplyOptions::new(ApplyMode::OverlayLayer),
        );
        assert!(
            matches!(result, Err(ApplyError::Decompress { codec: "gzip", .. })),
            "{label}: {result:?}"
        );
        assert_eq!(
            std::fs::read_dir(&sandbox.dest).unwrap().count(),
            0,
            "{label}: nothing committed"
        );
        sandbox.assert_outside_unchanged();
    }
}

#[test]
fn overlay_layer_target_must_be_empty() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.at("stale"), b"x").unwrap();
    let tar = TarFixture::new().add(Entry::file("f", b"x")).finish();
    assert!(matches!(
        sandbox.apply(&tar, ApplyMode::OverlayLayer),
        Err(ApplyError::RootNotEmpty { .. })
    ));
    assert!(sandbox.at("stale").exists());
}
