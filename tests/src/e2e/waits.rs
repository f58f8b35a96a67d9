//! ImageBuilds and pods: creating them and waiting, by polling with deadlines, for what a test
//! expects of them.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use stratum_crds::{BUILD_LABEL, ImageBuild, Phase};

use super::Cluster;

impl Cluster {
    /// An ImageBuild named `name` building `dockerfile` inline, pushing to
    /// `<registry>/e2e/<name>:1` over plain HTTP. `{BASE}` in the Dockerfile becomes the
    /// registry's busybox base image. Adjust the spec, then [`Cluster::create`] it.
    pub fn inline_build(&self, name: &str, dockerfile: &str) -> ImageBuild {
        let dockerfile = dockerfile.replace("{BASE}", &self.registry.base_image());
        let value = serde_json::json!({
            "apiVersion": "stratum.dev/v1alpha1",
            "kind": "ImageBuild",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "source": {"inline": {"dockerfile": dockerfile}},
                "output": {
                    "image": self.registry.reference(&format!("e2e/{name}:1")),
                    "insecure": true,
                },
            },
        });
        // The JSON above is an ImageBuild by construction; a failure is a harness bug.
        serde_json::from_value(value).unwrap_or_else(|e| panic!("inline ImageBuild: {e}"))
    }

    /// Creates `build` in the test namespace.
    pub async fn create(&self, build: &ImageBuild) -> anyhow::Result<ImageBuild> {
        let name = build.metadata.name.clone().unwrap_or_default();
        self.builds()
            .create(&PostParams::default(), build)
            .await
            .with_context(|| format!("creating ImageBuild {name}"))
    }

    /// The ImageBuild `name`, if it exists.
    pub async fn build(&self, name: &str) -> anyhow::Result<Option<ImageBuild>> {
        self.builds()
            .get_opt(name)
            .await
            .with_context(|| format!("reading ImageBuild {name}"))
    }

    /// Polls ImageBuild `name` every 200 ms until `done` holds, and returns it. On timeout the
    /// error names `what` and carries [`Cluster::diagnostics`].
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&ImageBuild) -> bool,
    ) -> anyhow::Result<ImageBuild> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(build) = self.build(name).await?
                && done(&build)
            {
                return Ok(build);
            }
            if Instant::now() >= deadline {
                bail!(
                    "ImageBuild {name}: {what} not reached within {timeout:?}\n{}",
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until ImageBuild `name` reaches a final phase for its current generation.
    pub async fn wait_finished(&self, name: &str, timeout: Duration) -> anyhow::Result<ImageBuild> {
        self.wait_for(name, "a final phase", timeout, |b| {
            let status = b.status.as_ref();
            status.and_then(|s| s.observed_generation) == b.metadata.generation
                && status.and_then(|s| s.phase).is_some_and(Phase::is_terminal)
        })
        .await
    }

    /// Waits until ImageBuild `name` shows `phase` for its current generation.
    pub async fn wait_phase(
        &self,
        name: &str,
        phase: Phase,
        timeout: Duration,
    ) -> anyhow::Result<ImageBuild> {
        self.wait_for(name, &format!("phase {phase}"), timeout, |b| {
            let status = b.status.as_ref();
            status.and_then(|s| s.observed_generation) == b.metadata.generation
                && status.and_then(|s| s.phase) == Some(phase)
        })
        .await
    }

    // --- pods ----------------------------------------------------------------------------

    /// Builder pods (label `stratum.dev/build`) in the test namespace, or of one build.
    pub async fn pods(&self, build: Option<&str>) -> anyhow::Result<Vec<Pod>> {
        let selector = match build {
            Some(name) => format!("{BUILD_LABEL}={name}"),
            None => BUILD_LABEL.to_owned(),
        };
        let list = self
            .pod_api()
            .list(&ListParams::default().labels(&selector))
            .await
            .context("listing builder pods")?;
        Ok(list.items)
    }

    /// Polls pod `name` every 200 ms until `done` holds for it (`None`: the pod does not exist).
    pub async fn wait_pod(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(Option<&Pod>) -> bool,
    ) -> anyhow::Result<Option<Pod>> {
        let deadline = Instant::now() + timeout;
        loop {
            let pod = self
                .pod_api()
                .get_opt(name)
                .await
                .with_context(|| format!("reading pod {name}"))?;
            if done(pod.as_ref()) {
                return Ok(pod);
            }
            if Instant::now() >= deadline {
                bail!(
                    "pod {name}: {what} not reached within {timeout:?}\n{}",
                    self.diagnostics().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until the container `builder` of pod `name` is running (the build is under way).
    pub async fn wait_pod_running(&self, name: &str, timeout: Duration) -> anyhow::Result<Pod> {
        let pod = self
            .wait_pod(name, "a running builder container", timeout, |p| {
                p.and_then(|p| p.status.as_ref())
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                    })
            })
            .await?;
        pod.context("wait_pod returned no pod")
    }
}
