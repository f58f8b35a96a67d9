use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::runtime::events::EventType;
use stratum_crds::{Failure, ImageBuild, ImageBuildSpec, ImageBuildStatus, ResolvedSource};

use super::transition_event;
use crate::reconcile::{Action, Waiting};
use crate::status::after_action;

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

fn build(status: Option<ImageBuildStatus>) -> ImageBuild {
    let mut b = ImageBuild::new("app", ImageBuildSpec::default());
    b.metadata = ObjectMeta {
        name: Some("app".into()),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    b.status = status;
    b
}

fn create(attempt: i32) -> Action {
    Action::CreatePod {
        rebuild: 0,
        attempt,
        source: ResolvedSource::default(),
    }
}

/// Applies `action` to `status`, returning the new status and the note of its Event, if any.
fn step(status: Option<&ImageBuildStatus>, action: &Action) -> (ImageBuildStatus, Option<String>) {
    let new = after_action(&build(status.cloned()), action, &at(10)).unwrap();
    let event = transition_event(status, &new, Some("ns"));
    let Some(e) = event else {
        return (new, None);
    };
    assert_eq!(e.type_, EventType::Normal, "{:?}", e.note);
    // The pod it is about: kube's Recorder folds Events that differ only in their note.
    let related = e.secondary.and_then(|r| r.name);
    let note = e
        .note
        .map(|n| format!("{n} [{}]", related.unwrap_or_default()));
    (new, note)
}

/// Every builder pod gets a Normal Event, including a retry's, whose creation leaves the build
/// `Pending` with the same reason; a status that changes nothing else makes none.
#[test]
fn each_created_pod_has_an_event() {
    let (s, note) = step(None, &create(1));
    assert_eq!(
        note.as_deref(),
        Some("builder pod app-1-1 created [app-1-1]")
    );
    let running = Action::Wait {
        why: Waiting::PodRunning {
            pod: "app-1-1".into(),
            attempt: 1,
            created: None,
        },
        requeue_after: None,
    };
    let (s, note) = step(Some(&s), &running);
    assert_eq!(
        note.as_deref(),
        Some("builder pod app-1-1 is running [app-1-1]")
    );
    let retry = Action::Retry {
        attempt: 1,
        failure: Failure {
            reason: "PodDeleted".into(),
            message: "the builder pod app-1-1 was deleted while it ran".into(),
            ..Failure::default()
        },
        after: std::time::Duration::ZERO,
        stop: None,
    };
    let (s, note) = step(Some(&s), &retry);
    let note = note.unwrap();
    assert!(
        note.contains("retrying") && note.ends_with("[app-1-1]"),
        "{note}"
    );
    let (s, note) = step(Some(&s), &create(2));
    assert_eq!(
        note.as_deref(),
        Some("builder pod app-1-2 created [app-1-2]")
    );
    // The same status again: no Event.
    assert!(transition_event(Some(&s), &s, Some("ns")).is_none());
}
