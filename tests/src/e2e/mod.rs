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
mod diagnostics;
mod kubectl;
pub mod ledger;
pub mod operator;
pub mod registry;
mod waits;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use stratum_crds::ImageBuild;
use tempfile::TempDir;

use crate::apiserver::{ApiServer, Config, Emulator, MemoryLogs};
use crate::kubelet::{ImageMap, Kubelet, KubeletConfig};

pub use diagnostics::{all_passed, processes_with};
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
/// The first line of [`Cluster::diagnostics`].
const DIAGNOSTICS_HEADER: &str = "=== cluster diagnostics ===";
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
    /// Wait for the operator's `/readyz` when starting it (off for a replica that may stand by
    /// under leader election).
    pub wait_ready: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            namespace: "e2e".into(),
            concurrency: 10,
            operator_args: Vec::new(),
            start_operator: true,
            log_filter: "info,stratum_operator=debug".into(),
            wait_ready: true,
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
            identity: "stratum-operator-0".into(),
            wait_ready: options.wait_ready,
            env: Vec::new(),
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

    // --- the operator ----------------------------------------------------------------------

    /// Starts the cluster's operator (after [`Cluster::kill_operator`], or when the options
    /// said not to start it). An operator that still runs is killed first.
    pub async fn start_operator(&mut self) -> anyhow::Result<&mut Operator> {
        self.kill_operator();
        let operator = Operator::start(&self.operator_spec).await?;
        Ok(self.operator.insert(operator))
    }

    /// Starts one more operator process (another replica) named `identity` (its `POD_NAME`,
    /// hence its leader-election identity), with the cluster operator's flags plus
    /// `extra_args`, logging to `operator-<identity>.log` in the cluster's directory. Returns once
    /// `/healthz` answers (a standby is never ready; `Operator::wait_ready` waits for that). The
    /// caller owns the process.
    pub async fn spawn_operator(
        &self,
        identity: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Operator> {
        let mut spec = self.operator_spec.clone();
        spec.identity = identity.to_owned();
        spec.log = self.dir.path().join(format!("operator-{identity}.log"));
        spec.wait_ready = false;
        spec.extra_args
            .extend(extra_args.iter().map(|a| (*a).to_owned()));
        Operator::start(&spec).await
    }

    /// Starts the cluster's operator from `spec` (e.g. the flags and environment a Helm chart
    /// renders), replacing any running one; the cluster keeps `spec` for restarts.
    pub async fn start_operator_with(
        &mut self,
        spec: OperatorSpec,
    ) -> anyhow::Result<&mut Operator> {
        self.operator_spec = spec;
        self.start_operator().await
    }

    /// The flags, files and identity the cluster starts its operator with.
    pub fn operator_spec(&self) -> &OperatorSpec {
        &self.operator_spec
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
            // The registry logs every 404 of a blob existence check; its end is what matters.
            let registry_log = self.registry.log();
            let lines: Vec<&str> = registry_log.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            eprintln!(
                "=== stratum-operator log ({}) ===\n{}\n=== registry log (last 20 lines) ===\n{tail}",
                self.operator_spec.log.display(),
                self.operator_logs(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_passed_names_every_failed_scenario() {
        assert!(all_passed([("a", Ok(())), ("b", Ok(()))]).is_ok());
        let err = all_passed([
            ("a", Err(anyhow::anyhow!("first"))),
            ("b", Ok(())),
            ("c", Err(anyhow::anyhow!("third"))),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains(r#"scenario "a" failed: first"#), "{err}");
        assert!(err.contains(r#"scenario "c" failed: third"#), "{err}");
        assert!(!err.contains(r#""b""#), "{err}");
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let err = binaries::binary("no-such-stratum-binary")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cargo build --workspace --bins"), "{err}");
    }

    #[test]
    fn the_example_names_the_registry_the_harness_rewrites() {
        let example = std::fs::read_to_string(repo_root().join("examples/imagebuild.yaml"))
            .expect("examples/imagebuild.yaml");
        assert!(example.contains(EXAMPLE_REGISTRY));
    }
}
