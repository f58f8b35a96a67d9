//! The emulator's shared state: storage, registered resource types, faults, pod logs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};

use super::controllers;
use super::faults::Faults;
use super::logs::{LogSource, MemoryLogs};
use super::meta;
use super::resources::{ResourceType, builtins};
use super::store::{ObjectKey, Store};

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// A static bearer token every request must carry; `None` disables authentication.
    pub token: Option<String>,
    /// Events retained for watch resumption; older resourceVersions get 410 Gone.
    pub history_window: usize,
    /// How often a watch with `allowWatchBookmarks=true` receives a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Watch duration when the client sends no `timeoutSeconds` (the apiserver's
    /// `--min-request-timeout` default is 1800 s).
    pub default_watch_timeout: Duration,
    /// Namespaces that exist at start (a fresh cluster has these four).
    pub namespaces: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            token: None,
            history_window: 10_000,
            bookmark_interval: Duration::from_secs(5),
            default_watch_timeout: Duration::from_secs(1800),
            namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[derive(Debug)]
pub struct Inner {
    pub store: Store,
    resources: RwLock<Vec<ResourceType>>,
    pub builtins: Vec<ResourceType>,
    pub faults: Faults,
    pub logs: Arc<dyn LogSource>,
    pub config: Config,
    kubelet_attached: AtomicBool,
}

/// A cheaply clonable handle on one emulated API server.
#[derive(Debug, Clone)]
pub struct ApiServer {
    pub(crate) inner: Arc<Inner>,
}

impl ApiServer {
    pub fn new(config: Config) -> Self {
        Self::with_logs(config, Arc::new(MemoryLogs::default()))
    }

    /// Uses `logs` to serve `pods/log` (the kubelet emulator plugs in here).
    pub fn with_logs(config: Config, logs: Arc<dyn LogSource>) -> Self {
        let server = ApiServer {
            inner: Arc::new(Inner {
                store: Store::new(config.history_window),
                resources: RwLock::new(builtins()),
                builtins: builtins(),
                faults: Faults::default(),
                logs,
                config,
                kubelet_attached: AtomicBool::new(false),
            }),
        };
        {
            let mut st = server.inner.store.lock();
            let now = meta::now();
            for ns in &server.inner.config.namespaces {
                let obj = json!({
                    "apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "uid": meta::new_uid(), "creationTimestamp": now,
                        "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]},
                    "status": {"phase": "Active"},
                });
                st.put(ObjectKey::new("", "namespaces", "", ns), obj);
            }
            controllers::run(&server, &mut st);
        }
        server
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    pub fn logs(&self) -> &Arc<dyn LogSource> {
        &self.inner.logs
    }

    /// Declares that a kubelet (emulator) finishes graceful pod deletions; without one, a pod
    /// deletion completes at once, as if its kubelet had confirmed the containers stopped.
    pub fn set_kubelet_attached(&self, attached: bool) {
        self.inner
            .kubelet_attached
            .store(attached, Ordering::SeqCst);
    }

    pub fn kubelet_attached(&self) -> bool {
        self.inner.kubelet_attached.load(Ordering::SeqCst)
    }

    pub fn resources(&self) -> Vec<ResourceType> {
        self.inner
            .resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The resource served at (group, version, plural).
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.inner
            .resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    /// Replaces the resource types registered by `crd` (empty `types` unregisters it).
    pub fn register_crd(&self, crd: &str, types: Vec<ResourceType>) {
        let mut all = self
            .inner
            .resources
            .write()
            .unwrap_or_else(|e| e.into_inner());
        all.retain(|r| r.crd.as_deref() != Some(crd));
        all.extend(types);
    }

    /// Direct read of a stored object in its served shape (for tests and the kubelet emulator).
    pub fn get_object(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let rt = self.find(group, version, plural)?;
        let st = self.inner.store.lock();
        let obj = st.get(&ObjectKey::new(
            &rt.storage_group,
            &rt.storage_resource,
            namespace,
            name,
        ))?;
        Some(super::ops::to_served(&rt, obj))
    }

    /// Fault injection: forgets the watch history, so every watch from an older
    /// resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        self.inner.store.lock().compact();
    }
}
