//! The parts of the decision about the source's revision and about deletion: which revision a
//! build uses, what a failed resolution means, `pollInterval` rebuilds, and the finalizer.
//! Pure, like [`super::decide`], which calls them.

use std::time::Duration;

use stratum_builder::source::SourceErrorKind;
use stratum_crds::{ImageBuild, ImageBuildStatus, Phase, ResolvedSource, SourceKind, reason};

use super::decide::{Action, DeleteWhy, Waiting, failure, retry_or_fail};
use super::observed::{Observed, SourceCheck, after, until};

/// The finalizer on every ImageBuild that has had a builder pod (threats F8): deleting the
/// ImageBuild first stops and removes its pods, then the operator removes the finalizer.
pub const FINALIZER: &str = "stratum.dev/builder-pods";
/// How long a deleting ImageBuild waits for its pods to go before the operator removes the
/// finalizer anyway: a pod on a dead node stays `Terminating` until the node is gone, and the
/// ownerReference lets the garbage collector remove it then.
pub const FINALIZER_TIMEOUT: Duration = Duration::from_secs(600);
/// How soon to look again while a deleting build's pods terminate.
pub const DELETE_POLL: Duration = Duration::from_secs(5);
/// The apiserver's finalizer for `--cascade=orphan` deletion: the user asked to keep the pods.
const ORPHAN_FINALIZER: &str = "orphan";

/// The revision recorded for the current build of the current generation (`status.source`),
/// which every attempt uses; `None` when the source must be resolved first. Inline sources need
/// no resolution.
pub fn recorded_source(build: &ImageBuild) -> Option<ResolvedSource> {
    let kind = build.spec.source.kind();
    if matches!(kind, Some(SourceKind::Inline(_)) | None) {
        return Some(ResolvedSource::default());
    }
    let status = build.status.as_ref()?;
    if status.observed_generation != Some(build.metadata.generation.unwrap_or(1)) {
        return None;
    }
    let recorded = status.source.clone()?;
    match kind {
        Some(SourceKind::Git(_)) => recorded.git.is_some(),
        _ => recorded.url.is_some(),
    }
    .then_some(recorded)
}

/// Whether a source resolved just now is a different revision than `recorded`: another commit,
/// or another ETag / Last-Modified. An object whose server sends neither cannot be compared,
/// so it never counts as moved (docs/arch/operator.md).
pub fn moved(recorded: Option<&ResolvedSource>, now: &ResolvedSource) -> bool {
    let Some(recorded) = recorded else {
        return true;
    };
    if let Some(git) = &now.git {
        return recorded.git.as_ref().map(|g| &g.commit) != Some(&git.commit);
    }
    let Some(url) = &now.url else {
        return false;
    };
    if url.etag.is_none() && url.last_modified.is_none() {
        return false;
    }
    let before = recorded.url.as_ref();
    (
        before.and_then(|u| u.etag.as_ref()),
        before.and_then(|u| u.last_modified.as_ref()),
    ) != (url.etag.as_ref(), url.last_modified.as_ref())
}

/// The status reason of a resolution that failed with `kind`.
pub fn failure_reason(kind: SourceErrorKind) -> &'static str {
    match kind {
        SourceErrorKind::Auth => reason::SOURCE_AUTH_FAILED,
        SourceErrorKind::Unavailable => reason::SOURCE_UNAVAILABLE,
        SourceErrorKind::Mismatch => reason::SOURCE_MISMATCH,
        SourceErrorKind::NotFound | SourceErrorKind::Invalid => reason::FETCH_FAILED,
    }
}

/// The outcome of a resolution that failed before any pod started. Only an unreachable remote
/// is retried (with the attempts' backoff, up to `spec.retries`); a missing repository,
/// revision or object and refused credentials would fail again.
pub fn resolve_failed(
    o: &Observed<'_>,
    attempt: i32,
    kind: SourceErrorKind,
    message: &str,
) -> Action {
    let f = failure(failure_reason(kind), message.to_owned());
    if kind == SourceErrorKind::Unavailable {
        return retry_or_fail(o, attempt, f, None, None);
    }
    Action::Fail {
        pod: None,
        attempt,
        failure: f,
        result: None,
        stop: None,
    }
}

/// A final build: `cleanup` (what [`super::decide`] would do without polling), unless
/// `pollInterval` asks to check the source and it moved. A running build is never interrupted
/// by a poll: polling starts when the build is final, so a commit pushed during a build is
/// built right after it.
pub fn final_or_poll(o: &Observed<'_>, status: &ImageBuildStatus, cleanup: Action) -> Action {
    let spec = &o.build.spec;
    let Some(interval) = spec.source.poll_interval().and_then(|d| d.parse().ok()) else {
        return cleanup;
    };
    // Cancelled builds stay stopped, and a spec that is invalid has nothing to poll for.
    let polls = !spec.cancel
        && match status.phase {
            Some(Phase::Succeeded) => true,
            Some(Phase::Failed) => {
                status.failure.as_ref().map(|f| f.reason.as_str()) != Some(reason::SPEC_INVALID)
            }
            _ => false,
        };
    if !polls || matches!(cleanup, Action::DeletePod { .. }) {
        return cleanup;
    }
    let anchor = o
        .last_source_check
        .or(status.completion_time.as_ref().map(|t| t.0));
    let due = anchor.map_or(o.now, |t| after(t, interval));
    let next = match &o.source {
        SourceCheck::NotChecked if o.now >= due => return Action::Resolve,
        SourceCheck::NotChecked => until(o.now, due),
        SourceCheck::Resolved(now) if moved(status.source.as_ref(), now) => {
            return Action::Rebuild {
                rebuild: status.rebuild.unwrap_or(0).max(0).saturating_add(1),
                source: now.clone(),
            };
        }
        // Unchanged, or the remote failed: a final status never changes because of a poll
        // (the controller logs the failure); look again after the interval.
        SourceCheck::Resolved(_) | SourceCheck::Failed { .. } => interval,
    };
    match cleanup {
        Action::Wait {
            why,
            requeue_after: Some(ttl),
        } if ttl <= next => Action::Wait {
            why,
            requeue_after: Some(ttl),
        },
        _ => Action::Wait {
            why: Waiting::PollSource,
            requeue_after: Some(next),
        },
    }
}

/// The ImageBuild is being deleted (threats F8): stop and delete its pods one by one, wait until
/// they are gone, then remove the finalizer — or at once when the user asked to orphan them, and
/// after [`FINALIZER_TIMEOUT`] at the latest, so deletion never hangs on a pod stuck on a dead
/// node.
pub fn deleting(o: &Observed<'_>) -> Action {
    let meta = &o.build.metadata;
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Action::Nothing;
    }
    if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
        return Action::RemoveFinalizer;
    }
    if let Some(pod) = o
        .pods
        .iter()
        .filter(|p| !p.deleting)
        .min_by(|a, b| a.name.cmp(&b.name))
    {
        return Action::DeletePod {
            pod: pod.name.clone(),
            why: DeleteWhy::BuildDeleted,
        };
    }
    let since = meta.deletion_timestamp.as_ref().map_or(o.now, |t| t.0);
    let give_up = after(since, FINALIZER_TIMEOUT);
    match o.pods.first() {
        Some(pod) if o.now < give_up => Action::Wait {
            why: Waiting::PodStopping {
                pod: pod.name.clone(),
            },
            requeue_after: Some(DELETE_POLL.min(until(o.now, give_up))),
        },
        _ => Action::RemoveFinalizer,
    }
}
