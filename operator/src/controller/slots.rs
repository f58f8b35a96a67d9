//! The concurrency limit, held exactly (issue 5: "a concurrency limit queues builds").
//!
//! The informer caches lag the operator's own writes by a watch event. Counting slots from them
//! alone let every build reconciled in the same instant see the same free slots: 200 builds
//! created at once against the kube emulator ran 24 pods under `--concurrency 10`
//! (tests/tests/e2e_scale.rs). So the decision to create a pod and the count it rests on happen
//! under one lock, and the table remembers what this process decided until the cache shows it:
//! - [`Mark::Held`]: a pod was decided for this generation; counts until the cache shows the
//!   build holding its slot (or final);
//! - [`Mark::Released`]: a status that frees the slot was written; does not count, even while
//!   the cache still shows the old phase — so the queued builds woken at that moment
//!   ([`SlotTable::queued`]) find the slot free.
//!
//! A restarted operator starts with an empty table and counts from the cache, as before.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use kube::runtime::reflector::{ObjectRef, Store};
use stratum_crds::{ImageBuild, Phase};

use super::holds_slot;

/// What this process decided about one build's slot, for one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Held(i64),
    Released(i64),
}

/// Whether `build` occupies a slot, given this process's mark for it.
pub fn counts(build: &ImageBuild, mark: Option<Mark>) -> bool {
    let generation = build.metadata.generation.unwrap_or(0);
    match mark {
        Some(Mark::Held(g)) if g == generation => !is_final(build),
        Some(Mark::Released(g)) if g == generation => false,
        _ => holds_slot(build),
    }
}

/// Whether the cache has caught up with `mark` (the mark can go).
fn settled(build: &ImageBuild, mark: Mark) -> bool {
    let generation = build.metadata.generation.unwrap_or(0);
    match mark {
        Mark::Held(g) => g != generation || holds_slot(build) || is_final(build),
        Mark::Released(g) => g != generation || !holds_slot(build),
    }
}

fn is_final(build: &ImageBuild) -> bool {
    let status = build.status.as_ref();
    status.and_then(|s| s.observed_generation) == build.metadata.generation
        && status.and_then(|s| s.phase).is_some_and(Phase::is_terminal)
}

/// The marks of this process, shared by every controller.
#[derive(Debug, Default)]
pub struct Slots {
    marks: Mutex<HashMap<ObjectRef<ImageBuild>, Mark>>,
}

impl Slots {
    /// Locks the table: count, decide and mark under one lock (never held across an await).
    pub fn lock(&self) -> SlotTable<'_> {
        SlotTable {
            // A panic while holding the lock leaves only marks behind; keep using them.
            marks: self.marks.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// The locked table.
#[derive(Debug)]
pub struct SlotTable<'a> {
    marks: MutexGuard<'a, HashMap<ObjectRef<ImageBuild>, Mark>>,
}

impl SlotTable<'_> {
    /// Builds in `stores` other than `except` that occupy a slot. Drops the marks the caches
    /// have caught up with, and those of builds that are gone.
    pub fn running(
        &mut self,
        stores: &[Store<ImageBuild>],
        except: Option<&ObjectRef<ImageBuild>>,
    ) -> usize {
        let mut present = HashSet::new();
        let mut running = 0;
        for build in stores.iter().flat_map(Store::state) {
            let key = ObjectRef::from_obj(build.as_ref());
            let mark = self.marks.get(&key).copied();
            if except != Some(&key) && counts(&build, mark) {
                running += 1;
            }
            if mark.is_some_and(|m| settled(&build, m)) {
                self.marks.remove(&key);
            }
            present.insert(key);
        }
        self.marks.retain(|key, _| present.contains(key));
        running
    }

    /// A pod was decided for `build`'s current generation.
    pub fn hold(&mut self, build: &ImageBuild) {
        let generation = build.metadata.generation.unwrap_or(0);
        self.marks
            .insert(ObjectRef::from_obj(build), Mark::Held(generation));
    }

    /// A status that does not hold a slot was written for `build` (`build` as it was read).
    /// Returns whether that freed a slot (the build occupied one), i.e. queued builds should
    /// be woken.
    pub fn release(&mut self, build: &ImageBuild) -> bool {
        let key = ObjectRef::from_obj(build);
        let occupied = counts(build, self.marks.get(&key).copied());
        if occupied {
            let generation = build.metadata.generation.unwrap_or(0);
            self.marks.insert(key, Mark::Released(generation));
        }
        occupied
    }
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
#[path = "slots_tests.rs"]
mod tests;
