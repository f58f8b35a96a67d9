//! Named cases from threats-and-faults §2.5 (#29 names that look like whiteouts, #30 diff
//! semantics, #31 reproducibility) and design.md §4 (hardlinks), each on a real overlay.

use super::*;

fn opaque_markers(layer: &Layer) -> Vec<String> {
    layer
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".wh..wh..opq"))
        .collect()
}

#[test]
fn rm_rf_then_mkdir_is_an_opaque_dir() -> Result<()> {
    // #30a: `rm -rf /x && mkdir /x`.
    let run = run_step(
        standard_lowers,
        EXECUTOR_OPTIONS,
        script("rm -rf x && mkdir x"),
    )?;
    let layer = run.conform("rm -rf x && mkdir x")?;
    ensure!(
        layer.names() == ["x/", "x/.wh..wh..opq"],
        "{:?}",
        layer.names()
    );
    Ok(())
}

#[test]
fn removing_emptying_and_refilling_a_dir_are_three_layers() -> Result<()> {
    // #30b: removal only vs `rm -rf && mkdir` (empty) vs recreation with new files.
    let mut diff_ids = Vec::new();
    for step in [
        "rm -rf a1",
        "rm -rf a1 && mkdir a1",
        "rm -rf a1 && mkdir a1 && echo new > a1/new",
    ] {
        let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |m| sh(m, step))?;
        diff_ids.push(run.conform(step)?.blob.diff_id);
    }
    diff_ids.sort();
    diff_ids.dedup();
    ensure!(diff_ids.len() == 3, "the three steps share a layer");
    Ok(())
}

#[test]
fn dirs_that_hid_nothing_get_no_opaque_marker() -> Result<()> {
    // #30c: the kernel marks a directory opaque when it is created over a whiteout and when
    // `mv`'s fallback re-creates a renamed lower dir; only one that hides a lower dir needs it.
    let step = "mkdir brand-new && rm etc/hostname && mkdir etc/hostname && mv ren ren2 \
                && rm -rf a1 && mkdir a1";
    let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |m| sh(m, step))?;
    let kernel_marked: Vec<_> = ["etc/hostname", "ren2", "a1"]
        .into_iter()
        .filter(|d| {
            xattr::get(run.stack.upper.join(d), "trusted.overlay.opaque")
                .unwrap()
                .is_some()
        })
        .collect();
    ensure!(
        kernel_marked.contains(&"etc/hostname"),
        "the kernel no longer marks dirs created over whiteouts opaque: {kernel_marked:?}"
    );
    let layer = run.conform(step)?;
    ensure!(
        opaque_markers(&layer) == ["a1/.wh..wh..opq"],
        "{:?}",
        layer.names()
    );
    Ok(())
}

#[test]
fn new_hardlink_to_a_lower_file_carries_target_and_parents() -> Result<()> {
    // #30e and design.md §4: overlay copies the target up on link(2); both names share the
    // upper inode, so the layer holds the file and a hardlink to it, with every parent dir.
    let step = "mkdir -p new/dir && ln usr/share/doc/linked-orig new/dir/link";
    let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |m| sh(m, step))?;
    let layer = run.conform(step)?;
    ensure!(
        layer.names()
            == [
                "new/",
                "new/dir/",
                "new/dir/link",
                "usr/",
                "usr/share/",
                "usr/share/doc/",
                "usr/share/doc/linked-orig"
            ],
        "{:?}",
        layer.names()
    );
    let (first, second) = (
        layer.member("new/dir/link"),
        layer.member("usr/share/doc/linked-orig"),
    );
    ensure!(
        first.typeflag == b'0' && second.typeflag == b'1',
        "{first:?} {second:?}"
    );
    ensure!(second.link == b"new/dir/link", "{second:?}");
    Ok(())
}

#[test]
fn writing_through_one_name_of_a_lower_hardlink_pair_breaks_it() -> Result<()> {
    // design.md §4: overlay (index=off) copies up only the written name.
    let step = "echo more >> usr/share/doc/pair-a";
    let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |m| sh(m, step))?;
    ensure!(
        run.merged.hardlinks.is_empty(),
        "{:?}",
        run.merged.hardlinks
    );
    let layer = run.conform(step)?;
    ensure!(layer.member("usr/share/doc/pair-a").typeflag == b'0');
    ensure!(!layer.has("usr/share/doc/pair-b"));
    Ok(())
}

#[test]
fn hardlinks_among_new_files_stay_hardlinks() -> Result<()> {
    let step = "mkdir -p n && echo x > n/a && ln n/a n/b && ln n/a n/c";
    let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |m| sh(m, step))?;
    let layer = run.conform(step)?;
    ensure!(layer.member("n/a").typeflag == b'0');
    for name in ["n/b", "n/c"] {
        ensure!(layer.member(name).typeflag == b'1' && layer.member(name).link == b"n/a");
    }
    Ok(())
}

#[test]
fn sockets_are_omitted() -> Result<()> {
    // #30f. The listener is closed at once: a bound socket pins the mount, and its file stays.
    let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |merged| {
        std::fs::create_dir_all(merged.join("run"))?;
        drop(std::os::unix::net::UnixListener::bind(
            merged.join("run/sock"),
        )?);
        std::fs::write(merged.join("run/pid"), "1")?;
        Ok(())
    })?;
    let layer = run.conform("socket")?;
    ensure!(layer.names() == ["run/", "run/pid"], "{:?}", layer.names());
    Ok(())
}

#[test]
fn names_that_look_like_whiteouts_fail_the_commit() -> Result<()> {
    // #29: never emitted as whiteouts; the error names the path.
    for (step, path) in [
        ("touch etc/.wh.passwd", "etc/.wh.passwd"),
        ("mkdir .wh.usr", ".wh.usr"),
        ("touch x/.wh..wh..opq", "x/.wh..wh..opq"),
    ] {
        let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |m| sh(m, step))?;
        match &run.diff {
            Err(err @ DiffError::WhiteoutName { path: got }) => {
                ensure!(got == Path::new(path), "{step}: {got:?}");
                ensure!(err.to_string().contains(path), "{err}");
            }
            other => anyhow::bail!("{step}: expected WhiteoutName, got {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn redirect_dir_and_metacopy_uppers_are_refused() -> Result<()> {
    for (options, step, xattr) in [
        (
            "redirect_dir=on,index=off",
            "mv ren ren2",
            "trusted.overlay.redirect",
        ),
        (
            "redirect_dir=on,metacopy=on,index=off",
            "chmod 600 etc/passwd",
            "trusted.overlay.metacopy",
        ),
    ] {
        let run = run_step(standard_lowers, options, |m| sh(m, step))?;
        match &run.diff {
            Err(DiffError::OverlayFeature { xattr: got, .. }) => ensure!(*got == xattr),
            other => anyhow::bail!("{options}: expected OverlayFeature, got {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn the_same_diff_written_30_times_is_byte_identical() -> Result<()> {
    // #31 (containerd makeDiffTarReproTest): with and without SOURCE_DATE_EPOCH, per codec.
    let run = run_step(
        standard_lowers,
        EXECUTOR_OPTIONS,
        script(trees::MAIN_SCRIPT),
    )?;
    for epoch in [None, Some(1_700_000_000)] {
        for compression in [
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let first = run.write(&opts(compression, epoch), "repro")?.blob;
            for i in 0..30 {
                let o = WriteOptions {
                    threads: 1 + i % 2,
                    ..opts(compression, epoch)
                };
                let again = run.write(&o, "repro")?.blob;
                ensure!(again == first, "{compression:?} {epoch:?} run {i}");
            }
        }
    }
    Ok(())
}

#[test]
fn reproducible_layers_clamp_times_and_keep_parent_metadata() -> Result<()> {
    // #31: whiteouts at epoch 0; implicit parents with their real mode and owner; every mtime
    // at or before SOURCE_DATE_EPOCH.
    let epoch = 1_000_000_000; // 2001, before anything this test creates
    let step = "echo new > srv/app/new && rm etc/hostname && touch home/user/.profile";
    let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |m| sh(m, step))?;
    let layer = run.write(&opts(Compression::None, Some(epoch)), "epoch")?;
    ensure!(
        layer.members.iter().all(|m| m.mtime <= epoch as u64),
        "{:?}",
        layer.members
    );
    ensure!(layer.member("etc/.wh.hostname").mtime == 0);
    let app = layer.member("srv/app/");
    ensure!(
        (app.mode, app.uid, app.gid) == (0o2775, 1000, 1000),
        "{app:?}"
    );
    let srv = layer.member("srv/");
    ensure!(
        srv.pax
            .get(&b"SCHILY.xattr.user.dir-tag"[..])
            .map(Vec::as_slice)
            == Some(&b"srv"[..]),
        "{srv:?}"
    );
    let home = layer.member("home/user/");
    ensure!(
        (home.mode, home.uid, home.gid) == (0o750, 1000, 1000),
        "{home:?}"
    );
    run.conform(step)?;
    Ok(())
}

#[test]
fn a_step_that_changes_nothing_adds_no_layer() -> Result<()> {
    // Reading, creating-then-removing and rewriting nothing leaves copied-up parents only.
    let step = "cat etc/passwd >/dev/null && mkdir -p tmp/t && rmdir tmp/t \
                && touch srv/app/tmp && rm srv/app/tmp";
    let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |m| sh(m, step))?;
    ensure!(run.changes().is_empty(), "{:?}", run.changes());
    let layer = run.write(&opts(Compression::Gzip { level: 6 }, None), "empty")?;
    ensure!(layer.blob.is_empty() && layer.members.is_empty());
    Ok(())
}

#[test]
fn change_kinds_on_a_real_overlay() -> Result<()> {
    let step = "echo a > etc/new && echo b >> etc/passwd && rm etc/hostname";
    let run = run_step(standard_lowers, EXECUTOR_OPTIONS, |m| sh(m, step))?;
    let kinds: Vec<_> = run
        .changes()
        .iter()
        .map(|c| (c.path.to_str().unwrap(), c.kind))
        .collect();
    ensure!(
        kinds
            == [
                ("etc", ChangeKind::Parent),
                ("etc/hostname", ChangeKind::Deleted),
                ("etc/new", ChangeKind::Added),
                ("etc/passwd", ChangeKind::Modified),
            ],
        "{kinds:?}"
    );
    Ok(())
}

#[test]
fn a_second_step_diffs_against_the_unpacked_first_layer() -> Result<()> {
    // Two RUN steps in a row, as the executor runs them: the first layer is unpacked into its
    // own lower dir by `apply_layer` (overlay encoding: 0/0 whiteouts, opaque xattrs), and the
    // second step's diff resolves paths through it (lower.rs) — whiteouts only for what that
    // stack still shows, no whiteout for re-creating what the first layer deleted.
    let first = run_step(
        standard_lowers,
        EXECUTOR_OPTIONS,
        script(trees::MAIN_SCRIPT),
    )?;
    let first_layer = first.write(&opts(Compression::None, None), "first")?;
    let second_step = "rm -rf x && echo back > a1/again && echo again > etc/to-delete \
                       && rm etc/newfile && rm -rf ren2 && mv brand brand2 \
                       && echo file > gone-dir && rm -rf opq && rm usr/share/doc/pair-b";
    let run = run_step_on(
        3,
        |stack| {
            standard_lowers(stack)?;
            apply_layer(
                File::open(&first_layer.tar)?,
                &stack.lowers[2],
                &ApplyOptions::new(ApplyMode::OverlayLayer),
            )?;
            Ok(())
        },
        EXECUTOR_OPTIONS,
        |m| sh(m, second_step),
    )?;
    let layer = run.conform(second_step)?;
    for expected in [
        ".wh.x",
        "a1/again",
        "etc/to-delete",
        "etc/.wh.newfile",
        ".wh.ren2",
        ".wh.brand",
        "gone-dir",
        ".wh.opq",
    ] {
        ensure!(
            layer.has(expected),
            "{expected} missing from {:?}",
            layer.names()
        );
    }
    // Deleted by the first layer, so re-creating it needs no whiteout; nothing hides a1 now.
    ensure!(
        !layer.has("etc/.wh.to-delete") && !layer.has("a1/.wh..wh..opq"),
        "{:?}",
        layer.names()
    );
    Ok(())
}
