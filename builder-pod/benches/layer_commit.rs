//! Layer commit throughput: `diff_upper` + `write_layer` over a 1 GiB tree against the shell
//! pipeline `tar -cf - DIR | gzip -1 | sha256sum`, in the same run on the same warm tree, with the
//! peak RSS of each commit measured in its own child process (getrusage `ru_maxrss`).
//!
//! `cargo bench -p stratum-builder --bench layer_commit` (root not needed). Environment:
//! `STRATUM_BENCH_CORPUS` (default /tmp/stratum-layer-bench; generated once, deterministic),
//! `STRATUM_BENCH_RUNS` (default 2; the best run counts). Results: docs/arch/layer-perf.md.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::time::TimeValLike;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use stratum_builder::layer::writer::Compression;
use stratum_builder::layer::{WriteOptions, diff_upper, write_layer};

const MIB: u64 = 1024 * 1024;
/// Text 25%, binaries from /usr/lib 44%, random 31% of 1 GiB.
const TEXT_BYTES: u64 = 256 * MIB;
const BINARY_BYTES: u64 = 448 * MIB;
const RANDOM_BYTES: u64 = 320 * MIB;

/// The contenders, measured in interleaved rounds so load changes on a shared machine hit all
/// of them alike. `None` is the shell baseline.
const CONTENDERS: [(&str, Option<&str>); 7] = [
    ("tar | gzip -1 | sha256sum", None),
    ("stratum gzip-1, 2 threads", Some("gzip1:2")),
    ("stratum gzip-1, 1 thread", Some("gzip1:1")),
    ("stratum gzip-2, 2 threads", Some("gzip2:2")),
    ("stratum zstd-3, 2 threads", Some("zstd3:2")),
    ("stratum zstd-3, 1 thread", Some("zstd3:1")),
    ("stratum zstd-1, 2 threads", Some("zstd1:2")),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        return child(
            &args[i + 1],
            Path::new(&args[i + 2]),
            Path::new(&args[i + 3]),
        );
    }
    let corpus = PathBuf::from(
        std::env::var("STRATUM_BENCH_CORPUS").unwrap_or("/tmp/stratum-layer-bench".into()),
    );
    let runs: usize = std::env::var("STRATUM_BENCH_RUNS").map_or(Ok(2), |v| v.parse())?;
    let total = ensure_corpus(&corpus)?;
    let out = corpus.with_extension("blob");
    println!(
        "corpus {} : {:.1} MiB in {} files; best of {runs} interleaved rounds",
        corpus.display(),
        total.bytes as f64 / MIB as f64,
        total.files
    );

    // Warm the page cache so every contender reads from memory.
    shell(&format!(
        "tar -cf - -C '{}' . > /dev/null",
        corpus.display()
    ))?;

    let mut best: Vec<Option<Measured>> = vec![None; CONTENDERS.len()];
    for _ in 0..runs.max(1) {
        for (slot, (_, codec)) in best.iter_mut().zip(CONTENDERS) {
            let m = measure(|| match codec {
                None => {
                    shell(&format!(
                        "tar -cf - -C '{}' . | gzip -1 | sha256sum > /dev/null",
                        corpus.display()
                    ))?;
                    Ok(None)
                }
                Some(codec) => run_child(codec, &corpus, &out).map(Some),
            })?;
            *slot = Some(match *slot {
                Some(b) => Measured {
                    wall: b.wall.min(m.wall),
                    cpu: b.cpu.min(m.cpu),
                    stats: b.stats.or(m.stats),
                },
                None => m,
            });
        }
    }
    let baseline = best[0].expect("measured");
    println!(
        "{:<30} {:>8} {:>11} {:>6} {:>8} {:>6} {:>9} {:>16}",
        "", "wall", "MiB/s", "ratio", "cpu", "ratio", "peak RSS", "blob (ratio)"
    );
    for ((label, _), m) in CONTENDERS.iter().zip(&best) {
        report(label, total.bytes, m.expect("measured"), baseline);
    }
    let _ = std::fs::remove_file(&out);
    Ok(())
}

/// What a child commit reports about itself.
#[derive(Debug, Clone, Copy)]
struct ChildStats {
    max_rss_kib: i64,
    compressed: u64,
}

#[derive(Debug, Clone, Copy)]
struct Measured {
    wall: Duration,
    /// user + system time of the whole contender (every process of the pipeline).
    cpu: Duration,
    stats: Option<ChildStats>,
}

fn report(label: &str, bytes: u64, m: Measured, baseline: Measured) {
    let mib_s = bytes as f64 / MIB as f64 / m.wall.as_secs_f64();
    let wall_ratio = baseline.wall.as_secs_f64() / m.wall.as_secs_f64();
    let cpu_ratio = baseline.cpu.as_secs_f64() / m.cpu.as_secs_f64();
    print!(
        "{label:<30} {:>6.2} s {mib_s:>5.1} MiB/s {wall_ratio:>5.2}x {:>6.2} s {cpu_ratio:>5.2}x",
        m.wall.as_secs_f64(),
        m.cpu.as_secs_f64()
    );
    if let Some(c) = m.stats {
        print!(
            " {:>5.1} MiB {:>7.1} MiB ({:.3})",
            c.max_rss_kib as f64 / 1024.0,
            c.compressed as f64 / MIB as f64,
            c.compressed as f64 / bytes as f64
        );
    }
    println!();
}

/// Wall time and the CPU time of every descendant the closure waits for (RUSAGE_CHILDREN
/// accumulates each reaped process tree).
fn measure(f: impl FnOnce() -> Result<Option<ChildStats>>) -> Result<Measured> {
    let children_cpu = || -> Result<Duration> {
        let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
        let us = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
        Ok(Duration::from_micros(us as u64))
    };
    let cpu_before = children_cpu()?;
    let start = Instant::now();
    let stats = f()?;
    let wall = start.elapsed();
    Ok(Measured {
        wall,
        cpu: children_cpu()? - cpu_before,
        stats,
    })
}

fn shell(script: &str) -> Result<()> {
    let status = Command::new("bash")
        .args(["-o", "pipefail", "-c", script])
        .status()?;
    if !status.success() {
        bail!("{script}: {status}");
    }
    Ok(())
}

fn run_child(codec: &str, corpus: &Path, out: &Path) -> Result<ChildStats> {
    let output = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(codec)
        .arg(corpus)
        .arg(out)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        bail!("child {codec} failed: {}", output.status);
    }
    let text = String::from_utf8(output.stdout)?;
    let fields: Vec<i64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("child output {text:?}"))?;
    let [max_rss_kib, compressed] = fields[..] else {
        bail!("child output {text:?}");
    };
    Ok(ChildStats {
        max_rss_kib,
        compressed: compressed as u64,
    })
}

/// One commit, as the executor does it: diff the tree, stream the layer to a file.
fn child(codec: &str, corpus: &Path, out: &Path) -> Result<()> {
    let (name, threads) = codec.split_once(':').context("codec:threads")?;
    let compression = match name {
        "gzip1" => Compression::Gzip { level: 1 },
        "gzip2" => Compression::Gzip { level: 2 },
        "zstd3" => Compression::Zstd { level: 3 },
        "zstd1" => Compression::Zstd { level: 1 },
        // Not a contender: the walk, tar encoding, file reads and both sha256 passes alone.
        "none" => Compression::None,
        other => bail!("unknown codec {other}"),
    };
    let opts = WriteOptions {
        compression,
        source_date_epoch: None,
        threads: threads.parse()?,
    };
    let changes = diff_upper(corpus, &[])?;
    let (blob, file) = write_layer(&changes, corpus, File::create(out)?, &opts)?;
    drop(file);
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    println!("{} {}", usage.max_rss(), blob.size);
    Ok(())
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    bytes: u64,
    files: u64,
}

/// Generates the corpus once (deterministic for a given /usr/lib); a `.done` file beside it
/// records the totals.
fn ensure_corpus(dir: &Path) -> Result<Totals> {
    let done = dir.with_extension("done");
    if let Ok(text) = std::fs::read_to_string(&done) {
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(bytes)), Some(Ok(files))) = (parts.next(), parts.next()) {
            return Ok(Totals { bytes, files });
        }
    }
    println!("generating the 1 GiB corpus in {} ...", dir.display());
    let _ = std::fs::remove_dir_all(dir);
    let mut totals = Totals::default();
    let mut rng = StdRng::seed_from_u64(0x5742_4154_554d);
    text_files(&dir.join("text"), &mut rng, &mut totals)?;
    binaries(&dir.join("bin"), &mut totals)?;
    random_files(&dir.join("random"), &mut rng, &mut totals)?;
    std::fs::write(&done, format!("{} {}\n", totals.bytes, totals.files))?;
    Ok(totals)
}

fn text_files(dir: &Path, rng: &mut StdRng, totals: &mut Totals) -> Result<()> {
    let words: Vec<String> = (0..4000)
        .map(|_| {
            let len = rng.random_range(2..10);
            (0..len)
                .map(|_| rng.random_range(b'a'..=b'z') as char)
                .collect()
        })
        .collect();
    let mut written = 0;
    let mut i = 0u64;
    while written < TEXT_BYTES {
        let path = dir.join(format!("d{:02}/d{:02}/file{i}.txt", i % 37, i % 11));
        std::fs::create_dir_all(path.parent().expect("has parent"))?;
        let size = rng.random_range(200..16_384);
        let mut text = String::with_capacity(size + 16);
        while text.len() < size {
            text.push_str(&words[rng.random_range(0..words.len())]);
            text.push(if rng.random_range(0..12) == 0 {
                '\n'
            } else {
                ' '
            });
        }
        std::fs::write(&path, &text)?;
        written += text.len() as u64;
        i += 1;
    }
    totals.bytes += written;
    totals.files += i;
    Ok(())
}

fn binaries(dir: &Path, totals: &mut Totals) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let sources: Vec<PathBuf> = walkdir::WalkDir::new("/usr/lib")
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| (64 * 1024..=16 * MIB).contains(&m.len()))
        })
        .map(|e| e.into_path())
        .collect();
    if sources.is_empty() {
        bail!("no medium-sized files under /usr/lib");
    }
    let mut written = 0;
    let mut i = 0;
    while written < BINARY_BYTES {
        let src = &sources[i % sources.len()];
        let dest = dir.join(format!(
            "{i:05}-{}",
            src.file_name().unwrap().to_string_lossy()
        ));
        written += std::fs::copy(src, dest)?;
        i += 1;
    }
    totals.bytes += written;
    totals.files += i as u64;
    Ok(())
}

fn random_files(dir: &Path, rng: &mut StdRng, totals: &mut Totals) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut written = 0;
    let mut i = 0;
    let mut chunk = vec![0u8; MIB as usize];
    while written < RANDOM_BYTES {
        let mib = rng
            .random_range(1..=16)
            .min((RANDOM_BYTES - written) / MIB)
            .max(1);
        let mut file = File::create(dir.join(format!("blob{i:03}.bin")))?;
        for _ in 0..mib {
            rng.fill_bytes(&mut chunk);
            file.write_all(&chunk)?;
        }
        written += mib * MIB;
        i += 1;
    }
    totals.bytes += written;
    totals.files += i;
    Ok(())
}
