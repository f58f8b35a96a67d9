//! What one reconcile observed, reduced to the facts [`super::decide`] needs.
//!
//! [`PodView::from_pod`] turns a Kubernetes `Pod` into a [`PodView`]; everything here is pure, so
//! the table tests build views directly with `mk_*` helpers instead of whole pods.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::jiff::Timestamp;
use stratum_builder::source::SourceErrorKind;
use stratum_crds::{ImageBuild, ResolvedSource};

use crate::names::{ATTEMPT_LABEL, GENERATION_LABEL, REBUILD_LABEL};

/// The name of the builder container (the pod's only container).
pub const BUILDER_CONTAINER: &str = "builder";

/// The inputs of one decision.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The ImageBuild as read (spec, `metadata.generation`, status).
    pub build: &'a ImageBuild,
    /// The pods labelled for this build *and controlled by it* (same owner UID), from a live list:
    /// an informer cache that lags behind a create would make a just-created pod look deleted.
    pub pods: Vec<PodView>,
    pub now: Timestamp,
    /// Whether the operator's concurrency limit leaves room for one more running build.
    pub slot_free: bool,
    /// Secrets the spec names that do not exist (or have the wrong type), with what is wrong.
    pub missing_secrets: Vec<String>,
    /// What asking the source's remote for its current revision gave in this reconcile. The
    /// controller asks only when a decision returned [`super::Action::Resolve`], then decides
    /// again with the answer.
    pub source: SourceCheck,
    /// When this operator last asked the remote for this build's revision (in memory: after a
    /// restart, `status.completionTime` anchors the next `pollInterval` check).
    pub last_source_check: Option<Timestamp>,
    /// `spec.timeout` when the spec leaves it unset (the operator's `--default-timeout`).
    pub default_timeout: Duration,
}

/// The answer of the source's remote in this reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceCheck {
    /// Not asked in this reconcile.
    NotChecked,
    /// The revision the source names now: a git commit, or an object's ETag / Last-Modified
    /// (and the spec's sha256 pin).
    Resolved(ResolvedSource),
    /// The remote refused or could not be reached. `message` names the URL (without userinfo)
    /// and the revision, never credentials.
    Failed {
        kind: SourceErrorKind,
        message: String,
    },
}

/// A builder pod, as far as the decision cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub generation: i64,
    /// The `pollInterval` rebuild the pod builds (0: the build the spec started).
    pub rebuild: i32,
    pub attempt: i32,
    pub phase: PodPhase,
    /// `status.reason`: `Evicted`, `DeadlineExceeded`, `NodeLost`, `Terminated`, …
    pub reason: Option<String>,
    pub message: Option<String>,
    pub container: ContainerView,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    pub created: Option<Timestamp>,
}

/// `status.phase` of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// The kubelet stopped reporting (node lost or partitioned).
    Unknown,
}

/// The builder container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerView {
    /// Not created or not started yet (image pull, scheduling).
    Waiting,
    Running,
    Terminated(Terminated),
}

/// A terminated builder container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    /// The kubelet's reason: `Completed`, `Error`, `OOMKilled`, `DeadlineExceeded`, …
    pub reason: Option<String>,
    /// The termination message: the builder's framed result.
    pub message: String,
    pub finished: Option<Timestamp>,
}

impl PodView {
    /// When this pod stopped, as far as known: the container's finish time.
    pub fn finished(&self) -> Option<Timestamp> {
        match &self.container {
            ContainerView::Terminated(t) => t.finished,
            _ => None,
        }
    }

    /// The pod is over: it will not run the builder again.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed)
            || matches!(self.container, ContainerView::Terminated(_))
    }

    /// The view of `pod` when `build` controls it (an ownerReference with `controller: true` and
    /// the build's UID) and it carries valid generation and attempt labels; `None` otherwise — a
    /// pod of a deleted namesake or one a user labelled by hand is not ours to judge or delete.
    pub fn from_pod(pod: &Pod, build: &ImageBuild) -> Option<Self> {
        let meta = &pod.metadata;
        let uid = build.metadata.uid.as_deref()?;
        let controlled = meta
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.uid == uid);
        if !controlled {
            return None;
        }
        let label = |key: &str| meta.labels.as_ref()?.get(key)?.parse().ok();
        let generation: i64 = label(GENERATION_LABEL)?;
        let attempt: i64 = label(ATTEMPT_LABEL)?;
        // Absent on pods of rebuild 0 (and on pods made before rebuilds existed).
        let rebuild: i32 = match meta.labels.as_ref().and_then(|l| l.get(REBUILD_LABEL)) {
            None => 0,
            Some(value) => value.parse().ok()?,
        };
        let status = pod.status.clone().unwrap_or_default();
        let phase = match status.phase.as_deref() {
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            Some("Unknown") => PodPhase::Unknown,
            _ => PodPhase::Pending,
        };
        let container = status
            .container_statuses
            .iter()
            .flatten()
            .find(|c| c.name == BUILDER_CONTAINER)
            .and_then(|c| c.state.clone())
            .map_or(ContainerView::Waiting, |state| {
                if let Some(t) = state.terminated {
                    ContainerView::Terminated(terminated(t))
                } else if state.running.is_some() {
                    ContainerView::Running
                } else {
                    ContainerView::Waiting
                }
            });
        Some(Self {
            name: meta.name.clone()?,
            generation,
            rebuild,
            attempt: i32::try_from(attempt).ok()?,
            phase,
            reason: status.reason,
            message: status.message,
            container,
            deleting: meta.deletion_timestamp.is_some(),
            created: meta.creation_timestamp.as_ref().map(|t| t.0),
        })
    }
}

fn terminated(t: ContainerStateTerminated) -> Terminated {
    Terminated {
        exit_code: t.exit_code,
        reason: t.reason,
        message: t.message.unwrap_or_default(),
        finished: t.finished_at.map(|t| t.0),
    }
}

/// `a + d`, saturating at the largest timestamp.
pub(crate) fn after(a: Timestamp, d: Duration) -> Timestamp {
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| {
            a.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(s))
                .ok()
        })
        .unwrap_or(Timestamp::MAX)
}

/// How long from `now` until `then` (zero when `then` has passed).
pub(crate) fn until(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(then.duration_since(now)).unwrap_or(Duration::ZERO)
}
