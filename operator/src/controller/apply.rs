//! One reconcile: observe → decide → apply → status → requeue.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, Resource, ResourceExt};
use stratum_crds::conditions::condition_type::READY;
use stratum_crds::{Failure, ImageBuild, ImageBuildStatus, Phase, ResolvedSource, SourceKind};
use tracing::Instrument;

use super::observe::{self, qualified};
use super::{Context, Error, MANAGER};
use crate::pod::builder_pod;
use crate::reconcile::decide::MAX_RECHECK;
use crate::reconcile::{Action, FINALIZER, SourceCheck, Waiting, decide};
use crate::result::{VerifyError, VerifyRequest};
use crate::source::ResolveRequest;
use crate::status::{after_action, succeeded};

/// How often a queued build looks for a free slot; a fallback, since a build that frees a slot
/// wakes the oldest queued builds at once (`Context::wake_queued`).
pub const QUEUE_RECHECK: Duration = Duration::from_secs(15);
/// How soon to look again after deleting a pod (its deletion event normally comes first).
pub const DELETE_RECHECK: Duration = Duration::from_secs(5);
/// How soon to verify again when the registry could not be asked.
pub const VERIFY_RECHECK: Duration = Duration::from_secs(30);

/// The controller's reconcile function, one tracing span per build.
pub async fn reconcile(build: Arc<ImageBuild>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let status = build.status.as_ref();
    let span = tracing::info_span!(
        "reconcile",
        namespace = build.namespace().unwrap_or_default(),
        name = build.name_any(),
        generation = build.metadata.generation.unwrap_or(0),
        attempt = status.and_then(|s| s.attempt).unwrap_or(0),
    );
    let key = ObjectRef::from_obj(build.as_ref());
    let result = reconcile_one(&build, &ctx).instrument(span).await;
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

async fn reconcile_one(build: &ImageBuild, ctx: &Context) -> Result<Requeue, Error> {
    let ns = build.namespace().ok_or_else(|| Error::NoNamespace {
        build: build.name_any(),
    })?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);

    let key = ObjectRef::from_obj(build);
    let views = observe::pods(&pods, build).await?;
    let problems = observe::secret_problems(&secrets, build).await?;
    let running = ctx.running(Some(&key));
    let now = Timestamp::now();
    let mut observed = observe::observed(
        build,
        views,
        problems,
        running < ctx.concurrency,
        now,
        ctx.last_source_check(&key),
        ctx.pod_config.default_timeout,
    );
    let mut action = decide(&observed);
    if action == Action::Resolve {
        observed.source = resolve(ctx, &secrets, build).await?;
        ctx.source_checked(&key, now);
        action = decide(&observed);
    }
    tracing::debug!(?action, "decided");
    let time = Time(now);

    let (status, requeue) = match &action {
        Action::CreatePod {
            rebuild,
            attempt,
            source,
        } => {
            // The slot is claimed under a lock: the count above may be stale by now.
            if ctx.slots.claim(&key, ctx.concurrency, &ctx.stores) {
                let pod = builder_pod(build, source, *rebuild, *attempt, &ctx.pod_config)?;
                // No pod without the finalizer that removes it (threats F8).
                add_finalizer(ctx, build).await?;
                create_pod(&pods, build, &pod).await?;
                (after_action(build, &action, &time), requeue(MAX_RECHECK))
            } else {
                let queued = Action::MarkQueued;
                (after_action(build, &queued, &time), requeue(QUEUE_RECHECK))
            }
        }
        Action::Resolve => {
            // decide() never asks twice; should it, look again soon instead of looping.
            (None, requeue(DELETE_RECHECK))
        }
        Action::Rebuild { .. } => (after_action(build, &action, &time), requeue(DELETE_RECHECK)),
        Action::RemoveFinalizer => {
            remove_finalizer(ctx, build).await?;
            ctx.forget(&key);
            (None, Requeue::await_change())
        }
        Action::Wait { requeue_after, .. } => (
            after_action(build, &action, &time),
            requeue(requeue_after.unwrap_or(MAX_RECHECK)),
        ),
        Action::RecordResult {
            attempt,
            created,
            result,
            ..
        } => match verify(ctx, &secrets, build, result).await? {
            Ok(verified) => (
                Some(succeeded(
                    build,
                    *attempt,
                    created.map(Time),
                    result,
                    &verified,
                    &time,
                )),
                Requeue::await_change(),
            ),
            Err(VerifyError::Unavailable { .. }) => (None, requeue(VERIFY_RECHECK)),
            Err(VerifyError::Refused { reason, message }) => {
                let fail = Action::Fail {
                    pod: None,
                    attempt: *attempt,
                    failure: Failure {
                        reason: reason.into(),
                        message,
                        ..Failure::default()
                    },
                    result: Some(result.clone()),
                    stop: None,
                };
                (after_action(build, &fail, &time), Requeue::await_change())
            }
        },
        Action::Retry { stop, after, .. } => {
            if let Some(pod) = stop {
                delete_pod(&pods, build, pod).await?;
            }
            (after_action(build, &action, &time), requeue(*after))
        }
        Action::Fail { stop, .. } => {
            if let Some(pod) = stop {
                delete_pod(&pods, build, pod).await?;
            }
            (after_action(build, &action, &time), Requeue::await_change())
        }
        Action::Cancel { pod } => {
            if let Some(pod) = pod {
                delete_pod(&pods, build, pod).await?;
            }
            (after_action(build, &action, &time), Requeue::await_change())
        }
        Action::DeletePod { pod, .. } => {
            delete_pod(&pods, build, pod).await?;
            (None, requeue(DELETE_RECHECK))
        }
        Action::MarkQueued => (after_action(build, &action, &time), requeue(QUEUE_RECHECK)),
        Action::MarkSpecInvalid { .. } => {
            (after_action(build, &action, &time), Requeue::await_change())
        }
        Action::Nothing => (None, Requeue::await_change()),
    };

    if let (
        Action::Wait {
            why: Waiting::PollSource,
            ..
        },
        SourceCheck::Failed { kind, message },
    ) = (&action, &observed.source)
    {
        poll_failed(ctx, build, *kind, message).await;
    }
    let written = status.filter(|s| Some(s) != build.status.as_ref());
    if let Some(status) = &written {
        write_status(ctx, build, status).await?;
        transition(ctx, build, status).await;
    }
    if action != Action::RemoveFinalizer {
        let now_status = written.as_ref().or(build.status.as_ref());
        let holds = super::status_holds_slot(build.metadata.generation, now_status);
        let held = super::status_holds_slot(build.metadata.generation, build.status.as_ref());
        ctx.slots.record(&key, holds);
        if held && !holds {
            ctx.wake_queued();
        }
    }
    ctx.metrics.set_running(ctx.running(None));
    Ok(requeue)
}

/// Asks the source's remote for its revision, with the source Secret's data. A failure is an
/// answer (it goes into the decision), not a reconcile error; only reading the Secret can fail
/// the reconcile.
async fn resolve(
    ctx: &Context,
    secrets: &Api<Secret>,
    build: &ImageBuild,
) -> Result<SourceCheck, Error> {
    let Some(source) = build.spec.source.kind() else {
        // decide() refuses a spec without exactly one source before it resolves.
        return Ok(SourceCheck::Resolved(ResolvedSource::default()));
    };
    if matches!(source, SourceKind::Inline(_)) {
        return Ok(SourceCheck::Resolved(ResolvedSource::default()));
    }
    let secret = observe::source_secret(secrets, build).await?;
    let request = ResolveRequest {
        source,
        secret: secret.as_ref(),
    };
    let check = ctx.resolver.resolve(request).await;
    match &check {
        SourceCheck::Resolved(r) => {
            tracing::info!(
                revision = r.revision().unwrap_or_default(),
                "source resolved"
            );
        }
        SourceCheck::Failed { kind, message } => {
            tracing::warn!(?kind, "cannot resolve the source: {message}");
        }
        SourceCheck::NotChecked => {}
    }
    Ok(check)
}

/// Adds the finalizer unless present. A merge patch of the whole list with the read
/// `resourceVersion`, so a concurrent change of the finalizers gets 409 (and a retry) instead of
/// being overwritten.
async fn add_finalizer(ctx: &Context, build: &ImageBuild) -> Result<(), Error> {
    let with_ours = |b: &ImageBuild| {
        let mut finalizers = b.finalizers().to_vec();
        let present = finalizers.iter().any(|f| f == FINALIZER);
        finalizers.push(FINALIZER.to_owned());
        (!present).then_some(finalizers)
    };
    let Some(finalizers) = with_ours(build) else {
        return Ok(());
    };
    match patch_finalizers(&ctx.client, build, &finalizers, "add_finalizer").await {
        // The cached object is older than the stored one (often: an earlier reconcile added the
        // finalizer a moment ago). Read it once and try again with what is stored.
        Err(Error::Kube {
            source: kube::Error::Api(e),
            ..
        }) if e.code == 409 => {
            let api: Api<ImageBuild> =
                Api::namespaced(ctx.client.clone(), &build.namespace().unwrap_or_default());
            let fresh = api
                .get(&build.name_any())
                .await
                .map_err(|source| Error::Kube {
                    step: "add_finalizer",
                    build: qualified(build),
                    source,
                })?;
            match with_ours(&fresh) {
                None => Ok(()),
                Some(finalizers) => {
                    patch_finalizers(&ctx.client, &fresh, &finalizers, "add_finalizer").await
                }
            }
        }
        other => other,
    }
}

/// Removes the finalizer; the apiserver then deletes the ImageBuild.
async fn remove_finalizer(ctx: &Context, build: &ImageBuild) -> Result<(), Error> {
    remove_finalizer_with(&ctx.client, build).await?;
    tracing::info!("finalizer removed; the ImageBuild goes");
    Ok(())
}

/// Removes the finalizer from `build` as read (its other finalizers stay).
pub(super) async fn remove_finalizer_with(
    client: &Client,
    build: &ImageBuild,
) -> Result<(), Error> {
    let finalizers: Vec<String> = build
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    patch_finalizers(client, build, &finalizers, "remove_finalizer").await
}

async fn patch_finalizers(
    client: &Client,
    build: &ImageBuild,
    finalizers: &[String],
    step: &'static str,
) -> Result<(), Error> {
    let api: Api<ImageBuild> =
        Api::namespaced(client.clone(), &build.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": build.resource_version(),
        }
    });
    match api
        .patch(
            &build.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Removing from an ImageBuild that is already gone is done.
        Err(kube::Error::Api(e)) if e.code == 404 && step == "remove_finalizer" => Ok(()),
        Err(source) => Err(Error::Kube {
            step,
            build: qualified(build),
            source,
        }),
    }
}

fn requeue(after: Duration) -> Requeue {
    Requeue::requeue(after.max(Duration::from_secs(1)))
}

/// Creates the builder pod. `AlreadyExists` means an earlier reconcile (or a crashed operator)
/// made it — the name is deterministic — so the pod is adopted (threats F1, F10).
async fn create_pod(pods: &Api<Pod>, build: &ImageBuild, pod: &Pod) -> Result<(), Error> {
    match pods.create(&PostParams::default(), pod).await {
        Ok(_) => {
            tracing::info!(pod = pod.name_any(), "builder pod created");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::info!(pod = pod.name_any(), "builder pod exists; adopted");
            Ok(())
        }
        Err(source) => Err(Error::Kube {
            step: "create_pod",
            build: qualified(build),
            source,
        }),
    }
}

/// Deletes a pod; one that is already gone is fine.
async fn delete_pod(pods: &Api<Pod>, build: &ImageBuild, name: &str) -> Result<(), Error> {
    match pods.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            tracing::info!(pod = name, "builder pod deleted");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            step: "delete_pod",
            build: qualified(build),
            source,
        }),
    }
}

/// Verifies the builder's claim in the registry with the push Secret's credentials. The outer
/// error is a failure to read the Secret; the inner result is the registry's verdict.
async fn verify(
    ctx: &Context,
    secrets: &Api<Secret>,
    build: &ImageBuild,
    result: &stratum_crds::BuildResult,
) -> Result<Result<crate::result::VerifiedImage, VerifyError>, Error> {
    let stratum_crds::contract::Outcome::Pushed(pushed) = &result.outcome else {
        // decide() records only pushed results; anything else is a contract break.
        return Ok(Err(VerifyError::Refused {
            reason: stratum_crds::reason::RESULT_INVALID,
            message: "the builder reported no pushed image".into(),
        }));
    };
    let docker_config = observe::docker_config(secrets, build).await?;
    let request = VerifyRequest {
        image: &build.spec.output.image,
        pushed,
        docker_config: docker_config.as_deref(),
        insecure: build.spec.output.insecure,
    };
    let verdict = ctx.verifier.verify(request).await;
    if let Err(e) = &verdict {
        tracing::warn!("registry verification: {e}");
    }
    Ok(verdict)
}

/// Writes the whole status with server-side apply (crds docs: full status, one field manager,
/// forced — this operator owns `.status`).
async fn write_status(
    ctx: &Context,
    build: &ImageBuild,
    status: &ImageBuildStatus,
) -> Result<(), Error> {
    let api: Api<ImageBuild> =
        Api::namespaced(ctx.client.clone(), &build.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": ImageBuild::api_version(&()),
        "kind": ImageBuild::kind(&()),
        "status": status,
    });
    api.patch_status(
        &build.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(drop)
    .map_err(|source| Error::Kube {
        step: "patch_status",
        build: qualified(build),
        source,
    })
}

/// The `Ready` condition's reason and message: what Events and transitions are keyed on.
fn ready(status: Option<&ImageBuildStatus>) -> Option<(String, String)> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// A poll of a finished build could not ask the remote. The final status does not change, so a
/// Warning Event is the only place the user sees it (e.g. rotated credentials).
async fn poll_failed(
    ctx: &Context,
    build: &ImageBuild,
    kind: stratum_builder::source::SourceErrorKind,
    message: &str,
) {
    let event = Event {
        type_: EventType::Warning,
        reason: crate::reconcile::source::failure_reason(kind).to_owned(),
        note: Some(format!(
            "pollInterval: {}",
            message.chars().take(980).collect::<String>()
        )),
        action: "Poll".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &build.object_ref(&())).await {
        tracing::warn!("cannot publish Event: {e}");
    }
}

/// On a change of phase or reason: an Event and, for a final phase, the build metrics. Event
/// failures are logged, not fatal: the status is the record.
async fn transition(ctx: &Context, build: &ImageBuild, new: &ImageBuildStatus) {
    let old = build.status.as_ref();
    let changed = (old.and_then(|s| s.phase), ready(old).map(|r| r.0))
        != (new.phase, ready(Some(new)).map(|r| r.0));
    if let Some(p) = new.phase.filter(|p| changed && p.is_terminal()) {
        let seconds = match (&new.start_time, &new.completion_time) {
            (Some(start), Some(end)) => Some(end.0.duration_since(start.0).as_secs_f64()),
            _ => None,
        };
        ctx.metrics.finished(p, seconds);
    }
    let Some(event) = transition_event(old, new, build.namespace().as_deref()) else {
        return;
    };
    // A recorder of its own, i.e. an empty Event cache: kube's `Recorder` folds an Event into an
    // earlier one with the same type, action, reason and objects for 6 minutes and keeps the
    // earlier note, so a retry's, a new generation's or a pollInterval rebuild's `Pending` and
    // `BuildSucceeded` would show the previous build's message and digest (found by
    // tests/tests/e2e_sources.rs). Transitions are few; each is an Event of its own. Failed
    // polls (`poll_failed`) repeat the same news and keep the shared, folding recorder.
    let recorder = Recorder::new(ctx.client.clone(), super::reporter());
    if let Err(e) = recorder.publish(&event, &build.object_ref(&())).await {
        tracing::warn!("cannot publish Event: {e}");
    }
}

/// The Event for a status change (reason = the Ready condition's reason): when the phase or
/// reason changes, and when a new builder pod is recorded — a retry's pod is created while the
/// build stays `Pending`, and each pod deserves its Event.
///
/// The Event's related object is the pod it is about (the new status's pod, else the one a retry
/// just left). kube's `Recorder` folds Events with the same type, reason, action and objects
/// into one series and keeps the first note, so without it "builder pod app-1-2 created" would
/// show as a repeat of "builder pod app-1-1 created".
pub(super) fn transition_event(
    old: Option<&ImageBuildStatus>,
    new: &ImageBuildStatus,
    namespace: Option<&str>,
) -> Option<Event> {
    let before = (old.and_then(|s| s.phase), ready(old).map(|r| r.0));
    let (reason, message) = ready(Some(new))?;
    let new_pod = new.pod_name.is_some() && new.pod_name != old.and_then(|s| s.pod_name.clone());
    if before == (new.phase, Some(reason.clone())) && !new_pod {
        return None;
    }
    let phase = new.phase;
    let type_ = match phase {
        Some(Phase::Failed) => EventType::Warning,
        _ => EventType::Normal,
    };
    // Condition messages carry names, reasons and the builder's clipped error text; Secret data
    // never reaches them (observe.rs reads only names and keys).
    let note: String = message.chars().take(1000).collect();
    Some(Event {
        type_,
        reason,
        note: Some(note),
        action: phase.map_or_else(|| "Reconcile".to_owned(), |p| p.to_string()),
        secondary: new
            .pod_name
            .as_ref()
            .or(old.and_then(|s| s.pod_name.as_ref()))
            .map(|pod| ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.clone()),
                namespace: namespace.map(str::to_owned),
                ..ObjectReference::default()
            }),
    })
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
