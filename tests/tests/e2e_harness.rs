//! The harness's own controls, end to end: the operator process can be killed mid-build and
//! restarted, and the build still ends once, in its one pod. (The larger kill/restart, replica and
//! fault scenarios build on these controls.) Runs as root.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use stratum_crds::Phase;
use stratum_e2e::e2e::{Cluster, ClusterOptions, processes_with};

const TIMEOUT: Duration = Duration::from_secs(180);

async fn restart_mid_build(cluster: &mut Cluster) -> anyhow::Result<()> {
    let first_pid = cluster.operator().context("the operator runs")?.pid();
    cluster
        .create(&cluster.inline_build("restart", "FROM {BASE}\nRUN sleep 3\n"))
        .await?;
    cluster.wait_pod_running("restart-1-1", TIMEOUT).await?;
    cluster.kill_operator();
    ensure!(cluster.operator().is_none());
    let operator = cluster.restart_operator().await?;
    ensure!(operator.is_running() && operator.pid() != first_pid);
    let build = cluster
        .wait_phase("restart", Phase::Succeeded, TIMEOUT)
        .await?;
    let status = build.status.context("status")?;
    ensure!(status.attempt == Some(1), "{status:?}");
    let pods = cluster.pods(Some("restart")).await?;
    ensure!(
        pods.len() == 1,
        "one pod for one attempt, got {}",
        pods.len()
    );
    let logs = cluster.operator_logs();
    ensure!(
        logs.matches("--- start stratum-operator-0 ---").count() == 2,
        "both starts are in the log"
    );
    let metrics = cluster
        .operator()
        .and_then(|o| o.metrics())
        .context("/metrics")?;
    ensure!(metrics.contains("stratum_"), "{metrics}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_is_killed_and_restarted_mid_build() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(ClusterOptions::default()).await?;
    let result = restart_mid_build(&mut cluster).await;
    cluster.explain(result).await
}

fn alive(pid: u32) -> bool {
    // A reaped child leaves /proc; an unreaped one would linger as a zombie ("Z").
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.trim_start().starts_with('Z'))
    })
}

/// Dropping a cluster mid-build kills the operator, the registry and the build's processes
/// (down to the RUN step), and removes the cluster's directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_the_cluster_mid_build_leaves_nothing_behind() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(ClusterOptions::default()).await?;
    // A marker unique to this run, in the RUN step's shell command line (two commands, so the
    // shell cannot exec `sleep` in its place).
    let marker = format!("e2e-teardown-{}", std::process::id());
    let dockerfile = format!("FROM {{BASE}}\nRUN sleep 600; echo {marker}\n");
    cluster
        .create(&cluster.inline_build("teardown", &dockerfile))
        .await?;
    cluster.wait_pod_running("teardown-1-1", TIMEOUT).await?;
    let step = async {
        for _ in 0..600 {
            if !processes_with(&marker).is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    let started = step.await;
    let operator = cluster.operator().context("the operator runs")?.pid();
    let registry = cluster.registry().pid();
    let dir = cluster.dir().to_owned();
    let result = cluster
        .explain(started.then_some(()).context("the RUN step never started"))
        .await;
    drop(cluster);
    result?;
    ensure!(!alive(operator), "the operator (pid {operator}) survived");
    ensure!(!alive(registry), "the registry (pid {registry}) survived");
    // SIGKILLed builders take their step with them (PR_SET_PDEATHSIG); give the kernel a moment.
    let mut left = processes_with(&marker);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = processes_with(&marker);
    }
    ensure!(left.is_empty(), "build processes survived: {left:?}");
    ensure!(!dir.exists(), "{} was not removed", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    ensure!(
        !mounts.contains(&*dir.to_string_lossy()),
        "mounts under the cluster's directory remain"
    );
    Ok(())
}
