//! `ImageBuild.status`: what the operator observed and built.
//!
//! Every field the operator writes is declared here, because a real apiserver prunes unknown
//! fields from a structural schema: a field missing from this file silently disappears.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cel;

/// How many earlier builds `status.history` keeps.
pub const HISTORY_LIMIT: usize = 10;
/// How many hex digits of the manifest digest `status.shortDigest` shows (like `docker images`).
pub const SHORT_DIGEST_LEN: usize = 12;

/// The observed state of an ImageBuild.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [cel::OBSERVED_GENERATION_MONOTONIC.json()]))]
pub struct ImageBuildStatus {
    /// Where the current build is: `Pending`, `Queued`, `Fetching`, `Building`, `Pushing`, or one
    /// of the final phases `Succeeded`, `Failed`, `Cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,

    /// `Ready` and `Succeeded`, plus `Reconciling` while a build runs and `Stalled` after it
    /// failed (the conditions kstatus-based tools such as Flux and Argo CD read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes. When it is lower than the current
    /// generation, the operator has not yet acted on the latest spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Which attempt of the current build this is, from 1. Infrastructure failures are retried
    /// up to `spec.retries` times, each attempt in a new pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,

    /// How many times `pollInterval` has started a new build of the current generation because
    /// the source moved: absent (0) for the build the spec started, then 1, 2, … Builder pods of
    /// a rebuild are named `<name>-<generation>r<rebuild>-<attempt>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub rebuild: Option<i32>,

    /// The builder pod of the current attempt (`kubectl logs` it). Absent between a failed
    /// attempt and its retry's pod; earlier attempts are in `history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,

    /// When the current attempt started: its builder pod was created. A retry starts it again,
    /// as in Tekton (`spec.timeout` applies to each attempt too); earlier attempts are in
    /// `history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the current build finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// The exact revision the current build uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ResolvedSource>,

    /// The image ID: the `sha256:` digest of the image configuration, as `docker images
    /// --no-trunc` shows it.
    #[serde(default, rename = "imageID", skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,

    /// The `sha256:` digest of the pushed manifest, verified in the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,

    /// The first 12 hex digits of `digest`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_digest: Option<String>,

    /// The pushed image by digest (`registry.example.com/team/app@sha256:…`): use this to deploy
    /// exactly what was built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// The tags that point at `digest`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,

    /// The size in bytes of the manifest, the configuration and all layers (compressed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,

    /// The image's layers, in order, as the registry holds them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerStatus>,

    /// One entry per Dockerfile instruction that ran: whether it came from the cache and how long
    /// it took. When a build has more steps than fit in the result, the fastest are left out and
    /// counted in `omittedSteps`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepStatus>,

    /// Steps that ran but are not listed in `steps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted_steps: Option<OmittedSteps>,

    /// Why the build failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,

    /// The outcomes of earlier builds of this ImageBuild (after a spec change, a `pollInterval`
    /// rebuild or a retry), newest first, at most 10.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub history: Vec<BuildRecord>,
}

// Where a build is. A `//` comment on purpose: a doc comment would become the enum's schema
// description, and kube's Option<enum> rewrite (kube-core `OptionalEnum`) lets it overwrite the
// more specific description of the `status.phase` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted; the source is being resolved or the pod is being created.
    Pending,
    /// Waiting for a free build slot (the operator's concurrency limit).
    Queued,
    /// The builder pod is fetching the build context.
    Fetching,
    /// The builder pod is running the Dockerfile.
    Building,
    /// The builder pod is pushing the image, or the operator is verifying it in the registry.
    Pushing,
    /// The image was pushed and verified.
    Succeeded,
    /// The build failed; `status.failure` says why.
    Failed,
    /// The build was stopped by `spec.cancel`.
    Cancelled,
}

impl Phase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Phase; 8] = [
        Phase::Pending,
        Phase::Queued,
        Phase::Fetching,
        Phase::Building,
        Phase::Pushing,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Cancelled,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Queued => "Queued",
            Phase::Fetching => "Fetching",
            Phase::Building => "Building",
            Phase::Pushing => "Pushing",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Cancelled => "Cancelled",
        }
    }

    /// A final phase: the build of this generation (and source revision) is over and its phase
    /// never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Cancelled)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The exact revision that was built. One of `git` or `url` is set, matching `spec.source`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedSource {
    /// The commit of a git source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<ResolvedGit>,

    /// The content of a URL source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<ResolvedUrl>,
}

impl ResolvedSource {
    /// A short text naming the revision (`<commit>` or `sha256:<hex>`/`etag:<etag>`), as written
    /// in `status.history[].sourceRevision`.
    pub fn revision(&self) -> Option<String> {
        if let Some(git) = &self.git {
            return Some(git.commit.clone());
        }
        let url = self.url.as_ref()?;
        match (&url.sha256, &url.etag, &url.last_modified) {
            (Some(sha), _, _) => Some(format!("sha256:{sha}")),
            (None, Some(etag), _) => Some(format!("etag:{etag}")),
            (None, None, Some(time)) => Some(format!("last-modified:{time}")),
            (None, None, None) => None,
        }
    }
}

/// A resolved git revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedGit {
    /// The full commit SHA.
    pub commit: String,
}

/// A resolved object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedUrl {
    /// The sha256 (64 hex digits) of the bytes the builder fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,

    /// The object's ETag when the build started; `pollInterval` compares against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub etag: Option<String>,

    /// The object's `Last-Modified` time when the build started, as the server wrote it; what
    /// `pollInterval` compares when the server sends no ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub last_modified: Option<String>,
}

/// One layer of the pushed image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerStatus {
    /// The `sha256:` digest of the compressed layer blob.
    pub digest: String,

    /// The `sha256:` digest of the uncompressed layer tar (the image config's `rootfs.diff_ids`).
    #[serde(rename = "diffID")]
    pub diff_id: String,

    /// The compressed size in bytes.
    pub size: i64,

    /// The layer's media type, e.g. `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub media_type: String,

    /// The instruction that created the layer, from the image history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// One Dockerfile instruction of the build.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    /// The step's position in the build, from 0, counting the instructions of every stage that
    /// was built.
    pub index: i32,

    /// The instruction, when known (from the image history; instructions of earlier stages are
    /// not recorded there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,

    /// Whether the step's result came from the layer cache.
    pub cached: bool,

    /// How long the step took, in milliseconds.
    pub duration_millis: i64,
}

/// A summary of the steps not listed in `status.steps`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OmittedSteps {
    /// How many steps are not listed.
    pub count: i32,

    /// How many of them came from the cache.
    pub cached: i32,

    /// Their total duration in milliseconds.
    pub duration_millis: i64,
}

/// Why a build failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// A CamelCase reason, e.g. `StepFailed`, `DockerfileInvalid`, `PushFailed`, `Timeout`,
    /// `OOMKilled`; the same as the `Succeeded` condition's reason.
    pub reason: String,

    /// What went wrong, e.g. "The command '/bin/sh -c make' returned a non-zero code: 2".
    pub message: String,

    /// The instruction that failed, e.g. `RUN make`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,

    /// The line of that instruction in the Dockerfile, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<i32>,

    /// The exit code of the failed `RUN` command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// The outcome of one earlier build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildRecord {
    /// The `metadata.generation` the build was for.
    pub generation: i64,

    /// The `pollInterval` rebuild of that generation (absent: the build the spec started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub rebuild: Option<i32>,

    /// The attempt, from 1.
    pub attempt: i32,

    /// The revision built: a commit SHA, `sha256:<hex>`, `etag:<etag>` or
    /// `last-modified:<time>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,

    /// The `sha256:` manifest digest, when the build pushed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,

    /// The final phase.
    pub phase: Phase,

    /// The reason of a failed or cancelled build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// When the build finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

/// Records a finished build at the front of `history`, dropping the oldest beyond
/// [`HISTORY_LIMIT`]. Recording the same (generation, rebuild, attempt, revision) twice replaces the entry,
/// so a reconcile that runs again after a failed status write does not duplicate it.
pub fn record_history(history: &mut Vec<BuildRecord>, record: BuildRecord) {
    history.retain(|r| {
        (r.generation, r.rebuild, r.attempt, &r.source_revision)
            != (
                record.generation,
                record.rebuild,
                record.attempt,
                &record.source_revision,
            )
    });
    history.insert(0, record);
    history.truncate(HISTORY_LIMIT);
}

/// The first [`SHORT_DIGEST_LEN`] hex digits of a `sha256:` digest, for `status.shortDigest`.
pub fn short_digest(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    let short = hex.get(..SHORT_DIGEST_LEN)?;
    short
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| short.to_owned())
}

/// The image reference by digest for `status.image`: `image`'s repository (its tag removed)
/// joined with `digest`.
pub fn image_by_digest(image: &str, digest: &str) -> String {
    format!("{}@{digest}", repository_of(image))
}

/// The repository part of a tag reference: everything before a `:tag` that follows the last `/`
/// (a `:` before it belongs to a registry port).
pub fn repository_of(image: &str) -> &str {
    let image = image.split_once('@').map_or(image, |(name, _)| name);
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => &image[..last_slash + colon],
        None => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(generation: i64, attempt: i32, revision: &str) -> BuildRecord {
        BuildRecord {
            generation,
            rebuild: None,
            attempt,
            source_revision: Some(revision.to_owned()),
            digest: None,
            phase: Phase::Succeeded,
            reason: None,
            completion_time: None,
        }
    }

    #[test]
    fn history_is_newest_first_bounded_and_idempotent() {
        let mut history = Vec::new();
        for generation in 1..=12 {
            record_history(&mut history, record(generation, 1, "abc"));
        }
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert_eq!(history[0].generation, 12);
        assert_eq!(history[HISTORY_LIMIT - 1].generation, 3);

        let mut again = record(12, 1, "abc");
        again.phase = Phase::Failed;
        record_history(&mut history, again);
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert_eq!(history[0].phase, Phase::Failed);
        assert_eq!(history[1].generation, 11);

        record_history(&mut history, record(12, 1, "def"));
        assert_eq!(
            (
                history[0].source_revision.as_deref(),
                history[1].source_revision.as_deref()
            ),
            (Some("def"), Some("abc"))
        );
    }

    #[test]
    fn short_digest_and_image_by_digest() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_digest(&digest).as_deref(), Some("abababababab"));
        assert_eq!(short_digest("sha256:abc"), None);
        assert_eq!(short_digest("md5:abababababababab"), None);
        let cases = [
            ("app", "app"),
            ("app:1", "app"),
            ("localhost:5000/app", "localhost:5000/app"),
            ("localhost:5000/team/app:v1.2", "localhost:5000/team/app"),
            ("registry.io/app@sha256:00", "registry.io/app"),
        ];
        for (image, repo) in cases {
            assert_eq!(repository_of(image), repo, "{image}");
            assert_eq!(image_by_digest(image, &digest), format!("{repo}@{digest}"));
        }
    }

    #[test]
    fn terminal_phases() {
        let terminal: Vec<_> = Phase::ALL.iter().filter(|p| p.is_terminal()).collect();
        assert_eq!(
            terminal,
            [&Phase::Succeeded, &Phase::Failed, &Phase::Cancelled]
        );
        for phase in Phase::ALL {
            let json = serde_json::to_value(phase).unwrap();
            assert_eq!(json, phase.as_str());
        }
    }
}
