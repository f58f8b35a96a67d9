//! Condition types, condition reasons, and how a phase maps onto conditions.
//!
//! Conditions follow the kstatus conventions that GitOps tools read (Flux, Argo CD, `kubectl
//! wait`, cli-utils): `Ready` says whether the resource is what the spec asks for, `Reconciling`
//! is present and true while work is under way, `Stalled` is present and true when progress needs
//! a human (a failed build). `Succeeded` is the Tekton-style build outcome: `Unknown` while
//! running, then `True` or `False`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::types::status::Phase;

/// Condition types.
pub mod condition_type {
    /// `True` once the image of the current generation is pushed and verified.
    pub const READY: &str = "Ready";
    /// The build outcome: `Unknown` while running, `True` or `False` when done.
    pub const SUCCEEDED: &str = "Succeeded";
    /// kstatus: `True` while a build is pending or running; absent otherwise.
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: `True` when the build failed or was cancelled and will not progress on its own.
    pub const STALLED: &str = "Stalled";
}

/// Condition statuses.
pub mod condition_status {
    pub const TRUE: &str = "True";
    pub const FALSE: &str = "False";
    pub const UNKNOWN: &str = "Unknown";
}

/// Condition reasons (also `status.failure.reason`). CamelCase, stable: tools match on them.
pub mod reason {
    // --- progress -------------------------------------------------------------------------
    /// The source is being resolved or the builder pod created.
    pub const PENDING: &str = "Pending";
    /// Waiting for a build slot (the operator's concurrency limit).
    pub const QUEUED: &str = "Queued";
    /// The builder pod is fetching the context.
    pub const FETCHING: &str = "Fetching";
    /// The builder pod is running the Dockerfile.
    pub const BUILDING: &str = "Building";
    /// The builder pod is pushing, or the operator is verifying the push.
    pub const PUSHING: &str = "Pushing";
    /// The image was pushed and verified in the registry.
    pub const BUILD_SUCCEEDED: &str = "BuildSucceeded";

    // --- reported by the builder ----------------------------------------------------------
    /// The Dockerfile could not be parsed or refers to something that does not exist (a stage,
    /// a file outside the context).
    pub const DOCKERFILE_INVALID: &str = "DockerfileInvalid";
    /// A `RUN` command exited non-zero (see `failure.exitCode`), or another step failed.
    pub const STEP_FAILED: &str = "StepFailed";
    /// The build context could not be fetched: no such repository, revision or object, or not an
    /// archive we can read.
    pub const FETCH_FAILED: &str = "FetchFailed";
    /// The source's content is not what was pinned (`url.sha256`) or resolved (git commit).
    pub const SOURCE_MISMATCH: &str = "SourceMismatch";
    /// The git or object-store credentials were refused.
    pub const SOURCE_AUTH_FAILED: &str = "SourceAuthFailed";
    /// The git remote or object store could not be reached or kept failing (retried).
    pub const SOURCE_UNAVAILABLE: &str = "SourceUnavailable";
    /// A base image does not exist or has no image for the node's platform.
    pub const PULL_FAILED: &str = "PullFailed";
    /// The registry refused the push (e.g. an invalid manifest, a quota).
    pub const PUSH_FAILED: &str = "PushFailed";
    /// The registry refused the credentials (pull or push).
    pub const REGISTRY_AUTH_FAILED: &str = "RegistryAuthFailed";
    /// The registry could not be reached or kept failing (5xx, 429) (retried).
    pub const REGISTRY_UNAVAILABLE: &str = "RegistryUnavailable";
    /// The builder itself failed (a bug or an unexpected environment); see the message.
    pub const BUILDER_ERROR: &str = "BuilderError";

    // --- observed by the operator ---------------------------------------------------------
    /// The spec breaks a validation rule (reported even where the apiserver does not run CEL).
    pub const SPEC_INVALID: &str = "SpecInvalid";
    /// A Secret the spec refers to does not exist or has the wrong type.
    pub const SECRET_INVALID: &str = "SecretInvalid";
    /// The revision could not be resolved to a commit, or the object's ETag/digest read.
    pub const RESOLVE_FAILED: &str = "ResolveFailed";
    /// The build ran longer than `spec.timeout`.
    pub const TIMEOUT: &str = "Timeout";
    /// The builder pod was evicted (node pressure, ephemeral storage) (retried).
    pub const EVICTED: &str = "Evicted";
    /// The builder was killed for exceeding its memory limit (exit code 137).
    pub const OOM_KILLED: &str = "OOMKilled";
    /// The builder pod was deleted before it finished (retried).
    pub const POD_DELETED: &str = "PodDeleted";
    /// The builder pod's node stopped responding (retried).
    pub const NODE_LOST: &str = "NodeLost";
    /// `spec.cancel` stopped the build.
    pub const CANCELLED: &str = "Cancelled";
    /// A spec change (a new generation) stopped the build of the older generation; only
    /// `status.history` shows it.
    pub const SUPERSEDED: &str = "Superseded";
    /// The builder's result is malformed, has a bad checksum or an unknown version.
    pub const RESULT_INVALID: &str = "ResultInvalid";
    /// The builder's result was cut short (the termination message limit).
    pub const RESULT_TRUNCATED: &str = "ResultTruncated";
    /// The pod finished but its result is gone (the pod was removed before it was read)
    /// (retried).
    pub const RESULT_LOST: &str = "ResultLost";
    /// The registry does not hold the manifest and config the builder reported.
    pub const VERIFICATION_FAILED: &str = "VerificationFailed";

    /// Reasons for infrastructure failures: the build itself may well succeed in a new pod, so
    /// the operator retries them up to `spec.retries`. Everything else is final for the
    /// generation — retrying a failed `RUN`, an OOM with the same limit or a timeout with the
    /// same deadline would only fail again (konflux-ci/build-definitions #3665).
    pub const RETRYABLE: &[&str] = &[
        EVICTED,
        POD_DELETED,
        NODE_LOST,
        RESULT_LOST,
        SOURCE_UNAVAILABLE,
        REGISTRY_UNAVAILABLE,
    ];

    /// Whether a failure with this reason is retried.
    pub fn is_retryable(reason: &str) -> bool {
        RETRYABLE.contains(&reason)
    }

    /// The reason that goes with a phase, except `Failed`, whose reason is the failure's.
    pub fn for_phase(phase: crate::Phase) -> Option<&'static str> {
        use crate::Phase;
        Some(match phase {
            Phase::Pending => PENDING,
            Phase::Queued => QUEUED,
            Phase::Fetching => FETCHING,
            Phase::Building => BUILDING,
            Phase::Pushing => PUSHING,
            Phase::Succeeded => BUILD_SUCCEEDED,
            Phase::Cancelled => CANCELLED,
            Phase::Failed => return None,
        })
    }
}

/// Sets `type_` in `conditions`, keeping `lastTransitionTime` when the status did not change (the
/// metav1.Condition contract), so repeated reconciles do not churn the object.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &Time,
) {
    let last_transition_time = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    let condition = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation,
        last_transition_time,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// Removes `type_` from `conditions` (kstatus: `Reconciling` and `Stalled` are absent when false).
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of `type_`, if set.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Brings all four conditions in line with `phase`:
///
/// | phase | Ready | Succeeded | Reconciling | Stalled |
/// |---|---|---|---|---|
/// | Pending … Pushing | False (reason) | Unknown (reason) | True (reason) | absent |
/// | Succeeded | True `BuildSucceeded` | True `BuildSucceeded` | absent | absent |
/// | Failed, Cancelled | False (reason) | False (reason) | absent | True (reason) |
///
/// `reason` and `message` describe the phase (for `Failed`, the failure reason).
pub fn set_for_phase(
    conditions: &mut Vec<Condition>,
    phase: Phase,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &Time,
) {
    use condition_status::{FALSE, TRUE, UNKNOWN};
    use condition_type::{READY, RECONCILING, STALLED, SUCCEEDED};
    let mut set = |type_, status| {
        set_condition(
            conditions,
            type_,
            status,
            reason,
            message,
            observed_generation,
            now,
        );
    };
    match phase {
        Phase::Succeeded => {
            set(READY, TRUE);
            set(SUCCEEDED, TRUE);
        }
        Phase::Failed | Phase::Cancelled => {
            set(READY, FALSE);
            set(SUCCEEDED, FALSE);
            set(STALLED, TRUE);
        }
        Phase::Pending | Phase::Queued | Phase::Fetching | Phase::Building | Phase::Pushing => {
            set(READY, FALSE);
            set(SUCCEEDED, UNKNOWN);
            set(RECONCILING, TRUE);
        }
    }
    let absent: &[&str] = match phase {
        Phase::Succeeded => &[RECONCILING, STALLED],
        Phase::Failed | Phase::Cancelled => &[RECONCILING],
        _ => &[STALLED],
    };
    for type_ in absent {
        remove_condition(conditions, type_);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn statuses(conditions: &[Condition]) -> Vec<(String, String, String)> {
        let mut v: Vec<_> = conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        v.sort();
        v
    }

    fn row(t: &str, s: &str, r: &str) -> (String, String, String) {
        (t.to_owned(), s.to_owned(), r.to_owned())
    }

    #[test]
    fn phases_map_to_kstatus_conditions() {
        let mut c = Vec::new();
        set_for_phase(
            &mut c,
            Phase::Building,
            reason::BUILDING,
            "step 3/9",
            Some(2),
            &at(10),
        );
        assert_eq!(
            statuses(&c),
            [
                row("Ready", "False", "Building"),
                row("Reconciling", "True", "Building"),
                row("Succeeded", "Unknown", "Building"),
            ]
        );
        set_for_phase(
            &mut c,
            Phase::Failed,
            reason::STEP_FAILED,
            "exit 2",
            Some(2),
            &at(20),
        );
        assert_eq!(
            statuses(&c),
            [
                row("Ready", "False", "StepFailed"),
                row("Stalled", "True", "StepFailed"),
                row("Succeeded", "False", "StepFailed"),
            ]
        );
        set_for_phase(
            &mut c,
            Phase::Pending,
            reason::PENDING,
            "",
            Some(3),
            &at(30),
        );
        set_for_phase(
            &mut c,
            Phase::Succeeded,
            reason::BUILD_SUCCEEDED,
            "",
            Some(3),
            &at(40),
        );
        assert_eq!(
            statuses(&c),
            [
                row("Ready", "True", "BuildSucceeded"),
                row("Succeeded", "True", "BuildSucceeded")
            ]
        );
        assert!(c.iter().all(|c| c.observed_generation == Some(3)));
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut c = Vec::new();
        set_for_phase(
            &mut c,
            Phase::Fetching,
            reason::FETCHING,
            "",
            Some(1),
            &at(10),
        );
        set_for_phase(
            &mut c,
            Phase::Building,
            reason::BUILDING,
            "",
            Some(1),
            &at(20),
        );
        let ready = find(&c, condition_type::READY).unwrap();
        assert_eq!(
            (ready.reason.as_str(), &ready.last_transition_time),
            ("Building", &at(10))
        );
        set_for_phase(
            &mut c,
            Phase::Succeeded,
            reason::BUILD_SUCCEEDED,
            "",
            Some(1),
            &at(30),
        );
        let ready = find(&c, condition_type::READY).unwrap();
        assert_eq!(ready.last_transition_time, at(30));
    }

    #[test]
    fn retryable_reasons_are_infrastructure_only() {
        for r in [
            reason::EVICTED,
            reason::POD_DELETED,
            reason::REGISTRY_UNAVAILABLE,
        ] {
            assert!(reason::is_retryable(r), "{r}");
        }
        for r in [
            reason::STEP_FAILED,
            reason::DOCKERFILE_INVALID,
            reason::OOM_KILLED,
            reason::TIMEOUT,
            reason::RESULT_TRUNCATED,
            reason::SPEC_INVALID,
        ] {
            assert!(!reason::is_retryable(r), "{r}");
        }
    }
}
