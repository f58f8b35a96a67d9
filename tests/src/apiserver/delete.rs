//! Deletion: finalizers, graceful pod termination and propagation policies.
//!
//! - "Finalizers" (k8s.io docs): an object with finalizers is not removed; the apiserver sets
//!   `metadata.deletionTimestamp` (and `deletionGracePeriodSeconds: 0`), bumps `generation`, and
//!   removes the object once the last finalizer is gone.
//! - "Garbage Collection" / "Use Cascading Deletion": `propagationPolicy=Foreground` adds the
//!   `foregroundDeletion` finalizer (the owner stays until dependents with
//!   `blockOwnerDeletion: true` are gone), `Orphan` adds `orphan` (dependents lose the owner
//!   reference), `Background` (default) removes the owner at once and lets the garbage collector
//!   delete dependents.
//! - "Pod Lifecycle: Termination of Pods": a scheduled pod's deletion sets
//!   `deletionTimestamp = now + gracePeriod`; the kubelet stops the containers and then removes
//!   the pod with grace period 0. Without an attached kubelet emulator the pod is removed at once.
//! - Preconditions (`preconditions.uid` / `preconditions.resourceVersion`) mismatch → 409 Conflict.

use serde_json::{Value, json};

use super::controllers;
use super::error::ApiError;
use super::meta;
use super::resources::ResourceType;
use super::state::ApiServer;
use super::store::{ObjectKey, State};

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            "Orphan" => Ok(Propagation::Orphan),
            other => Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            ))),
        }
    }
}

/// `metav1.DeleteOptions` as far as the emulator honours it.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// What happened to the object.
#[derive(Debug)]
pub enum Outcome {
    /// Still present with `deletionTimestamp` (finalizers or graceful termination pending).
    Pending(Value),
    /// Removed; the last state.
    Deleted(Value),
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

fn is_pod(key: &ObjectKey) -> bool {
    key.group.is_empty() && key.resource == "pods"
}

/// Deletes a stored object (used by the DELETE handler and by the controllers).
pub fn delete_stored(
    server: &ApiServer,
    st: &mut State,
    key: &ObjectKey,
    propagation: Propagation,
    grace: Option<i64>,
) -> Option<Outcome> {
    let mut obj = st.get(key)?.clone();
    let deleting = obj.pointer("/metadata/deletionTimestamp").is_some();
    let mut fins = finalizers(&obj);
    if !deleting {
        let extra = match propagation {
            Propagation::Foreground => Some(FOREGROUND),
            Propagation::Orphan => Some(ORPHAN),
            Propagation::Background => None,
        };
        if let Some(f) = extra
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_owned());
        }
    }
    let scheduled = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let terminal = matches!(
        obj.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    let pod_grace = grace.unwrap_or_else(|| {
        obj.pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30)
    });
    let graceful =
        is_pod(key) && scheduled && !terminal && server.kubelet_attached() && pod_grace > 0;
    let ns_pending = key.group.is_empty()
        && key.resource == "namespaces"
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());

    if graceful || !fins.is_empty() || ns_pending {
        let current_grace = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        let new_grace = if graceful { pod_grace } else { 0 };
        let shorten = deleting && current_grace.is_some_and(|g| new_grace < g);
        if !deleting || shorten {
            let m = obj["metadata"]
                .as_object_mut()
                .expect("stored objects have metadata");
            let when = if graceful {
                meta::now_plus(new_grace)
            } else {
                meta::now()
            };
            m.insert("deletionTimestamp".into(), json!(when));
            m.insert("deletionGracePeriodSeconds".into(), json!(new_grace));
            if !fins.is_empty() {
                m.insert("finalizers".into(), json!(fins));
            }
            if !deleting && let Some(g) = m.get("generation").and_then(Value::as_i64) {
                m.insert("generation".into(), json!(g + 1));
            }
            if ns_pending {
                obj["status"]["phase"] = json!("Terminating");
            }
            let finalizable = fins.is_empty() && !graceful && !ns_pending;
            let stored = st.put(key.clone(), obj);
            if finalizable {
                return st.remove(key).map(Outcome::Deleted);
            }
            return Some(Outcome::Pending(stored));
        }
        return Some(Outcome::Pending(obj));
    }
    st.remove(key).map(Outcome::Deleted)
}

/// The DELETE verb on one object.
pub fn delete(
    server: &ApiServer,
    st: &mut State,
    rt: &ResourceType,
    key: &ObjectKey,
    opts: &DeleteOptions,
) -> Result<Outcome, ApiError> {
    let obj = st
        .get(key)
        .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &key.name))?;
    if let Some(uid) = &opts.precondition_uid
        && obj["metadata"]["uid"].as_str() != Some(uid)
    {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            &key.name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                obj["metadata"]["uid"].as_str().unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = &opts.precondition_rv
        && obj["metadata"]["resourceVersion"].as_str() != Some(rv)
    {
        return Err(ApiError::conflict(
            &rt.group,
            &rt.plural,
            &key.name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
            ),
        ));
    }
    if opts.dry_run {
        return Ok(Outcome::Pending(obj.clone()));
    }
    let outcome = delete_stored(
        server,
        st,
        key,
        opts.propagation.unwrap_or_default(),
        opts.grace_period,
    )
    .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &key.name))?;
    controllers::run(server, st);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::state::Config;

    fn setup(obj: Value) -> (ApiServer, ObjectKey) {
        let server = ApiServer::new(Config::default());
        let key = ObjectKey::new("", "configmaps", "default", "c");
        server.inner.store.lock().put(key.clone(), obj);
        (server, key)
    }

    #[test]
    fn finalizers_keep_the_object_with_a_deletion_timestamp() {
        let (server, key) = setup(json!({"metadata": {"name": "c", "finalizers": ["x/y"]}}));
        let mut st = server.inner.store.lock();
        let Some(Outcome::Pending(obj)) =
            delete_stored(&server, &mut st, &key, Propagation::Background, None)
        else {
            panic!("expected pending")
        };
        assert!(obj["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(obj["metadata"]["deletionGracePeriodSeconds"], 0);
        assert!(st.get(&key).is_some());
    }

    #[test]
    fn foreground_and_orphan_add_their_finalizers() {
        for (prop, fin) in [
            (Propagation::Foreground, FOREGROUND),
            (Propagation::Orphan, ORPHAN),
        ] {
            let (server, key) = setup(json!({"metadata": {"name": "c"}}));
            let mut st = server.inner.store.lock();
            let Some(Outcome::Pending(obj)) = delete_stored(&server, &mut st, &key, prop, None)
            else {
                panic!("expected pending")
            };
            assert_eq!(obj["metadata"]["finalizers"], json!([fin]));
        }
    }

    #[test]
    fn plain_delete_removes() {
        let (server, key) = setup(json!({"metadata": {"name": "c"}}));
        let mut st = server.inner.store.lock();
        assert!(matches!(
            delete_stored(&server, &mut st, &key, Propagation::Background, None),
            Some(Outcome::Deleted(_))
        ));
        assert!(st.get(&key).is_none());
    }
}
