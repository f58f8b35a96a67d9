//! In-memory object storage with etcd's versioning model.
//!
//! "Resource versions" (API concepts, k8s.io docs): every write gets the next value of ONE global,
//! monotonically increasing counter (etcd's revision), stored in `metadata.resourceVersion` and used
//! as the list's `resourceVersion`. Clients must treat it as opaque; the emulator's values are
//! decimal strings, like etcd-backed clusters.
//!
//! Watches replay from a bounded event history; a watch or continue token older than the
//! retained window is answered with 410 Gone (`Expired`), the way a compacted etcd revision is
//! ("Efficient detection of changes": "410 Gone ... the client must start over").

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

/// Where an object lives: storage group + resource (not version), namespace ("" if cluster
/// scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        ObjectKey {
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change. For `Deleted`, `object` is the last state with the deletion's RV.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub type_: EventType,
    pub key: ObjectKey,
    pub object: Arc<Value>,
    /// The state before a `Modified` change (lets selector-filtered watches turn a change that
    /// leaves or enters the selection into DELETED / ADDED, as the watch cache does).
    pub previous: Option<Arc<Value>>,
}

#[derive(Debug)]
pub struct State {
    rv: u64,
    objects: BTreeMap<ObjectKey, Value>,
    history: VecDeque<Arc<Event>>,
    /// Events with `rv <= compacted` are no longer retained.
    compacted: u64,
    window: usize,
    tx: broadcast::Sender<Arc<Event>>,
}

/// The storage. All writes go through [`Store::lock`], which serialises them like etcd's
/// single-writer transactions; watchers get committed events through a broadcast channel.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
}

/// The result of opening a watch at a resourceVersion: the retained events after it, and a
/// receiver for everything committed later (subscribed under the same lock: no gap, no dup).
#[derive(Debug)]
pub struct WatchStart {
    pub backlog: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
    pub current_rv: u64,
}

impl Store {
    /// `window`: how many events are retained for watch resumption.
    pub fn new(window: usize) -> Self {
        let (tx, _) = broadcast::channel(16_384);
        Store {
            state: Mutex::new(State {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                compacted: 1,
                window: window.max(1),
                tx,
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be an emulator bug; keep serving the data anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one storage resource, optionally in one namespace, in key order.
    pub fn list(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Vec<(&ObjectKey, &Value)> {
        let start = ObjectKey::new(group, resource, namespace.unwrap_or(""), "");
        self.objects
            .range(start..)
            .take_while(|(k, _)| {
                k.group == group
                    && k.resource == resource
                    && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .collect()
    }

    pub fn all(&self) -> impl Iterator<Item = (&ObjectKey, &Value)> {
        self.objects.iter()
    }

    /// Writes (creates or replaces) an object, assigning the next resourceVersion.
    pub fn put(&mut self, key: ObjectKey, mut obj: Value) -> Value {
        self.rv += 1;
        set_rv(&mut obj, self.rv);
        let previous = self.objects.insert(key.clone(), obj.clone());
        let type_ = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(type_, key, obj.clone(), previous);
        obj
    }

    /// Removes an object; the DELETED event carries its last state at a new resourceVersion.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        self.rv += 1;
        set_rv(&mut obj, self.rv);
        self.emit(EventType::Deleted, key.clone(), obj.clone(), None);
        Some(obj)
    }

    fn emit(&mut self, type_: EventType, key: ObjectKey, obj: Value, previous: Option<Value>) {
        let ev = Arc::new(Event {
            rv: self.rv,
            type_,
            key,
            object: Arc::new(obj),
            previous: previous.map(Arc::new),
        });
        self.history.push_back(ev.clone());
        while self.history.len() > self.window {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Drops the whole history (fault injection: every older resourceVersion becomes 410 Gone).
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Events after `rv` (exclusive) plus a live receiver, or `Err(oldest)` when `rv` is older
    /// than the retained window.
    pub fn watch_from(&self, rv: u64) -> Result<WatchStart, u64> {
        if rv < self.compacted {
            return Err(self.compacted);
        }
        let backlog = self.history.iter().filter(|e| e.rv > rv).cloned().collect();
        Ok(WatchStart {
            backlog,
            live: self.tx.subscribe(),
            current_rv: self.rv,
        })
    }

    /// Subscribes without backlog (for watches that begin with a synthetic snapshot).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    pub fn compacted_rv(&self) -> u64 {
        self.compacted
    }
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str) -> Value {
        json!({"metadata": {"name": name}})
    }

    #[test]
    fn resource_versions_are_global_and_monotonic() {
        let store = Store::new(100);
        let mut s = store.lock();
        let a = s.put(ObjectKey::new("", "pods", "ns", "a"), obj("a"));
        let b = s.put(ObjectKey::new("", "configmaps", "ns", "b"), obj("b"));
        let a2 = s.put(ObjectKey::new("", "pods", "ns", "a"), obj("a"));
        let rv = |v: &Value| {
            v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(rv(&a) < rv(&b) && rv(&b) < rv(&a2));
        assert_eq!(s.current_rv(), rv(&a2));
    }

    #[test]
    fn list_is_scoped_by_resource_and_namespace() {
        let store = Store::new(100);
        let mut s = store.lock();
        for (res, ns, name) in [
            ("pods", "a", "1"),
            ("pods", "b", "2"),
            ("pods", "a", "3"),
            ("secrets", "a", "4"),
        ] {
            s.put(ObjectKey::new("", res, ns, name), obj(name));
        }
        let names = |v: Vec<(&ObjectKey, &Value)>| {
            v.into_iter()
                .map(|(k, _)| k.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(s.list("", "pods", Some("a"))), ["1", "3"]);
        assert_eq!(names(s.list("", "pods", None)), ["1", "3", "2"]);
    }

    #[test]
    fn watch_replays_after_rv_and_expires_outside_window() {
        let store = Store::new(2);
        let mut s = store.lock();
        let first = s.put(ObjectKey::new("", "pods", "ns", "a"), obj("a"));
        let first_rv: u64 = first["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        s.put(ObjectKey::new("", "pods", "ns", "b"), obj("b"));
        s.remove(&ObjectKey::new("", "pods", "ns", "a"));
        // Window of 2: the event at first_rv is gone, so a watch from before it is expired.
        assert!(s.watch_from(first_rv - 1).is_err());
        let w = s.watch_from(first_rv).unwrap();
        let types: Vec<_> = w.backlog.iter().map(|e| e.type_).collect();
        assert_eq!(types, [EventType::Added, EventType::Deleted]);
        s.compact();
        assert!(s.watch_from(first_rv).is_err());
    }
}
