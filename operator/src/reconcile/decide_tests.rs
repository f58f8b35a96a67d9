//! The decision table: every phase × pod state × spec change × retry budget.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use stratum_crds::contract::{BuildFailure, FailureReason, PushedImage};
use stratum_crds::{
    BuildRecord, BuildResult, ImageBuild, ImageBuildSpec, ImageBuildStatus, InlineSource, Output,
    Phase, Source, reason,
};

use super::decide::{Action, DeleteWhy, Waiting, decide, retry_backoff};
use super::observed::{ContainerView, Observed, PodPhase, PodView, SourceCheck, Terminated};
use crate::names::pod_name;

pub(super) const NOW: i64 = 1_700_000_000;
/// The operator's `--default-timeout` in these cases.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub(super) fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

pub(super) fn mk_build(generation: i64, status: Option<ImageBuildStatus>) -> ImageBuild {
    let spec = ImageBuildSpec {
        source: Source {
            inline: Some(InlineSource {
                dockerfile: "FROM scratch\n".into(),
            }),
            ..Source::default()
        },
        output: Output {
            image: "registry.example.com/app:1".into(),
            ..Output::default()
        },
        ..ImageBuildSpec::default()
    };
    let mut build = ImageBuild::new("app", spec);
    build.metadata = ObjectMeta {
        name: Some("app".into()),
        namespace: Some("ns".into()),
        uid: Some("uid-1".into()),
        generation: Some(generation),
        ..ObjectMeta::default()
    };
    build.status = status;
    build
}

pub(super) fn mk_status(generation: i64, phase: Phase, attempt: i32) -> ImageBuildStatus {
    ImageBuildStatus {
        phase: Some(phase),
        observed_generation: Some(generation),
        attempt: Some(attempt),
        pod_name: (!matches!(phase, Phase::Pending | Phase::Queued))
            .then(|| pod_name("app", generation, attempt)),
        ..ImageBuildStatus::default()
    }
}

pub(super) fn mk_pod(
    generation: i64,
    attempt: i32,
    phase: PodPhase,
    container: ContainerView,
) -> PodView {
    PodView {
        name: pod_name("app", generation, attempt),
        generation,
        rebuild: 0,
        attempt,
        phase,
        reason: None,
        message: None,
        container,
        deleting: false,
        created: Some(ts(NOW - 60)),
    }
}

fn terminated(exit_code: i32, reason: Option<&str>, message: String) -> ContainerView {
    ContainerView::Terminated(Terminated {
        exit_code,
        reason: reason.map(str::to_owned),
        message,
        finished: Some(ts(NOW - 10)),
    })
}

fn pushed() -> BuildResult {
    BuildResult::pushed(PushedImage {
        manifest_digest: format!("sha256:{}", "a".repeat(64)),
        config_digest: format!("sha256:{}", "b".repeat(64)),
        size: 1234,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    })
}

fn failed(reason: FailureReason) -> BuildResult {
    BuildResult::failed(BuildFailure {
        reason,
        message: "boom".into(),
        step: Some("RUN make".into()),
        step_index: Some(2),
        line: Some(3),
        exit_code: Some(2),
    })
}

/// The pod states of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PodState {
    None,
    Pending,
    Running,
    Pushed,
    PushedNonZero,
    StepFailed,
    RegistryUnavailable,
    Truncated,
    Corrupt,
    NoResultError,
    NoResultZero,
    OomKilled,
    Evicted,
    DeadlineExceeded,
    DeletingRunning,
    DeletedKilled,
    Unknown,
    AdmissionFailed,
}

pub(super) const POD_STATES: [PodState; 18] = [
    PodState::None,
    PodState::Pending,
    PodState::Running,
    PodState::Pushed,
    PodState::PushedNonZero,
    PodState::StepFailed,
    PodState::RegistryUnavailable,
    PodState::Truncated,
    PodState::Corrupt,
    PodState::NoResultError,
    PodState::NoResultZero,
    PodState::OomKilled,
    PodState::Evicted,
    PodState::DeadlineExceeded,
    PodState::DeletingRunning,
    PodState::DeletedKilled,
    PodState::Unknown,
    PodState::AdmissionFailed,
];

pub(super) fn pod_in(state: PodState, generation: i64, attempt: i32) -> Option<PodView> {
    use ContainerView as C;
    use PodPhase as P;
    let message = |r: BuildResult| r.encode();
    let (phase, container) = match state {
        PodState::None => return None,
        PodState::Pending => (P::Pending, C::Waiting),
        PodState::Running | PodState::DeletingRunning => (P::Running, C::Running),
        PodState::Pushed => (
            P::Succeeded,
            terminated(0, Some("Completed"), message(pushed())),
        ),
        PodState::PushedNonZero => (P::Failed, terminated(1, Some("Error"), message(pushed()))),
        PodState::StepFailed => (
            P::Failed,
            terminated(1, Some("Error"), message(failed(FailureReason::StepFailed))),
        ),
        PodState::RegistryUnavailable => (
            P::Failed,
            terminated(
                1,
                Some("Error"),
                message(failed(FailureReason::RegistryUnavailable)),
            ),
        ),
        PodState::Truncated => {
            let m = message(pushed());
            (
                P::Succeeded,
                terminated(0, Some("Completed"), m[..m.len() - 5].to_owned()),
            )
        }
        PodState::Corrupt => {
            let m = message(pushed()).replace("aaaa", "aaab");
            (P::Succeeded, terminated(0, Some("Completed"), m))
        }
        PodState::NoResultError => (P::Failed, terminated(2, Some("Error"), String::new())),
        PodState::NoResultZero => (
            P::Succeeded,
            terminated(0, Some("Completed"), String::new()),
        ),
        PodState::OomKilled => (P::Failed, terminated(137, Some("OOMKilled"), String::new())),
        PodState::Evicted => (P::Failed, C::Waiting),
        PodState::DeadlineExceeded => (P::Failed, C::Waiting),
        PodState::DeletedKilled => (P::Failed, terminated(143, Some("Error"), String::new())),
        PodState::Unknown => (P::Unknown, C::Running),
        PodState::AdmissionFailed => (P::Failed, C::Waiting),
    };
    let mut pod = mk_pod(generation, attempt, phase, container);
    match state {
        PodState::Evicted => pod.reason = Some("Evicted".into()),
        PodState::DeadlineExceeded => pod.reason = Some("DeadlineExceeded".into()),
        PodState::AdmissionFailed => pod.reason = Some("OutOfcpu".into()),
        PodState::DeletingRunning | PodState::DeletedKilled => pod.deleting = true,
        _ => {}
    }
    Some(pod)
}

/// A one-line summary of an action, for the table.
pub(super) fn summary(action: &Action) -> String {
    match action {
        Action::CreatePod {
            rebuild: 0,
            attempt,
            ..
        } => format!("CreatePod {attempt}"),
        Action::CreatePod {
            rebuild, attempt, ..
        } => format!("CreatePod r{rebuild} {attempt}"),
        Action::Resolve => "Resolve".into(),
        Action::Rebuild { rebuild, source } => format!(
            "Rebuild r{rebuild} {}",
            source.revision().unwrap_or_default()
        ),
        Action::RemoveFinalizer => "RemoveFinalizer".into(),
        Action::Wait { why, .. } => format!(
            "Wait {}",
            match why {
                Waiting::PodStarting { .. } => "PodStarting",
                Waiting::PodRunning { .. } => "PodRunning",
                Waiting::PodStopping { .. } => "PodStopping",
                Waiting::NodeUnreachable { .. } => "NodeUnreachable",
                Waiting::Backoff { .. } => "Backoff",
                Waiting::SecretsMissing { .. } => "SecretsMissing",
                Waiting::PollSource => "PollSource",
                Waiting::Ttl { .. } => "Ttl",
            }
        ),
        Action::RecordResult { attempt, pod, .. } => format!("RecordResult {attempt} {pod}"),
        Action::Retry {
            attempt,
            failure,
            stop,
            ..
        } => {
            format!("Retry {attempt} {}{}", failure.reason, stop_of(stop))
        }
        Action::Fail {
            attempt,
            failure,
            stop,
            ..
        } => {
            format!("Fail {attempt} {}{}", failure.reason, stop_of(stop))
        }
        Action::Cancel { pod } => format!("Cancel{}", stop_of(pod)),
        Action::DeletePod { pod, why } => format!("DeletePod {pod} {why:?}"),
        Action::MarkQueued => "MarkQueued".into(),
        Action::MarkSpecInvalid { .. } => "MarkSpecInvalid".into(),
        Action::Nothing => "Nothing".into(),
    }
}

fn stop_of(pod: &Option<String>) -> String {
    pod.as_ref()
        .map(|p| format!(" stop {p}"))
        .unwrap_or_default()
}

pub(super) struct Case {
    pub build: ImageBuild,
    pub pods: Vec<PodView>,
    pub now: Timestamp,
    pub slot_free: bool,
    pub missing_secrets: Vec<String>,
    pub source: SourceCheck,
    pub last_source_check: Option<Timestamp>,
}

impl Case {
    pub(super) fn new(build: ImageBuild, pods: Vec<PodView>) -> Self {
        Self {
            build,
            pods,
            now: ts(NOW),
            slot_free: true,
            missing_secrets: Vec::new(),
            source: SourceCheck::NotChecked,
            last_source_check: None,
        }
    }

    pub(super) fn decide(&self) -> Action {
        decide(&Observed {
            build: &self.build,
            pods: self.pods.clone(),
            now: self.now,
            slot_free: self.slot_free,
            missing_secrets: self.missing_secrets.clone(),
            source: self.source.clone(),
            last_source_check: self.last_source_check,
            default_timeout: DEFAULT_TIMEOUT,
        })
    }
}

/// Build generation 1, attempt `attempt`, status `phase`, pod in `state`, with `retries`.
pub(super) fn case(phase: Option<Phase>, state: PodState, attempt: i32, retries: i32) -> Case {
    let status = phase.map(|p| mk_status(1, p, attempt));
    let mut build = mk_build(1, status);
    build.spec.retries = retries;
    Case::new(build, pod_in(state, 1, attempt).into_iter().collect())
}

#[test]
fn table() {
    use PodState as S;
    let building = Some(Phase::Building);
    #[rustfmt::skip]
    let rows: Vec<(&str, Case, &str)> = vec![
        ("new build starts attempt 1", case(None, S::None, 1, 2), "CreatePod 1"),
        ("pending status, no pod yet", case(Some(Phase::Pending), S::None, 1, 2), "CreatePod 1"),
        ("queued build gets its slot", case(Some(Phase::Queued), S::None, 1, 2), "CreatePod 1"),
        ("pod pending", case(building, S::Pending, 1, 2), "Wait PodStarting"),
        ("pod running", case(building, S::Running, 1, 2), "Wait PodRunning"),
        ("adopts a pod the status never recorded (F1)", case(None, S::Running, 1, 2), "Wait PodRunning"),
        ("pushed → verify", case(building, S::Pushed, 1, 2), "RecordResult 1 app-1-1"),
        ("pushed, recovered after a crash before the status write (F2)", case(None, S::Pushed, 1, 2), "RecordResult 1 app-1-1"),
        ("pushed but exit 1", case(building, S::PushedNonZero, 1, 2), "Fail 1 ResultInvalid"),
        ("RUN failed: never retried", case(building, S::StepFailed, 1, 2), "Fail 1 StepFailed"),
        ("registry unavailable: retried", case(building, S::RegistryUnavailable, 1, 2), "Retry 1 RegistryUnavailable"),
        ("registry unavailable, budget spent", case(building, S::RegistryUnavailable, 3, 2), "Fail 3 RegistryUnavailable"),
        ("truncated result (F11)", case(building, S::Truncated, 1, 2), "Fail 1 ResultTruncated"),
        ("corrupt result", case(building, S::Corrupt, 1, 2), "Fail 1 ResultInvalid"),
        ("crash without a result", case(building, S::NoResultError, 1, 2), "Fail 1 BuilderError"),
        ("exit 0 without a result", case(building, S::NoResultZero, 1, 2), "Fail 1 ResultInvalid"),
        ("OOMKilled: not retried", case(building, S::OomKilled, 1, 2), "Fail 1 OOMKilled"),
        ("evicted: retried (F6)", case(building, S::Evicted, 1, 2), "Retry 1 Evicted"),
        ("evicted, no retries", case(building, S::Evicted, 1, 0), "Fail 1 Evicted"),
        ("evicted on the last attempt", case(building, S::Evicted, 2, 1), "Fail 2 Evicted"),
        ("evicted on attempt 2 of 3", case(building, S::Evicted, 2, 2), "Retry 2 Evicted"),
        ("deadline exceeded", case(building, S::DeadlineExceeded, 1, 2), "Fail 1 Timeout"),
        ("pod being deleted", case(building, S::DeletingRunning, 1, 2), "Wait PodStopping"),
        ("deleted mid-build: retried", case(building, S::DeletedKilled, 1, 2), "Retry 1 PodDeleted"),
        ("pod vanished without a result (F2)", case(building, S::None, 1, 2), "Retry 1 ResultLost"),
        ("pod vanished, no retries", case(building, S::None, 1, 0), "Fail 1 ResultLost"),
        ("node unreachable, before the deadline", case(building, S::Unknown, 1, 2), "Wait NodeUnreachable"),
        ("node refused the pod", case(building, S::AdmissionFailed, 1, 2), "Retry 1 NodeLost"),
        ("succeeded stays succeeded", case(Some(Phase::Succeeded), S::Pushed, 1, 2), "Nothing"),
        ("failed stays failed", case(Some(Phase::Failed), S::StepFailed, 1, 2), "Nothing"),
        ("failed stays failed although the pod vanished", case(Some(Phase::Failed), S::None, 1, 2), "Nothing"),
        ("cancelled stays cancelled", case(Some(Phase::Cancelled), S::None, 1, 2), "Nothing"),
        ("a final build stops a leftover running pod", case(Some(Phase::Failed), S::Running, 1, 2), "DeletePod app-1-1 Superseded"),
    ];
    let mut failures = Vec::new();
    for (what, case, want) in &rows {
        let got = summary(&case.decide());
        if got != *want {
            failures.push(format!("{what}: want {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn spec_change_supersedes_the_old_pod_then_starts_attempt_1() {
    // Generation 2 while attempt 2 of generation 1 runs (threats F9).
    let mut build = mk_build(2, Some(mk_status(1, Phase::Building, 2)));
    let mut case = Case::new(
        build.clone(),
        pod_in(PodState::Running, 1, 2).into_iter().collect(),
    );
    assert_eq!(summary(&case.decide()), "DeletePod app-1-2 Superseded");
    // While it terminates it no longer counts as active: generation 2 starts at attempt 1.
    case.pods[0].deleting = true;
    assert_eq!(summary(&case.decide()), "CreatePod 1");
    // A finished old pod never blocks the new generation, even from a final status.
    build.status = Some(mk_status(1, Phase::Succeeded, 1));
    let case = Case::new(build, pod_in(PodState::Pushed, 1, 1).into_iter().collect());
    assert_eq!(summary(&case.decide()), "CreatePod 1");
}

#[test]
fn results_of_an_old_generation_are_never_recorded_for_the_new_one() {
    let build = mk_build(2, Some(mk_status(1, Phase::Building, 1)));
    let case = Case::new(build, pod_in(PodState::Pushed, 1, 1).into_iter().collect());
    assert_eq!(summary(&case.decide()), "CreatePod 1");
}

#[test]
fn cancel() {
    let mut c = case(Some(Phase::Building), PodState::Running, 1, 2);
    c.build.spec.cancel = true;
    assert_eq!(summary(&c.decide()), "Cancel stop app-1-1");
    let mut c = case(None, PodState::None, 1, 2);
    c.build.spec.cancel = true;
    assert_eq!(summary(&c.decide()), "Cancel");
    // Cancel does not touch a final build.
    let mut c = case(Some(Phase::Succeeded), PodState::Pushed, 1, 2);
    c.build.spec.cancel = true;
    assert_eq!(summary(&c.decide()), "Nothing");
}

#[test]
fn invalid_spec_is_reported_not_built() {
    let mut c = case(None, PodState::None, 1, 2);
    c.build.spec.output.image = "Not A Reference".into();
    assert_eq!(summary(&c.decide()), "MarkSpecInvalid");
}

#[test]
fn start_waits_for_secrets_source_and_slot() {
    let mut c = case(None, PodState::None, 1, 2);
    c.slot_free = false;
    assert_eq!(summary(&c.decide()), "MarkQueued");
    c.missing_secrets = vec!["secret push-creds not found".into()];
    assert_eq!(summary(&c.decide()), "Wait SecretsMissing");
    // A running pod needs no slot.
    let mut c = case(Some(Phase::Building), PodState::Running, 1, 2);
    c.slot_free = false;
    assert_eq!(summary(&c.decide()), "Wait PodRunning");
}

#[test]
fn retry_waits_out_its_backoff_from_the_history() {
    let failed_at = NOW - 5;
    let mut status = mk_status(1, Phase::Pending, 2);
    status.history.push(BuildRecord {
        generation: 1,
        rebuild: None,
        attempt: 1,
        source_revision: None,
        digest: None,
        phase: Phase::Failed,
        reason: Some(reason::EVICTED.into()),
        completion_time: Some(Time(ts(failed_at))),
    });
    let mut c = Case::new(mk_build(1, Some(status)), Vec::new());
    match c.decide() {
        Action::Wait {
            why: Waiting::Backoff { attempt: 2 },
            requeue_after,
        } => {
            assert_eq!(requeue_after, Some(Duration::from_secs(5)));
        }
        other => panic!("{other:?}"),
    }
    c.now = ts(failed_at + 10);
    assert_eq!(summary(&c.decide()), "CreatePod 2");
    // The failed attempt-1 pod does not count as active.
    c.pods = pod_in(PodState::Evicted, 1, 1).into_iter().collect();
    assert_eq!(summary(&c.decide()), "CreatePod 2");
}

#[test]
fn backoff_doubles_and_is_capped() {
    let secs: Vec<u64> = (1..=8).map(|a| retry_backoff(a).as_secs()).collect();
    assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300, 300]);
    assert_eq!(retry_backoff(i32::MAX).as_secs(), 300);
    assert_eq!(retry_backoff(0).as_secs(), 10);
}

#[test]
fn operator_deadline_covers_pods_the_kubelet_cannot_time_out() {
    // Default timeout 30m + 2m grace from creation.
    let late = ts(NOW - 60 + 32 * 60);
    let mut c = case(Some(Phase::Building), PodState::Pending, 1, 2);
    c.now = late;
    assert_eq!(summary(&c.decide()), "Fail 1 Timeout stop app-1-1");
    let mut c = case(Some(Phase::Building), PodState::Unknown, 1, 2);
    c.now = late;
    assert_eq!(summary(&c.decide()), "Retry 1 NodeLost stop app-1-1");
    // A running pod is re-checked no later than the deadline.
    let c = case(Some(Phase::Building), PodState::Running, 1, 2);
    match c.decide() {
        Action::Wait {
            requeue_after: Some(d),
            ..
        } => assert!(d <= Duration::from_secs(300)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ttl_deletes_finished_pods() {
    let mut c = case(Some(Phase::Succeeded), PodState::Pushed, 1, 2);
    c.build.spec.ttl_seconds_after_finished = Some(60);
    // Finished 10s ago: 50s to go.
    match c.decide() {
        Action::Wait {
            why: Waiting::Ttl { pod },
            requeue_after,
        } => {
            assert_eq!(
                (pod.as_str(), requeue_after),
                ("app-1-1", Some(Duration::from_secs(50)))
            );
        }
        other => panic!("{other:?}"),
    }
    c.now = ts(NOW + 50);
    assert_eq!(summary(&c.decide()), "DeletePod app-1-1 Ttl");
    c.pods[0].deleting = true;
    assert_eq!(summary(&c.decide()), "Nothing");
    // TTL 0 deletes at once; earlier attempts' pods too.
    let mut c = case(Some(Phase::Failed), PodState::StepFailed, 2, 2);
    c.build.spec.ttl_seconds_after_finished = Some(0);
    c.pods.extend(pod_in(PodState::Evicted, 1, 1));
    assert!(
        summary(&c.decide()).starts_with("DeletePod app-1-"),
        "{:?}",
        c.decide()
    );
}

#[test]
fn failure_details_reach_the_action() {
    let c = case(Some(Phase::Building), PodState::StepFailed, 1, 2);
    match c.decide() {
        Action::Fail {
            failure,
            result: Some(_),
            ..
        } => {
            assert_eq!(
                (failure.step.as_deref(), failure.line, failure.exit_code),
                (Some("RUN make"), Some(3), Some(2))
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The invariants over the whole product: phase × pod state × spec change × retry budget ×
/// attempt.
#[test]
fn invariants_over_every_combination() {
    let phases: Vec<Option<Phase>> = std::iter::once(None).chain(Phase::ALL.map(Some)).collect();
    let mut checked = 0;
    for phase in &phases {
        for state in POD_STATES {
            for spec_changed in [false, true] {
                for retries in [0, 1, 2] {
                    for attempt in [1, 2, 3] {
                        let mut c = case(*phase, state, attempt, retries);
                        if spec_changed {
                            c.build.metadata.generation = Some(2);
                        }
                        let action = c.decide();
                        let row = format!(
                            "{phase:?} {state:?} changed={spec_changed} retries={retries} attempt={attempt}: {}",
                            summary(&action)
                        );
                        check(
                            &c,
                            *phase,
                            state,
                            spec_changed,
                            retries,
                            attempt,
                            &action,
                            &row,
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 9 * 18 * 2 * 3 * 3);
}

#[allow(clippy::too_many_arguments)]
fn check(
    c: &Case,
    phase: Option<Phase>,
    state: PodState,
    spec_changed: bool,
    retries: i32,
    attempt: i32,
    action: &Action,
    row: &str,
) {
    let active_pod = c.pods.iter().any(|p| !p.deleting && !p.is_finished());
    let terminal_same_gen = !spec_changed && phase.is_some_and(|p| p.is_terminal());
    // Terminal phases never regress.
    if terminal_same_gen {
        assert!(
            matches!(
                action,
                Action::Nothing | Action::DeletePod { .. } | Action::Wait { .. }
            ),
            "{row}"
        );
    }
    // Never a second active pod.
    if active_pod {
        assert!(!matches!(action, Action::CreatePod { .. }), "{row}");
    }
    // A spec change stops the old generation's running pod before anything else.
    if spec_changed && active_pod {
        assert!(
            matches!(
                action,
                Action::DeletePod {
                    why: DeleteWhy::Superseded,
                    ..
                }
            ),
            "{row}"
        );
    }
    // The new generation never inherits the old one's attempt or result.
    if spec_changed && !active_pod {
        assert_eq!(summary(action), "CreatePod 1", "{row}");
    }
    match action {
        Action::Retry {
            attempt: a,
            failure,
            ..
        } => {
            assert!(*a <= retries, "{row}");
            assert!(reason::is_retryable(&failure.reason), "{row}");
        }
        Action::RecordResult { .. } => assert_eq!(state, PodState::Pushed, "{row}"),
        Action::Fail {
            attempt: a,
            failure,
            ..
        } if reason::is_retryable(&failure.reason) => {
            assert!(
                *a > retries,
                "a retryable failure failed with budget left: {row}"
            );
        }
        Action::CreatePod { attempt: a, .. } => assert!(*a == attempt || *a == 1, "{row}"),
        _ => {}
    }
    // Never Succeeded from a cut, corrupt or missing result.
    if matches!(
        state,
        PodState::Truncated | PodState::Corrupt | PodState::NoResultZero | PodState::PushedNonZero
    ) {
        assert!(!matches!(action, Action::RecordResult { .. }), "{row}");
    }
}

/// The builder reports `Timeout` ("the build was cancelled") when SIGTERM stopped it: at the
/// pod's deadline the status names the deadline and the step; a deleted pod is retried.
#[test]
fn a_builder_timeout_names_the_deadline_or_is_a_deletion() {
    let timeout = || {
        let mut result = failed(FailureReason::Timeout);
        if let stratum_crds::contract::Outcome::Failed(f) = &mut result.outcome {
            f.message = "the build was cancelled".into();
            f.exit_code = None;
        }
        terminated(1, Some("Error"), result.encode())
    };
    let mut c = case(Some(Phase::Building), PodState::None, 1, 2);
    c.build.spec.timeout = Some(stratum_crds::GoDuration::new("10m"));
    let mut pod = mk_pod(1, 1, PodPhase::Failed, timeout());
    pod.reason = Some("DeadlineExceeded".into());
    c.pods = vec![pod.clone()];
    let Action::Fail {
        failure,
        pod: failed_pod,
        ..
    } = c.decide()
    else {
        panic!("{:?}", c.decide());
    };
    assert_eq!(failed_pod.map(|p| p.name).as_deref(), Some("app-1-1"));
    assert_eq!(failure.reason, reason::TIMEOUT);
    assert_eq!(
        failure.message,
        "the build ran longer than spec.timeout (10m); it was on RUN make (line 3)"
    );

    // Without spec.timeout the operator's default is the limit.
    c.build.spec.timeout = None;
    let Action::Fail { failure, .. } = c.decide() else {
        panic!("{:?}", c.decide());
    };
    assert!(
        failure
            .message
            .starts_with("the build ran longer than the operator's default timeout (1800s)"),
        "{}",
        failure.message
    );

    // SIGTERM from a deletion is not a timeout: an infrastructure failure, retried.
    pod.reason = None;
    pod.deleting = true;
    c.pods = vec![pod];
    assert_eq!(summary(&c.decide()), "Retry 1 PodDeleted");
}

/// Waits on the current pod name its attempt and creation time, so the status can record them
/// even when the cached ImageBuild predates the operator's own last write.
#[test]
fn waits_name_the_attempt_and_its_pod() {
    let c = case(Some(Phase::Pending), PodState::Running, 2, 2);
    let Action::Wait {
        why:
            Waiting::PodRunning {
                pod,
                attempt,
                created,
            },
        ..
    } = c.decide()
    else {
        panic!("{:?}", c.decide());
    };
    assert_eq!(
        (pod.as_str(), attempt, created),
        ("app-1-2", 2, Some(ts(NOW - 60)))
    );
}
