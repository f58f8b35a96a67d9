//! One reconcile: observe → decide → apply → status → requeue.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use stratum_crds::conditions::condition_type::READY;
use stratum_crds::{Failure, ImageBuild, ImageBuildStatus, Phase};
use tracing::Instrument;

use super::observe::{self, qualified};
use super::{Context, Error, MANAGER};
use crate::pod::builder_pod;
use crate::reconcile::decide::MAX_RECHECK;
use crate::reconcile::{Action, decide};
use crate::result::{VerifyError, VerifyRequest};
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

    let views = observe::pods(&pods, build).await?;
    let problems = observe::secret_problems(&secrets, build).await?;
    let now = Timestamp::now();
    // Count, decide and mark under one lock, so two reconciles cannot take the last slot
    // (slots.rs).
    let (running, observed, action) = {
        let mut slots = ctx.slots.lock();
        let running = slots.running(&ctx.stores, Some(&ObjectRef::from_obj(build)));
        let observed = observe::observed(build, views, problems, running < ctx.concurrency, now);
        let action = decide(&observed);
        if matches!(action, Action::CreatePod { .. }) {
            slots.hold(build);
        }
        (running, observed, action)
    };
    ctx.metrics
        .set_running(running + usize::from(super::holds_slot(build)));
    tracing::debug!(?action, "decided");
    let time = Time(now);

    let (status, requeue) = match &action {
        Action::CreatePod { attempt } => {
            // decide() creates only with a resolved source; the default keeps this total.
            let resolved = observed.resolved.clone().unwrap_or_default();
            let pod = builder_pod(build, &resolved, *attempt, &ctx.pod_config)?;
            create_pod(&pods, build, &pod).await?;
            (after_action(build, &action, &time), requeue(MAX_RECHECK))
        }
        Action::Wait { requeue_after, .. } => (
            after_action(build, &action, &time),
            requeue(requeue_after.unwrap_or(MAX_RECHECK)),
        ),
        Action::RecordResult {
            attempt, result, ..
        } => match verify(ctx, &secrets, build, result).await? {
            Ok(verified) => (
                Some(succeeded(build, *attempt, result, &verified, &time)),
                Requeue::await_change(),
            ),
            Err(VerifyError::Unavailable { .. }) => (None, requeue(VERIFY_RECHECK)),
            Err(VerifyError::Refused { reason, message }) => {
                let fail = Action::Fail {
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

    if let Some(status) = status.filter(|s| Some(s) != build.status.as_ref()) {
        write_status(ctx, build, &status).await?;
        let mut written = build.clone();
        written.status = Some(status.clone());
        if !super::holds_slot(&written) && ctx.slots.lock().release(build) {
            ctx.wake_queued();
        }
        transition(ctx, build, &status).await;
    }
    Ok(requeue)
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

/// On a change of phase or reason: an Event (reason = the condition's reason) and, for a final
/// phase, the build metrics. Event failures are logged, not fatal: the status is the record.
async fn transition(ctx: &Context, build: &ImageBuild, new: &ImageBuildStatus) {
    let old = build.status.as_ref();
    let before = (old.and_then(|s| s.phase), ready(old).map(|r| r.0));
    let now = ready(Some(new));
    if before == (new.phase, now.as_ref().map(|r| r.0.clone())) {
        return;
    }
    let Some((reason, message)) = now else {
        return;
    };
    let phase = new.phase;
    if let Some(p) = phase.filter(|p| p.is_terminal()) {
        let seconds = match (&new.start_time, &new.completion_time) {
            (Some(start), Some(end)) => Some(end.0.duration_since(start.0).as_secs_f64()),
            _ => None,
        };
        ctx.metrics.finished(p, seconds);
    }
    let type_ = match phase {
        Some(Phase::Failed) => EventType::Warning,
        _ => EventType::Normal,
    };
    // Condition messages carry names, reasons and the builder's clipped error text; Secret data
    // never reaches them (observe.rs reads only names and keys).
    let note: String = message.chars().take(1000).collect();
    let event = Event {
        type_,
        reason,
        note: Some(note),
        action: phase.map_or_else(|| "Reconcile".to_owned(), |p| p.to_string()),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &build.object_ref(&())).await {
        tracing::warn!("cannot publish Event: {e}");
    }
}
