//! The operator benchmark (issue 5): N ImageBuilds created at once against the API-server
//! emulator → time until every builder pod exists, creation→pod and creation→status latency
//! percentiles, the operator's peak RSS and CPU seconds. Not a test; `scripts/bench-operator`
//! wraps it and docs/performance.md ("Operator") records the figures.
//!
//! No kubelet runs: pods stay `Pending`, unscheduled, so the run measures the operator's own
//! work (watch, list pods, create pod, status apply, Event) and not builds. The operator runs
//! with `--concurrency N`, so every build gets its pod at once.
//!
//! Latencies are taken from the emulator's commit stream in this process (monotonic clock at
//! the moment each write commits), not from status timestamps (whole seconds) and not from the
//! operator's metrics (it exports no reconcile-duration histogram):
//! - pod latency: ImageBuild created → its builder pod created;
//! - status latency: ImageBuild created → its status first names the pod (phase `Pending`).
//!
//! Operator figures come from /proc/<pid>: `VmHWM` (peak RSS) and utime+stime (CPU seconds),
//! the latter also before the builds (start-up and cache sync) so the table shows both.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::PostParams;
use stratum_crds::{BUILD_LABEL, ImageBuild};
use stratum_e2e::apiserver::store::EventType;
use stratum_e2e::apiserver::{ApiServer, Config, Emulator};
use stratum_e2e::e2e::{BUILDER_IMAGE, Operator, OperatorSpec, binaries, ledger, repo_root};
use tokio::sync::broadcast::error::RecvError;

#[derive(Debug, Parser)]
#[command(about = "Time the operator on N ImageBuilds created at once (docs/performance.md)")]
struct Args {
    /// ImageBuilds to create.
    #[arg(long, default_value_t = 1000)]
    builds: usize,
    /// The `stratum-operator` binary (default: this profile's, from the cargo target dir).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Parallel create requests while creating the builds.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// The operator's RUST_LOG.
    #[arg(long, default_value = "info")]
    log_filter: String,
}

const NAMESPACE: &str = "bench";

/// When each build's milestones committed (monotonic).
#[derive(Debug, Default, Clone, Copy)]
struct Times {
    created: Option<Instant>,
    pod: Option<Instant>,
    status: Option<Instant>,
}

#[derive(Debug, Default)]
struct Procfs {
    hwm_kib: u64,
    rss_kib: u64,
    cpu_secs: f64,
}

fn procfs(pid: u32) -> anyhow::Result<Procfs> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name (which may contain spaces): state is field
    // 3, utime 14, stime 15 (proc(5)), in clock ticks.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let cpu_ticks = ticks(11) + ticks(12);
    Ok(Procfs {
        hwm_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
        cpu_secs: cpu_ticks as f64 / clock_ticks(),
    })
}

/// `getconf CLK_TCK` (USER_HZ; 100 on every Linux ABI in practice).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest-rank: the smallest value with at least p% of the samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn build(name: &str) -> anyhow::Result<ImageBuild> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "stratum.dev/v1alpha1",
        "kind": "ImageBuild",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "source": {"inline": {"dockerfile": format!("FROM busybox\nLABEL n={name}\n")}},
            "output": {"image": format!("registry.bench.invalid/bench/{name}:1")},
        },
    }))?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // On Ctrl-C or SIGTERM, return so that drops run: the operator child is killed and the
    // temporary directory removed.
    tokio::select! {
        result = run(args) => result,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = term.recv() => bail!("terminated"),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let operator_bin = match &args.operator {
        Some(p) => p.clone(),
        None => binaries::binary(binaries::OPERATOR)?,
    };
    let dir = tempfile::Builder::new()
        .prefix("stratum-operator-bench-")
        .tempdir()?;

    // A history window larger than the run's writes: the operator's watches never need a
    // relist, so the figures are the steady-state path.
    let server = ApiServer::new(Config {
        history_window: 20 * args.builds + 10_000,
        ..Config::default()
    });
    let emulator = Emulator::serve(server.clone(), 0).await?;
    let kubeconfig = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig)?;
    let client = server.client();

    let crd_text = std::fs::read_to_string(repo_root().join("crds/imagebuild.yaml"))?;
    let crd: CustomResourceDefinition =
        serde_saphyr::from_str(&crd_text).context("parsing crds/imagebuild.yaml")?;
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await?;
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;

    let spec = OperatorSpec {
        binary: operator_bin.clone(),
        kubeconfig,
        log: dir.path().join("operator.log"),
        builder_image: BUILDER_IMAGE.into(),
        concurrency: u32::try_from(args.builds).unwrap_or(u32::MAX),
        extra_args: Vec::new(),
        log_filter: args.log_filter.clone(),
        identity: "operator-bench".into(),
        wait_ready: true,
        env: Vec::new(),
    };
    let operator = Operator::start(&spec).await?;
    let pid = operator.pid();
    let idle = procfs(pid)?;

    // Record milestones from the commit stream.
    let mut rx = ledger::subscribe(&server);
    let n = args.builds;
    let recorder = tokio::spawn(async move {
        let mut times: HashMap<String, Times> = HashMap::new();
        let (mut pods, mut statuses) = (0, 0);
        while pods < n || statuses < n {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(k)) => bail!("the recorder missed {k} events"),
                Err(RecvError::Closed) => bail!("the API server stopped"),
            };
            let at = Instant::now();
            if ev.key.namespace != NAMESPACE {
                continue;
            }
            match (ev.key.resource.as_str(), ev.type_) {
                ("imagebuilds", EventType::Added) => {
                    times.entry(ev.key.name.clone()).or_default().created = Some(at);
                }
                ("imagebuilds", EventType::Modified) => {
                    let t = times.entry(ev.key.name.clone()).or_default();
                    if t.status.is_none() && ev.object["status"]["podName"].is_string() {
                        t.status = Some(at);
                        statuses += 1;
                    }
                }
                ("pods", EventType::Added) => {
                    if let Some(b) = ev.object["metadata"]["labels"][BUILD_LABEL].as_str() {
                        let t = times.entry(b.to_owned()).or_default();
                        if t.pod.is_none() {
                            t.pod = Some(at);
                            pods += 1;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok((times, Instant::now()))
    });

    let builds: Api<ImageBuild> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let builds = builds.clone();
            async move {
                let b = build(&format!("b-{i:04}"))?;
                builds.create(&PostParams::default(), &b).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.parallel.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    let created = started.elapsed();

    let (times, all_done) =
        match tokio::time::timeout(Duration::from_secs(args.timeout), recorder).await {
            Ok(joined) => joined??,
            Err(_) => bail!(
                "not every build got its pod and status within {} s; operator log: {}",
                args.timeout,
                spec.log.display()
            ),
        };
    let done = procfs(pid)?;
    let metrics = operator.metrics().unwrap_or_default();
    let errors: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("stratum_reconcile_errors_total{"))
        .collect();

    let mut pod_lat: Vec<Duration> = Vec::new();
    let mut status_lat: Vec<Duration> = Vec::new();
    let mut last_pod = started;
    for t in times.values() {
        if let (Some(c), Some(p)) = (t.created, t.pod) {
            pod_lat.push(p.duration_since(c));
            last_pod = last_pod.max(p);
        }
        if let (Some(c), Some(s)) = (t.created, t.status) {
            status_lat.push(s.duration_since(c));
        }
    }
    pod_lat.sort();
    status_lat.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);

    println!("operator benchmark: {n} ImageBuilds created at once, no kubelet (pods stay Pending)");
    println!("operator binary: {}", operator_bin.display());
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| create {n} ImageBuilds ({} parallel requests) | {} |",
        args.parallel,
        ms(created)
    );
    println!(
        "| first create → all {n} builder pods exist | {} |",
        ms(last_pod - started)
    );
    println!(
        "| first create → all {n} statuses name their pod | {} |",
        ms(all_done - started)
    );
    println!(
        "| ImageBuild created → pod created, p50 / p99 / max | {} / {} / {} |",
        ms(percentile(&pod_lat, 50.0)),
        ms(percentile(&pod_lat, 99.0)),
        ms(percentile(&pod_lat, 100.0))
    );
    println!(
        "| ImageBuild created → status written, p50 / p99 / max | {} / {} / {} |",
        ms(percentile(&status_lat, 50.0)),
        ms(percentile(&status_lat, 99.0)),
        ms(percentile(&status_lat, 100.0))
    );
    println!(
        "| operator peak RSS (VmHWM) | {:.1} MiB |",
        done.hwm_kib as f64 / 1024.0
    );
    println!(
        "| operator RSS at the end (VmRSS) | {:.1} MiB |",
        done.rss_kib as f64 / 1024.0
    );
    println!(
        "| operator CPU: start-up and cache sync | {:.2} s |",
        idle.cpu_secs
    );
    println!(
        "| operator CPU: the {n} builds | {:.2} s |",
        done.cpu_secs - idle.cpu_secs
    );
    println!(
        "| reconcile errors | {} |",
        if errors.is_empty() {
            "none".to_owned()
        } else {
            errors.join(", ")
        }
    );
    drop(operator);
    Ok(())
}
