//! The harness's own controls, end to end: the operator process can be killed mid-build and
//! restarted, and the build still ends once, in its one pod. (The larger kill/restart, replica and
//! fault scenarios build on these controls.) Runs as root.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use stratum_crds::Phase;
use stratum_e2e::e2e::{Cluster, ClusterOptions};

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
