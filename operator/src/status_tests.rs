use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use stratum_crds::conditions::{condition_type, find};
use stratum_crds::contract::{BuildFailure, FailureReason, PushedImage};
use stratum_crds::{ImageBuildSpec, Output};

use super::*;
use crate::reconcile::DeleteWhy;
use std::time::Duration;

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

fn mk_build(generation: i64, status: Option<ImageBuildStatus>) -> ImageBuild {
    let spec = ImageBuildSpec {
        output: Output {
            image: "r.example.com/app:1".into(),
            ..Output::default()
        },
        ..ImageBuildSpec::default()
    };
    let mut b = ImageBuild::new("app", spec);
    b.metadata = ObjectMeta {
        name: Some("app".into()),
        generation: Some(generation),
        ..ObjectMeta::default()
    };
    b.status = status;
    b
}

fn failure(reason: &str) -> Failure {
    Failure {
        reason: reason.into(),
        message: "m".into(),
        ..Failure::default()
    }
}

/// (phase, Ready reason, attempt, podName).
type Summary<'a> = (Phase, &'a str, i32, Option<&'a str>);

/// The summary after each action on a fresh generation-1 build.
#[test]
fn table() {
    let wait = |why| Action::Wait {
        why,
        requeue_after: None,
    };
    #[rustfmt::skip]
    let rows: Vec<(Action, Option<Summary>)> = vec![
        (Action::CreatePod { attempt: 1 }, Some((Phase::Pending, "Pending", 1, Some("app-1-1")))),
        (wait(Waiting::PodStarting { pod: "app-1-1".into() }), Some((Phase::Pending, "Pending", 1, None))),
        (wait(Waiting::PodRunning { pod: "app-1-1".into() }), Some((Phase::Building, "Building", 1, None))),
        (wait(Waiting::SecretsMissing { problems: vec!["no secret x".into()] }), Some((Phase::Pending, "SecretInvalid", 1, None))),
        (wait(Waiting::PodStopping { pod: "app-1-1".into() }), None),
        (Action::MarkQueued, Some((Phase::Queued, "Queued", 1, None))),
        (Action::Retry { attempt: 1, failure: failure("Evicted"), after: Duration::ZERO, stop: None }, Some((Phase::Pending, "Pending", 2, None))),
        (Action::Fail { attempt: 2, failure: failure("StepFailed"), result: None, stop: None }, Some((Phase::Failed, "StepFailed", 2, None))),
        (Action::MarkSpecInvalid { message: "bad".into() }, Some((Phase::Failed, "SpecInvalid", 1, None))),
        (Action::Cancel { pod: None }, Some((Phase::Cancelled, "Cancelled", 1, None))),
        (Action::DeletePod { pod: "x".into(), why: DeleteWhy::Ttl }, None),
        (Action::Nothing, None),
    ];
    for (action, want) in rows {
        let build = mk_build(1, None);
        let got = after_action(&build, &action, &at(100));
        let summary = got.as_ref().map(|s| {
            let ready = find(&s.conditions, condition_type::READY).unwrap();
            (
                s.phase.unwrap(),
                ready.reason.as_str(),
                s.attempt.unwrap(),
                s.pod_name.as_deref(),
            )
        });
        assert_eq!(summary, want, "{action:?}");
        if let Some(s) = got {
            assert_eq!(s.observed_generation, Some(1));
            // Idempotent: the same action on its own output changes nothing, even later.
            let again = after_action(&mk_build(1, Some(s.clone())), &action, &at(200));
            if s.phase.is_some_and(|p| p.is_terminal()) {
                assert_eq!(again, None, "{action:?}");
            } else if !matches!(action, Action::Retry { .. }) {
                assert_eq!(again, Some(s), "{action:?}");
            }
        }
    }
}

#[test]
fn failed_status_carries_the_builders_report() {
    let result = BuildResult::failed(BuildFailure {
        reason: FailureReason::StepFailed,
        message: "The command '/bin/sh -c make' returned a non-zero code: 2".into(),
        step: Some("RUN make".into()),
        step_index: Some(1),
        line: Some(4),
        exit_code: Some(2),
    });
    let failure = match &result.outcome {
        stratum_crds::contract::Outcome::Failed(f) => Failure::from(f),
        _ => unreachable!(),
    };
    let action = Action::Fail {
        attempt: 1,
        failure,
        result: Some(result),
        stop: None,
    };
    let s = after_action(&mk_build(1, None), &action, &at(5)).unwrap();
    let f = s.failure.unwrap();
    assert_eq!(
        (f.line, f.exit_code, f.step.as_deref()),
        (Some(4), Some(2), Some("RUN make"))
    );
    assert_eq!(s.completion_time, Some(at(5)));
    assert_eq!(s.history[0].reason.as_deref(), Some("StepFailed"));
    assert!(find(&s.conditions, condition_type::STALLED).is_some());
}

#[test]
fn success_records_the_verified_image_and_never_regresses() {
    let result = BuildResult::pushed(PushedImage {
        manifest_digest: "sha256:x".into(),
        config_digest: "sha256:y".into(),
        size: 1,
        media_type: "t".into(),
    });
    let digest = format!("sha256:{}", "ab".repeat(32));
    let verified = VerifiedImage {
        digest: digest.clone(),
        image_id: format!("sha256:{}", "cd".repeat(32)),
        image: format!("r.example.com/app@{digest}"),
        size: 42,
        layers: Vec::new(),
    };
    let running = after_action(
        &mk_build(1, None),
        &Action::CreatePod { attempt: 1 },
        &at(1),
    )
    .unwrap();
    let s = succeeded(&mk_build(1, Some(running)), 1, &result, &verified, &at(9));
    assert_eq!(s.phase, Some(Phase::Succeeded));
    // The registry's digest, not the builder's claim.
    assert_eq!(s.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(s.short_digest.as_deref(), Some("abababababab"));
    assert_eq!(s.tags, ["r.example.com/app:1"]);
    assert_eq!(s.start_time, Some(at(1)));
    let done = mk_build(1, Some(s.clone()));
    for action in [
        Action::CreatePod { attempt: 2 },
        Action::MarkQueued,
        Action::Cancel { pod: None },
    ] {
        assert_eq!(after_action(&done, &action, &at(10)), None, "{action:?}");
    }
    // A new generation starts over, keeping history.
    let next = after_action(
        &mk_build(2, Some(s)),
        &Action::CreatePod { attempt: 1 },
        &at(20),
    )
    .unwrap();
    assert_eq!(
        (
            next.observed_generation,
            next.digest.as_deref(),
            next.history.len()
        ),
        (Some(2), None, 1)
    );
}

/// Regression (e2e eviction test): the reconcile that records attempt 2's result may see the
/// build as the retry left it — podName cleared, before its own CreatePod status write reached the
/// cache. The success still names the pod that produced it.
#[test]
fn success_from_a_lagging_status_names_the_attempts_pod() {
    let result = BuildResult::pushed(PushedImage {
        manifest_digest: "sha256:x".into(),
        config_digest: "sha256:y".into(),
        size: 1,
        media_type: "t".into(),
    });
    let digest = format!("sha256:{}", "ab".repeat(32));
    let verified = VerifiedImage {
        digest: digest.clone(),
        image_id: format!("sha256:{}", "cd".repeat(32)),
        image: format!("r.example.com/app@{digest}"),
        size: 42,
        layers: Vec::new(),
    };
    let first = after_action(
        &mk_build(1, None),
        &Action::CreatePod { attempt: 1 },
        &at(1),
    )
    .unwrap();
    let retry = Action::Retry {
        attempt: 1,
        failure: failure(reason::EVICTED),
        after: Duration::from_secs(10),
        stop: None,
    };
    let retried = after_action(&mk_build(1, Some(first)), &retry, &at(2)).unwrap();
    assert_eq!(retried.pod_name, None);
    let s = succeeded(&mk_build(1, Some(retried)), 2, &result, &verified, &at(9));
    assert_eq!(s.phase, Some(Phase::Succeeded));
    assert_eq!(s.attempt, Some(2));
    assert_eq!(s.pod_name.as_deref(), Some("app-1-2"));
}

#[test]
fn an_unfinished_build_superseded_by_a_spec_change_is_recorded() {
    let running = after_action(
        &mk_build(1, None),
        &Action::CreatePod { attempt: 1 },
        &at(1),
    )
    .unwrap();
    let next = after_action(
        &mk_build(2, Some(running)),
        &Action::CreatePod { attempt: 1 },
        &at(2),
    )
    .unwrap();
    let h = &next.history[0];
    assert_eq!(
        (h.generation, h.phase, h.reason.as_deref()),
        (1, Phase::Cancelled, Some(SUPERSEDED))
    );
}
