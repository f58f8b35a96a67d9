//! A build's life after it starts, end to end (issue 5's cancel / delete / spec change / TTL /
//! retry rules, issue 6's "cancel, delete mid-build, spec change mid-build, TTL cleanup" and
//! "eviction → a retried attempt"): the real operator process, the API-server emulator over
//! HTTP, the kubelet emulator running real `stratum pod-build`, a real registry, real kubectl.
//! `RUN sleep` holds a build mid-way. Runs as root.
//!
//! Independent scenarios share one cluster and run at the same time: each must reach its own
//! outcome while the others come and go around it.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use stratum_crds::{Phase, reason};
use stratum_e2e::e2e::{Cluster, ClusterOptions, all_passed, processes_with};

/// Generous: builds take seconds on a quiet machine, much longer on a loaded 2-core one.
const TIMEOUT: Duration = Duration::from_secs(180);
/// Long enough that a build holding it is certainly still running when the test acts.
const HOLD: &str = "FROM {BASE}\nRUN sleep 600\n";

/// Waits until the build's first pod runs its builder container.
async fn running(cluster: &Cluster, pod: &str) -> anyhow::Result<()> {
    cluster.wait_pod_running(pod, TIMEOUT).await?;
    Ok(())
}

async fn gone(cluster: &Cluster, pod: &str) -> anyhow::Result<()> {
    cluster
        .wait_pod(pod, "deleted", TIMEOUT, |p| p.is_none())
        .await?;
    Ok(())
}

/// `spec.cancel: true` mid-build → `Cancelled`, and the builder pod is stopped (down to its RUN
/// step) and removed.
async fn cancel(cluster: &Cluster) -> anyhow::Result<()> {
    let marker = format!("e2e-cancel-{}", std::process::id());
    let dockerfile = format!("FROM {{BASE}}\nRUN sleep 600; echo {marker}\n");
    cluster
        .create(&cluster.inline_build("cancel", &dockerfile))
        .await?;
    running(cluster, "cancel-1-1").await?;
    let deadline = Instant::now() + TIMEOUT;
    while processes_with(&marker).is_empty() {
        ensure!(Instant::now() < deadline, "the RUN step never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster
        .kubectl(&[
            "patch",
            "ib",
            "cancel",
            "--type=merge",
            "-p",
            r#"{"spec":{"cancel":true}}"#,
        ])
        .await?;
    let build = cluster
        .wait_phase("cancel", Phase::Cancelled, TIMEOUT)
        .await?;
    let status = build.status.context("status")?;
    ensure!(
        status.digest.is_none() && status.image_id.is_none(),
        "a cancelled build reports no image: {status:?}"
    );
    gone(cluster, "cancel-1-1").await?;
    // The kubelet removes a pod only once its containers exited; the step went with them.
    let left = processes_with(&marker);
    ensure!(
        left.is_empty(),
        "the RUN step survived the cancel: {left:?}"
    );
    // Cancelled is final: no new pod appears for the new generation.
    let pods = cluster.pods(Some("cancel")).await?;
    ensure!(pods.is_empty(), "pods after cancel: {}", names(&pods));
    Ok(())
}

/// Deleting the ImageBuild mid-build removes its pod (ownerReference garbage collection, or
/// the operator's finalizer).
async fn delete(cluster: &Cluster) -> anyhow::Result<()> {
    cluster
        .create(&cluster.inline_build("delete", HOLD))
        .await?;
    running(cluster, "delete-1-1").await?;
    cluster
        .kubectl(&["delete", "ib", "delete", "--timeout=120s"])
        .await?;
    gone(cluster, "delete-1-1").await?;
    ensure!(
        cluster.build("delete").await?.is_none(),
        "ImageBuild still exists"
    );
    Ok(())
}

/// A spec change mid-build (a new generation) stops the old pod; the new generation builds in
/// its own pod (`<name>-2-1`) and succeeds; the old generation's result is never recorded.
async fn spec_change(cluster: &Cluster) -> anyhow::Result<()> {
    cluster
        .create(&cluster.inline_build("change", HOLD))
        .await?;
    running(cluster, "change-1-1").await?;
    let quick = format!(
        "FROM {}\nRUN echo generation-2 > /generation\n",
        cluster.registry().base_image()
    );
    let patch = serde_json::json!({"spec": {"source": {"inline": {"dockerfile": quick}}}});
    cluster
        .kubectl(&[
            "patch",
            "ib",
            "change",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ])
        .await?;
    let build = cluster
        .wait_phase("change", Phase::Succeeded, TIMEOUT)
        .await?;
    gone(cluster, "change-1-1").await?;
    ensure!(build.metadata.generation == Some(2), "{:?}", build.metadata);
    let status = build.status.context("status")?;
    ensure!(status.observed_generation == Some(2), "{status:?}");
    ensure!(
        status.pod_name.as_deref() == Some("change-2-1"),
        "the new generation's first attempt: {status:?}"
    );
    ensure!(status.digest.is_some(), "{status:?}");
    // The superseded generation is in history, not reported as a success.
    let first = status
        .history
        .iter()
        .find(|h| h.generation == 1)
        .with_context(|| format!("generation 1 in history: {:?}", status.history))?;
    ensure!(
        first.phase != Phase::Succeeded,
        "generation 1 was stopped, yet history says {first:?}"
    );
    Ok(())
}

/// `ttlSecondsAfterFinished` removes the finished pod; the status stays.
async fn ttl(cluster: &Cluster) -> anyhow::Result<()> {
    let mut build = cluster.inline_build("ttl", "FROM {BASE}\nRUN echo ttl > /ttl\n");
    build.spec.ttl_seconds_after_finished = Some(1);
    cluster.create(&build).await?;
    let build = cluster.wait_phase("ttl", Phase::Succeeded, TIMEOUT).await?;
    let pod = build
        .status
        .as_ref()
        .and_then(|s| s.pod_name.clone())
        .context("status.podName")?;
    ensure!(pod == "ttl-1-1", "{pod}");
    gone(cluster, &pod).await?;
    let after = cluster.build("ttl").await?.context("the ImageBuild")?;
    ensure!(
        after.status.and_then(|s| s.phase) == Some(Phase::Succeeded),
        "the status outlives the pod"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_delete_spec_change_and_ttl_mid_build() -> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let (c, d, s, t) = tokio::join!(
        cancel(&cluster),
        delete(&cluster),
        spec_change(&cluster),
        ttl(&cluster)
    );
    let all = all_passed([("cancel", c), ("delete", d), ("spec change", s), ("ttl", t)]);
    cluster.explain(all).await
}

/// Node-pressure eviction of the builder pod is an infrastructure failure: attempt 2 runs in a
/// new pod (after the retry backoff) and succeeds.
async fn eviction(cluster: &Cluster) -> anyhow::Result<()> {
    // Short enough that attempt 2 finishes soon, long enough to be evicted while running.
    let mut build = cluster.inline_build("evict", "FROM {BASE}\nRUN sleep 5\n");
    build.spec.retries = 1;
    cluster.create(&build).await?;
    running(cluster, "evict-1-1").await?;
    ensure!(
        cluster.kubelet().evict(cluster.namespace(), "evict-1-1"),
        "the kubelet does not run evict-1-1"
    );
    let build = cluster
        .wait_phase("evict", Phase::Succeeded, TIMEOUT)
        .await?;
    let status = build.status.context("status")?;
    ensure!(status.attempt == Some(2), "{status:?}");
    ensure!(
        status.pod_name.as_deref() == Some("evict-1-2"),
        "{status:?}"
    );
    let evicted = status
        .history
        .iter()
        .find(|h| h.attempt == 1)
        .with_context(|| format!("attempt 1 in history: {:?}", status.history))?;
    ensure!(
        evicted.reason.as_deref() == Some(reason::EVICTED),
        "{evicted:?}"
    );
    // Each pod has its Event, the retry's too (it is created while the build stays Pending).
    let described = cluster.kubectl(&["describe", "ib", "evict"]).await?;
    for pod in ["evict-1-1", "evict-1-2"] {
        ensure!(
            described.contains(&format!("builder pod {pod} created")),
            "no Event for {pod}:\n{described}"
        );
    }
    Ok(())
}

/// An OOM-killed builder fails the build with reason `OOMKilled` and is not retried (the same
/// limit would kill it again), whatever the retry budget.
async fn oom(cluster: &Cluster) -> anyhow::Result<()> {
    let mut build = cluster.inline_build("oom", HOLD);
    build.spec.retries = 2;
    cluster.create(&build).await?;
    running(cluster, "oom-1-1").await?;
    ensure!(
        cluster
            .kubelet()
            .oom_kill(cluster.namespace(), "oom-1-1", "builder"),
        "the kubelet does not run oom-1-1"
    );
    let build = cluster.wait_finished("oom", TIMEOUT).await?;
    let status = build.status.context("status")?;
    ensure!(status.phase == Some(Phase::Failed), "{status:?}");
    let failure = status.failure.as_ref().context("failure")?;
    ensure!(failure.reason == reason::OOM_KILLED, "{failure:?}");
    ensure!(status.attempt == Some(1), "not retried: {status:?}");
    ensure!(status.digest.is_none(), "no image: {status:?}");
    let pods = cluster.pods(Some("oom")).await?;
    ensure!(pods.len() == 1, "one pod for one attempt: {}", names(&pods));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eviction_is_retried_and_oom_kill_is_final() -> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let (e, o) = tokio::join!(eviction(&cluster), oom(&cluster));
    let all = all_passed([("eviction", e), ("OOM kill", o)]);
    cluster.explain(all).await
}

fn names(pods: &[k8s_openapi::api::core::v1::Pod]) -> String {
    pods.iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}
