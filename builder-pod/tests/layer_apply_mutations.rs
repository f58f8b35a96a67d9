//! §7 promise 3 (no panics on hostile bytes): byte-flipped and truncated variants of a rich,
//! valid layer must each either apply or fail with a typed error — never panic, never touch
//! anything outside `dest`. A fixed seed keeps failures reproducible; each failure found this
//! way becomes a named fixture.

mod layer_fixtures;

use layer_fixtures::tar_builder::fix_checksum;
use layer_fixtures::{Entry, MODES, Sandbox, TarFixture};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stratum_builder::layer::{Limits, list_entries};

fn rich_layer() -> Vec<u8> {
    let mut fixture = TarFixture::new()
        .add(Entry::dir("./"))
        .add(Entry::dir("etc/"))
        .add(Entry::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"))
        .add(Entry::symlink("localetc", "/etc"))
        .add(Entry::symlink("up", "../victim"))
        .add(Entry::file(format!("{}/long", "d".repeat(150)), b"long").xattr("user.a", "b"))
        .add(Entry::hardlink("etc/passwd-link", "/etc/passwd"))
        .add(Entry::file("etc/.wh.shadow", b""))
        .add(Entry::dir("opq/"))
        .add(Entry::file("opq/.wh..wh..opq", b""))
        .add(Entry::file("bin/tool", vec![0x5a; 3000]).mode(0o4755))
        .add(Entry::char_device("dev/null", 1, 3))
        .add(Entry::fifo("run/fifo"));
    fixture.gnu_long_name(format!("{}/gnu", "g".repeat(120)).as_bytes());
    fixture.push(Entry::file("short", b"gnu"));
    fixture.finish()
}

#[test]
fn mutated_layers_never_panic_or_escape() {
    let original = rich_layer();
    // Header blocks of the original: after mutating, their checksums are usually repaired so
    // the mutation reaches the field parsers instead of stopping at the checksum.
    let headers: Vec<usize> = (0..original.len() / 512)
        .map(|block| block * 512)
        .filter(|at| &original[at + 257..at + 263] == b"ustar\0")
        .collect();
    let mut rng = StdRng::seed_from_u64(0x5742_4154_554d);
    for round in 0..300 {
        let mut bytes = original.clone();
        for _ in 0..rng.random_range(1..=8) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = match rng.random_range(0..4) {
                0 => rng.random(),
                1 => b'/',
                2 => b'.',
                _ => 0,
            };
        }
        if rng.random_bool(0.9) {
            for at in &headers {
                fix_checksum(&mut bytes[*at..*at + 512]);
            }
        }
        if rng.random_bool(0.25) {
            bytes.truncate(rng.random_range(0..bytes.len()));
        }
        let _ = list_entries(&bytes[..], &Limits::default());
        let sandbox = Sandbox::new();
        let mode = MODES[round % 2];
        let _ = sandbox.apply(&bytes, mode);
        sandbox.assert_outside_unchanged();
    }
}
