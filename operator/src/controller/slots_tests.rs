//! The slot table: marks count ahead of a lagging cache, and go once the cache catches up.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use stratum_crds::{ImageBuild, ImageBuildSpec, ImageBuildStatus, Phase};

use super::{Mark, Slots, counts, queued};

fn build(name: &str, created: i64, phase: Option<Phase>) -> ImageBuild {
    let mut b = ImageBuild::new(name, ImageBuildSpec::default());
    b.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        generation: Some(1),
        creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
        ..ObjectMeta::default()
    };
    b.status = phase.map(|phase| ImageBuildStatus {
        phase: Some(phase),
        observed_generation: Some(1),
        pod_name: (phase != Phase::Queued).then(|| format!("{name}-1-1")),
        ..ImageBuildStatus::default()
    });
    b
}

fn store(builds: &[ImageBuild]) -> Store<ImageBuild> {
    let (reader, mut writer) = reflector::store();
    for b in builds {
        writer.apply_watcher_event(&watcher::Event::Apply(b.clone()));
    }
    reader
}

#[test]
fn marks_override_the_cache_only_for_their_generation() {
    let fresh = build("a", 0, None);
    let running = build("a", 0, Some(Phase::Building));
    let done = build("a", 0, Some(Phase::Succeeded));
    // Table: (cache state, mark, counts?)
    let rows = [
        (&fresh, None, false),
        (&fresh, Some(Mark::Held(1)), true),
        (&fresh, Some(Mark::Held(2)), false),
        (&running, None, true),
        (&running, Some(Mark::Released(1)), false),
        (&running, Some(Mark::Released(0)), true),
        (&done, Some(Mark::Held(1)), false),
        (&done, None, false),
    ];
    for (i, (b, mark, expected)) in rows.into_iter().enumerate() {
        assert_eq!(counts(b, mark), expected, "row {i}: {mark:?}");
    }
}

#[test]
fn a_held_slot_counts_until_the_cache_shows_it_and_no_longer() {
    let slots = Slots::default();
    let a = build("a", 0, None);
    let b = build("b", 1, None);
    let lagging = [store(&[a.clone(), b.clone()])];
    let mut table = slots.lock();
    assert_eq!(table.running(&lagging, None), 0);
    table.hold(&a);
    // The cache has not seen a's status yet: the mark counts it, for everyone but a.
    assert_eq!(table.running(&lagging, None), 1);
    assert_eq!(table.running(&lagging, Some(&ObjectRef::from_obj(&a))), 0);
    // The cache catches up: the count stays one and the mark goes.
    let caught_up = [store(&[build("a", 0, Some(Phase::Pending)), b])];
    assert_eq!(table.running(&caught_up, None), 1);
    assert_eq!(
        table.running(&lagging, None),
        0,
        "the settled mark was dropped"
    );
}

#[test]
fn a_release_frees_the_slot_before_the_cache_sees_the_final_phase() {
    let slots = Slots::default();
    let a = build("a", 0, Some(Phase::Building));
    let stale = [store(std::slice::from_ref(&a))];
    let mut table = slots.lock();
    assert_eq!(table.running(&stale, None), 1);
    assert!(table.release(&a), "a occupied a slot");
    assert_eq!(table.running(&stale, None), 0);
    // Releasing what holds nothing frees nothing (no wake-up).
    assert!(!table.release(&build("q", 0, Some(Phase::Queued))));
}

#[test]
fn marks_of_deleted_builds_are_dropped() {
    let slots = Slots::default();
    let a = build("a", 0, None);
    let mut table = slots.lock();
    table.hold(&a);
    assert_eq!(table.running(&[store(&[])], None), 0);
    // a comes back (a namesake): the old mark is gone and does not count it.
    assert_eq!(table.running(&[store(&[a])], None), 0);
}

#[test]
fn queued_builds_are_woken_oldest_first_up_to_the_free_slots() {
    let stores = [
        store(&[
            build("late", 30, Some(Phase::Queued)),
            build("busy", 5, Some(Phase::Building)),
        ]),
        store(&[
            build("early", 10, Some(Phase::Queued)),
            build("middle", 20, Some(Phase::Queued)),
        ]),
    ];
    let woken: Vec<(usize, String)> = queued(&stores, 2)
        .into_iter()
        .map(|(i, r)| (i, r.name))
        .collect();
    assert_eq!(woken, [(1, "early".into()), (1, "middle".into())]);
    assert!(queued(&stores, 0).is_empty());
}
