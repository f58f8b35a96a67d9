//! Issue 8's "done when", end to end: the Helm chart's rendered manifests apply to the kube
//! emulator with real kubectl, and the operator *as the chart describes it* — its Deployment's
//! arguments and environment, leader election included — reconciles an ImageBuild there.
//!
//! What stays emulated: the Deployment is stored, not run (the emulator has no
//! controller-manager), so the test starts the operator process itself with the container's
//! rendered `args` and `env` (the downward API resolved as the kubelet would), changing only what
//! a loopback run needs: the HTTP address (a free port) and the log level. RBAC objects are
//! stored but not enforced (docs/arch/kube-emulator.md).

use std::time::Duration;

use anyhow::Context as _;
use stratum_crds::Phase;
use stratum_e2e::chart;
use stratum_e2e::e2e::{BUILDER_IMAGE, Cluster, ClusterOptions};

const RELEASE_NAMESPACE: &str = "stratum-system";
const BUILD_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_the_chart_describes_reconciles_an_imagebuild() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(ClusterOptions {
        start_operator: false,
        ..ClusterOptions::default()
    })
    .await?;
    let result = chart_operator_builds(&mut cluster).await;
    cluster.explain(result).await
}

async fn chart_operator_builds(cluster: &mut Cluster) -> anyhow::Result<()> {
    let (repository, tag) = BUILDER_IMAGE
        .rsplit_once(':')
        .context("the e2e builder image has a tag")?;
    // Two replicas: the chart then turns leader election on, which the single operator started
    // below must win before it reconciles anything.
    let values =
        format!("replicas: 2\nbuilder:\n  image:\n    repository: {repository}\n    tag: {tag}\n");
    let rendered =
        tokio::task::spawn_blocking(move || chart::render("stratum", RELEASE_NAMESPACE, &values))
            .await??;

    cluster
        .kubectl(&["create", "namespace", RELEASE_NAMESPACE])
        .await?;
    let applied = cluster
        .kubectl_stdin(
            &["apply", "--namespace", RELEASE_NAMESPACE, "-f", "-"],
            &rendered.manifest,
        )
        .await?;
    for kind in [
        "deployment.apps",
        "serviceaccount",
        "customresourcedefinition",
    ] {
        assert!(
            applied.contains(kind),
            "kubectl apply of the chart names a {kind}:\n{applied}"
        );
    }

    let command = rendered.operator_command()?;
    assert_eq!(command.flag("builder-image"), Some(BUILDER_IMAGE));
    assert_eq!(
        command.flag("leader-election"),
        Some(""),
        "{:?}",
        command.args
    );
    let identity = "stratum-operator-7d4b9-abcde";
    let mut spec = cluster.operator_spec().clone();
    spec.identity = identity.to_owned();
    spec.builder_image = command
        .flag("builder-image")
        .context("the chart sets --builder-image")?
        .to_owned();
    spec.concurrency = command
        .flag("concurrency")
        .context("the chart sets --concurrency")?
        .parse()?;
    // The harness sets these four itself (a free loopback port for --http-addr).
    spec.extra_args =
        command.args_without(&["http-addr", "log-format", "builder-image", "concurrency"]);
    spec.env = command
        .resolved_env(identity, RELEASE_NAMESPACE)?
        .into_iter()
        .filter(|(name, _)| name != "POD_NAME" && name != "RUST_LOG")
        .collect();
    cluster.start_operator_with(spec).await?;

    let build = cluster.inline_build("from-chart", "FROM {BASE}\nRUN echo built > /built\n");
    cluster.create(&build).await?;
    let finished = cluster.wait_finished("from-chart", BUILD_TIMEOUT).await?;
    let status = finished.status.context("status")?;
    assert_eq!(status.phase, Some(Phase::Succeeded), "{status:?}");
    assert!(
        status.digest.is_some() && !status.layers.is_empty(),
        "{status:?}"
    );

    // The operator took the Lease in the release namespace, as the chart's RBAC expects.
    let lease = cluster
        .kubectl(&[
            "get",
            "lease",
            "--namespace",
            RELEASE_NAMESPACE,
            "-o",
            "jsonpath={.items[*].spec.holderIdentity}",
        ])
        .await?;
    assert_eq!(lease.trim(), identity);
    Ok(())
}
