//! The Helm chart (`charts/stratum`) rendered by the REAL `helm` (v4, installed by
//! scripts/install-kube-tools), parsed into JSON objects, and the operator command line the
//! chart's Deployment describes — so a test can start `stratum-operator` exactly as the chart
//! would run it in a cluster (see tests/tests/helm_chart.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use serde_json::Value;

/// The name of the operator container in the chart's Deployment.
pub const OPERATOR_CONTAINER: &str = "operator";

/// Why the chart could not be rendered or read.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("cannot run {helm}: {source}; run scripts/install-kube-tools")]
    Spawn {
        helm: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the values file {path}: {source}")]
    Values {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`helm {args}` failed:\n{stderr}")]
    Helm { args: String, stderr: String },
    #[error("the rendered chart is not YAML: {0}")]
    Yaml(String),
    #[error("the rendered chart has no {what}")]
    Missing { what: String },
    #[error("the rendered Deployment does not decode: {0}")]
    Deployment(#[source] serde_json::Error),
    #[error(
        "env var {name} of the operator container uses {source_kind}, which only a kubelet can resolve"
    )]
    UnresolvableEnv { name: String, source_kind: String },
}

/// `helm` from `STRATUM_HELM`, else the one on PATH (scripts/install-kube-tools puts v4 in
/// /usr/local/bin).
pub fn helm_bin() -> String {
    std::env::var("STRATUM_HELM").unwrap_or_else(|_| "helm".into())
}

/// The chart's directory in this repository.
pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/stratum")
}

/// Runs `helm <args>` in a scratch HOME (no user repositories or plugins leak in) and returns its
/// stdout, or the failure with helm's stderr.
pub fn helm(args: &[&str]) -> Result<String, ChartError> {
    helm_with(None, args)
}

/// `helm <args>` against the cluster of `kubeconfig` (install, upgrade, uninstall), or with none.
pub fn helm_with(kubeconfig: Option<&Path>, args: &[&str]) -> Result<String, ChartError> {
    let scratch = tempfile::tempdir().map_err(|source| ChartError::Spawn {
        helm: helm_bin(),
        source,
    })?;
    let mut command = Command::new(helm_bin());
    if let Some(kubeconfig) = kubeconfig {
        command.env("KUBECONFIG", kubeconfig);
    }
    let out = command
        .args(args)
        .env("HELM_CACHE_HOME", scratch.path().join("cache"))
        .env("HELM_CONFIG_HOME", scratch.path().join("config"))
        .env("HELM_DATA_HOME", scratch.path().join("data"))
        .output()
        .map_err(|source| ChartError::Spawn {
            helm: helm_bin(),
            source,
        })?;
    if !out.status.success() {
        return Err(ChartError::Helm {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The chart rendered by `helm template`.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The multi-document YAML helm printed (what `kubectl apply -f -` takes).
    pub manifest: String,
    /// Each document as JSON, in helm's install order.
    pub objects: Vec<Value>,
}

/// Renders the chart as release `release` in `namespace` with the values in `values_yaml` (a
/// values file's content; `""` for the defaults), for Kubernetes 1.33 (the emulator's version).
pub fn render(release: &str, namespace: &str, values_yaml: &str) -> Result<Rendered, ChartError> {
    let dir = tempfile::tempdir().map_err(|source| ChartError::Values {
        path: std::env::temp_dir(),
        source,
    })?;
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, values_yaml).map_err(|source| ChartError::Values {
        path: values.clone(),
        source,
    })?;
    let chart = chart_dir();
    let manifest = helm(&[
        "template",
        release,
        &chart.to_string_lossy(),
        "--namespace",
        namespace,
        "--kube-version",
        "1.33.0",
        "--values",
        &values.to_string_lossy(),
    ])?;
    let objects = parse_documents(&manifest)?;
    Ok(Rendered { manifest, objects })
}

/// The documents of a multi-document YAML stream, skipping empty ones.
pub fn parse_documents(yaml: &str) -> Result<Vec<Value>, ChartError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| ChartError::Yaml(e.to_string()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

impl Rendered {
    /// The objects of `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    /// The object of `kind` named `name` (in any namespace).
    pub fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// The operator Deployment (the chart has exactly one Deployment).
    pub fn deployment(&self) -> Result<Deployment, ChartError> {
        let value = self
            .of_kind("Deployment")
            .into_iter()
            .next()
            .ok_or_else(|| ChartError::Missing {
                what: "Deployment".into(),
            })?;
        serde_json::from_value(value.clone()).map_err(ChartError::Deployment)
    }

    /// The operator container of the Deployment.
    pub fn operator_container(&self) -> Result<Container, ChartError> {
        self.deployment()?
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| {
                s.containers
                    .into_iter()
                    .find(|c| c.name == OPERATOR_CONTAINER)
            })
            .ok_or_else(|| ChartError::Missing {
                what: format!("container {OPERATOR_CONTAINER:?} in the Deployment"),
            })
    }

    /// The operator's command line as the chart describes it.
    pub fn operator_command(&self) -> Result<OperatorCommand, ChartError> {
        let container = self.operator_container()?;
        Ok(OperatorCommand {
            image: container.image.unwrap_or_default(),
            args: container.args.unwrap_or_default(),
            env: container.env.unwrap_or_default(),
        })
    }
}

/// How the chart runs the operator: image, arguments (the image's entrypoint is
/// `stratum-operator`) and environment.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorCommand {
    pub image: String,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
}

impl OperatorCommand {
    /// The value of `--<flag>=<value>` in the chart's arguments; `Some("")` for a switch such as
    /// `--leader-election`.
    pub fn flag(&self, flag: &str) -> Option<&str> {
        let long = format!("--{flag}");
        self.args.iter().find_map(|a| {
            let rest = a.strip_prefix(&long)?;
            if rest.is_empty() {
                Some("")
            } else {
                rest.strip_prefix('=')
            }
        })
    }

    /// The arguments without `flags` (names without `--`), for a harness that sets those itself
    /// (e.g. tests/src/e2e's `OperatorSpec` passes `--http-addr`, `--builder-image`,
    /// `--concurrency` and `--log-format`).
    pub fn args_without(&self, flags: &[&str]) -> Vec<String> {
        self.args
            .iter()
            .filter(|a| {
                !flags.iter().any(|f| {
                    let long = format!("--{f}");
                    a.as_str() == long || a.starts_with(&format!("{long}="))
                })
            })
            .cloned()
            .collect()
    }

    /// Sets `--<flag>=<value>`, replacing the chart's value if it has one: clap refuses a flag
    /// given twice, so a test that must change one (`http-addr` to a free loopback port,
    /// `builder-image` to a local image) replaces it rather than appending.
    pub fn set_flag(&mut self, flag: &str, value: &str) {
        let prefix = format!("--{flag}=");
        let arg = format!("{prefix}{value}");
        match self.args.iter_mut().find(|a| a.starts_with(&prefix)) {
            Some(existing) => *existing = arg,
            None => self.args.push(arg),
        }
    }

    /// The environment as a kubelet would set it for pod `pod_name` in `pod_namespace`: literal
    /// values, and the downward API's `metadata.name` / `metadata.namespace`. Anything else
    /// (Secrets, ConfigMaps, resource fields) is an error rather than silently dropped.
    pub fn resolved_env(
        &self,
        pod_name: &str,
        pod_namespace: &str,
    ) -> Result<Vec<(String, String)>, ChartError> {
        self.env
            .iter()
            .map(|var| {
                if let Some(value) = &var.value {
                    return Ok((var.name.clone(), value.clone()));
                }
                let field = var
                    .value_from
                    .as_ref()
                    .and_then(|from| from.field_ref.as_ref())
                    .map(|f| f.field_path.as_str());
                let value = match field {
                    Some("metadata.name") => pod_name,
                    Some("metadata.namespace") => pod_namespace,
                    other => {
                        return Err(ChartError::UnresolvableEnv {
                            name: var.name.clone(),
                            source_kind: other.map_or_else(
                                || "a Secret, ConfigMap or resource field".to_owned(),
                                |f| format!("fieldRef {f}"),
                            ),
                        });
                    }
                };
                Ok((var.name.clone(), value.to_owned()))
            })
            .collect()
    }
}
