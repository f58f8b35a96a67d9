//! The end-to-end harness (issue 6 item 5): a whole Stratum installation on one machine, every
//! part real except the cluster itself.
//!
//! [`Cluster::start`] brings up, in this order:
//! 1. a real registry ([`registry::Registry`]: `docker-registry` on a loopback port) holding the
//!    base image `stratum/busybox:latest` (`scripts/make-base-images`);
//! 2. the API-server emulator served over HTTP on a free loopback port, with a kubeconfig file in
//!    the cluster's temporary directory;
//! 3. the kubelet emulator, whose image map sends the operator's builder image to the real
//!    `stratum` binary (so builder pods run `stratum pod-build`);
//! 4. the ImageBuild CRD (`crds/imagebuild.yaml`) and the test namespace, both through real
//!    `kubectl`;
//! 5. the real `stratum-operator` as a child process ([`operator::Operator`]), started only once
//!    its `/readyz` answers.
//!
//! Tests then drive it with [`Cluster::kubectl`] (the user's view) and the in-process kube client
//! ([`Cluster::client`], [`Cluster::wait_for`]) for precise polling. Everything is torn down on
//! drop: child processes killed, the kubelet's containers killed, the temporary directory
//! removed. When the test is panicking, drop prints [`Cluster::diagnostics`] (ImageBuilds, pods,
//! the operator's full log) to stderr; a [`Cluster::wait_for`] timeout carries them in its error.
//!
//! With `STRATUM_E2E_KEEP=1` the cluster's directory (operator log, kubeconfig, registry
//! storage and log, pod volumes) is kept and its path printed.
//!
//! Binaries come from the cargo target directory ([`binaries`]): run the suite through
//! `cargo test --workspace`, or `cargo build --workspace --bins` before `cargo test -p stratum-e2e`.

pub mod binaries;
pub mod ledger;
pub mod operator;
pub mod registry;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use stratum_crds::{BUILD_LABEL, ImageBuild, Phase};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use crate::apiserver::{ApiServer, Config, Emulator, MemoryLogs};
use crate::kubelet::{ImageMap, Kubelet, KubeletConfig};

pub use ledger::{LedgerSummary, PodLedger};
pub use operator::{Operator, OperatorSpec};
pub use registry::Registry;

/// The builder image the operator is configured with. It is never pulled: the kubelet emulator
/// maps it to the `stratum` binary.
pub const BUILDER_IMAGE: &str = "stratum.e2e.invalid/stratum:e2e";
/// The builder's entrypoint inside the builder image (what a pod's `command` may name).
pub const BUILDER_ENTRYPOINT: &str = "/usr/local/bin/stratum";
/// The registry address `examples/imagebuild.yaml` names (the default of
/// `scripts/local-registry`); [`Cluster::rewrite`] replaces it with the test registry's.
pub const EXAMPLE_REGISTRY: &str = "127.0.0.1:5000";
/// Set (to anything) to keep the cluster's directory after the test, for reading its logs.
pub const KEEP_ENV: &str = "STRATUM_E2E_KEEP";
/// The kubelet emulator's node.
pub const NODE: &str = "e2e-node";

/// What [`Cluster::start`] sets up.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The namespace created for the test's builds.
    pub namespace: String,
    /// `--concurrency` of the operator.
    pub concurrency: u32,
    /// More operator flags (see `stratum-operator --help`).
    pub operator_args: Vec<String>,
    /// Start the operator at once (false: call [`Cluster::start_operator`] later).
    pub start_operator: bool,
    /// The operator's `RUST_LOG`.
    pub log_filter: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            namespace: "e2e".into(),
            concurrency: 10,
            operator_args: Vec::new(),
            start_operator: true,
            log_filter: "info,stratum_operator=debug".into(),
        }
    }
}

/// A running installation. Fields drop in declaration order: the operator first (so it does not
/// see the API vanish), then the kubelet (killing containers), the API server, the registry and
/// last the directory their files live in.
#[derive(Debug)]
pub struct Cluster {
    operator: Option<Operator>,
    kubelet: Kubelet,
    emulator: Emulator,
    registry: Registry,
    operator_spec: OperatorSpec,
    namespace: String,
    kubeconfig: PathBuf,
    dir: TempDir,
}

/// The repository root (for `crds/`, `examples/`, `scripts/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// kubectl from `STRATUM_KUBECTL`, else the one on PATH (`scripts/install-kube-tools` installs
/// v1.33 into /usr/local/bin).
pub fn kubectl_binary() -> String {
    std::env::var("STRATUM_KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

impl Cluster {
    /// Brings the installation up (see the module docs). Needs root (the builder's overlayfs
    /// and namespaces) and a multi-threaded tokio runtime (the API server and kubelet run in this
    /// process while tests wait on child processes).
    pub async fn start(options: ClusterOptions) -> anyhow::Result<Self> {
        let stratum = binaries::binary(binaries::STRATUM)?;
        let operator_bin = binaries::binary(binaries::OPERATOR)?;
        let dir = tempfile::Builder::new()
            .prefix("stratum-e2e-")
            .tempdir()
            .context("creating the cluster's temporary directory")?;
        let registry_dir = dir.path().join("registry");
        std::fs::create_dir_all(&registry_dir)?;
        let registry = tokio::task::spawn_blocking(move || Registry::start(&registry_dir))
            .await
            .context("the registry start-up task")??;

        let logs = MemoryLogs::default();
        let server = ApiServer::with_logs(Config::default(), Arc::new(logs.clone()));
        let emulator = Emulator::serve(server.clone(), 0)
            .await
            .context("binding the API server emulator to a loopback port")?;
        let kubeconfig = dir.path().join("kubeconfig");
        emulator
            .write_kubeconfig(&kubeconfig)
            .with_context(|| format!("writing {}", kubeconfig.display()))?;
        let images =
            ImageMap::default().with(BUILDER_IMAGE, stratum.clone(), Some(BUILDER_ENTRYPOINT));
        let kubelet = Kubelet::start(
            server,
            logs,
            KubeletConfig {
                node_name: NODE.into(),
                images,
                root: dir.path().join("kubelet"),
            },
        )
        .await
        .context("starting the kubelet emulator")?;

        let operator_spec = OperatorSpec {
            binary: operator_bin,
            kubeconfig: kubeconfig.clone(),
            log: dir.path().join("operator.log"),
            builder_image: BUILDER_IMAGE.into(),
            concurrency: options.concurrency,
            extra_args: options.operator_args.clone(),
            log_filter: options.log_filter.clone(),
        };
        let mut cluster = Cluster {
            operator: None,
            kubelet,
            emulator,
            registry,
            operator_spec,
            namespace: options.namespace.clone(),
            kubeconfig,
            dir,
        };
        let crd = repo_root().join("crds/imagebuild.yaml");
        cluster
            .kubectl(&["apply", "-f", &crd.to_string_lossy()])
            .await?;
        cluster
            .kubectl(&["create", "namespace", &options.namespace])
            .await?;
        if options.start_operator {
            cluster.start_operator().await?;
        }
        Ok(cluster)
    }

    /// The namespace of the test's builds.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The kubeconfig file kubectl and the operator use.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The cluster's temporary directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The API server's state: faults ([`ApiServer::faults`]), direct reads, `compact()`.
    pub fn server(&self) -> &ApiServer {
        &self.emulator.server
    }

    /// A kube client talking to the emulator in-process (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        self.emulator.server.client()
    }

    /// ImageBuilds in the test namespace.
    pub fn builds(&self) -> Api<ImageBuild> {
        Api::namespaced(self.client(), &self.namespace)
    }

    /// Pods in the test namespace.
    pub fn pod_api(&self) -> Api<Pod> {
        Api::namespaced(self.client(), &self.namespace)
    }

    /// The kubelet emulator (faults: `evict`, `oom_kill`, `stop`).
    pub fn kubelet(&self) -> &Kubelet {
        &self.kubelet
    }

    pub fn kubelet_mut(&mut self) -> &mut Kubelet {
        &mut self.kubelet
    }

    /// The registry builds push to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Replaces [`EXAMPLE_REGISTRY`] with the test registry's address (for example manifests).
    pub fn rewrite(&self, text: &str) -> String {
        text.replace(EXAMPLE_REGISTRY, &self.registry.host_port)
    }

    // --- kubectl -------------------------------------------------------------------------

    /// Runs kubectl against the cluster (`-n <namespace>` unless `args` name one) and returns
    /// its stdout; a non-zero exit is an error carrying stderr.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.kubectl_output(args, None).await?;
        check(args, &out)
    }

    /// Like [`Cluster::kubectl`], with `stdin` fed to the process (`kubectl apply -f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> anyhow::Result<String> {
        let out = self.kubectl_output(args, Some(stdin)).await?;
        check(args, &out)
    }

    /// Runs kubectl and returns its raw output, whatever the exit status (for expected errors).
    pub async fn kubectl_output(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<Output> {
        let mut cmd = tokio::process::Command::new(kubectl_binary());
        cmd.env("KUBECONFIG", &self.kubeconfig);
        let names_namespace = args
            .iter()
            .any(|a| *a == "-n" || a.starts_with("--namespace") || *a == "-A");
        if !names_namespace {
            cmd.args(["-n", &self.namespace]);
        }
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| {
            format!("running {} (scripts/install-kube-tools)", kubectl_binary())
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).await?;
            drop(pipe);
        }
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .with_context(|| format!("kubectl {args:?} did not finish within 120 s"))??;
        Ok(out)
    }

    // --- ImageBuilds ---------------------------------------------------------------------

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

    // --- the operator ----------------------------------------------------------------------

    /// Starts the cluster's operator (after [`Cluster::kill_operator`], or when the options
    /// said not to start it). An operator that still runs is killed first.
    pub async fn start_operator(&mut self) -> anyhow::Result<&mut Operator> {
        self.kill_operator();
        let operator = Operator::start(&self.operator_spec).await?;
        Ok(self.operator.insert(operator))
    }

    /// Starts one more operator process with `extra_args` and its own log `log_name` in the
    /// cluster's directory (a second replica); the caller owns it.
    pub async fn spawn_operator(
        &self,
        log_name: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Operator> {
        let mut spec = self.operator_spec.clone();
        spec.log = self.dir.path().join(log_name);
        spec.extra_args
            .extend(extra_args.iter().map(|a| (*a).to_owned()));
        Operator::start(&spec).await
    }

    /// Like [`Cluster::spawn_operator`], without waiting for `/readyz`: a standby replica
    /// under leader election is not ready while another one leads.
    pub async fn spawn_standby(
        &self,
        log_name: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Operator> {
        let mut spec = self.operator_spec.clone();
        spec.log = self.dir.path().join(log_name);
        spec.extra_args
            .extend(extra_args.iter().map(|a| (*a).to_owned()));
        Operator::launch(&spec).await
    }

    /// The cluster's operator, while it runs.
    pub fn operator(&mut self) -> Option<&mut Operator> {
        self.operator.as_mut()
    }

    /// SIGKILLs the cluster's operator (a crash).
    pub fn kill_operator(&mut self) {
        if let Some(mut operator) = self.operator.take() {
            operator.kill();
        }
    }

    /// Kills the operator and starts a new one with the same flags.
    pub async fn restart_operator(&mut self) -> anyhow::Result<&mut Operator> {
        self.start_operator().await
    }

    /// The cluster operator's log so far (JSON lines, all starts).
    pub fn operator_logs(&self) -> String {
        operator::read_log(&self.operator_spec.log)
    }

    // --- diagnostics -------------------------------------------------------------------------

    /// What a failing test needs to see: every ImageBuild's status, every pod's phase and
    /// container states, and the operator's log.
    pub async fn diagnostics(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "=== ImageBuilds in {} ===", self.namespace);
        match self.builds().list(&ListParams::default()).await {
            Ok(list) => {
                for b in list.items {
                    let _ = writeln!(
                        text,
                        "{} generation={:?} status={}",
                        b.metadata.name.as_deref().unwrap_or_default(),
                        b.metadata.generation,
                        serde_json::to_string(&b.status).unwrap_or_default()
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(text, "(cannot list: {e})");
            }
        }
        let _ = writeln!(text, "=== pods in {} ===", self.namespace);
        match self.pod_api().list(&ListParams::default()).await {
            Ok(list) => {
                for p in list.items {
                    let _ = writeln!(
                        text,
                        "{} deleting={} status={}",
                        p.metadata.name.as_deref().unwrap_or_default(),
                        p.metadata.deletion_timestamp.is_some(),
                        serde_json::to_string(&p.status).unwrap_or_default()
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(text, "(cannot list: {e})");
            }
        }
        let _ = writeln!(text, "=== operator log ===\n{}", self.operator_logs());
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::env::var_os(KEEP_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "{KEEP_ENV}: kept {} (operator.log, kubeconfig, registry/, kubelet/)",
                self.dir.path().display()
            );
        }
        if std::thread::panicking() {
            // No runtime to list objects from here; the operator log tells most of the story.
            eprintln!(
                "=== stratum-operator log ({}) ===\n{}\n=== registry log ===\n{}",
                self.operator_spec.log.display(),
                self.operator_logs(),
                self.registry.log()
            );
        }
    }
}

fn check(args: &[&str], out: &Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "kubectl {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
