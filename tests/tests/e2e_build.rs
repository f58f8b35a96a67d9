//! Issue 5's "done when", end to end: the real operator process against the API-server emulator
//! (over HTTP), builder pods running the real `stratum pod-build` through the kubelet emulator, a
//! real registry, and real kubectl. Runs as root. See docs/testing.md, "End-to-end suite".

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use stratum_crds::{Phase, reason};
use stratum_e2e::e2e::{Cluster, ClusterOptions, repo_root};

/// Generous: a build is a few seconds on a quiet machine, much more on a loaded 2-core one.
const BUILD_TIMEOUT: Duration = Duration::from_secs(180);

/// `skopeo inspect` of `reference` on the test registry (plain HTTP).
fn skopeo(args: &[&str], reference: &str) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg("--tls-verify=false")
        .args(args)
        .arg(format!("docker://{reference}"))
        .output()
        .context("running skopeo")?;
    if !out.status.success() {
        bail!(
            "skopeo inspect {args:?} {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// `sha256:<hex>` of `bytes`, by coreutils' sha256sum: independent of Stratum's digest code.
fn sha256(bytes: &[u8]) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    child
        .stdin
        .take()
        .context("sha256sum stdin")?
        .write_all(bytes)?;
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().context("sha256sum output")?;
    Ok(format!("sha256:{hex}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn example_builds_and_status_matches_the_registry_and_a_failing_run_reports_its_line()
-> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let result = example_and_failing_build(&cluster).await;
    cluster.explain(result).await
}

async fn example_and_failing_build(cluster: &Cluster) -> anyhow::Result<()> {
    // Both builds run at once in one cluster: the failing one must not disturb the other.
    let example = std::fs::read_to_string(repo_root().join("examples/imagebuild.yaml"))?;
    cluster
        .kubectl_stdin(&["apply", "-f", "-"], &cluster.rewrite(&example))
        .await?;
    let mut failing = cluster.inline_build("broken", "FROM {BASE}\nRUN true\n\nRUN exit 3\n");
    failing.spec.retries = 2;
    cluster.create(&failing).await?;

    // --- the example succeeds, and its status is what the registry holds -------------------
    let built = cluster.wait_finished("hello", BUILD_TIMEOUT).await?;
    let status = built.status.clone().context("status")?;
    assert_eq!(
        status.phase,
        Some(Phase::Succeeded),
        "{}",
        cluster.diagnostics().await
    );
    let image = cluster.registry().reference("examples/hello:1.0");
    let raw = skopeo(&["--raw"], &image)?;
    let manifest: Value = serde_json::from_slice(&raw)?;
    let config_raw = skopeo(&["--config", "--raw"], &image)?;
    let config: Value = serde_json::from_slice(&config_raw)?;

    let digest = sha256(&raw)?;
    assert_eq!(status.digest.as_deref(), Some(digest.as_str()), "digest");
    let image_id = sha256(&config_raw)?;
    assert_eq!(manifest["config"]["digest"], image_id.as_str());
    assert_eq!(
        status.image_id.as_deref(),
        Some(image_id.as_str()),
        "imageID"
    );
    assert_eq!(
        status.image.as_deref(),
        Some(format!("{}/examples/hello@{digest}", cluster.registry().host_port).as_str())
    );
    let layers: Vec<(String, i64, String)> = status
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size, l.diff_id.clone()))
        .collect();
    let registry_layers = manifest["layers"].as_array().context("manifest layers")?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .context("config rootfs.diff_ids")?;
    let expected: Vec<(String, i64, String)> = registry_layers
        .iter()
        .zip(diff_ids)
        .map(|(l, d)| {
            (
                l["digest"].as_str().unwrap_or_default().to_owned(),
                l["size"].as_i64().unwrap_or_default(),
                d.as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(registry_layers.len(), diff_ids.len());
    // The base layer plus the RUN layer (WORKDIR creates /app in its own layer or not,
    // depending on the executor; the registry is the judge, so compare whole lists).
    assert!(expected.len() >= 2, "{expected:?}");
    assert_eq!(layers, expected, "layers");
    // The additional tag points at the same manifest.
    let latest = skopeo(
        &["--raw"],
        &cluster.registry().reference("examples/hello:latest"),
    )?;
    assert_eq!(sha256(&latest)?, digest);
    // The build ran in one pod, attempt 1, whose log (kubectl logs, served from the kubelet
    // emulator's capture of the builder's output) ends with the push the status records.
    assert_eq!(status.attempt, Some(1));
    assert_eq!(status.pod_name.as_deref(), Some("hello-1-1"));
    let logs = cluster.kubectl(&["logs", "hello-1-1"]).await?;
    assert!(
        logs.contains(&format!(
            "Pushed {}/examples/hello@{digest}",
            cluster.registry().host_port
        )),
        "kubectl logs hello-1-1:\n{logs}"
    );

    // --- kubectl get: the printer columns ----------------------------------------------------
    let table = cluster.kubectl(&["get", "ib", "hello"]).await?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "PHASE", "IMAGE", "DIGEST", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let short = digest.trim_start_matches("sha256:")[..12].to_owned();
    assert_eq!(
        row[..4],
        [
            "hello",
            "Succeeded",
            &cluster.registry().reference("examples/hello:1.0"),
            &short
        ],
        "{table}"
    );
    let wide = cluster.kubectl(&["get", "ib", "-o", "wide"]).await?;
    assert!(
        wide.lines().next().unwrap_or_default().contains("REASON"),
        "{wide}"
    );

    // --- kubectl describe: the operator's Events ---------------------------------------------
    let described = cluster.kubectl(&["describe", "ib", "hello"]).await?;
    let events = described
        .split_once("Events:")
        .map(|(_, e)| e)
        .with_context(|| format!("no Events section:\n{described}"))?;
    assert!(
        events.contains("stratum-operator") && events.contains("Succeeded"),
        "the Events of a successful build:\n{described}"
    );

    // --- the failing build: Failed, StepFailed, its line and exit code, not retried -------
    let failed = cluster.wait_finished("broken", BUILD_TIMEOUT).await?;
    let status = failed.status.context("status")?;
    assert_eq!(status.phase, Some(Phase::Failed));
    let failure = status.failure.context("failure")?;
    assert_eq!(failure.reason, reason::STEP_FAILED, "{failure:?}");
    assert_eq!(failure.line, Some(4), "{failure:?}");
    assert_eq!(failure.exit_code, Some(3), "{failure:?}");
    assert!(
        failure
            .step
            .as_deref()
            .is_some_and(|s| s.contains("exit 3")),
        "{failure:?}"
    );
    // A build failure is final: one attempt, one pod, despite retries: 2.
    assert_eq!(status.attempt, Some(1));
    let pods = cluster.pods(Some("broken")).await?;
    assert_eq!(pods.len(), 1, "one pod for one attempt");
    let described = cluster.kubectl(&["describe", "ib", "broken"]).await?;
    assert!(described.contains("StepFailed"), "{described}");
    Ok(())
}
