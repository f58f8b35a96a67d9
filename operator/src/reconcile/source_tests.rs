//! The decision about the source (resolution before a pod, `pollInterval` rebuilds) and about
//! deletion (the finalizer): tables over the new inputs, and invariants.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stratum_builder::source::SourceErrorKind;
use stratum_crds::{
    Failure, GitSource, GoDuration, ImageBuild, Phase, ResolvedGit, ResolvedSource, ResolvedUrl,
    Source, UrlSource, reason,
};

use super::decide::{Action, Waiting};
use super::decide_tests::{
    Case, NOW, POD_STATES, PodState, mk_build, mk_pod, mk_status, pod_in, summary, ts,
};
use super::observed::{ContainerView, PodPhase, SourceCheck};
use super::source::{FINALIZER, FINALIZER_TIMEOUT, moved};

const URL: &str = "https://git.example.com/team/app.git";

fn commit(c: &str) -> ResolvedSource {
    ResolvedSource {
        git: Some(ResolvedGit {
            commit: c.repeat(40),
        }),
        url: None,
    }
}

fn object(etag: Option<&str>, last_modified: Option<&str>) -> ResolvedSource {
    ResolvedSource {
        git: None,
        url: Some(ResolvedUrl {
            sha256: None,
            etag: etag.map(str::to_owned),
            last_modified: last_modified.map(str::to_owned),
        }),
    }
}

fn git_source(poll: Option<&str>) -> Source {
    Source {
        git: Some(GitSource {
            url: URL.into(),
            revision: Some("main".into()),
            poll_interval: poll.map(GoDuration::new),
            ..GitSource::default()
        }),
        ..Source::default()
    }
}

fn git_build(phase: Option<Phase>, recorded: Option<ResolvedSource>) -> ImageBuild {
    let mut status = phase.map(|p| mk_status(1, p, 1));
    if let Some(s) = status.as_mut() {
        s.source = recorded;
    }
    let mut build = mk_build(1, status);
    build.spec.source = git_source(None);
    build
}

fn failed(kind: SourceErrorKind) -> SourceCheck {
    SourceCheck::Failed {
        kind,
        message: format!("cannot resolve git revision main: {URL}: {kind:?}"),
    }
}

fn with(mut case: Case, f: impl FnOnce(&mut Case)) -> Case {
    f(&mut case);
    case
}

#[test]
fn resolution_before_the_pod() {
    use SourceErrorKind as K;
    let fresh = || Case::new(git_build(None, None), Vec::new());
    #[rustfmt::skip]
    let rows: Vec<(&str, Case, &str)> = vec![
        ("a fresh git build asks the remote", fresh(), "Resolve"),
        ("the answer starts the pod", with(fresh(), |c| c.source = SourceCheck::Resolved(commit("a"))), "CreatePod 1"),
        ("unknown repository or ref: FetchFailed", with(fresh(), |c| c.source = failed(K::NotFound)), "Fail 1 FetchFailed"),
        ("refused credentials: SourceAuthFailed", with(fresh(), |c| c.source = failed(K::Auth)), "Fail 1 SourceAuthFailed"),
        ("unusable URL or Secret: FetchFailed", with(fresh(), |c| c.source = failed(K::Invalid)), "Fail 1 FetchFailed"),
        ("unreachable remote: retried", with(fresh(), |c| c.source = failed(K::Unavailable)), "Retry 1 SourceUnavailable"),
        ("unreachable remote, budget spent", with(Case::new(git_build(Some(Phase::Pending), None), Vec::new()), |c| {
            c.build.status.as_mut().unwrap().attempt = Some(3);
            c.source = failed(K::Unavailable);
        }), "Fail 3 SourceUnavailable"),
        ("a recorded revision is reused, not asked again", Case::new(git_build(Some(Phase::Pending), Some(commit("a"))), Vec::new()), "CreatePod 1"),
        ("a queued build does not ask the remote", with(fresh(), |c| c.slot_free = false), "MarkQueued"),
        ("nor does one waiting for a Secret", with(fresh(), |c| c.missing_secrets = vec!["source Secret git does not exist".into()]), "Wait SecretsMissing"),
        ("a new generation asks again", with(Case::new(git_build(Some(Phase::Succeeded), Some(commit("a"))), Vec::new()), |c| {
            c.build.metadata.generation = Some(2);
        }), "Resolve"),
        ("a running pod needs no answer", Case::new(git_build(Some(Phase::Building), Some(commit("a"))), pod_in(PodState::Running, 1, 1).into_iter().collect()), "Wait PodRunning"),
        ("inline sources are never resolved", Case::new(mk_build(1, None), Vec::new()), "CreatePod 1"),
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
fn the_pod_builds_the_recorded_or_resolved_revision() {
    let recorded = Case::new(
        git_build(Some(Phase::Pending), Some(commit("a"))),
        Vec::new(),
    );
    // Even when a (stale) answer says otherwise, the recorded revision wins: every attempt of
    // one build builds the same commit.
    let recorded = with(recorded, |c| {
        c.source = SourceCheck::Resolved(commit("b"));
    });
    match recorded.decide() {
        Action::CreatePod { source, .. } => assert_eq!(source, commit("a")),
        other => panic!("{other:?}"),
    }
    let fresh = with(Case::new(git_build(None, None), Vec::new()), |c| {
        c.source = SourceCheck::Resolved(commit("b"));
    });
    match fresh.decide() {
        Action::CreatePod { source, .. } => assert_eq!(source, commit("b")),
        other => panic!("{other:?}"),
    }
    // A resolution failure's message reaches the failure as the resolver wrote it.
    let c = with(Case::new(git_build(None, None), Vec::new()), |c| {
        c.source = failed(SourceErrorKind::Auth);
    });
    match c.decide() {
        Action::Fail { failure, .. } => assert!(failure.message.contains(URL), "{failure:?}"),
        other => panic!("{other:?}"),
    }
}

/// A finished build of generation 1 with `pollInterval: 5m` that built commit `a`, completed
/// 10 minutes before `NOW`.
fn polled(phase: Phase) -> Case {
    let mut build = git_build(Some(phase), Some(commit("a")));
    build.spec.source = git_source(Some("5m"));
    let status = build.status.as_mut().unwrap();
    status.completion_time = Some(Time(ts(NOW - 600)));
    if phase == Phase::Failed {
        status.failure = Some(Failure {
            reason: reason::STEP_FAILED.into(),
            ..Failure::default()
        });
    }
    let pods = match phase {
        Phase::Succeeded => pod_in(PodState::Pushed, 1, 1),
        _ => pod_in(PodState::StepFailed, 1, 1),
    };
    Case::new(build, pods.into_iter().collect())
}

fn requeue(action: &Action) -> Option<Duration> {
    match action {
        Action::Wait { requeue_after, .. } => *requeue_after,
        _ => None,
    }
}

#[test]
fn polling_a_finished_build() {
    let moved_to_b = |c: &mut Case| c.source = SourceCheck::Resolved(commit("b"));
    let rebuild_b = format!("Rebuild r1 {}", "b".repeat(40));
    #[rustfmt::skip]
    let rows: Vec<(&str, Case, &str, Option<u64>)> = vec![
        ("due: ask the remote", polled(Phase::Succeeded), "Resolve", None),
        ("unchanged: look again after the interval", with(polled(Phase::Succeeded), |c| c.source = SourceCheck::Resolved(commit("a"))), "Wait PollSource", Some(300)),
        ("moved: rebuild", with(polled(Phase::Succeeded), moved_to_b), &rebuild_b, None),
        ("a failed build is rebuilt on a new commit too", with(polled(Phase::Failed), moved_to_b), &rebuild_b, None),
        ("the remote failing changes nothing", with(polled(Phase::Succeeded), |c| c.source = failed(SourceErrorKind::Unavailable)), "Wait PollSource", Some(300)),
        ("not due yet: anchored on completion", with(polled(Phase::Succeeded), |c| {
            c.build.status.as_mut().unwrap().completion_time = Some(Time(ts(NOW - 60)));
        }), "Wait PollSource", Some(240)),
        ("not due yet: anchored on the last check", with(polled(Phase::Succeeded), |c| c.last_source_check = Some(ts(NOW - 30))), "Wait PollSource", Some(270)),
        ("cancelled builds are not polled", with(polled(Phase::Succeeded), |c| {
            c.build.status.as_mut().unwrap().phase = Some(Phase::Cancelled);
        }), "Nothing", None),
        ("spec.cancel stops polling", with(polled(Phase::Succeeded), |c| c.build.spec.cancel = true), "Nothing", None),
        ("an invalid spec is not polled", with(polled(Phase::Failed), |c| {
            c.build.status.as_mut().unwrap().failure.as_mut().unwrap().reason = reason::SPEC_INVALID.into();
        }), "Nothing", None),
        ("no pollInterval: nothing", with(polled(Phase::Succeeded), |c| c.build.spec.source = git_source(None)), "Nothing", None),
        ("a TTL due sooner wins the requeue", with(polled(Phase::Succeeded), |c| {
            c.build.spec.ttl_seconds_after_finished = Some(30);
            c.last_source_check = Some(ts(NOW));
        }), "Wait Ttl", Some(20)),
        ("a TTL that passed deletes first", with(polled(Phase::Succeeded), |c| c.build.spec.ttl_seconds_after_finished = Some(0)), "DeletePod app-1-1 Ttl", None),
    ];
    let mut failures = Vec::new();
    for (what, case, want, after) in &rows {
        let action = case.decide();
        let got = summary(&action);
        let got_after = requeue(&action).map(|d| d.as_secs());
        if got != *want || (after.is_some() && got_after != *after) {
            failures.push(format!(
                "{what}: want {want} {after:?}, got {got} {got_after:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_running_build_is_not_interrupted_by_a_poll() {
    // Building with pollInterval and an old check: the pod runs on; nothing asks the remote.
    let mut build = git_build(Some(Phase::Building), Some(commit("a")));
    build.spec.source = git_source(Some("5s"));
    let case = Case::new(build, pod_in(PodState::Running, 1, 1).into_iter().collect());
    let case = with(case, |c| c.last_source_check = Some(ts(NOW - 3600)));
    assert_eq!(summary(&case.decide()), "Wait PodRunning");
    // Even a moved answer (from another path) does not stop it.
    let case = with(case, |c| c.source = SourceCheck::Resolved(commit("b")));
    assert_eq!(summary(&case.decide()), "Wait PodRunning");
}

#[test]
fn a_rebuild_runs_its_own_pods_with_the_recorded_revision() {
    let mut build = git_build(Some(Phase::Pending), Some(commit("b")));
    build.spec.source = git_source(Some("5m"));
    let status = build.status.as_mut().unwrap();
    status.rebuild = Some(1);
    status.pod_name = None;
    // The first build's finished pod is still there.
    let old = pod_in(PodState::Pushed, 1, 1);
    let case = Case::new(build.clone(), old.clone().into_iter().collect());
    match case.decide() {
        Action::CreatePod {
            rebuild: 1,
            attempt: 1,
            source,
        } => assert_eq!(source, commit("b")),
        other => panic!("{other:?}"),
    }
    // Its pod runs: the decision follows it, not the old one.
    let mut pod = mk_pod(1, 1, PodPhase::Running, ContainerView::Running);
    pod.name = "app-1r1-1".into();
    pod.rebuild = 1;
    let status = build.status.as_mut().unwrap();
    status.phase = Some(Phase::Building);
    status.pod_name = Some(pod.name.clone());
    let case = Case::new(build, old.into_iter().chain([pod]).collect());
    assert_eq!(summary(&case.decide()), "Wait PodRunning");
}

#[test]
fn objects_move_when_their_validators_change() {
    let before = object(Some("\"v1\""), None);
    assert!(!moved(Some(&before), &object(Some("\"v1\""), None)));
    assert!(moved(Some(&before), &object(Some("\"v2\""), None)));
    assert!(moved(Some(&before), &object(None, Some("Mon"))));
    // A server without validators cannot be compared: never a rebuild loop.
    assert!(!moved(Some(&before), &object(None, None)));
    // Nothing recorded (the first resolution failed): any answer is news.
    assert!(moved(None, &object(None, None)));
    assert!(!moved(Some(&commit("a")), &commit("a")));
    assert!(moved(Some(&commit("a")), &commit("b")));

    // And the decision for a polled URL source.
    let mut build = mk_build(1, Some(mk_status(1, Phase::Succeeded, 1)));
    build.spec.source = Source {
        url: Some(UrlSource {
            url: "https://files.example.com/ctx.tar.gz".into(),
            poll_interval: Some(GoDuration::new("1m")),
            ..UrlSource::default()
        }),
        ..Source::default()
    };
    build.status.as_mut().unwrap().source = Some(before);
    let case = with(Case::new(build, Vec::new()), |c| {
        c.source = SourceCheck::Resolved(object(Some("\"v2\""), None));
    });
    assert_eq!(summary(&case.decide()), "Rebuild r1 etag:\"v2\"");
}

/// A build being deleted, with the finalizer, `secs` seconds after deletion started.
fn deleting(phase: Phase, states: &[PodState], secs: i64) -> Case {
    let mut build = git_build(Some(phase), Some(commit("a")));
    build.metadata.finalizers = Some(vec![FINALIZER.into()]);
    build.metadata.deletion_timestamp = Some(Time(ts(NOW - secs)));
    let pods = states
        .iter()
        .enumerate()
        .filter_map(|(i, s)| pod_in(*s, 1, i32::try_from(i).unwrap() + 1))
        .collect();
    Case::new(build, pods)
}

#[test]
fn deletion_stops_pods_then_lets_go() {
    use PodState as S;
    let past_timeout = i64::try_from(FINALIZER_TIMEOUT.as_secs()).unwrap() + 1;
    #[rustfmt::skip]
    let rows: Vec<(&str, Case, &str)> = vec![
        ("a running pod is stopped first (F8)", deleting(Phase::Building, &[S::Running], 1), "DeletePod app-1-1 BuildDeleted"),
        ("finished pods go too: nothing is leaked", deleting(Phase::Succeeded, &[S::Pushed], 1), "DeletePod app-1-1 BuildDeleted"),
        ("every pod, one per reconcile", deleting(Phase::Building, &[S::Evicted, S::Running], 1), "DeletePod app-1-1 BuildDeleted"),
        ("a terminating pod is waited for", deleting(Phase::Building, &[S::DeletingRunning], 1), "Wait PodStopping"),
        ("no pod left: the finalizer goes", deleting(Phase::Building, &[], 1), "RemoveFinalizer"),
        ("even when the pod was never made", deleting(Phase::Pending, &[], 1), "RemoveFinalizer"),
        ("a pod stuck terminating past the timeout does not block deletion", deleting(Phase::Building, &[S::DeletingRunning], past_timeout), "RemoveFinalizer"),
        ("--cascade=orphan keeps the pods", with(deleting(Phase::Building, &[S::Running], 1), |c| {
            c.build.metadata.finalizers.as_mut().unwrap().push("orphan".into());
        }), "RemoveFinalizer"),
        ("without our finalizer there is nothing to do", with(deleting(Phase::Building, &[S::Running], 1), |c| {
            c.build.metadata.finalizers = Some(vec!["foregroundDeletion".into()]);
        }), "Nothing"),
        ("deletion wins over spec.cancel", with(deleting(Phase::Building, &[S::Running], 1), |c| c.build.spec.cancel = true), "DeletePod app-1-1 BuildDeleted"),
    ];
    let mut failures = Vec::new();
    for (what, case, want) in &rows {
        let got = summary(&case.decide());
        if got != *want {
            failures.push(format!("{what}: want {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The wait for a terminating pod never outlasts the timeout.
    let case = deleting(Phase::Building, &[S::DeletingRunning], past_timeout - 2);
    assert!(requeue(&case.decide()).unwrap() <= Duration::from_secs(1));
}

/// Invariants over phase × pod state × recorded revision × answer × deletion: the source is asked
/// at most once per reconcile, a pod always builds a known revision, a deleting build never
/// gets a pod, and a poll never touches an unfinished build.
#[test]
fn source_and_deletion_invariants() {
    let phases: Vec<Option<Phase>> = std::iter::once(None).chain(Phase::ALL.map(Some)).collect();
    let answers = [
        SourceCheck::NotChecked,
        SourceCheck::Resolved(commit("b")),
        failed(SourceErrorKind::NotFound),
        failed(SourceErrorKind::Unavailable),
    ];
    let mut checked = 0;
    for phase in &phases {
        for state in POD_STATES {
            for recorded in [None, Some(commit("a"))] {
                for answer in &answers {
                    for poll in [None, Some("5m")] {
                        for being_deleted in [false, true] {
                            let mut build = git_build(*phase, recorded.clone());
                            build.spec.source = git_source(poll);
                            if being_deleted {
                                build.metadata.finalizers = Some(vec![FINALIZER.into()]);
                                build.metadata.deletion_timestamp = Some(Time(ts(NOW)));
                            }
                            let case = Case::new(build, pod_in(state, 1, 1).into_iter().collect());
                            let case = with(case, |c| c.source = answer.clone());
                            let action = case.decide();
                            let row = format!(
                                "{phase:?} {state:?} recorded={} {answer:?} poll={poll:?} deleting={being_deleted}: {}",
                                recorded.is_some(),
                                summary(&action)
                            );
                            if *answer != SourceCheck::NotChecked {
                                assert_ne!(action, Action::Resolve, "asked twice: {row}");
                            }
                            if let Action::CreatePod { source, .. } = &action {
                                // Without a status nothing is recorded.
                                let recorded = phase.and(recorded.clone());
                                let expected = recorded.or(match answer {
                                    SourceCheck::Resolved(s) => Some(s.clone()),
                                    _ => None,
                                });
                                assert_eq!(Some(source), expected.as_ref(), "{row}");
                            }
                            if being_deleted {
                                assert!(
                                    matches!(
                                        action,
                                        Action::DeletePod { .. }
                                            | Action::Wait {
                                                why: Waiting::PodStopping { .. },
                                                ..
                                            }
                                            | Action::RemoveFinalizer
                                    ),
                                    "{row}"
                                );
                            }
                            let unfinished = !phase.is_some_and(|p| p.is_terminal());
                            if unfinished {
                                assert!(!matches!(action, Action::Rebuild { .. }), "{row}");
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 9 * 18 * 2 * 4 * 2 * 2);
}
