//! `spec.timeout` end to end: the kubelet emulator enforces the pod's `activeDeadlineSeconds`
//! (SIGTERM to the builder), the builder reports the RUN it was on, and the operator records
//! `Failed`/`Timeout` with a message that names the limit and the step — not "the build was
//! cancelled". Runs as root.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use stratum_crds::{GoDuration, Phase, reason};
use stratum_e2e::e2e::{Cluster, ClusterOptions};

/// Generous: builds take seconds on a quiet machine, much longer on a loaded 2-core one.
const TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_build_past_its_deadline_fails_naming_the_limit_and_the_step() -> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let result = too_slow(&cluster).await;
    cluster.explain(result).await
}

async fn too_slow(cluster: &Cluster) -> anyhow::Result<()> {
    let mut build = cluster.inline_build("too-slow", "FROM {BASE}\nRUN sleep 600\n");
    build.spec.timeout = Some(GoDuration::new("5s"));
    cluster.create(&build).await?;
    let build = cluster.wait_finished("too-slow", TIMEOUT).await?;
    let status = build.status.context("status")?;
    ensure!(status.phase == Some(Phase::Failed), "{status:?}");
    let failure = status.failure.as_ref().context("failure")?;
    ensure!(failure.reason == reason::TIMEOUT, "{failure:?}");
    ensure!(
        failure.message
            == "the build ran longer than spec.timeout (5s); it was on RUN /bin/sh -c sleep 600 (line 2)",
        "{failure:?}"
    );
    ensure!(failure.line == Some(2), "{failure:?}");
    ensure!(status.attempt == Some(1), "not retried: {status:?}");
    Ok(())
}
