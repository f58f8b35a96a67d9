//! The control-plane controllers whose effects clients observe through the API:
//!
//! - garbage collector ("Garbage Collection", "Owners and Dependents"): a dependent whose owners
//!   (matched by `uid`, in the dependent's namespace or cluster-scoped) are all gone is deleted
//!   in the background; owners in foreground deletion get their dependents deleted in the
//!   foreground and keep the `foregroundDeletion` finalizer until no dependent with
//!   `blockOwnerDeletion: true` is left; dangling references next to live owners are removed;
//!   `orphan` owners release their dependents;
//! - namespace controller ("Namespaces"): a terminating namespace's contents are deleted, then
//!   its `kubernetes` finalizer is removed and the namespace goes;
//! - service account controller: every active namespace has a `default` ServiceAccount;
//! - apiextensions controllers: CRDs get `acceptedNames` and `Established`; their resources are
//!   served (discovery included); deleting a CRD deletes its custom resources first.
//!
//! The real controllers are asynchronous; these run synchronously, to a fixed point, after every
//! write — an allowed (fastest possible) schedule of the real ones.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::crd;
use super::delete::{self, FOREGROUND, ORPHAN, Propagation};
use super::meta;
use super::state::ApiServer;
use super::store::{ObjectKey, State};

#[derive(Debug)]
enum Action {
    Delete(ObjectKey, Propagation),
    RemoveOwnerRefs(ObjectKey, Vec<String>),
    RemoveFinalizer(ObjectKey, &'static str),
    RemoveNamespaceFinalizer(ObjectKey),
    Remove(ObjectKey),
    EstablishCrd(ObjectKey),
    CreateDefaultSa(String),
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// Runs the controllers until nothing changes.
pub fn run(server: &ApiServer, st: &mut State) {
    for _ in 0..100 {
        let actions = plan(server, st);
        if actions.is_empty() {
            break;
        }
        for a in actions {
            execute(server, st, a);
        }
    }
    sync_crds(server, st);
}

fn plan(server: &ApiServer, st: &State) -> Vec<Action> {
    let mut actions = Vec::new();
    let by_uid: HashMap<&str, (&ObjectKey, &Value)> = st
        .all()
        .filter_map(|(k, v)| Some((v["metadata"]["uid"].as_str()?, (k, v))))
        .collect();
    // Dependents per owner uid (for foreground / orphan owners).
    let mut dependents: HashMap<&str, Vec<(&ObjectKey, &Value, bool)>> = HashMap::new();
    let mut namespaces_with_content: HashSet<&str> = HashSet::new();
    let mut sa_default: HashSet<&str> = HashSet::new();

    for (key, obj) in st.all() {
        if !key.namespace.is_empty() {
            namespaces_with_content.insert(key.namespace.as_str());
        }
        if key.group.is_empty() && key.resource == "serviceaccounts" && key.name == "default" {
            sa_default.insert(key.namespace.as_str());
        }
        let refs = obj["metadata"]["ownerReferences"].as_array();
        if let Some(refs) = refs.filter(|r| !r.is_empty()) {
            let (mut live, mut absent, mut foreground) = (0, Vec::new(), 0);
            for r in refs {
                let uid = r["uid"].as_str().unwrap_or_default();
                let block = r["blockOwnerDeletion"] == json!(true);
                match by_uid.get(uid) {
                    Some((ok, owner))
                        if ok.namespace.is_empty() || ok.namespace == key.namespace =>
                    {
                        dependents.entry(uid).or_default().push((key, obj, block));
                        if deleting(owner) && finalizers(owner).contains(&FOREGROUND) {
                            foreground += 1;
                        } else {
                            live += 1;
                        }
                    }
                    _ => absent.push(uid.to_owned()),
                }
            }
            if live == 0 && !deleting(obj) {
                let prop = if foreground > 0 {
                    Propagation::Foreground
                } else {
                    Propagation::Background
                };
                actions.push(Action::Delete(key.clone(), prop));
            } else if live > 0 && !absent.is_empty() {
                actions.push(Action::RemoveOwnerRefs(key.clone(), absent));
            }
        }
        if key.group == "apiextensions.k8s.io" && !deleting(obj) {
            let established = obj["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            let accepted =
                obj["status"]["acceptedNames"]["plural"] == obj["spec"]["names"]["plural"];
            if !established || !accepted || !finalizers(obj).contains(&crd::CLEANUP_FINALIZER) {
                actions.push(Action::EstablishCrd(key.clone()));
            }
        }
    }

    for (key, obj) in st.all() {
        let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
        let fins = finalizers(obj);
        if deleting(obj) {
            if fins.contains(&FOREGROUND) {
                let deps = dependents.get(uid).map(Vec::as_slice).unwrap_or_default();
                if !deps.iter().any(|(_, _, block)| *block) {
                    actions.push(Action::RemoveFinalizer(key.clone(), FOREGROUND));
                }
            }
            if fins.contains(&ORPHAN) {
                for (dk, _, _) in dependents.get(uid).map(Vec::as_slice).unwrap_or_default() {
                    actions.push(Action::RemoveOwnerRefs((*dk).clone(), vec![uid.to_owned()]));
                }
                actions.push(Action::RemoveFinalizer(key.clone(), ORPHAN));
            }
            if key.group.is_empty() && key.resource == "namespaces" {
                if namespaces_with_content.contains(key.name.as_str()) {
                    for (k, o) in st.all().filter(|(k, _)| k.namespace == key.name) {
                        if !deleting(o) {
                            actions.push(Action::Delete(k.clone(), Propagation::Background));
                        }
                    }
                } else if obj
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty())
                {
                    actions.push(Action::RemoveNamespaceFinalizer(key.clone()));
                }
            }
            if key.group == "apiextensions.k8s.io" && fins.contains(&crd::CLEANUP_FINALIZER) {
                let group = obj["spec"]["group"].as_str().unwrap_or_default();
                let plural = obj["spec"]["names"]["plural"].as_str().unwrap_or_default();
                let crs: Vec<_> = st.list(group, plural, None);
                if crs.is_empty() {
                    actions.push(Action::RemoveFinalizer(key.clone(), crd::CLEANUP_FINALIZER));
                }
                for (k, o) in crs {
                    if !deleting(o) {
                        actions.push(Action::Delete(k.clone(), Propagation::Background));
                    }
                }
            }
            let ns_pending = key.group.is_empty()
                && key.resource == "namespaces"
                && obj
                    .pointer("/spec/finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(|f| !f.is_empty());
            let pod_pending = key.group.is_empty()
                && key.resource == "pods"
                && server.kubelet_attached()
                && obj
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    > 0;
            if fins.is_empty() && !ns_pending && !pod_pending {
                actions.push(Action::Remove(key.clone()));
            }
        } else if key.group.is_empty()
            && key.resource == "namespaces"
            && !sa_default.contains(key.name.as_str())
        {
            actions.push(Action::CreateDefaultSa(key.name.clone()));
        }
    }
    actions
}

fn execute(server: &ApiServer, st: &mut State, action: Action) {
    match action {
        Action::Delete(key, prop) => {
            if st.get(&key).is_some_and(|o| !deleting(o)) {
                delete::delete_stored(server, st, &key, prop, None);
            }
        }
        Action::RemoveOwnerRefs(key, uids) => modify(st, &key, |o| {
            if let Some(Value::Array(refs)) = o["metadata"].get_mut("ownerReferences") {
                refs.retain(|r| !uids.iter().any(|u| r["uid"].as_str() == Some(u)));
                if refs.is_empty() {
                    o["metadata"]
                        .as_object_mut()
                        .map(|m| m.remove("ownerReferences"));
                }
            }
        }),
        Action::RemoveFinalizer(key, fin) => {
            modify(st, &key, |o| {
                if let Some(Value::Array(f)) = o["metadata"].get_mut("finalizers") {
                    f.retain(|x| x.as_str() != Some(fin));
                    if f.is_empty() {
                        o["metadata"]
                            .as_object_mut()
                            .map(|m| m.remove("finalizers"));
                    }
                }
            });
        }
        Action::RemoveNamespaceFinalizer(key) => modify(st, &key, |o| {
            o["spec"]["finalizers"] = json!([]);
        }),
        Action::Remove(key) => {
            st.remove(&key);
        }
        Action::EstablishCrd(key) => modify(st, &key, |o| {
            o["status"] = crd::established_status(o, &meta::now());
            let mut f: Vec<Value> = o["metadata"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !f.iter().any(|x| x == crd::CLEANUP_FINALIZER) {
                f.push(json!(crd::CLEANUP_FINALIZER));
            }
            o["metadata"]["finalizers"] = json!(f);
        }),
        Action::CreateDefaultSa(ns) => {
            let key = ObjectKey::new("", "serviceaccounts", &ns, "default");
            if st.get(&key).is_none() {
                st.put(key, json!({
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": ns, "uid": meta::new_uid(), "creationTimestamp": meta::now()},
                }));
            }
        }
    }
}

fn modify(st: &mut State, key: &ObjectKey, f: impl FnOnce(&mut Value)) {
    if let Some(mut obj) = st.get(key).cloned() {
        f(&mut obj);
        st.put(key.clone(), obj);
    }
}

/// Serves exactly the resources of the stored CRDs.
fn sync_crds(server: &ApiServer, st: &State) {
    let registered: HashSet<String> = server
        .resources()
        .into_iter()
        .filter_map(|r| r.crd)
        .collect();
    let mut present = HashSet::new();
    for (key, obj) in st.list("apiextensions.k8s.io", "customresourcedefinitions", None) {
        present.insert(key.name.clone());
        let types = crd::resource_types(obj);
        let current: Vec<_> = server
            .resources()
            .into_iter()
            .filter(|r| r.crd.as_deref() == Some(&key.name))
            .collect();
        if current != types {
            server.register_crd(&key.name, types);
        }
    }
    for gone in registered.difference(&present) {
        server.register_crd(gone, Vec::new());
    }
}
