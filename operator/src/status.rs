//! The status an action leads to, as pure functions of (build, action, now).
//!
//! Every function is idempotent — applying the same action to its own output changes nothing
//! (conditions keep their `lastTransitionTime`, history entries are keyed) — so a reconcile that
//! runs again after a failed status write converges (threats F4).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stratum_crds::conditions::set_for_phase;
use stratum_crds::types::status::{record_history, short_digest};
use stratum_crds::{
    BuildRecord, BuildResult, Failure, ImageBuild, ImageBuildStatus, Phase, ResolvedSource, reason,
};

use crate::names::rebuild_pod_name;
use crate::reconcile::{Action, Waiting};
use crate::result::VerifiedImage;

/// The status after `action`, or `None` when it changes nothing (`RecordResult` goes through
/// [`succeeded`] after verification).
pub fn after_action(build: &ImageBuild, action: &Action, now: &Time) -> Option<ImageBuildStatus> {
    let mut s = for_current_generation(build, now);
    if let Action::Rebuild { rebuild, source } = action {
        // The one way out of a final phase: the source moved (pollInterval).
        return Some(rebuilt(s, *rebuild, source, now));
    }
    if is_final_for(build, &s) {
        // Final phases never regress (design §3.4).
        return None;
    }
    let generation = s.observed_generation;
    let name = build.metadata.name.as_deref().unwrap_or_default();
    match action {
        Action::CreatePod {
            rebuild,
            attempt,
            source,
        } => {
            let pod = rebuild_pod_name(name, generation.unwrap_or(1), *rebuild, *attempt);
            attempt_pod(&mut s, &pod, *attempt, None, now);
            // What the pod builds, before it starts (an inline source has no revision).
            if (source.git.is_some() || source.url.is_some()) && s.source.is_none() {
                s.source = Some(source.clone());
            }
            let message = format!(
                "builder pod {} created",
                s.pod_name.as_deref().unwrap_or_default()
            );
            progress(&mut s, Phase::Pending, reason::PENDING, &message, now);
        }
        Action::Wait { why, .. } => {
            if let Waiting::PodStarting {
                pod,
                attempt,
                created,
            }
            | Waiting::PodRunning {
                pod,
                attempt,
                created,
            }
            | Waiting::NodeUnreachable {
                pod,
                attempt,
                created,
            } = why
            {
                attempt_pod(&mut s, pod, *attempt, created.map(Time), now);
            }
            let (phase, reason, message) = match why {
                Waiting::PodStarting { pod, .. } => (
                    Phase::Pending,
                    reason::PENDING,
                    format!("builder pod {pod} is starting"),
                ),
                Waiting::PodRunning { pod, .. } => (
                    Phase::Building,
                    reason::BUILDING,
                    format!("builder pod {pod} is running"),
                ),
                Waiting::NodeUnreachable { pod, .. } => (
                    Phase::Building,
                    reason::BUILDING,
                    format!("the node of builder pod {pod} stopped reporting"),
                ),
                Waiting::Backoff { attempt } => (
                    Phase::Pending,
                    reason::PENDING,
                    format!("attempt {attempt} starts after a backoff"),
                ),
                Waiting::SecretsMissing { problems } => {
                    (Phase::Pending, reason::SECRET_INVALID, problems.join("; "))
                }
                Waiting::PodStopping { .. } | Waiting::Ttl { .. } | Waiting::PollSource => {
                    return None;
                }
            };
            progress(&mut s, phase, reason, &message, now);
        }
        Action::MarkQueued => {
            progress(
                &mut s,
                Phase::Queued,
                reason::QUEUED,
                "waiting for a free build slot",
                now,
            );
        }
        Action::Retry {
            attempt, failure, ..
        } => {
            record(
                &mut s,
                *attempt,
                Phase::Failed,
                Some(&failure.reason),
                None,
                now,
            );
            // The next attempt has no pod yet; its startTime is set when its pod is created.
            s.attempt = Some(attempt + 1);
            s.pod_name = None;
            s.start_time = None;
            let message = format!(
                "attempt {attempt} failed ({}): {}; retrying",
                failure.reason, failure.message
            );
            progress(&mut s, Phase::Pending, reason::PENDING, &message, now);
        }
        Action::Fail {
            pod,
            attempt,
            failure,
            result,
            ..
        } => {
            if let Some(pod) = pod {
                attempt_pod(&mut s, &pod.name, *attempt, pod.created.map(Time), now);
            }
            if let Some(result) = result {
                reported(&mut s, result);
            }
            fail(&mut s, *attempt, failure.clone(), now);
        }
        Action::MarkSpecInvalid { message } => {
            let failure = Failure {
                reason: reason::SPEC_INVALID.into(),
                message: message.clone(),
                ..Failure::default()
            };
            let attempt = s.attempt.unwrap_or(1);
            fail(&mut s, attempt, failure, now);
        }
        Action::Cancel { .. } => {
            s.completion_time = Some(now.clone());
            let attempt = s.attempt.unwrap_or(1);
            record(
                &mut s,
                attempt,
                Phase::Cancelled,
                Some(reason::CANCELLED),
                None,
                now,
            );
            set_for_phase(
                &mut s.conditions,
                Phase::Cancelled,
                reason::CANCELLED,
                "cancelled by spec.cancel",
                generation,
                now,
            );
            s.phase = Some(Phase::Cancelled);
        }
        Action::RecordResult { .. }
        | Action::DeletePod { .. }
        | Action::Resolve
        | Action::Rebuild { .. }
        | Action::RemoveFinalizer
        | Action::Nothing => return None,
    }
    Some(s)
}

/// The status once the registry confirmed the builder's push; `started` is the creation time
/// of the attempt's pod.
pub fn succeeded(
    build: &ImageBuild,
    attempt: i32,
    started: Option<Time>,
    result: &BuildResult,
    verified: &VerifiedImage,
    now: &Time,
) -> ImageBuildStatus {
    let mut s = for_current_generation(build, now);
    if is_final_for(build, &s) {
        return s;
    }
    reported(&mut s, result);
    // The pod that produced this result, named from (generation, attempt) rather than kept from
    // `build.status`: the reconcile may see a cached build from before its own CreatePod status
    // write (after a retry cleared podName), and the status apply would then drop podName (seen
    // in the e2e eviction test).
    let name = build.metadata.name.as_deref().unwrap_or_default();
    let pod = rebuild_pod_name(
        name,
        s.observed_generation.unwrap_or(1),
        s.rebuild.unwrap_or(0),
        attempt,
    );
    attempt_pod(&mut s, &pod, attempt, started, now);
    s.image_id = Some(verified.image_id.clone());
    s.digest = Some(verified.digest.clone());
    s.short_digest = short_digest(&verified.digest);
    s.image = Some(verified.image.clone());
    s.size = Some(verified.size);
    s.layers = verified.layers.clone();
    let output = &build.spec.output;
    s.tags = std::iter::once(output.image.clone())
        .chain(output.additional_tags.iter().cloned())
        .collect();
    s.failure = None;
    s.completion_time = Some(now.clone());
    let digest = s.digest.clone();
    record(&mut s, attempt, Phase::Succeeded, None, digest, now);
    let message = format!("pushed {}", verified.image);
    set_for_phase(
        &mut s.conditions,
        Phase::Succeeded,
        reason::BUILD_SUCCEEDED,
        &message,
        s.observed_generation,
        now,
    );
    s.phase = Some(Phase::Succeeded);
    s
}

/// A new build of the same generation on `source`: the finished one is already in `history`;
/// what described it (digest, layers, steps, failure) goes, conditions and history stay.
fn rebuilt(
    old: ImageBuildStatus,
    rebuild: i32,
    source: &ResolvedSource,
    now: &Time,
) -> ImageBuildStatus {
    let mut s = ImageBuildStatus {
        observed_generation: old.observed_generation,
        rebuild: Some(rebuild),
        attempt: Some(1),
        source: Some(source.clone()),
        conditions: old.conditions,
        history: old.history,
        ..ImageBuildStatus::default()
    };
    let message = format!(
        "the source moved to {}; rebuilding",
        source.revision().unwrap_or_else(|| "a new revision".into())
    );
    progress(&mut s, Phase::Pending, reason::PENDING, &message, now);
    s
}

/// The current status when it describes the current generation; otherwise a fresh one for it,
/// keeping conditions and history (and recording an unfinished older build as superseded).
fn for_current_generation(build: &ImageBuild, now: &Time) -> ImageBuildStatus {
    let generation = build.metadata.generation.unwrap_or(1);
    let old = build.status.clone().unwrap_or_default();
    if old.observed_generation == Some(generation) {
        return old;
    }
    let mut history = old.history.clone();
    if let (Some(g), Some(phase)) = (old.observed_generation, old.phase)
        && !phase.is_terminal()
    {
        let record = BuildRecord {
            generation: g,
            rebuild: old.rebuild.filter(|r| *r > 0),
            attempt: old.attempt.unwrap_or(1),
            source_revision: old.source.as_ref().and_then(|s| s.revision()),
            digest: None,
            phase: Phase::Cancelled,
            reason: Some(reason::SUPERSEDED.into()),
            completion_time: Some(now.clone()),
        };
        record_history(&mut history, record);
    }
    ImageBuildStatus {
        observed_generation: Some(generation),
        attempt: Some(1),
        conditions: old.conditions,
        history,
        ..ImageBuildStatus::default()
    }
}

/// Records `pod` as the running attempt's pod. `startTime` is when the current attempt started
/// (as in Tekton, whose retries reset it; `spec.timeout` also applies per attempt): it changes
/// only with the pod, so repeating this is a no-op. `created` is the pod's creation time when
/// observed, else `now` (the pod is created in this reconcile). The cached status may predate
/// this operator's own last write, so the pod and attempt come from the action, not from it.
fn attempt_pod(
    s: &mut ImageBuildStatus,
    pod: &str,
    attempt: i32,
    created: Option<Time>,
    now: &Time,
) {
    if s.pod_name.as_deref() != Some(pod) || s.start_time.is_none() {
        s.start_time = Some(created.unwrap_or_else(|| now.clone()));
    }
    s.pod_name = Some(pod.to_owned());
    s.attempt = Some(attempt);
}

fn is_final_for(build: &ImageBuild, s: &ImageBuildStatus) -> bool {
    s.observed_generation == build.metadata.generation && s.phase.is_some_and(|p| p.is_terminal())
}

fn progress(s: &mut ImageBuildStatus, phase: Phase, reason: &str, message: &str, now: &Time) {
    set_for_phase(
        &mut s.conditions,
        phase,
        reason,
        message,
        s.observed_generation,
        now,
    );
    s.phase = Some(phase);
}

fn fail(s: &mut ImageBuildStatus, attempt: i32, failure: Failure, now: &Time) {
    s.attempt = Some(attempt);
    s.completion_time = Some(now.clone());
    record(s, attempt, Phase::Failed, Some(&failure.reason), None, now);
    set_for_phase(
        &mut s.conditions,
        Phase::Failed,
        &failure.reason,
        &failure.message,
        s.observed_generation,
        now,
    );
    s.failure = Some(failure);
    s.phase = Some(Phase::Failed);
}

/// Steps and source as the builder reported them (for success and failure alike). The
/// builder knows the sha256 of what it fetched; the ETag / Last-Modified the operator resolved
/// stay, because `pollInterval` compares them.
fn reported(s: &mut ImageBuildStatus, result: &BuildResult) {
    s.steps = result.steps_status();
    s.omitted_steps = result.omitted_status();
    if let Some(mut source) = result.resolved_source() {
        if let (Some(url), Some(before)) = (
            source.url.as_mut(),
            s.source.as_ref().and_then(|r| r.url.as_ref()),
        ) {
            url.etag.clone_from(&before.etag);
            url.last_modified.clone_from(&before.last_modified);
        }
        s.source = Some(source);
    }
}

fn record(
    s: &mut ImageBuildStatus,
    attempt: i32,
    phase: Phase,
    reason: Option<&str>,
    digest: Option<String>,
    now: &Time,
) {
    let record = BuildRecord {
        generation: s.observed_generation.unwrap_or(1),
        rebuild: s.rebuild.filter(|r| *r > 0),
        attempt,
        source_revision: s.source.as_ref().and_then(|r| r.revision()),
        digest,
        phase,
        reason: reason.map(str::to_owned),
        completion_time: Some(now.clone()),
    };
    record_history(&mut s.history, record);
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
