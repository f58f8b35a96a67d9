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

/// Creating the pod of `attempt` of rebuild 0 of an inline build.
fn create(attempt: i32) -> Action {
    Action::CreatePod {
        rebuild: 0,
        attempt,
        source: ResolvedSource::default(),
    }
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
        (create(1), Some((Phase::Pending, "Pending", 1, Some("app-1-1")))),
        (wait(Waiting::PodStarting { pod: "app-1-1".into(), attempt: 1, created: None }), Some((Phase::Pending, "Pending", 1, Some("app-1-1")))),
        (wait(Waiting::PodRunning { pod: "app-1-1".into(), attempt: 1, created: None }), Some((Phase::Building, "Building", 1, Some("app-1-1")))),
        (wait(Waiting::SecretsMissing { problems: vec!["no secret x".into()] }), Some((Phase::Pending, "SecretInvalid", 1, None))),
        (wait(Waiting::PodStopping { pod: "app-1-1".into() }), None),
        (Action::MarkQueued, Some((Phase::Queued, "Queued", 1, None))),
        (Action::Retry { attempt: 1, failure: failure("Evicted"), after: Duration::ZERO, stop: None }, Some((Phase::Pending, "Pending", 2, None))),
        (Action::Fail { pod: None, attempt: 2, failure: failure("StepFailed"), result: None, stop: None }, Some((Phase::Failed, "StepFailed", 2, None))),
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
        pod: None,
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
    let running = after_action(&mk_build(1, None), &create(1), &at(1)).unwrap();
    let s = succeeded(
        &mk_build(1, Some(running)),
        1,
        None,
        &result,
        &verified,
        &at(9),
    );
    assert_eq!(s.phase, Some(Phase::Succeeded));
    // The registry's digest, not the builder's claim.
    assert_eq!(s.digest.as_deref(), Some(digest.as_str()));
    assert_eq!(s.short_digest.as_deref(), Some("abababababab"));
    assert_eq!(s.tags, ["r.example.com/app:1"]);
    assert_eq!(s.start_time, Some(at(1)));
    let done = mk_build(1, Some(s.clone()));
    for action in [create(2), Action::MarkQueued, Action::Cancel { pod: None }] {
        assert_eq!(after_action(&done, &action, &at(10)), None, "{action:?}");
    }
    // A new generation starts over, keeping history.
    let next = after_action(&mk_build(2, Some(s)), &create(1), &at(20)).unwrap();
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
    let first = after_action(&mk_build(1, None), &create(1), &at(1)).unwrap();
    let retry = Action::Retry {
        attempt: 1,
        failure: failure(reason::EVICTED),
        after: Duration::from_secs(10),
        stop: None,
    };
    let retried = after_action(&mk_build(1, Some(first)), &retry, &at(2)).unwrap();
    assert_eq!(retried.pod_name, None);
    let s = succeeded(
        &mk_build(1, Some(retried)),
        2,
        Some(at(8)),
        &result,
        &verified,
        &at(9),
    );
    assert_eq!(s.phase, Some(Phase::Succeeded));
    assert_eq!(s.attempt, Some(2));
    assert_eq!(s.pod_name.as_deref(), Some("app-1-2"));
    // The attempt's pod started it; attempt 1's start went with the retry.
    assert_eq!(s.start_time, Some(at(8)));
}

/// After a retry, the status names attempt 2's pod and its start, whichever status the
/// (possibly lagging) cache shows: attempt 1 running, or the retry's own write.
#[test]
fn a_retry_records_the_new_pod_and_its_start_even_from_a_stale_cache() {
    let created = at(1);
    let first = after_action(&mk_build(1, None), &create(1), &created).unwrap();
    let running_1 = Action::Wait {
        why: Waiting::PodRunning {
            pod: "app-1-1".into(),
            attempt: 1,
            created: Some(created.0),
        },
        requeue_after: None,
    };
    let first = after_action(&mk_build(1, Some(first)), &running_1, &at(2)).unwrap();
    let retry = Action::Retry {
        attempt: 1,
        failure: failure(reason::POD_DELETED),
        after: Duration::from_secs(10),
        stop: None,
    };
    let retried = after_action(&mk_build(1, Some(first.clone())), &retry, &at(3)).unwrap();
    assert_eq!(
        (retried.pod_name.as_deref(), retried.start_time.as_ref()),
        (None, None)
    );

    let second = after_action(&mk_build(1, Some(retried.clone())), &create(2), &at(20)).unwrap();
    assert_eq!(second.pod_name.as_deref(), Some("app-1-2"));
    assert_eq!(second.start_time, Some(at(20)));

    let running_2 = Action::Wait {
        why: Waiting::PodRunning {
            pod: "app-1-2".into(),
            attempt: 2,
            created: Some(at(21).0),
        },
        requeue_after: None,
    };
    // Fresh cache: the start recorded at creation stays (the write is idempotent).
    let s = after_action(&mk_build(1, Some(second)), &running_2, &at(30)).unwrap();
    assert_eq!(
        (s.phase, s.attempt, s.pod_name.as_deref(), s.start_time),
        (
            Some(Phase::Building),
            Some(2),
            Some("app-1-2"),
            Some(at(20))
        )
    );
    // Stale caches: the retry's write, or attempt 1 still running.
    let failed_2 = Action::Fail {
        pod: Some(crate::reconcile::AttemptPod {
            name: "app-1-2".into(),
            created: Some(at(21).0),
        }),
        attempt: 2,
        failure: failure(reason::STEP_FAILED),
        result: None,
        stop: None,
    };
    for stale in [retried, first] {
        let s = after_action(&mk_build(1, Some(stale.clone())), &running_2, &at(30)).unwrap();
        let summary = (s.phase, s.attempt, s.pod_name.as_deref(), s.start_time);
        let want = (
            Some(Phase::Building),
            Some(2),
            Some("app-1-2"),
            Some(at(21)),
        );
        assert_eq!(summary, want);
        // A failure names the failed attempt's pod too, for `kubectl logs`.
        let s = after_action(&mk_build(1, Some(stale)), &failed_2, &at(40)).unwrap();
        let summary = (s.phase, s.attempt, s.pod_name.as_deref(), s.start_time);
        let want = (Some(Phase::Failed), Some(2), Some("app-1-2"), Some(at(21)));
        assert_eq!(summary, want);
    }
}

#[test]
fn an_unfinished_build_superseded_by_a_spec_change_is_recorded() {
    let running = after_action(&mk_build(1, None), &create(1), &at(1)).unwrap();
    let next = after_action(&mk_build(2, Some(running)), &create(1), &at(2)).unwrap();
    let h = &next.history[0];
    assert_eq!(
        (h.generation, h.phase, h.reason.as_deref()),
        (1, Phase::Cancelled, Some(reason::SUPERSEDED))
    );
}

fn git_revision(commit: &str) -> ResolvedSource {
    ResolvedSource {
        git: Some(stratum_crds::ResolvedGit {
            commit: commit.repeat(40),
        }),
        url: None,
    }
}

#[test]
fn the_resolved_revision_is_recorded_before_the_pod_runs_and_kept_by_retries() {
    let action = Action::CreatePod {
        rebuild: 0,
        attempt: 1,
        source: git_revision("a"),
    };
    let s = after_action(&mk_build(1, None), &action, &at(1)).unwrap();
    assert_eq!(s.source, Some(git_revision("a")));
    // A retry's pod builds the recorded revision; a different one in the action changes nothing.
    let retry = Action::CreatePod {
        rebuild: 0,
        attempt: 2,
        source: git_revision("b"),
    };
    let s = after_action(&mk_build(1, Some(s)), &retry, &at(2)).unwrap();
    assert_eq!(s.source, Some(git_revision("a")));
}

#[test]
fn a_rebuild_leaves_the_final_phase_with_history_and_a_new_pod_name() {
    let first = after_action(
        &mk_build(1, None),
        &Action::CreatePod {
            rebuild: 0,
            attempt: 1,
            source: git_revision("a"),
        },
        &at(1),
    )
    .unwrap();
    let done = after_action(
        &mk_build(1, Some(first)),
        &Action::Fail {
            pod: None,
            attempt: 1,
            failure: failure("StepFailed"),
            result: None,
            stop: None,
        },
        &at(2),
    )
    .unwrap();
    let rebuild = Action::Rebuild {
        rebuild: 1,
        source: git_revision("b"),
    };
    let s = after_action(&mk_build(1, Some(done.clone())), &rebuild, &at(3)).unwrap();
    assert_eq!(
        (s.phase, s.rebuild, s.attempt, s.observed_generation),
        (Some(Phase::Pending), Some(1), Some(1), Some(1))
    );
    assert_eq!(s.source, Some(git_revision("b")));
    assert_eq!(
        (s.failure.as_ref(), s.completion_time.as_ref()),
        (None, None)
    );
    // The finished build stays in history with its revision.
    assert_eq!(s.history, done.history);
    assert_eq!(s.history[0].source_revision, Some("a".repeat(40)));
    // Idempotent: the same rebuild on its own result changes nothing but stays a rebuild.
    assert_eq!(
        after_action(&mk_build(1, Some(s.clone())), &rebuild, &at(3))
            .as_ref()
            .map(|x| x.rebuild),
        Some(Some(1))
    );
    let pod = Action::CreatePod {
        rebuild: 1,
        attempt: 1,
        source: git_revision("b"),
    };
    let s = after_action(&mk_build(1, Some(s)), &pod, &at(4)).unwrap();
    assert_eq!(s.pod_name.as_deref(), Some("app-1r1-1"));
    // Its outcome is recorded as rebuild 1, beside the first build's.
    let s = after_action(
        &mk_build(1, Some(s)),
        &Action::Fail {
            pod: None,
            attempt: 1,
            failure: failure("StepFailed"),
            result: None,
            stop: None,
        },
        &at(5),
    )
    .unwrap();
    let keys: Vec<_> = s.history.iter().map(|r| (r.rebuild, r.attempt)).collect();
    assert_eq!(keys, [(Some(1), 1), (None, 1)]);
}

#[test]
fn the_builders_sha256_joins_the_resolved_etag() {
    let resolved = ResolvedSource {
        git: None,
        url: Some(stratum_crds::ResolvedUrl {
            sha256: None,
            etag: Some("\"v1\"".into()),
            last_modified: None,
        }),
    };
    let created = after_action(
        &mk_build(1, None),
        &Action::CreatePod {
            rebuild: 0,
            attempt: 1,
            source: resolved,
        },
        &at(1),
    )
    .unwrap();
    let mut result = BuildResult::failed(BuildFailure {
        reason: FailureReason::StepFailed,
        message: "m".into(),
        step: None,
        step_index: None,
        line: None,
        exit_code: Some(1),
    });
    result.source = Some(stratum_crds::contract::BuiltSource::Url {
        sha256: "e".repeat(64),
    });
    let s = after_action(
        &mk_build(1, Some(created)),
        &Action::Fail {
            pod: None,
            attempt: 1,
            failure: failure("StepFailed"),
            result: Some(result),
            stop: None,
        },
        &at(2),
    )
    .unwrap();
    let url = s.source.unwrap().url.unwrap();
    assert_eq!(
        (url.sha256, url.etag),
        (Some("e".repeat(64)), Some("\"v1\"".into()))
    );
}
