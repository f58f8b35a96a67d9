//! The reconcile decision: one pure function from what was observed to the next action.
//!
//! `decide` returns exactly one action; the controller applies it and reconciles again, so a
//! multi-step change (stop an old pod, then start a new one) is a sequence of decisions, each
//! re-derived from the cluster's current state (level-triggered). The order of the checks is the
//! policy; docs/arch/operator.md has it as a table.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use stratum_crds::contract::{FailureReason, Outcome};
use stratum_crds::{
    BuildResult, Failure, ImageBuildStatus, ResolvedSource, parse_termination_message, reason,
};

use super::observed::{ContainerView, Observed, PodPhase, PodView, SourceCheck, after, until};
use super::source::{deleting, final_or_poll, recorded_source, resolve_failed};
use crate::names::rebuild_pod_name;

/// How long a pod may exist beyond `spec.timeout` before the operator gives up on it itself. The
/// kubelet enforces `activeDeadlineSeconds` only from the pod's start, so an unschedulable pod,
/// or one on a node that stopped reporting, would otherwise wait forever.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(120);
/// Longest requeue while a pod runs: pod events normally wake the reconcile; this bounds the
/// damage of a missed watch event (threats F3).
pub const MAX_RECHECK: Duration = Duration::from_secs(300);
/// The first retry's delay; each further retry doubles it, up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_secs(10);
/// The longest delay between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create the builder pod for `attempt` of `rebuild` of the current generation, building
    /// `source` (the exact revision; recorded in `status.source`). The controller adds the
    /// finalizer first, so no pod exists without it.
    CreatePod {
        rebuild: i32,
        attempt: i32,
        source: ResolvedSource,
    },
    /// Ask the source's remote for its current revision, then decide again with the answer
    /// ([`Observed::source`]). Never returned when the source was asked in this reconcile.
    Resolve,
    /// `pollInterval`: the source moved since the finished build; start `rebuild` (attempt 1)
    /// on `source`. The finished build stays in `status.history`.
    Rebuild {
        rebuild: i32,
        source: ResolvedSource,
    },
    /// The ImageBuild is being deleted and its pods are gone: remove the finalizer.
    RemoveFinalizer,
    /// Nothing to change now; reconcile again after `requeue_after` (or on the next event).
    Wait {
        why: Waiting,
        requeue_after: Option<Duration>,
    },
    /// The builder reported a pushed image: verify it in the registry, then record `Succeeded`.
    /// `created` is the pod's creation time (the attempt's `startTime`).
    RecordResult {
        attempt: i32,
        pod: String,
        created: Option<Timestamp>,
        result: BuildResult,
    },
    /// An infrastructure failure with retries left: record `failure` for `attempt` in the
    /// history, move the status to `attempt + 1`, and create that pod once `after` has passed.
    /// `stop` names an unfinished pod to delete first.
    Retry {
        attempt: i32,
        failure: Failure,
        after: Duration,
        stop: Option<String>,
    },
    /// The build of this generation failed for good. `result` is the builder's report when it
    /// made one (its steps and source go into the status); `stop` as for `Retry`. `pod` is the
    /// attempt's pod when one exists (the status names it, for `kubectl logs`).
    Fail {
        pod: Option<AttemptPod>,
        attempt: i32,
        failure: Failure,
        result: Option<BuildResult>,
        stop: Option<String>,
    },
    /// `spec.cancel`: delete the running pod, if any, and record `Cancelled`.
    Cancel { pod: Option<String> },
    /// Delete a pod: superseded by a new generation or attempt, or finished and past its TTL.
    DeletePod { pod: String, why: DeleteWhy },
    /// No build slot is free: record `Queued` and wait for one.
    MarkQueued,
    /// The spec breaks a validation rule: record `Failed`/`SpecInvalid` for this generation.
    MarkSpecInvalid { message: String },
    /// The status is final and nothing is left to clean up.
    Nothing,
}

/// The current attempt's pod as an action names it: the status records it from the action, not
/// from the cached ImageBuild (see [`Waiting`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptPod {
    pub name: String,
    pub created: Option<Timestamp>,
}

/// Why an action waits.
///
/// The waits on the current attempt's pod name its attempt and creation time: the status records
/// them from the action, not from the cached ImageBuild, which may predate this operator's own
/// last status write (after a retry it would still say "no pod" or name the old one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// The pod is scheduled or pulling its image.
    PodStarting {
        pod: String,
        attempt: i32,
        created: Option<Timestamp>,
    },
    /// The builder runs.
    PodRunning {
        pod: String,
        attempt: i32,
        created: Option<Timestamp>,
    },
    /// The pod is being deleted; its final state decides.
    PodStopping { pod: String },
    /// The pod's node stopped reporting; the deadline decides.
    NodeUnreachable {
        pod: String,
        attempt: i32,
        created: Option<Timestamp>,
    },
    /// The delay before `attempt`.
    Backoff { attempt: i32 },
    /// Secrets the spec names are missing or of the wrong type.
    SecretsMissing { problems: Vec<String> },
    /// `pollInterval`: the next time the source's remote is asked for its revision.
    PollSource,
    /// Finished pods are deleted when their TTL ends.
    Ttl { pod: String },
}

/// Why a pod is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteWhy {
    /// A newer generation or attempt replaces it (one active pod per build).
    Superseded,
    /// `spec.ttlSecondsAfterFinished` passed.
    Ttl,
    /// The ImageBuild is being deleted (the finalizer stops and removes its pods).
    BuildDeleted,
}

/// The delay before the attempt after `failed_attempt`: 10s, 20s, 40s, … capped at 5 minutes.
pub fn retry_backoff(failed_attempt: i32) -> Duration {
    let doublings = u32::try_from(failed_attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    BASE_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

/// The next action for one ImageBuild.
pub fn decide(o: &Observed<'_>) -> Action {
    let build = o.build;
    if build.metadata.deletion_timestamp.is_some() {
        return deleting(o);
    }
    let generation = build.metadata.generation.unwrap_or(1);
    let status = build.status.clone().unwrap_or_default();
    let same_generation = status.observed_generation == Some(generation);
    let rebuild = if same_generation {
        status.rebuild.unwrap_or(0).max(0)
    } else {
        0
    };
    let attempt = current_attempt(&status, same_generation, generation, rebuild, &o.pods);
    let name = build.metadata.name.as_deref().unwrap_or_default();
    let current_pod = rebuild_pod_name(name, generation, rebuild, attempt);

    // One active pod per build: anything running that is not the current attempt of the current
    // generation goes first (threats F6 #7218, F9).
    if let Some(stale) = o
        .pods
        .iter()
        .find(|p| is_active(p) && p.name != current_pod)
    {
        return Action::DeletePod {
            pod: stale.name.clone(),
            why: DeleteWhy::Superseded,
        };
    }

    // A final phase of this generation never changes; only cleanup, and with `pollInterval` a
    // rebuild when the source moved, are left.
    if same_generation && status.phase.is_some_and(|p| p.is_terminal()) {
        return final_or_poll(o, &status, cleanup(o, &status, &current_pod));
    }

    let pod = o.pods.iter().find(|p| p.name == current_pod);
    if build.spec.cancel {
        return Action::Cancel {
            pod: pod.filter(|p| is_active(p)).map(|p| p.name.clone()),
        };
    }
    if let Err(invalid) = stratum_crds::validate::validate(build) {
        return Action::MarkSpecInvalid {
            message: invalid.to_string(),
        };
    }
    match pod {
        Some(pod) => match judge_pod(o, pod, attempt) {
            Action::Fail {
                pod: None,
                attempt,
                failure,
                result,
                stop,
            } => Action::Fail {
                pod: Some(AttemptPod {
                    name: pod.name.clone(),
                    created: pod.created,
                }),
                attempt,
                failure,
                result,
                stop,
            },
            action => action,
        },
        None if same_generation && status.pod_name.as_deref() == Some(&current_pod) => {
            // Status recorded this pod, yet it is gone with no result read: deleted or
            // garbage-collected (threats F2). The pod list is live, so this is not cache lag.
            let failure = failure(
                reason::RESULT_LOST,
                format!("the builder pod {current_pod} disappeared before its result was read"),
            );
            retry_or_fail(o, attempt, failure, None, None)
        }
        None => start(o, &status, generation, rebuild, attempt),
    }
}

/// The attempt in progress: the highest of status (when it describes this generation) and the
/// pods of this generation — a pod created just before a crash is adopted (threats F1).
fn current_attempt(
    status: &ImageBuildStatus,
    same: bool,
    generation: i64,
    rebuild: i32,
    pods: &[PodView],
) -> i32 {
    let from_status = if same { status.attempt.unwrap_or(1) } else { 1 };
    let from_pods = pods
        .iter()
        .filter(|p| p.generation == generation && p.rebuild == rebuild)
        .map(|p| p.attempt)
        .max();
    from_status.max(from_pods.unwrap_or(1)).max(1)
}

pub(super) fn is_active(pod: &PodView) -> bool {
    !pod.deleting && !pod.is_finished()
}

fn timeout(o: &Observed<'_>) -> Duration {
    // validate() already refused an unparsable timeout; the default keeps this total.
    o.build
        .spec
        .timeout
        .as_ref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(o.default_timeout)
}

pub(super) fn failure(reason: &str, message: String) -> Failure {
    Failure {
        reason: reason.to_owned(),
        message,
        ..Failure::default()
    }
}

/// No pod for the current attempt yet: start one when nothing holds it back. The source is
/// resolved last, so a queued build or one waiting for a Secret does not ask the remote.
fn start(
    o: &Observed<'_>,
    status: &ImageBuildStatus,
    generation: i64,
    rebuild: i32,
    attempt: i32,
) -> Action {
    if attempt > 1 {
        // The previous attempt's failure time is in the history, so the delay holds across
        // reconciles and operator restarts.
        let failed_at = status
            .history
            .iter()
            .find(|r| {
                r.generation == generation
                    && r.rebuild.unwrap_or(0) == rebuild
                    && r.attempt == attempt - 1
            })
            .and_then(|r| r.completion_time.as_ref())
            .map(|t| t.0);
        if let Some(failed_at) = failed_at {
            let due = after(failed_at, retry_backoff(attempt - 1));
            if o.now < due {
                return Action::Wait {
                    why: Waiting::Backoff { attempt },
                    requeue_after: Some(until(o.now, due)),
                };
            }
        }
    }
    if !o.missing_secrets.is_empty() {
        // A Secret often appears moments after the ImageBuild (GitOps ordering), and creating it
        // does not bump the generation, so this waits instead of failing the generation.
        return Action::Wait {
            why: Waiting::SecretsMissing {
                problems: o.missing_secrets.clone(),
            },
            requeue_after: Some(Duration::from_secs(30)),
        };
    }
    if !o.slot_free {
        return Action::MarkQueued;
    }
    // Every attempt of one build uses the revision recorded for it; only a build without one
    // asks the remote (threats §2.6: the pod builds exactly what status reports).
    let source = match (recorded_source(o.build), &o.source) {
        (Some(recorded), _) => recorded,
        (None, SourceCheck::NotChecked) => return Action::Resolve,
        (None, SourceCheck::Resolved(source)) => source.clone(),
        (None, SourceCheck::Failed { kind, message }) => {
            return resolve_failed(o, attempt, *kind, message);
        }
    };
    Action::CreatePod {
        rebuild,
        attempt,
        source,
    }
}

/// The build of this generation is final: delete finished pods whose TTL passed.
fn cleanup(o: &Observed<'_>, status: &ImageBuildStatus, current_pod: &str) -> Action {
    // A pod still running although the status is final (a failed delete after `Fail`).
    if let Some(pod) = o
        .pods
        .iter()
        .find(|p| is_active(p) && p.name == current_pod)
    {
        return Action::DeletePod {
            pod: pod.name.clone(),
            why: DeleteWhy::Superseded,
        };
    }
    let Some(ttl) = o.build.spec.ttl_seconds_after_finished else {
        return Action::Nothing;
    };
    let ttl = Duration::from_secs(u64::try_from(ttl).unwrap_or(0));
    let completed = status.completion_time.as_ref().map(|t| t.0);
    let due = |p: &PodView| after(p.finished().or(completed).unwrap_or(o.now), ttl);
    let waiting = o.pods.iter().filter(|p| !p.deleting).min_by_key(|p| due(p));
    match waiting {
        None => Action::Nothing,
        Some(pod) if due(pod) <= o.now => Action::DeletePod {
            pod: pod.name.clone(),
            why: DeleteWhy::Ttl,
        },
        Some(pod) => Action::Wait {
            why: Waiting::Ttl {
                pod: pod.name.clone(),
            },
            requeue_after: Some(until(o.now, due(pod))),
        },
    }
}

/// What the pod of the current attempt tells.
fn judge_pod(o: &Observed<'_>, pod: &PodView, attempt: i32) -> Action {
    if let ContainerView::Terminated(t) = &pod.container {
        return judge_termination(o, pod, attempt, t);
    }
    let pod_reason = pod.reason.as_deref();
    let detail = || pod_detail(pod);
    match pod.phase {
        PodPhase::Failed if pod_reason == Some("Evicted") => {
            let f = failure(
                reason::EVICTED,
                format!("the builder pod {} was evicted{}", pod.name, detail()),
            );
            return retry_or_fail(o, attempt, f, None, None);
        }
        PodPhase::Failed if pod_reason == Some("DeadlineExceeded") => {
            return timed_out(o, attempt, None);
        }
        PodPhase::Failed => {
            // Failed before the container ran: the node refused it (admission, `OutOfcpu`,
            // node shutdown). The build never started, so a new pod elsewhere may well work.
            let f = failure(
                reason::NODE_LOST,
                format!("the node failed the builder pod {}{}", pod.name, detail()),
            );
            return retry_or_fail(o, attempt, f, None, None);
        }
        PodPhase::Succeeded => {
            let f = failure(
                reason::RESULT_LOST,
                format!(
                    "the builder pod {} succeeded without a container status",
                    pod.name
                ),
            );
            return retry_or_fail(o, attempt, f, None, None);
        }
        _ => {}
    }
    if pod.deleting {
        return Action::Wait {
            why: Waiting::PodStopping {
                pod: pod.name.clone(),
            },
            requeue_after: Some(MAX_RECHECK),
        };
    }
    let deadline = after(pod.created.unwrap_or(o.now), timeout(o) + DEADLINE_GRACE);
    if o.now >= deadline {
        if pod.phase == PodPhase::Unknown {
            let f = failure(
                reason::NODE_LOST,
                format!("the node of builder pod {} stopped reporting", pod.name),
            );
            return retry_or_fail(o, attempt, f, None, Some(pod.name.clone()));
        }
        return timed_out(o, attempt, Some(pod.name.clone()));
    }
    let (name, created) = (pod.name.clone(), pod.created);
    let why = match (pod.phase, &pod.container) {
        (PodPhase::Unknown, _) => Waiting::NodeUnreachable {
            pod: name,
            attempt,
            created,
        },
        (_, ContainerView::Running) => Waiting::PodRunning {
            pod: name,
            attempt,
            created,
        },
        _ => Waiting::PodStarting {
            pod: name,
            attempt,
            created,
        },
    };
    Action::Wait {
        why,
        requeue_after: Some(until(o.now, deadline).min(MAX_RECHECK)),
    }
}

fn pod_detail(pod: &PodView) -> String {
    match (&pod.reason, &pod.message) {
        (_, Some(m)) if !m.is_empty() => format!(": {m}"),
        (Some(r), _) => format!(" ({r})"),
        _ => String::new(),
    }
}

fn timed_out(o: &Observed<'_>, attempt: i32, stop: Option<String>) -> Action {
    Action::Fail {
        pod: None,
        attempt,
        failure: failure(reason::TIMEOUT, deadline_message(o, None, None)),
        result: None,
        stop,
    }
}

/// "the build ran longer than spec.timeout (10m)", with the step it was on when known.
fn deadline_message(o: &Observed<'_>, step: Option<&str>, line: Option<i32>) -> String {
    let limit = match &o.build.spec.timeout {
        Some(timeout) => format!("spec.timeout ({timeout})"),
        None => format!(
            "the operator's default timeout ({}s)",
            o.default_timeout.as_secs()
        ),
    };
    let at = match (step, line) {
        (Some(step), Some(line)) => format!("; it was on {step} (line {line})"),
        (Some(step), None) => format!("; it was on {step}"),
        (None, Some(line)) => format!("; it was on line {line}"),
        (None, None) => String::new(),
    };
    format!("the build ran longer than {limit}{at}")
}

fn judge_termination(
    o: &Observed<'_>,
    pod: &PodView,
    attempt: i32,
    t: &super::observed::Terminated,
) -> Action {
    let pod_reason = pod.reason.as_deref();
    if t.reason.as_deref() == Some("OOMKilled") {
        // Not retried: the same build with the same limit would be killed again.
        let f = Failure {
            exit_code: Some(t.exit_code),
            ..failure(
                reason::OOM_KILLED,
                "the builder exceeded its memory limit; raise spec.resources.limits.memory".into(),
            )
        };
        return Action::Fail {
            pod: None,
            attempt,
            failure: f,
            result: None,
            stop: None,
        };
    }
    if !t.message.is_empty() {
        return match parse_termination_message(&t.message) {
            Ok(result) => judge_result(o, pod, attempt, t.exit_code, result),
            Err(e) => Action::Fail {
                pod: None,
                attempt,
                failure: failure(e.reason(), e.to_string()),
                result: None,
                stop: None,
            },
        };
    }
    // No result at all: the reason lies outside the builder.
    let f = if pod_reason == Some("DeadlineExceeded")
        || t.reason.as_deref() == Some("DeadlineExceeded")
    {
        return timed_out(o, attempt, None);
    } else if pod_reason == Some("Evicted") {
        failure(
            reason::EVICTED,
            format!(
                "the builder pod {} was evicted{}",
                pod.name,
                pod_detail(pod)
            ),
        )
    } else if pod.deleting {
        failure(
            reason::POD_DELETED,
            format!("the builder pod {} was deleted while it ran", pod.name),
        )
    } else if t.exit_code == 0 {
        return Action::Fail {
            pod: None,
            attempt,
            failure: failure(
                reason::RESULT_INVALID,
                format!("the builder in pod {} exited 0 without a result", pod.name),
            ),
            result: None,
            stop: None,
        };
    } else {
        let why = t
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        return Action::Fail {
            pod: None,
            attempt,
            failure: Failure {
                exit_code: Some(t.exit_code),
                ..failure(
                    reason::BUILDER_ERROR,
                    format!(
                        "the builder in pod {} exited with code {}{why} without a result; see its log",
                        pod.name, t.exit_code
                    ),
                )
            },
            result: None,
            stop: None,
        };
    };
    retry_or_fail(o, attempt, f, None, None)
}

fn judge_result(
    o: &Observed<'_>,
    pod: &PodView,
    attempt: i32,
    exit_code: i32,
    result: BuildResult,
) -> Action {
    match &result.outcome {
        Outcome::Pushed(_) if exit_code == 0 => Action::RecordResult {
            attempt,
            pod: pod.name.clone(),
            created: pod.created,
            result,
        },
        Outcome::Pushed(_) => Action::Fail {
            pod: None,
            attempt,
            failure: failure(
                reason::RESULT_INVALID,
                format!("the builder reported a pushed image but exited with code {exit_code}"),
            ),
            result: None,
            stop: None,
        },
        Outcome::Failed(f) if f.reason == FailureReason::Timeout => {
            // The builder reports `Timeout` when SIGTERM stopped it ("the build was cancelled"):
            // the kubelet sends it at the pod's deadline and when the pod is deleted.
            if pod.deleting && pod.reason.as_deref() != Some("DeadlineExceeded") {
                let f = failure(
                    reason::POD_DELETED,
                    format!("the builder pod {} was deleted while it ran", pod.name),
                );
                return retry_or_fail(o, attempt, f, Some(result), None);
            }
            let mut failure = Failure::from(f);
            failure.message = deadline_message(o, failure.step.as_deref(), failure.line);
            Action::Fail {
                pod: None,
                attempt,
                failure,
                result: Some(result),
                stop: None,
            }
        }
        Outcome::Failed(f) => {
            let failure = Failure::from(f);
            if reason::is_retryable(&failure.reason) {
                retry_or_fail(o, attempt, failure, Some(result), None)
            } else {
                Action::Fail {
                    pod: None,
                    attempt,
                    failure,
                    result: Some(result),
                    stop: None,
                }
            }
        }
    }
}

/// Retry an infrastructure failure while `spec.retries` allows, else fail with it.
pub(super) fn retry_or_fail(
    o: &Observed<'_>,
    attempt: i32,
    mut failure: Failure,
    result: Option<BuildResult>,
    stop: Option<String>,
) -> Action {
    let retries = o.build.spec.retries.max(0);
    if attempt <= retries {
        return Action::Retry {
            attempt,
            after: retry_backoff(attempt),
            failure,
            stop,
        };
    }
    if retries > 0 {
        failure.message = format!("{} (attempt {attempt}, no retries left)", failure.message);
    }
    Action::Fail {
        pod: None,
        attempt,
        failure,
        result,
        stop,
    }
}
