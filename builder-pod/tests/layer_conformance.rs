//! Layer conformance on a real overlayfs (root only; never skipped): for each scenario, a lower
//! stack is mounted with the executor's options, a step runs in the merged dir, the merged view is
//! captured, and then `apply(flattened lowers, write_layer(diff_upper(upper, lowers)))` must equal
//! that view — for every applier. Named cases pin threats-and-faults §2.5 #29–#31.

#[path = "layer_conformance/apply.rs"]
mod apply;
#[path = "layer_conformance/overlay.rs"]
mod overlay;
#[path = "layer_conformance/snapshot.rs"]
mod snapshot;
#[path = "layer_conformance/trees.rs"]
mod trees;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use stratum_builder::layer::writer::Compression;
use stratum_builder::layer::{
    ApplyMode, ApplyOptions, Change, ChangeKind, DiffError, LayerBlob, WriteOptions, apply_layer,
    diff_upper, write_layer,
};

use apply::Member;
use overlay::{EXECUTOR_OPTIONS, Stack, sh};

/// A step run on a mounted stack, captured and unmounted.
struct Run {
    stack: Stack,
    /// The lowers flattened: the tree the layer is applied onto.
    flat: PathBuf,
    merged: snapshot::Snapshot,
    diff: Result<Vec<Change>, DiffError>,
}

/// A layer written from a run.
struct Layer {
    blob: LayerBlob,
    /// The uncompressed tar.
    tar: PathBuf,
    members: Vec<Member>,
}

impl Layer {
    fn names(&self) -> Vec<String> {
        self.members.iter().map(Member::name_str).collect()
    }

    fn member(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.name_str() == name)
            .unwrap_or_else(|| panic!("{name} not in the layer: {:?}", self.names()))
    }

    fn has(&self, name: &str) -> bool {
        self.members.iter().any(|m| m.name_str() == name)
    }
}

fn standard_lowers(stack: &Stack) -> Result<()> {
    trees::base_lower(&stack.lowers[0])?;
    trees::second_lower(&stack.lowers[1])
}

fn run_step(
    setup: impl FnOnce(&Stack) -> Result<()>,
    options: &str,
    step: impl FnOnce(&Path) -> Result<()>,
) -> Result<Run> {
    run_step_on(2, setup, options, step)
}

/// `run_step` on a stack of `layers` lower dirs.
fn run_step_on(
    layers: usize,
    setup: impl FnOnce(&Stack) -> Result<()>,
    options: &str,
    step: impl FnOnce(&Path) -> Result<()>,
) -> Result<Run> {
    let mut stack = Stack::new(layers)?;
    setup(&stack)?;
    let flat = stack.tmp.path().join("flat");
    stack.flatten_lowers(&flat)?;
    stack.mount(options)?;
    step(&stack.merged).context("the step failed")?;
    let merged = snapshot::take(&stack.merged)?;
    stack.unmount()?;
    let diff = diff_upper(&stack.upper, &stack.lowers_top_first());
    Ok(Run {
        stack,
        flat,
        merged,
        diff,
    })
}

fn script(text: &'static str) -> impl FnOnce(&Path) -> Result<()> {
    move |merged| sh(merged, text)
}

fn opts(compression: Compression, source_date_epoch: Option<i64>) -> WriteOptions {
    WriteOptions {
        compression,
        source_date_epoch,
        threads: 2,
    }
}

impl Run {
    fn changes(&self) -> &[Change] {
        self.diff.as_ref().expect("the diff succeeds")
    }

    fn write(&self, opts: &WriteOptions, tag: &str) -> Result<Layer> {
        let dir = self.stack.tmp.path();
        let blob_path = dir.join(format!("layer-{tag}.blob"));
        let file = File::create(&blob_path)?;
        let (blob, file) = write_layer(self.changes(), &self.stack.upper, file, opts)?;
        file.sync_all()?;
        let bytes = std::fs::read(&blob_path)?;
        ensure!(blob.size == bytes.len() as u64, "size");
        ensure!(
            blob.digest.to_string() == format!("sha256:{}", sha256_hex(&bytes)),
            "blob digest"
        );
        let tar_bytes = apply::decompress(&bytes)?;
        ensure!(
            blob.uncompressed_size == tar_bytes.len() as u64,
            "uncompressed size"
        );
        ensure!(
            blob.diff_id.to_string() == format!("sha256:{}", sha256_hex(&tar_bytes)),
            "diffID"
        );
        let tar = dir.join(format!("layer-{tag}.tar"));
        std::fs::write(&tar, &tar_bytes)?;
        let members = apply::list(&tar_bytes)?;
        apply::check_layer_invariants(&members)?;
        Ok(Layer { blob, tar, members })
    }

    /// Writes the layer with every codec (one diffID), applies it with every applier (GNU tar and
    /// Stratum's own `apply_layer`) onto a copy of the flattened lowers, and compares each result
    /// with the merged view.
    fn conform(&self, what: &str) -> Result<Layer> {
        let layer = self.write(&opts(Compression::None, None), "plain")?;
        for (tag, compression) in [
            ("gzip", Compression::Gzip { level: 1 }),
            ("zstd", Compression::Zstd { level: 3 }),
        ] {
            let compressed = self.write(&opts(compression, None), tag)?;
            ensure!(
                compressed.blob.diff_id == layer.blob.diff_id,
                "{tag} diffID"
            );
        }
        let applied = self.stack.tmp.path().join("applied-gnu-tar");
        overlay::copy_tree(&self.flat, &applied)?;
        apply::gnu_tar(&layer.tar, &applied)?;
        snapshot::assert_same(
            &self.merged,
            &snapshot::take(&applied)?,
            &format!("{what}, GNU tar"),
        )?;
        let applied = self.stack.tmp.path().join("applied-stratum");
        overlay::copy_tree(&self.flat, &applied)?;
        let stats = apply_layer(
            File::open(&layer.tar)?,
            &applied,
            &ApplyOptions::new(ApplyMode::Flatten),
        )?;
        ensure!(
            stats.entries == layer.members.len() as u64 && stats.entries == layer.blob.entries,
            "apply_layer applied {} entries of {}",
            stats.entries,
            layer.members.len()
        );
        snapshot::assert_same(
            &self.merged,
            &snapshot::take(&applied)?,
            &format!("{what}, stratum apply_layer"),
        )?;
        self.conform_as_overlay_lower(&layer, what)?;
        Ok(layer)
    }
}

impl Run {
    /// The executor's own path: the layer unpacked into its own directory in overlay encoding
    /// (`ApplyMode::OverlayLayer`: whiteouts as char 0/0, opaque dirs as xattrs) and stacked on
    /// the lowers must show exactly the merged view.
    fn conform_as_overlay_lower(&self, layer: &Layer, what: &str) -> Result<()> {
        let unpacked = self.stack.tmp.path().join("layer-as-lower");
        std::fs::create_dir_all(&unpacked)?;
        apply_layer(
            File::open(&layer.tar)?,
            &unpacked,
            &ApplyOptions::new(ApplyMode::OverlayLayer),
        )?;
        let seen = self.stack.with_view(Some(&unpacked), snapshot::take)?;
        snapshot::assert_same(&self.merged, &seen, &format!("{what}, as an overlay lower"))?;
        std::fs::remove_dir_all(&unpacked)?;
        Ok(())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn scripted_step_conforms() -> Result<()> {
    let run = run_step(
        standard_lowers,
        EXECUTOR_OPTIONS,
        script(trees::MAIN_SCRIPT),
    )?;
    let layer = run.conform("main script")?;
    let names = layer.names();
    for expected in [
        "etc/",
        "etc/.wh.to-delete",
        "etc/.wh.to-move",
        "etc/moved",
        "etc/removed-in-l1",
        "x/",
        "x/.wh..wh..opq",
        "x/fresh",
        "a1/.wh..wh..opq",
        ".wh.gone-dir",
        ".wh.ren",
        "ren2/in/g",
        "opq/.wh.from-l1",
        "srv/app/big-id",
    ] {
        ensure!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    ensure!(
        layer.members.iter().any(|m| m.name == b"names/caf\xe9"),
        "{names:?}"
    );
    // A whiteout of a path the second lower already deleted is not repeated.
    ensure!(!layer.has("etc/.wh.removed-in-l1"), "{names:?}");
    ensure!(layer.member("srv/app/big-id").uid == 3_000_000);
    let xattr = |name: &str, key: &str| layer.member(name).pax.get(key.as_bytes()).cloned();
    ensure!(
        xattr("usr/bin/ping-copy", "SCHILY.xattr.security.capability")
            == Some(trees::CAP_NET_RAW.to_vec())
    );
    ensure!(xattr("usr/lib/libx.so.1", "SCHILY.xattr.user.comment") == Some(b"a library".to_vec()));
    ensure!(
        xattr("usr/bin/nl-cap-copy", "SCHILY.xattr.security.capability")
            == Some(trees::CAP_WITH_NEWLINE.to_vec())
    );
    // chown(2) drops file capabilities; the layer must not bring them back.
    ensure!(xattr("usr/bin/ping", "SCHILY.xattr.security.capability").is_none());
    Ok(())
}

#[test]
fn generated_trees_conform() -> Result<()> {
    for seed in 1..=6 {
        let mut rng = trees::rng(seed);
        let run = run_step(
            |stack| {
                trees::random_lower(&stack.lowers[0], &mut trees::rng(seed + 1000))?;
                trees::random_lower(&stack.lowers[1], &mut trees::rng(seed + 2000))
            },
            EXECUTOR_OPTIONS,
            |merged| trees::random_ops(merged, &mut rng, 30),
        )?;
        run.conform(&format!("seed {seed}"))?;
    }
    Ok(())
}

#[path = "layer_conformance/named.rs"]
mod named;
