//! The concurrency limit, counted from the operator's own bookkeeping.
//!
//! The informer caches lag a watch event behind the status writes, so counting slots from them
//! alone lets two reconciles racing for the last slot both take it. Instead, a reconcile that is
//! about to create a pod *claims* the slot under a lock, and every reconcile records whether its
//! build still holds one afterwards. Builds this process has not reconciled yet (just after a
//! start or a leadership change) are counted from the cache, which is only conservative: a lag
//! there can delay a queued build by one recheck, never let one too many run.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::runtime::reflector::{ObjectRef, Store};
use stratum_crds::{ImageBuild, Phase};

use super::{holds_slot, lock};

/// Which builds hold a slot, as this process last decided it.
#[derive(Debug, Default)]
pub struct Slots {
    held: Mutex<HashMap<ObjectRef<ImageBuild>, bool>>,
}

impl Slots {
    /// Builds other than `except` that hold a slot: this process's record where it has one, the
    /// caches' status otherwise. Records of builds that left every cache (deleted) do not count;
    /// with no caches at all (tests), every record counts.
    pub fn count(
        &self,
        stores: &[Store<ImageBuild>],
        except: Option<&ObjectRef<ImageBuild>>,
    ) -> usize {
        count(&lock(&self.held), stores, except)
    }

    /// Takes a slot for `build` when fewer than `limit` other builds hold one; atomic with
    /// respect to every other claim, so the limit cannot overshoot.
    pub fn claim(
        &self,
        build: &ObjectRef<ImageBuild>,
        limit: usize,
        stores: &[Store<ImageBuild>],
    ) -> bool {
        let mut held = lock(&self.held);
        if held.get(build) == Some(&true) {
            return true;
        }
        if count(&held, stores, Some(build)) >= limit {
            return false;
        }
        held.insert(build.clone(), true);
        true
    }

    /// Records whether `build` holds a slot after a reconcile.
    pub fn record(&self, build: &ObjectRef<ImageBuild>, holds: bool) {
        lock(&self.held).insert(build.clone(), holds);
    }

    /// Forgets `build` (its finalizer is gone; it is being deleted).
    pub fn forget(&self, build: &ObjectRef<ImageBuild>) {
        lock(&self.held).remove(build);
    }
}

fn count(
    held: &HashMap<ObjectRef<ImageBuild>, bool>,
    stores: &[Store<ImageBuild>],
    except: Option<&ObjectRef<ImageBuild>>,
) -> usize {
    let cached = |key: &ObjectRef<ImageBuild>| stores.iter().any(|s| s.get(key).is_some());
    let recorded = held
        .iter()
        .filter(|(key, holds)| **holds && Some(*key) != except)
        .filter(|(key, _)| stores.is_empty() || cached(key))
        .count();
    let unrecorded = stores
        .iter()
        .flat_map(Store::state)
        .map(|b| (ObjectRef::from_obj(b.as_ref()), b))
        .filter(|(key, b)| Some(key) != except && !held.contains_key(key) && holds_slot(b))
        .count();
    recorded + unrecorded
}

/// Up to `n` queued builds to wake, oldest first (by creation, then name), each with the index
/// of the store (controller) it belongs to.
pub fn queued(stores: &[Store<ImageBuild>], n: usize) -> Vec<(usize, ObjectRef<ImageBuild>)> {
    let mut queued: Vec<_> = stores
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.state().into_iter().map(move |b| (i, b)))
        .filter(|(_, b)| {
            b.status.as_ref().and_then(|s| s.phase) == Some(Phase::Queued)
                && b.metadata.deletion_timestamp.is_none()
        })
        .collect();
    queued.sort_by(|(_, a), (_, b)| {
        let created = |x: &ImageBuild| x.metadata.creation_timestamp.as_ref().map(|t| t.0);
        (created(a), &a.metadata.name).cmp(&(created(b), &b.metadata.name))
    });
    queued
        .into_iter()
        .take(n)
        .map(|(i, b)| (i, ObjectRef::from_obj(b.as_ref())))
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;
    use kube::runtime::{reflector, watcher};
    use stratum_crds::{ImageBuildSpec, ImageBuildStatus};

    use super::*;

    fn build(name: &str, created: i64, phase: Phase) -> ImageBuild {
        let mut b = ImageBuild::new(name, ImageBuildSpec::default());
        b.metadata = ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            generation: Some(1),
            creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
            ..ObjectMeta::default()
        };
        b.status = Some(ImageBuildStatus {
            phase: Some(phase),
            observed_generation: Some(1),
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
    fn queued_builds_are_woken_oldest_first_up_to_the_free_slots() {
        let stores = [
            store(&[
                build("late", 30, Phase::Queued),
                build("busy", 5, Phase::Building),
            ]),
            store(&[
                build("early", 10, Phase::Queued),
                build("middle", 20, Phase::Queued),
            ]),
        ];
        let woken: Vec<(usize, String)> = queued(&stores, 2)
            .into_iter()
            .map(|(i, r)| (i, r.name))
            .collect();
        assert_eq!(woken, [(1, "early".into()), (1, "middle".into())]);
        assert!(queued(&stores, 0).is_empty());
    }

    fn key(name: &str) -> ObjectRef<ImageBuild> {
        ObjectRef::new(name).within("ns")
    }

    #[test]
    fn claims_never_exceed_the_limit_and_records_release_slots() {
        let slots = Slots::default();
        let stores = [];
        assert!(slots.claim(&key("a"), 2, &stores));
        assert!(slots.claim(&key("b"), 2, &stores));
        // The third build waits although no cache has seen the first two yet.
        assert!(!slots.claim(&key("c"), 2, &stores));
        // A claim by a build that already holds its slot is idempotent.
        assert!(slots.claim(&key("a"), 2, &stores));
        assert_eq!(slots.count(&stores, None), 2);
        assert_eq!(slots.count(&stores, Some(&key("a"))), 1);
        // `a` finished: its reconcile records that, and `c` gets the slot.
        slots.record(&key("a"), false);
        assert!(slots.claim(&key("c"), 2, &stores));
        slots.forget(&key("b"));
        assert_eq!(slots.count(&stores, None), 1);
    }

    #[test]
    fn concurrent_claims_for_the_last_slot_admit_exactly_one() {
        let slots = std::sync::Arc::new(Slots::default());
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let slots = slots.clone();
                std::thread::spawn(move || slots.claim(&key(&format!("b{i}")), 3, &[]))
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|won| *won)
            .count();
        assert_eq!(admitted, 3);
    }
}
