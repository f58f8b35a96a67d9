//! The reconcile against an in-process fake apiserver (a `tower::service_fn` behind a real
//! `kube::Client`): the exact calls one reconcile makes, and idempotence.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, Pod,
    PodStatus, Secret,
};
use kube::Client;
use kube::api::ObjectMeta;
use kube::client::Body;
use kube::runtime::controller::Action as Requeue;
use serde_json::{Value, json};
use stratum_builder::registry::RegistryError;
use stratum_crds::BuildResult;
use stratum_crds::contract::PushedImage;
use stratum_crds::{
    ImageBuild, ImageBuildSpec, ImageBuildStatus, InlineSource, Output, Phase, Source,
};

use super::{Context, MANAGER, error_backoff, reconcile};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::reconcile::SourceCheck;
use crate::result::{ImageVerifier, RegistryVerifier, VerifiedImage, VerifyError, VerifyRequest};
use crate::source::{ResolveRequest, SourceResolver};

pub(super) const PODS: &str = "/api/v1/namespaces/ns/pods";
pub(super) const STATUS: &str = "/apis/stratum.dev/v1alpha1/namespaces/ns/imagebuilds/app/status";
pub(super) const BUILD: &str = "/apis/stratum.dev/v1alpha1/namespaces/ns/imagebuilds/app";
const BUILDS: &str = "/apis/stratum.dev/v1alpha1/namespaces/ns/imagebuilds/";
pub(super) const SECRETS: &str = "/api/v1/namespaces/ns/secrets/";
pub(super) const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

/// One request the fake saw.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Value,
}

impl Call {
    pub(super) fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// The fake apiserver's state: stored pods, and every call.
#[derive(Default)]
pub(super) struct Fake {
    pub pods: Vec<Pod>,
    /// Pods that exist but a list does not show (a create the list has not caught up with).
    pub hidden: Vec<String>,
    pub secrets: Vec<Secret>,
    pub calls: Vec<Call>,
    /// The stored ImageBuild, when a test needs GETs of it and resourceVersion checks on its
    /// patches (otherwise patches are accepted as sent).
    pub build: Option<Value>,
    /// What a list of ImageBuilds in all namespaces returns.
    pub builds: Vec<Value>,
}

pub(super) fn respond(code: u16, body: &Value) -> http::Response<Body> {
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

pub(super) fn status_error(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": reason, "reason": reason, "code": code})
}

impl Fake {
    fn handle(&mut self, call: Call) -> http::Response<Body> {
        self.calls.push(call.clone());
        match (call.method.as_str(), call.path.as_str()) {
            ("GET", PODS) => respond(
                200,
                &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                        "items": self.pods}),
            ),
            ("POST", PODS) => {
                let mut pod: Pod = serde_json::from_value(call.body).unwrap();
                let name = pod.metadata.name.clone().unwrap();
                if self.hidden.contains(&name)
                    || self
                        .pods
                        .iter()
                        .any(|p| p.metadata.name == Some(name.clone()))
                {
                    return respond(409, &status_error(409, "AlreadyExists"));
                }
                pod.metadata.creation_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now(),
                    ));
                self.pods.push(pod.clone());
                respond(201, &serde_json::to_value(&pod).unwrap())
            }
            ("PATCH", path) if path.starts_with(BUILDS) && path.ends_with("/status") => {
                let mut build = serde_json::to_value(mk_build(None)).unwrap();
                build["status"] = call.body["status"].clone();
                respond(200, &build)
            }
            ("PATCH", path) if path.starts_with(BUILDS) => {
                if let Some(stored) = &self.build
                    && call.body["metadata"]["resourceVersion"]
                        != stored["metadata"]["resourceVersion"]
                {
                    return respond(409, &status_error(409, "Conflict"));
                }
                let mut build = serde_json::to_value(mk_build(None)).unwrap();
                build["metadata"]["finalizers"] = call.body["metadata"]["finalizers"].clone();
                respond(200, &build)
            }
            ("GET", "/apis/stratum.dev/v1alpha1/imagebuilds") => respond(
                200,
                &json!({"kind": "ImageBuildList", "apiVersion": "stratum.dev/v1alpha1",
                        "metadata": {}, "items": self.builds}),
            ),
            ("GET", path) if path.starts_with(BUILDS) => match &self.build {
                Some(stored) => respond(200, stored),
                None => respond(404, &status_error(404, "NotFound")),
            },
            ("DELETE", path) if path.starts_with(PODS) => {
                let name = &path[PODS.len() + 1..];
                let before = self.pods.len();
                self.pods
                    .retain(|p| p.metadata.name.as_deref() != Some(name));
                if self.pods.len() == before {
                    return respond(404, &status_error(404, "NotFound"));
                }
                respond(200, &status_error(200, "Success"))
            }
            ("POST", EVENTS) => respond(201, &call.body),
            ("GET", path) if path.starts_with(SECRETS) => {
                let name = &path[SECRETS.len()..];
                match self
                    .secrets
                    .iter()
                    .find(|s| s.metadata.name.as_deref() == Some(name))
                {
                    Some(secret) => respond(200, &serde_json::to_value(secret).unwrap()),
                    None => respond(404, &status_error(404, "NotFound")),
                }
            }
            _ => respond(404, &status_error(404, "NotFound")),
        }
    }
}

pub(super) fn fake_client() -> (Client, Arc<Mutex<Fake>>) {
    let fake = Arc::new(Mutex::new(Fake::default()));
    let state = fake.clone();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let state = state.clone();
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let call = Call {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            Ok::<_, std::convert::Infallible>(state.lock().unwrap().handle(call))
        }
    });
    (Client::new(service, "default"), fake)
}

pub(super) fn mk_build(status: Option<ImageBuildStatus>) -> ImageBuild {
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
        generation: Some(1),
        resource_version: Some("7".into()),
        ..ObjectMeta::default()
    };
    build.status = status;
    build
}

fn context(client: Client) -> Arc<Context> {
    context_with(client, Arc::new(RegistryVerifier::default()))
}

fn context_with(client: Client, verifier: Arc<dyn ImageVerifier>) -> Arc<Context> {
    context_full(client, verifier, Arc::new(Resolver::default()), 10)
}

pub(super) fn context_full(
    client: Client,
    verifier: Arc<dyn ImageVerifier>,
    resolver: Arc<dyn SourceResolver>,
    concurrency: usize,
) -> Arc<Context> {
    let config = Config::try_parse_from_defaults();
    Arc::new(Context::new(
        client,
        config.pod_config(),
        concurrency,
        verifier,
        resolver,
        Arc::new(Metrics::new()),
        Vec::new(),
    ))
}

/// A source resolver double: answers per URL from a table and keeps what it was asked.
#[derive(Default)]
pub(super) struct Resolver {
    pub answers: Mutex<Vec<(String, SourceCheck)>>,
    /// (url, the Secret's keys) per call.
    pub asked: Mutex<Vec<(String, Vec<String>)>>,
}

impl Resolver {
    pub fn answering(url: &str, check: SourceCheck) -> Arc<Self> {
        let r = Self::default();
        r.answers.lock().unwrap().push((url.to_owned(), check));
        Arc::new(r)
    }

    pub fn set(&self, url: &str, check: SourceCheck) {
        let mut answers = self.answers.lock().unwrap();
        answers.retain(|(u, _)| u != url);
        answers.push((url.to_owned(), check));
    }

    pub fn calls(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

impl SourceResolver for Resolver {
    fn resolve<'a>(&'a self, request: ResolveRequest<'a>) -> BoxFuture<'a, SourceCheck> {
        let url = match request.source {
            stratum_crds::SourceKind::Git(g) => g.url.clone(),
            stratum_crds::SourceKind::Url(u) => u.url.clone(),
            stratum_crds::SourceKind::Inline(_) => panic!("inline sources are never resolved"),
        };
        let keys = request
            .secret
            .map(|s| s.keys().cloned().collect())
            .unwrap_or_default();
        self.asked.lock().unwrap().push((url.clone(), keys));
        let answer = self
            .answers
            .lock()
            .unwrap()
            .iter()
            .find(|(u, _)| *u == url)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no answer for {url}"));
        Box::pin(async move { answer })
    }
}

impl Config {
    fn try_parse_from_defaults() -> Self {
        <Config as clap::Parser>::try_parse_from(["stratum-operator"]).unwrap()
    }
}

/// The status the last status patch wrote.
pub(super) fn written_status(calls: &[Call]) -> ImageBuildStatus {
    let patch = calls
        .iter()
        .rev()
        .find(|c| c.method == "PATCH" && c.path == STATUS)
        .expect("a status patch");
    serde_json::from_value(patch.body["status"].clone()).unwrap()
}

pub(super) fn take_calls(fake: &Arc<Mutex<Fake>>) -> Vec<Call> {
    std::mem::take(&mut fake.lock().unwrap().calls)
}

#[tokio::test]
async fn a_fresh_build_lists_creates_its_pod_and_applies_pending() {
    let (client, fake) = fake_client();
    let ctx = context(client);

    let requeue = reconcile(Arc::new(mk_build(None)), ctx.clone())
        .await
        .unwrap();
    assert_eq!(
        requeue,
        Requeue::requeue(crate::reconcile::decide::MAX_RECHECK)
    );

    let calls = take_calls(&fake);
    let lines: Vec<_> = calls.iter().map(Call::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {PODS}"),
            format!("PATCH {BUILD}"),
            format!("POST {PODS}"),
            format!("PATCH {STATUS}"),
            format!("POST {EVENTS}"),
        ]
    );
    // The list is live and selects this build's pods.
    assert!(
        calls[0]
            .query
            .contains("labelSelector=stratum.dev%2Fbuild%3Dapp"),
        "{}",
        calls[0].query
    );
    // The finalizer comes before the pod (threats F8), as a merge patch guarded by the
    // resourceVersion that was read.
    assert_eq!(calls[1].content_type, "application/merge-patch+json");
    assert_eq!(
        calls[1].body["metadata"]["finalizers"],
        json!([crate::reconcile::FINALIZER])
    );
    assert_eq!(calls[1].body["metadata"]["resourceVersion"], "7");
    // The pod is attempt 1 of generation 1, controlled by the build.
    let calls = [&calls[..1], &calls[2..]].concat();
    assert_eq!(calls[1].body["metadata"]["name"], "app-1-1");
    assert_eq!(
        calls[1].body["metadata"]["ownerReferences"][0]["uid"],
        "uid-1"
    );
    // Status: server-side apply of the whole status, one field manager, forced.
    let patch = &calls[2];
    assert_eq!(patch.content_type, "application/apply-patch+yaml");
    assert!(
        patch.query.contains(&format!("fieldManager={MANAGER}"))
            && patch.query.contains("force=true"),
        "{}",
        patch.query
    );
    assert_eq!(patch.body["apiVersion"], "stratum.dev/v1alpha1");
    assert_eq!(patch.body["kind"], "ImageBuild");
    let status = written_status(&calls);
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(status.pod_name.as_deref(), Some("app-1-1"));
    assert_eq!(status.attempt, Some(1));
    assert_eq!(status.observed_generation, Some(1));
    // The Event names the transition's reason.
    assert_eq!(calls[3].body["reason"], "Pending");
    assert_eq!(calls[3].body["regarding"]["name"], "app");
}

#[tokio::test]
async fn reconciling_again_creates_no_second_pod_and_follows_the_pod() {
    let (client, fake) = fake_client();
    let ctx = context(client);
    reconcile(Arc::new(mk_build(None)), ctx.clone())
        .await
        .unwrap();
    let pending = written_status(&take_calls(&fake));

    // Same build, status as written, pod present and still pending: no create.
    reconcile(Arc::new(mk_build(Some(pending.clone()))), ctx.clone())
        .await
        .unwrap();
    let calls = take_calls(&fake);
    assert!(
        !calls.iter().any(|c| c.method == "POST" && c.path == PODS),
        "a second pod was created: {calls:?}"
    );
    assert!(!calls.iter().any(|c| c.method == "DELETE"), "{calls:?}");
    let status = if calls.iter().any(|c| c.method == "PATCH") {
        written_status(&calls)
    } else {
        pending.clone()
    };
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(fake.lock().unwrap().pods.len(), 1);

    // The builder container starts: the status moves to Building, once.
    {
        let mut f = fake.lock().unwrap();
        f.pods[0].status = Some(PodStatus {
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
    }
    reconcile(Arc::new(mk_build(Some(status))), ctx.clone())
        .await
        .unwrap();
    let calls = take_calls(&fake);
    let lines: Vec<_> = calls.iter().map(Call::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {PODS}"),
            format!("PATCH {STATUS}"),
            format!("POST {EVENTS}")
        ]
    );
    let building = written_status(&calls);
    assert_eq!(building.phase, Some(Phase::Building));
    assert_eq!(calls[2].body["reason"], "Building");

    // And with that status, nothing changes at all: one live list, no writes.
    reconcile(Arc::new(mk_build(Some(building))), ctx)
        .await
        .unwrap();
    let lines: Vec<_> = take_calls(&fake).iter().map(Call::line).collect();
    assert_eq!(lines, [format!("GET {PODS}")]);
}

#[tokio::test]
async fn an_existing_pod_the_list_missed_is_adopted() {
    // The create of an earlier reconcile was committed, but this list does not show it yet
    // (threats F1, F10): AlreadyExists is adoption, not an error, and no other pod is made.
    let (client, fake) = fake_client();
    fake.lock().unwrap().hidden.push("app-1-1".into());
    let ctx = context(client);
    reconcile(Arc::new(mk_build(None)), ctx).await.unwrap();
    let calls = take_calls(&fake);
    let creates: Vec<_> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path == PODS)
        .map(|c| c.body["metadata"]["name"].clone())
        .collect();
    assert_eq!(creates, [json!("app-1-1")]);
    assert_eq!(written_status(&calls).pod_name.as_deref(), Some("app-1-1"));
}

#[tokio::test]
async fn a_missing_push_secret_waits_without_a_pod_and_names_no_secret_data() {
    let (client, fake) = fake_client();
    let ctx = context(client);
    let mut build = mk_build(None);
    build.spec.output.push_secret_ref = Some(stratum_crds::SecretReference {
        name: "push".into(),
    });
    reconcile(Arc::new(build), ctx).await.unwrap();
    let calls = take_calls(&fake);
    let lines: Vec<_> = calls.iter().map(Call::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {PODS}"),
            "GET /api/v1/namespaces/ns/secrets/push".to_owned(),
            format!("PATCH {STATUS}"),
            format!("POST {EVENTS}"),
        ]
    );
    let status = written_status(&calls);
    assert_eq!(status.phase, Some(Phase::Pending));
    assert_eq!(calls[3].body["reason"], "SecretInvalid");
    assert_eq!(calls[3].body["note"], "push Secret push does not exist");
}

#[tokio::test]
async fn apiserver_errors_are_reconcile_errors_with_a_category() {
    // A fake that refuses everything: the list fails, nothing else is attempted.
    let service = tower::service_fn(|_: http::Request<Body>| async {
        Ok::<_, std::convert::Infallible>(respond(500, &status_error(500, "InternalError")))
    });
    let ctx = context(Client::new(service, "default"));
    let build = Arc::new(mk_build(None));
    let error = reconcile(build.clone(), ctx.clone()).await.unwrap_err();
    assert_eq!(error.category(), "list_pods");
    let requeue = super::error_policy(build, &error, ctx.clone());
    assert_eq!(requeue, Requeue::requeue(error_backoff(1)));
    assert!(
        ctx.metrics
            .render()
            .contains("stratum_reconcile_errors_total{reason=\"list_pods\"} 1")
    );
}

#[test]
fn error_backoff_doubles_and_is_capped() {
    let secs: Vec<_> = [1, 2, 3, 7, 100, u32::MAX]
        .map(|n| error_backoff(n).as_secs())
        .to_vec();
    assert_eq!(secs, [5, 10, 20, 300, 300, 300]);
}

#[test]
fn only_current_builds_with_a_pod_hold_a_slot() {
    let status = |phase, generation, pod: Option<&str>| ImageBuildStatus {
        phase: Some(phase),
        observed_generation: Some(generation),
        pod_name: pod.map(str::to_owned),
        ..ImageBuildStatus::default()
    };
    let cases = [
        (status(Phase::Pending, 1, Some("app-1-1")), true),
        (status(Phase::Building, 1, Some("app-1-1")), true),
        (status(Phase::Queued, 1, None), false),
        (status(Phase::Pending, 1, None), false), // backoff or waiting for a Secret
        (status(Phase::Succeeded, 1, Some("app-1-1")), false),
        (status(Phase::Building, 0, Some("app-0-1")), false), // an older generation
    ];
    for (s, holds) in cases {
        assert_eq!(
            super::holds_slot(&mk_build(Some(s.clone()))),
            holds,
            "{s:?}"
        );
    }
}

/// A registry double: answers with a fixed verdict and keeps the credentials it was given.
struct Verdict {
    answer: fn(&PushedImage) -> Result<VerifiedImage, VerifyError>,
    seen_config: Mutex<Vec<Option<Vec<u8>>>>,
}

impl ImageVerifier for Verdict {
    fn verify<'a>(
        &'a self,
        request: VerifyRequest<'a>,
    ) -> BoxFuture<'a, Result<VerifiedImage, VerifyError>> {
        self.seen_config
            .lock()
            .unwrap()
            .push(request.docker_config.map(<[u8]>::to_vec));
        let answer = (self.answer)(request.pushed);
        Box::pin(async move { answer })
    }
}

const DOCKER_CONFIG: &[u8] = br#"{"auths":{"registry.example.com":{"auth":"dTpw"}}}"#;

fn pushed() -> PushedImage {
    PushedImage {
        manifest_digest: format!("sha256:{}", "a".repeat(64)),
        config_digest: format!("sha256:{}", "b".repeat(64)),
        size: 1234,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
    }
}

/// A build whose builder pod finished and reported a push; the fake holds the push Secret.
fn finished_build(
    verdict: Verdict,
) -> (
    Arc<ImageBuild>,
    Arc<Context>,
    Arc<Mutex<Fake>>,
    Arc<Verdict>,
) {
    let (client, fake) = fake_client();
    let verdict = Arc::new(verdict);
    let ctx = context_with(client, verdict.clone());
    let mut build = mk_build(None);
    build.spec.output.push_secret_ref = Some(stratum_crds::SecretReference {
        name: "push".into(),
    });
    reconcile_status_to_building(&mut build);
    let mut pod = crate::pod::builder_pod(
        &build,
        &stratum_crds::ResolvedSource::default(),
        0,
        1,
        &Config::try_parse_from_defaults().pod_config(),
    )
    .unwrap();
    pod.status = Some(PodStatus {
        phase: Some("Succeeded".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "builder".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 0,
                    reason: Some("Completed".into()),
                    message: Some(BuildResult::pushed(pushed()).encode()),
                    finished_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::now(),
                    )),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    });
    {
        let mut f = fake.lock().unwrap();
        f.pods.push(pod);
        f.secrets.push(Secret {
            metadata: ObjectMeta {
                name: Some("push".into()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_owned(),
                    ByteString(DOCKER_CONFIG.to_vec()),
                )]
                .into(),
            ),
            ..Secret::default()
        });
    }
    (Arc::new(build), ctx, fake, verdict)
}

fn reconcile_status_to_building(build: &mut ImageBuild) {
    build.status = Some(ImageBuildStatus {
        phase: Some(Phase::Building),
        observed_generation: Some(1),
        attempt: Some(1),
        pod_name: Some("app-1-1".into()),
        ..ImageBuildStatus::default()
    });
}

#[tokio::test]
async fn a_pushed_result_is_verified_with_the_push_secret_then_succeeds_once() {
    let (build, ctx, fake, verdict) = finished_build(Verdict {
        answer: |p| {
            Ok(VerifiedImage {
                digest: p.manifest_digest.clone(),
                image_id: p.config_digest.clone(),
                image: format!("registry.example.com/app@{}", p.manifest_digest),
                size: 1234,
                layers: Vec::new(),
            })
        },
        seen_config: Mutex::default(),
    });
    let requeue = reconcile(build.clone(), ctx.clone()).await.unwrap();
    assert_eq!(requeue, Requeue::await_change());
    let calls = take_calls(&fake);
    let lines: Vec<_> = calls.iter().map(Call::line).collect();
    assert_eq!(
        lines,
        [
            format!("GET {PODS}"),
            format!("GET {SECRETS}push"), // exists, right type and key
            format!("GET {SECRETS}push"), // its .dockerconfigjson for the registry
            format!("PATCH {STATUS}"),
            format!("POST {EVENTS}"),
        ]
    );
    assert_eq!(
        *verdict.seen_config.lock().unwrap(),
        [Some(DOCKER_CONFIG.to_vec())]
    );
    let status = written_status(&calls);
    assert_eq!(status.phase, Some(Phase::Succeeded));
    assert_eq!(status.digest, Some(pushed().manifest_digest));
    assert_eq!(status.image_id, Some(pushed().config_digest));
    assert_eq!(calls[4].body["reason"], "BuildSucceeded");
    assert!(
        !calls[4].body.to_string().contains("dTpw"),
        "the Event carries Secret data"
    );
    assert!(
        ctx.metrics
            .render()
            .contains("stratum_builds_total{result=\"succeeded\"} 1")
    );

    // Reconciling the succeeded build verifies nothing again and writes nothing.
    reconcile(Arc::new(mk_build_with(&build, status)), ctx)
        .await
        .unwrap();
    let lines: Vec<_> = take_calls(&fake).iter().map(Call::line).collect();
    assert_eq!(lines, [format!("GET {PODS}"), format!("GET {SECRETS}push")]);
    assert_eq!(verdict.seen_config.lock().unwrap().len(), 1);
}

fn mk_build_with(build: &ImageBuild, status: ImageBuildStatus) -> ImageBuild {
    let mut b = build.clone();
    b.status = Some(status);
    b
}

#[tokio::test]
async fn an_unreachable_registry_decides_nothing_and_verifies_again_later() {
    let (build, ctx, fake, _) = finished_build(Verdict {
        answer: |_| {
            Err(VerifyError::Unavailable {
                image: "registry.example.com/app:1".into(),
                source: RegistryError::Protocol {
                    request: "GET https://registry.example.com/v2/".into(),
                    detail: "503".into(),
                },
            })
        },
        seen_config: Mutex::default(),
    });
    let requeue = reconcile(build, ctx).await.unwrap();
    assert_eq!(requeue, Requeue::requeue(super::apply::VERIFY_RECHECK));
    let calls = take_calls(&fake);
    assert!(
        !calls.iter().any(|c| c.method != "GET"),
        "no verdict may be written: {calls:?}"
    );
}

#[tokio::test]
async fn a_claim_the_registry_disproves_fails_the_build() {
    let (build, ctx, fake, _) = finished_build(Verdict {
        answer: |_| {
            Err(VerifyError::Refused {
                reason: stratum_crds::reason::VERIFICATION_FAILED,
                message: "manifest sha256:aaaa… is not in the registry".into(),
            })
        },
        seen_config: Mutex::default(),
    });
    reconcile(build, ctx).await.unwrap();
    let calls = take_calls(&fake);
    let status = written_status(&calls);
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(
        status.failure.map(|f| f.reason).as_deref(),
        Some("VerificationFailed")
    );
    let event = calls.iter().find(|c| c.path == EVENTS).unwrap();
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "VerificationFailed");
}
