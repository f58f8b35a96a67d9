//! The operator's configuration: flags, each also readable from an environment variable, all
//! shown by `stratum-operator --help`.
//!
//! `--default-timeout` is the deadline of builds that leave `spec.timeout` unset: the CRD has no
//! schema default for it (a schema default would make the flag accepted and ignored), so the
//! precedence is `spec.timeout`, then this flag, then its default `30m`.

use std::net::SocketAddr;

use clap::Parser;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::pod::PodConfig;
use stratum_crds::GoDuration;
use stratum_crds::types::spec::DEFAULT_TIMEOUT;

/// The builder image this operator version starts by default.
pub const DEFAULT_BUILDER_IMAGE: &str =
    concat!("ghcr.io/stratum-dev/stratum:", env!("CARGO_PKG_VERSION"));

/// What `--help` says after the flags: what the operator needs at run time, and the way out
/// when it is gone but its finalizers are not.
const AFTER_HELP: &str = "\
Sources: before a builder pod starts, the operator resolves a git revision to a commit \
(`git ls-remote`; needs `git` and `ssh` on PATH) and reads an object URL's ETag / Last-Modified \
(a HEAD request), with the keys of the source Secret written to a private directory under \
$TMPDIR for the duration of the call. `pollInterval` repeats that for finished builds and starts \
a rebuild when the revision moved.

Finalizer: every ImageBuild that had a builder pod carries the finalizer \
`stratum.dev/builder-pods`; deleting it stops and removes its pods first (at most 10 minutes \
for a pod stuck terminating). Uninstall with `stratum-operator --remove-finalizers` first (it removes only \
this finalizer, from every ImageBuild in --namespaces, and exits). If the operator is already \
gone while ImageBuilds remain, remove the finalizers by hand (this drops every finalizer of \
that ImageBuild): kubectl patch imagebuild NAME --type=json \
-p '[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]'";

/// The Stratum operator: reconciles ImageBuild resources into builder pods and records the pushed
/// image in their status.
#[derive(Debug, Clone, Parser, PartialEq)]
#[command(name = "stratum-operator", version, about, after_help = AFTER_HELP)]
pub struct Config {
    /// Namespaces to watch, comma-separated. Empty (the default) watches all namespaces, which
    /// needs cluster-wide RBAC for ImageBuilds, Pods, Secrets and Events.
    #[arg(long, env = "STRATUM_NAMESPACES", value_delimiter = ',', value_parser = namespace)]
    pub namespaces: Vec<String>,

    /// The builder image for builds that do not set `spec.builderImage`.
    #[arg(long, env = "STRATUM_BUILDER_IMAGE", default_value = DEFAULT_BUILDER_IMAGE)]
    pub builder_image: String,

    /// How many builds may run at once; further builds wait in phase `Queued`.
    #[arg(long, env = "STRATUM_CONCURRENCY", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// CPU request of a builder pod whose ImageBuild sets no `spec.resources`.
    #[arg(long, env = "STRATUM_BUILDER_CPU_REQUEST", default_value = "500m", value_parser = quantity)]
    pub builder_cpu_request: Quantity,

    /// Memory request of a builder pod whose ImageBuild sets no `spec.resources`.
    #[arg(long, env = "STRATUM_BUILDER_MEMORY_REQUEST", default_value = "1Gi", value_parser = quantity)]
    pub builder_memory_request: Quantity,

    /// Memory limit of a builder pod whose ImageBuild sets no `spec.resources`. An OOM-killed
    /// build fails with reason `OOMKilled` and is not retried.
    #[arg(long, env = "STRATUM_BUILDER_MEMORY_LIMIT", default_value = "4Gi", value_parser = quantity)]
    pub builder_memory_limit: Quantity,

    /// `sizeLimit` of the builder's work volume (layer store). Past it the kubelet evicts the pod
    /// (a retried `Evicted` failure) instead of filling the node's disk. Unset: no limit.
    #[arg(long, env = "STRATUM_WORK_SIZE_LIMIT", value_parser = quantity)]
    pub work_size_limit: Option<Quantity>,

    /// How long a build attempt may run when its ImageBuild sets no `spec.timeout` (Go duration,
    /// e.g. `30m`, `2h`). `spec.timeout` always wins.
    #[arg(long, env = "STRATUM_DEFAULT_TIMEOUT", default_value = DEFAULT_TIMEOUT,
          value_parser = timeout)]
    pub default_timeout: std::time::Duration,

    /// Address of the HTTP server for `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "STRATUM_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Run the controller only while holding the Lease `stratum-operator` in `--lease-namespace`
    /// (15 s lease, renewed every 5 s), so two replicas never run the same build twice. A replica
    /// that loses the Lease exits and restarts as a standby.
    #[arg(long, env = "STRATUM_LEADER_ELECTION", requires = "lease_namespace")]
    pub leader_election: bool,

    /// The namespace of the leader-election Lease: the operator's own (the downward API's
    /// `metadata.namespace`).
    #[arg(long, env = "POD_NAMESPACE", value_parser = namespace)]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the Lease: the pod name (downward API). Defaults to the
    /// hostname, which is the pod name in Kubernetes.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Remove this operator's finalizer from every ImageBuild in `--namespaces` and exit, instead
    /// of running the controller: the uninstall step (e.g. a Helm pre-delete hook), so
    /// ImageBuilds can be deleted once no operator runs. Their pods go with their owner.
    #[arg(long)]
    pub remove_finalizers: bool,

    /// Log format: `json` (one object per line, for log collectors) or `text`.
    #[arg(long, env = "STRATUM_LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
}

impl Config {
    /// What the flags decide about builder pods.
    pub fn pod_config(&self) -> PodConfig {
        let mut requests = std::collections::BTreeMap::new();
        requests.insert("cpu".to_owned(), self.builder_cpu_request.clone());
        requests.insert("memory".to_owned(), self.builder_memory_request.clone());
        let mut limits = std::collections::BTreeMap::new();
        limits.insert("memory".to_owned(), self.builder_memory_limit.clone());
        PodConfig {
            builder_image: self.builder_image.clone(),
            default_resources: ResourceRequirements {
                requests: Some(requests),
                limits: Some(limits),
                ..ResourceRequirements::default()
            },
            work_size_limit: self.work_size_limit.clone(),
            default_timeout: self.default_timeout,
        }
    }
}

/// A namespace name: an RFC 1123 label. Checked here so a typo fails at start-up, not as a
/// watch that 404s forever.
fn namespace(s: &str) -> Result<String, String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"
        ))
    }
}

/// A positive Go duration (`30m`, `1h30m`), the syntax of `spec.timeout`.
fn timeout(s: &str) -> Result<std::time::Duration, String> {
    match GoDuration::new(s.trim()).parse() {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("{s:?}: the default timeout must be longer than 0s")),
        Err(e) => Err(format!("{s:?} is not a Go duration (e.g. 30m, 1h30m): {e}")),
    }
}

/// A Kubernetes quantity (`500m`, `2Gi`, `1.5`): a number with an optional SI or binary suffix.
/// Checked here so that a typo fails at start-up instead of every pod create.
fn quantity(s: &str) -> Result<Quantity, String> {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|suffix| s.strip_suffix(suffix))
        .or_else(|| s.strip_suffix('E'))
        .unwrap_or(s);
    let valid = !number.is_empty()
        && number.bytes().filter(|b| *b == b'.').count() <= 1
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().any(|b| b.is_ascii_digit());
    if valid {
        Ok(Quantity(s.to_owned()))
    } else {
        Err(format!(
            "{s:?} is not a Kubernetes quantity (e.g. 500m, 2Gi, 1.5)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("stratum-operator").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert!(c.namespaces.is_empty(), "all namespaces by default");
        assert_eq!(
            c.builder_image,
            format!("ghcr.io/stratum-dev/stratum:{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(c.concurrency, 10);
        assert_eq!(c.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.log_format, "json");
        assert!(!c.leader_election);
        let pod = c.pod_config();
        let requests = pod.default_resources.requests.unwrap();
        assert_eq!(requests["cpu"], Quantity("500m".into()));
        assert_eq!(requests["memory"], Quantity("1Gi".into()));
        assert_eq!(
            pod.default_resources.limits.unwrap()["memory"],
            Quantity("4Gi".into())
        );
        assert_eq!(pod.work_size_limit, None);
        assert_eq!(pod.default_timeout, std::time::Duration::from_secs(30 * 60));
    }

    #[test]
    fn flags_override_defaults() {
        let c = parse(&[
            "--namespaces",
            "builds, ci",
            "--builder-image",
            "registry.local/stratum:dev",
            "--concurrency",
            "3",
            "--builder-memory-limit",
            "16Gi",
            "--work-size-limit",
            "50Gi",
            "--http-addr",
            "127.0.0.1:9000",
            "--log-format",
            "text",
            "--default-timeout",
            "1h30m",
        ])
        .unwrap();
        assert_eq!(c.namespaces, ["builds", "ci"]);
        assert_eq!(c.concurrency, 3);
        let pod = c.pod_config();
        assert_eq!(pod.builder_image, "registry.local/stratum:dev");
        assert_eq!(pod.work_size_limit, Some(Quantity("50Gi".into())));
        assert_eq!(
            pod.default_resources.limits.unwrap()["memory"],
            Quantity("16Gi".into())
        );
        assert_eq!(c.http_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(pod.default_timeout, std::time::Duration::from_secs(5400));
        let c = parse(&["--leader-election", "--lease-namespace", "stratum-system"]).unwrap();
        assert!(c.leader_election);
        assert_eq!(c.lease_namespace.as_deref(), Some("stratum-system"));
        assert!(!c.remove_finalizers);
        assert!(parse(&["--remove-finalizers"]).unwrap().remove_finalizers);
    }

    #[test]
    fn bad_values_are_refused_at_start_up() {
        for args in [
            &["--concurrency", "0"][..],
            &["--namespaces", "Builds"],
            &["--namespaces", "a,,b"],
            &["--builder-memory-limit", "4GB"],
            &["--builder-cpu-request", "m"],
            &["--http-addr", "localhost"],
            &["--log-format", "xml"],
            // Leader election needs the Lease's namespace.
            &["--leader-election"],
            &["--default-timeout", "0s"],
            &["--default-timeout", "forever"],
            &["--default-timeout", "30"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "1.5", "2Gi", "100M", "1E", "0.5Ki"] {
            assert!(quantity(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Gi", "1..5", "-1", "1 Gi", "1gb"] {
            assert!(quantity(bad).is_err(), "{bad}");
        }
    }
}
