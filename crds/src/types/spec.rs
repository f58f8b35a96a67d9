//! `ImageBuild` and its spec: the resource users apply.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cel;
use crate::duration::GoDuration;
use crate::patterns;
use crate::types::output::{BuildArg, Cache, Output};
use crate::types::source::Source;
use crate::types::status::ImageBuildStatus;

/// The built-in default of `spec.timeout`; the operator's `--default-timeout` replaces it.
pub const DEFAULT_TIMEOUT: &str = "30m";
/// The default of `spec.retries`.
pub const DEFAULT_RETRIES: i32 = 2;
/// The Dockerfile path used when `spec.dockerfile` is unset.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";
/// The largest `spec.retries`.
pub const MAX_RETRIES: i32 = 10;
/// The largest `spec.sourceDateEpoch`: 9999-12-31T23:59:59Z, the last second a tar header and an
/// RFC 3339 timestamp can both express.
pub const MAX_SOURCE_DATE_EPOCH: i64 = 253_402_300_799;

/// What to build and where to push it. Editing the spec starts a new build; `status.history` keeps
/// the outcome of earlier ones.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "stratum.dev",
    version = "v1alpha1",
    kind = "ImageBuild",
    namespaced,
    status = "ImageBuildStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "ib",
    category = "stratum",
    doc = "An image to build from a Dockerfile and push to a registry. The operator resolves the source to an exact revision, runs the build in a pod, verifies the pushed image in the registry and records its digests in status. Editing the spec starts a new build.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Where the current build is"),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.output.image", description = "The tag the image is pushed to"),
    printcolumn(name = "Digest", type_ = "string", json_path = ".status.shortDigest", description = "The first 12 hex digits of the pushed manifest's digest"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.failure.reason", priority = 1, description = "Why the build failed"),
    printcolumn(name = "Commit", type_ = "string", json_path = ".status.source.git.commit", priority = 1, description = "The git commit that was built"),
    validation = Rule::new(cel::NAME_LENGTH.rule).message(cel::NAME_LENGTH.message),
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::INLINE_WITHOUT_DOCKERFILE_PATH.json()]))]
pub struct ImageBuildSpec {
    /// Where the build context comes from: exactly one of `git`, `url` or `inline`.
    pub source: Source,

    /// The Dockerfile's path inside the build context. Defaults to `Dockerfile`. Leave it unset
    /// with `source.inline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::CONTEXT_PATH), length(max = 1024))]
    #[schemars(extend("x-kubernetes-validations" = [cel::CONTEXT_DIR_CONTAINED.json()]))]
    pub dockerfile: Option<String>,

    /// Values for the Dockerfile's `ARG`s, like `docker build --build-arg`. Names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub build_args: Vec<BuildArg>,

    /// The stage to build in a multi-stage Dockerfile (`FROM … AS <target>`), like
    /// `docker build --target`. Defaults to the last stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::STAGE_NAME), length(max = 128))]
    pub target: Option<String>,

    /// Labels to add to the image configuration, like `docker build --label`. They override
    /// labels of the same name set by the Dockerfile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    // schemars' `inner(length(...))` does not reach a map's values, so the value schema is spelled out.
    #[schemars(extend(
        "additionalProperties" = {"type": "string", "maxLength": 4096},
        "maxProperties" = 64,
        "x-kubernetes-validations" = [cel::MAP_KEYS.json()],
    ))]
    pub labels: BTreeMap<String, String>,

    /// Annotations to add to the pushed manifest (OCI annotations, e.g.
    /// `org.opencontainers.image.source`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    // schemars' `inner(length(...))` does not reach a map's values, so the value schema is spelled out.
    #[schemars(extend(
        "additionalProperties" = {"type": "string", "maxLength": 4096},
        "maxProperties" = 64,
        "x-kubernetes-validations" = [cel::MAP_KEYS.json()],
    ))]
    pub annotations: BTreeMap<String, String>,

    /// Where to push the image and in what format.
    pub output: Output,

    /// Layer cache settings. By default, layers cached in the builder's work directory and the
    /// base images are reused; set `repository` to share a cache between builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Cache>,

    /// Build byte-identical layers and digests from identical inputs: file timestamps are clamped
    /// to `sourceDateEpoch` (or to 0 when it is unset), and the image config carries no build
    /// time. Two builds of the same commit then push the same digest.
    #[serde(default)]
    pub reproducible: bool,

    /// A Unix timestamp (seconds) to use as the creation time of the image and its history, like
    /// the `SOURCE_DATE_EPOCH` convention; it is also passed to the build as the
    /// `SOURCE_DATE_EPOCH` build argument.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 253_402_300_799i64))]
    pub source_date_epoch: Option<i64>,

    /// How long one build attempt may run, fetching and pushing included (Go duration, e.g. `30m`,
    /// `1h30m`). A build that runs longer fails with reason `Timeout`. When unset, the operator's
    /// default applies (its `--default-timeout`, `30m` unless configured otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [cel::TIMEOUT_POSITIVE.json()]))]
    pub timeout: Option<GoDuration>,

    /// How many times to retry a build that failed for an infrastructure reason (pod evicted,
    /// node lost, registry unavailable). Failures of the build itself (a Dockerfile error, a RUN
    /// step that exits non-zero) are never retried.
    #[serde(default = "default_retries")]
    #[schemars(range(min = 0, max = 10))]
    pub retries: i32,

    /// Delete the builder pod this many seconds after the build finished. By default the pod is
    /// kept until the ImageBuild is deleted or a new build starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,

    /// CPU and memory for the builder pod. Defaults come from the operator's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Run the builder pod only on nodes with these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations for the builder pod, to run it on tainted nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub tolerations: Vec<Toleration>,

    /// A different builder image than the operator's default (e.g. a mirror, or a pinned
    /// `image@sha256:` digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(patterns::IMAGE), length(max = 512))]
    pub builder_image: Option<String>,

    /// Set to true to stop the running build; it ends with phase `Cancelled`. While true, no new
    /// build starts. Set it back to false to build again.
    #[serde(default)]
    pub cancel: bool,
}

fn default_retries() -> i32 {
    DEFAULT_RETRIES
}

/// An empty spec with every default applied (no source, no output image): the base for builders
/// in tests and for `..Default::default()`.
impl Default for ImageBuildSpec {
    fn default() -> Self {
        Self {
            source: Source::default(),
            dockerfile: None,
            build_args: Vec::new(),
            target: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            output: Output::default(),
            cache: None,
            reproducible: false,
            source_date_epoch: None,
            timeout: None,
            retries: DEFAULT_RETRIES,
            ttl_seconds_after_finished: None,
            resources: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            builder_image: None,
            cancel: false,
        }
    }
}

impl ImageBuildSpec {
    /// The Dockerfile path in the context, with the default applied.
    pub fn dockerfile_path(&self) -> &str {
        self.dockerfile.as_deref().unwrap_or(DEFAULT_DOCKERFILE)
    }
}
