//! The reconcile's calls for source resolution, `pollInterval` rebuilds, the finalizer and the
//! concurrency limit, against the fake apiserver of `tests.rs`.

use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, Pod,
    PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use serde_json::json;
use stratum_builder::source::SourceErrorKind;
use stratum_crds::contract::{BuildFailure, FailureReason};
use stratum_crds::{
    BuildRequest, BuildResult, GitSource, GoDuration, ImageBuild, ImageBuildStatus, Phase,
    ResolvedGit, ResolvedSource, SecretReference, Source,
};

use super::reconcile;
use super::tests::{
    BUILD, EVENTS, PODS, Resolver, SECRETS, STATUS, context_full, fake_client, mk_build,
    take_calls, written_status,
};
use crate::config::Config;
use crate::reconcile::{FINALIZER, SourceCheck};
use crate::result::RegistryVerifier;

const URL: &str = "https://git.example.com/team/app.git";
const PASSWORD: &str = "ghp_SECRETtoken42";

fn commit(c: &str) -> ResolvedSource {
    ResolvedSource {
        git: Some(ResolvedGit {
            commit: c.repeat(40),
        }),
        url: None,
    }
}

fn git_build(status: Option<ImageBuildStatus>, poll: Option<&str>) -> ImageBuild {
    let mut build = mk_build(status);
    build.spec.source = Source {
        git: Some(GitSource {
            url: URL.into(),
            revision: Some("main".into()),
            secret_ref: Some(SecretReference {
                name: "git-creds".into(),
            }),
            poll_interval: poll.map(GoDuration::new),
            ..GitSource::default()
        }),
        ..Source::default()
    };
    build
}

fn git_secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("git-creds".into()),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/basic-auth".into()),
        data: Some(
            [
                ("username".to_owned(), ByteString(b"builder".to_vec())),
                (
                    "password".to_owned(),
                    ByteString(PASSWORD.as_bytes().to_vec()),
                ),
            ]
            .into(),
        ),
        ..Secret::default()
    }
}

fn lines(calls: &[super::tests::Call]) -> Vec<String> {
    calls.iter().map(super::tests::Call::line).collect()
}

/// The BuildRequest in a created pod.
fn request_of(pod: &serde_json::Value) -> BuildRequest {
    let pod: Pod = serde_json::from_value(pod.clone()).unwrap();
    let env = &pod.spec.unwrap().containers[0].env.clone().unwrap()[0];
    BuildRequest::from_json(env.value.as_deref().unwrap()).unwrap()
}

fn with_finalizer(mut build: ImageBuild) -> ImageBuild {
    build.metadata.finalizers = Some(vec![FINALIZER.into()]);
    build
}

#[tokio::test]
async fn a_git_build_is_resolved_with_its_secret_then_built_at_that_commit() {
    let (client, fake) = fake_client();
    fake.lock().unwrap().secrets.push(git_secret());
    let resolver = Resolver::answering(URL, SourceCheck::Resolved(commit("a")));
    let ctx = context_full(
        client,
        Arc::new(RegistryVerifier::default()),
        resolver.clone(),
        10,
    );
    reconcile(Arc::new(git_build(None, None)), ctx.clone())
        .await
        .unwrap();
    let calls = take_calls(&fake);
    assert_eq!(
        lines(&calls),
        [
            format!("GET {PODS}"),
            format!("GET {SECRETS}git-creds"), // exists
            format!("GET {SECRETS}git-creds"), // its keys, for the resolver
            format!("PATCH {BUILD}"),
            format!("POST {PODS}"),
            format!("PATCH {STATUS}"),
            format!("POST {EVENTS}"),
        ]
    );
    // The resolver got the Secret's keys; the pod builds exactly the resolved commit, and the
    // status says so before the pod runs.
    assert_eq!(
        *resolver.asked.lock().unwrap(),
        [(
            URL.to_owned(),
            vec!["password".to_owned(), "username".to_owned()]
        )]
    );
    match request_of(&calls[4].body).source {
        stratum_crds::contract::RequestSource::Git {
            commit, reference, ..
        } => {
            assert_eq!(
                (commit, reference.as_deref()),
                ("a".repeat(40), Some("main"))
            );
        }
        other => panic!("{other:?}"),
    }
    let status = written_status(&calls);
    assert_eq!(status.source, Some(commit("a")));
    assert_eq!(status.phase, Some(Phase::Pending));
    for call in &calls {
        assert!(!call.body.to_string().contains(PASSWORD), "{call:?}");
    }

    // Reconciling again (finalizer and status in place, pod present): no second resolution,
    // no second pod, no finalizer patch, and the recorded commit stays.
    let build = with_finalizer(git_build(Some(status.clone()), None));
    reconcile(Arc::new(build), ctx.clone()).await.unwrap();
    let calls = take_calls(&fake);
    assert!(
        !calls
            .iter()
            .any(|c| c.method == "POST" && c.path == PODS || c.path == BUILD),
        "{calls:?}"
    );
    let again = if calls.iter().any(|c| c.path == STATUS) {
        written_status(&calls)
    } else {
        status
    };
    assert_eq!(
        (again.phase, again.source.clone()),
        (Some(Phase::Pending), Some(commit("a")))
    );
    // And once more with that status: one live list, one Secret check, nothing else.
    let build = with_finalizer(git_build(Some(again), None));
    reconcile(Arc::new(build), ctx).await.unwrap();
    assert_eq!(
        lines(&take_calls(&fake)),
        [format!("GET {PODS}"), format!("GET {SECRETS}git-creds")]
    );
    assert_eq!(resolver.calls(), 1);
}

#[tokio::test]
async fn refused_credentials_fail_the_build_without_a_pod_or_the_secret() {
    let (client, fake) = fake_client();
    fake.lock().unwrap().secrets.push(git_secret());
    let message = format!("cannot resolve git revision main: {URL}: authentication failed");
    let resolver = Resolver::answering(
        URL,
        SourceCheck::Failed {
            kind: SourceErrorKind::Auth,
            message: message.clone(),
        },
    );
    let ctx = context_full(client, Arc::new(RegistryVerifier::default()), resolver, 10);
    reconcile(Arc::new(git_build(None, None)), ctx.clone())
        .await
        .unwrap();
    let calls = take_calls(&fake);
    assert_eq!(
        lines(&calls),
        [
            format!("GET {PODS}"),
            format!("GET {SECRETS}git-creds"),
            format!("GET {SECRETS}git-creds"),
            format!("PATCH {STATUS}"),
            format!("POST {EVENTS}"),
        ]
    );
    let status = written_status(&calls);
    assert_eq!(status.phase, Some(Phase::Failed));
    let failure = status.failure.unwrap();
    assert_eq!(
        (failure.reason.as_str(), failure.message.as_str()),
        ("SourceAuthFailed", message.as_str())
    );
    assert_eq!(calls[4].body["type"], "Warning");
    assert_eq!(calls[4].body["reason"], "SourceAuthFailed");
    assert!(!calls[4].body.to_string().contains(PASSWORD));
    assert!(fake.lock().unwrap().pods.is_empty());
}

/// A running builder pod for `build`.
fn running_pod(build: &ImageBuild) -> Pod {
    let config = <Config as clap::Parser>::try_parse_from(["stratum-operator"]).unwrap();
    let mut pod = crate::pod::builder_pod(
        build,
        &ResolvedSource::default(),
        0,
        1,
        &config.pod_config(),
    )
    .unwrap();
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "builder".into(),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
    pod
}

#[tokio::test]
async fn deleting_a_build_stops_its_pod_then_removes_only_its_finalizer() {
    let (client, fake) = fake_client();
    let ctx = context_full(
        client,
        Arc::new(RegistryVerifier::default()),
        Arc::new(Resolver::default()),
        10,
    );
    let mut build = mk_build(Some(ImageBuildStatus {
        phase: Some(Phase::Building),
        observed_generation: Some(1),
        attempt: Some(1),
        pod_name: Some("app-1-1".into()),
        ..ImageBuildStatus::default()
    }));
    build.metadata.finalizers = Some(vec!["example.com/other".into(), FINALIZER.into()]);
    build.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    fake.lock().unwrap().pods.push(running_pod(&build));
    let build = Arc::new(build);

    reconcile(build.clone(), ctx.clone()).await.unwrap();
    let calls = take_calls(&fake);
    assert_eq!(
        lines(&calls),
        [format!("GET {PODS}"), format!("DELETE {PODS}/app-1-1")]
    );
    assert!(fake.lock().unwrap().pods.is_empty());

    // The pod is gone: the finalizer goes, the other one stays; no status is written.
    reconcile(build, ctx).await.unwrap();
    let calls = take_calls(&fake);
    assert_eq!(
        lines(&calls),
        [format!("GET {PODS}"), format!("PATCH {BUILD}")]
    );
    assert_eq!(
        calls[1].body["metadata"]["finalizers"],
        json!(["example.com/other"])
    );
    assert_eq!(calls[1].body["metadata"]["resourceVersion"], "7");
}

#[tokio::test]
async fn polling_rebuilds_a_moved_branch_and_leaves_an_unchanged_one_alone() {
    let (client, fake) = fake_client();
    fake.lock().unwrap().secrets.push(git_secret());
    let resolver = Resolver::answering(URL, SourceCheck::Resolved(commit("a")));
    let ctx = context_full(
        client,
        Arc::new(RegistryVerifier::default()),
        resolver.clone(),
        10,
    );
    let done = ImageBuildStatus {
        phase: Some(Phase::Succeeded),
        observed_generation: Some(1),
        attempt: Some(1),
        pod_name: Some("app-1-1".into()),
        source: Some(commit("a")),
        digest: Some(format!("sha256:{}", "d".repeat(64))),
        completion_time: Some(Time(Timestamp::from_second(1_700_000_000).unwrap())),
        ..ImageBuildStatus::default()
    };
    let build = with_finalizer(git_build(Some(done.clone()), Some("1m")));

    // Unchanged: the remote is asked, nothing is written.
    reconcile(Arc::new(build.clone()), ctx.clone())
        .await
        .unwrap();
    let calls = take_calls(&fake);
    assert_eq!(
        lines(&calls),
        [
            format!("GET {PODS}"),
            format!("GET {SECRETS}git-creds"),
            format!("GET {SECRETS}git-creds"),
        ]
    );
    // A poll the remote refuses changes no status: one Warning Event says why.
    let (client, fake_refused) = fake_client();
    fake_refused.lock().unwrap().secrets.push(git_secret());
    let refused = Resolver::answering(
        URL,
        SourceCheck::Failed {
            kind: SourceErrorKind::Auth,
            message: format!("cannot resolve git revision main: {URL}: authentication failed"),
        },
    );
    let refused_ctx = context_full(client, Arc::new(RegistryVerifier::default()), refused, 10);
    reconcile(Arc::new(build.clone()), refused_ctx)
        .await
        .unwrap();
    let calls = take_calls(&fake_refused);
    assert!(!calls.iter().any(|c| c.path == STATUS), "{calls:?}");
    let event = calls.iter().find(|c| c.path == EVENTS).expect("an Event");
    assert_eq!(
        (&event.body["type"], &event.body["reason"]),
        (&json!("Warning"), &json!("SourceAuthFailed"))
    );
    assert!(!event.body.to_string().contains(PASSWORD));

    // Asked again right away, it is not due: the answer of a minute ago stands.
    reconcile(Arc::new(build.clone()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(resolver.calls(), 1);
    take_calls(&fake);

    // The branch moved. (A fresh context: its poll clock starts from completionTime.)
    resolver.set(URL, SourceCheck::Resolved(commit("b")));
    let (client, fake) = fake_client();
    fake.lock().unwrap().secrets.push(git_secret());
    let ctx = context_full(
        client,
        Arc::new(RegistryVerifier::default()),
        resolver.clone(),
        10,
    );
    reconcile(Arc::new(build), ctx.clone()).await.unwrap();
    let calls = take_calls(&fake);
    assert!(
        !calls.iter().any(|c| c.method == "POST" && c.path == PODS),
        "the rebuild is recorded before its pod: {calls:?}"
    );
    let rebuilding = written_status(&calls);
    assert_eq!(
        (rebuilding.phase, rebuilding.rebuild, rebuilding.attempt),
        (Some(Phase::Pending), Some(1), Some(1))
    );
    assert_eq!(rebuilding.source, Some(commit("b")));
    assert_eq!(rebuilding.digest, None);
    assert_eq!(rebuilding.history, done.history);

    // The next reconcile starts the rebuild's pod at commit b, without asking again.
    let asked = resolver.calls();
    let build = with_finalizer(git_build(Some(rebuilding), Some("1m")));
    reconcile(Arc::new(build), ctx).await.unwrap();
    let calls = take_calls(&fake);
    assert_eq!(resolver.calls(), asked);
    let create = calls
        .iter()
        .find(|c| c.method == "POST" && c.path == PODS)
        .expect("a pod for the rebuild");
    assert_eq!(create.body["metadata"]["name"], "app-1r1-1");
    assert_eq!(
        create.body["metadata"]["labels"]["stratum.dev/rebuild"],
        "1"
    );
    match request_of(&create.body).source {
        stratum_crds::contract::RequestSource::Git { commit, .. } => {
            assert_eq!(commit, "b".repeat(40));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        written_status(&calls).pod_name.as_deref(),
        Some("app-1r1-1")
    );
}

/// `app`'s pod ends with a failed RUN step.
fn finish_with_step_failure(pod: &mut Pod) {
    let result = BuildResult::failed(BuildFailure {
        reason: FailureReason::StepFailed,
        message: "The command '/bin/sh -c false' returned a non-zero code: 1".into(),
        step: Some("RUN false".into()),
        step_index: Some(1),
        line: Some(2),
        exit_code: Some(1),
    });
    pod.status = Some(PodStatus {
        phase: Some("Failed".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "builder".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 1,
                    reason: Some("Error".into()),
                    message: Some(result.encode()),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
}

#[tokio::test]
async fn the_concurrency_limit_counts_the_operators_own_claims() {
    // No informer cache at all: only the operator's own bookkeeping can hold the limit.
    let (client, fake) = fake_client();
    let ctx = context_full(
        client,
        Arc::new(RegistryVerifier::default()),
        Arc::new(Resolver::default()),
        1,
    );
    let app = mk_build(None);
    let mut other = mk_build(None);
    other.metadata.name = Some("other".into());
    other.metadata.uid = Some("uid-2".into());

    reconcile(Arc::new(app.clone()), ctx.clone()).await.unwrap();
    let app_status = written_status(&take_calls(&fake));
    assert_eq!(app_status.pod_name.as_deref(), Some("app-1-1"));

    reconcile(Arc::new(other.clone()), ctx.clone())
        .await
        .unwrap();
    let calls = take_calls(&fake);
    assert!(
        !calls.iter().any(|c| c.method == "POST" && c.path == PODS),
        "the limit of 1 overshot: {calls:?}"
    );
    let queued = calls
        .iter()
        .rev()
        .find(|c| c.method == "PATCH" && c.path.ends_with("/other/status"))
        .unwrap();
    assert_eq!(queued.body["status"]["phase"], "Queued");
    assert_eq!(ctx.running(None), 1);

    // app's build fails for good: its reconcile gives the slot back, and other gets it.
    finish_with_step_failure(&mut fake.lock().unwrap().pods[0]);
    let mut app = with_finalizer(app);
    app.status = Some(app_status);
    reconcile(Arc::new(app), ctx.clone()).await.unwrap();
    assert_eq!(
        written_status(&take_calls(&fake)).phase,
        Some(Phase::Failed)
    );
    assert_eq!(ctx.running(None), 0);
    reconcile(Arc::new(other), ctx.clone()).await.unwrap();
    let calls = take_calls(&fake);
    let created = calls
        .iter()
        .find(|c| c.method == "POST" && c.path == PODS)
        .expect("the queued build starts");
    assert_eq!(created.body["metadata"]["name"], "other-1-1");
    assert_eq!(ctx.running(None), 1);
}

#[tokio::test]
async fn a_stale_cache_does_not_fail_the_finalizer_or_add_it_twice() {
    // The stored object already has the finalizer and a newer resourceVersion (an earlier
    // reconcile added it); the cached one the reconcile got has neither.
    let (client, fake) = fake_client();
    let mut stored = serde_json::to_value(with_finalizer(mk_build(None))).unwrap();
    stored["metadata"]["resourceVersion"] = json!("8");
    fake.lock().unwrap().build = Some(stored);
    let ctx = context_full(
        client,
        Arc::new(RegistryVerifier::default()),
        Arc::new(Resolver::default()),
        10,
    );
    reconcile(Arc::new(mk_build(None)), ctx).await.unwrap();
    let calls = take_calls(&fake);
    assert_eq!(
        lines(&calls),
        [
            format!("GET {PODS}"),
            format!("PATCH {BUILD}"), // 409: resourceVersion 7 is stale
            format!("GET {BUILD}"),   // the stored object has the finalizer: done
            format!("POST {PODS}"),
            format!("PATCH {STATUS}"),
            format!("POST {EVENTS}"),
        ]
    );
}

#[tokio::test]
async fn remove_finalizers_strips_only_ours_from_every_build_and_touches_nothing_else() {
    let (client, fake) = fake_client();
    let mut ours = mk_build(None);
    ours.metadata.finalizers = Some(vec![FINALIZER.into(), "example.com/keep".into()]);
    let mut other = mk_build(None);
    other.metadata.name = Some("other".into());
    other.metadata.finalizers = Some(vec!["example.com/keep".into()]);
    fake.lock().unwrap().builds = vec![
        serde_json::to_value(&ours).unwrap(),
        serde_json::to_value(&other).unwrap(),
    ];
    let removed = super::uninstall::remove_finalizers(&client, &[])
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let calls = take_calls(&fake);
    assert_eq!(
        lines(&calls),
        [
            "GET /apis/stratum.dev/v1alpha1/imagebuilds".to_owned(),
            format!("PATCH {BUILD}"),
        ]
    );
    assert_eq!(
        calls[1].body["metadata"]["finalizers"],
        json!(["example.com/keep"])
    );
}

/// Every transition is an Event of its own: kube's `Recorder` would fold a second `Pending`
/// (here: a new generation's) into the first one and keep the first note for 6 minutes, so
/// `kubectl describe` would name the old pod (for a rebuild: the old digest).
#[tokio::test]
async fn a_repeated_transition_is_a_new_event_with_its_own_note() {
    let (client, fake) = fake_client();
    let ctx = context_full(
        client,
        Arc::new(RegistryVerifier::default()),
        Arc::new(Resolver::default()),
        10,
    );
    reconcile(Arc::new(mk_build(None)), ctx.clone())
        .await
        .unwrap();
    // Generation 1 finished and its pod is gone; generation 2 starts in the same process.
    fake.lock().unwrap().pods.clear();
    let done = ImageBuildStatus {
        phase: Some(Phase::Succeeded),
        observed_generation: Some(1),
        attempt: Some(1),
        pod_name: Some("app-1-1".into()),
        ..ImageBuildStatus::default()
    };
    let mut next = mk_build(Some(done));
    next.metadata.generation = Some(2);
    reconcile(Arc::new(next), ctx).await.unwrap();

    let calls = take_calls(&fake);
    let events: Vec<_> = calls
        .iter()
        .filter(|c| c.path.starts_with(EVENTS))
        .collect();
    let shown: Vec<_> = events
        .iter()
        .map(|c| (c.method.as_str(), c.body["reason"].clone()))
        .collect();
    assert_eq!(
        shown,
        [("POST", json!("Pending")), ("POST", json!("Pending"))],
        "{events:?}"
    );
    let note = events[1].body["note"].as_str().unwrap_or_default();
    assert!(note.contains("app-2-1"), "{note}");
}
