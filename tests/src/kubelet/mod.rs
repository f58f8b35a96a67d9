//! The kubelet emulator (issue 6 item 2): one node that runs pods as local processes.
//!
//! - a scheduler binds every unscheduled pod (`schedulerName: default-scheduler`) to the node at
//!   once through the `pods/binding` subresource, as kube-scheduler does;
//! - the node's pods (watched with `fieldSelector=spec.nodeName=<node>`) each get a worker
//!   ([`worker`]): volumes, image → binary mapping ([`images`]), environment ([`env`]), a mount
//!   namespace per container ([`runtime`]), status reports ([`status`]);
//! - deletion is graceful: SIGTERM, SIGKILL after the grace period, then the kubelet deletes the
//!   pod with grace period 0 (the API emulator keeps scheduled pods until then, see
//!   `ApiServer::set_kubelet_attached`);
//! - faults: [`Kubelet::evict`], [`Kubelet::oom_kill`], [`Kubelet::stop`] (node loss: processes
//!   die, nothing reports any more).

mod api;
mod container;
pub mod env;
pub mod images;
pub mod runtime;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use images::{ImageEntry, ImageMap};

use crate::apiserver::{ApiServer, MemoryLogs, meta};

/// Kubelet emulator settings.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node_name: String,
    pub images: ImageMap,
    /// Where pod volumes and termination-message files live (`<root>/pods/<uid>`).
    pub root: PathBuf,
}

/// State shared by the kubelet's tasks.
pub struct Ctx {
    pub server: ApiServer,
    pub client: kube::Client,
    pub logs: MemoryLogs,
    pub config: KubeletConfig,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub fn pod_dir(&self, pod: &Value) -> PathBuf {
        self.config
            .root
            .join("pods")
            .join(pod["metadata"]["uid"].as_str().unwrap_or("unknown"))
    }
}

struct PodHandle {
    pod_tx: watch::Sender<Option<Value>>,
    cmd_tx: mpsc::Sender<worker::Command>,
    task: JoinHandle<()>,
}

/// A running kubelet emulator. Dropping it stops it (like [`Kubelet::stop`]).
#[derive(Debug)]
pub struct Kubelet {
    ctx: Arc<Ctx>,
    pods: Arc<Mutex<HashMap<String, PodHandleRef>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// (namespace/name) → handle, kept outside the Debug derive.
struct PodHandleRef(PodHandle);

impl std::fmt::Debug for PodHandleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PodHandle")
    }
}

fn key(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    )
}

impl Kubelet {
    /// Registers the node and starts the scheduler and the pod workers. `logs` must be the
    /// `LogSource` the API server was built with (`ApiServer::with_logs`), so `kubectl logs`
    /// reads what the containers print.
    pub async fn start(
        server: ApiServer,
        logs: MemoryLogs,
        config: KubeletConfig,
    ) -> Result<Self, kube::Error> {
        std::fs::create_dir_all(config.root.join("pods"))
            .map_err(|e| kube::Error::Service(Box::new(e)))?;
        let client = server.client();
        server.set_kubelet_attached(true);
        let nodes: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": config.node_name, "labels": {"kubernetes.io/hostname": config.node_name, "kubernetes.io/os": "linux"}},
        }))
        .map_err(kube::Error::SerdeError)?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
        let now = meta::now();
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kube emulator kubelet is posting ready status", "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": config.node_name}],
            "nodeInfo": {"kubeletVersion": "v1.33.0-stratum-emulator", "operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "emulator://1", "kernelVersion": "", "osImage": "", "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}}});
        nodes
            .patch_status(
                &config.node_name,
                &Default::default(),
                &kube::api::Patch::Merge(ready),
            )
            .await?;

        let ctx = Arc::new(Ctx {
            server,
            client,
            logs,
            config,
        });
        let pods: Arc<Mutex<HashMap<String, PodHandleRef>>> = Arc::default();
        let tasks = vec![
            tokio::spawn(schedule(ctx.clone())),
            tokio::spawn(sync_pods(ctx.clone(), pods.clone())),
        ];
        Ok(Kubelet { ctx, pods, tasks })
    }

    fn command(&self, namespace: &str, name: &str, cmd: worker::Command) -> bool {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.get(&format!("{namespace}/{name}"))
            .is_some_and(|h| h.0.cmd_tx.try_send(cmd).is_ok())
    }

    /// Node-pressure eviction of a running pod: killed at once, `Failed` with reason `Evicted`.
    pub fn evict(&self, namespace: &str, name: &str) -> bool {
        self.command(
            namespace,
            name,
            worker::Command::Evict("The node was low on resource: memory.".into()),
        )
    }

    /// Kills one container as the OOM killer would (exit code 137, reason `OOMKilled`).
    pub fn oom_kill(&self, namespace: &str, name: &str, container: &str) -> bool {
        self.command(namespace, name, worker::Command::OomKill(container.into()))
    }

    /// Node loss: every container process is killed and nothing reports any more; the pods stay
    /// as last reported (a real node controller would mark them after minutes).
    pub fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        for (_, h) in pods.drain() {
            h.0.task.abort();
        }
        // Aborting the workers drops their `Child` handles, which kill the processes (kill_on_drop).
    }

    pub fn node_name(&self) -> &str {
        &self.ctx.config.node_name
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The scheduler: binds unscheduled pods to our node.
async fn schedule(ctx: Arc<Ctx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields("spec.nodeName=");
    let mut stream = watcher(api, cfg).boxed();
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            _ => continue,
        };
        let scheduler = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| "default-scheduler".into());
        if scheduler != "default-scheduler" || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (Some(ns), Some(name)) = (pod.metadata.namespace.clone(), pod.metadata.name.clone())
        else {
            continue;
        };
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name}, "target": {"apiVersion": "v1", "kind": "Node", "name": ctx.config.node_name}});
        match pods
            .create_subresource::<Value, Value>("binding", &name, &PostParams::default(), &binding)
            .await
        {
            Ok(_) => {
                let v = serde_json::to_value(&pod).unwrap_or_default();
                ctx.event_from(
                    "default-scheduler",
                    &v,
                    "Normal",
                    "Scheduled",
                    &format!(
                        "Successfully assigned {ns}/{name} to {}",
                        ctx.config.node_name
                    ),
                )
                .await;
            }
            Err(e) => tracing::debug!(pod = %name, error = %e, "binding failed"),
        }
    }
}

/// Starts, updates and retires pod workers from the node's pod watch.
async fn sync_pods(ctx: Arc<Ctx>, pods: Arc<Mutex<HashMap<String, PodHandleRef>>>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.config.node_name));
    let mut stream = watcher(api, cfg).boxed();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                let v = serde_json::to_value(&p).unwrap_or_default();
                let k = key(&v);
                let mut map = pods.lock().unwrap_or_else(|e| e.into_inner());
                let same_uid = map.get(&k).is_some_and(|h| {
                    h.0.pod_tx
                        .borrow()
                        .as_ref()
                        .is_some_and(|old| old["metadata"]["uid"] == v["metadata"]["uid"])
                });
                if same_uid {
                    if let Some(h) = map.get(&k) {
                        let _ = h.0.pod_tx.send(Some(v));
                    }
                    continue;
                }
                if let Some(old) = map.remove(&k) {
                    let _ = old.0.pod_tx.send(None);
                }
                let (pod_tx, pod_rx) = watch::channel(Some(v));
                let (cmd_tx, cmd_rx) = mpsc::channel(8);
                let task = tokio::spawn(worker::run(ctx.clone(), pod_rx, cmd_rx));
                map.insert(
                    k,
                    PodHandleRef(PodHandle {
                        pod_tx,
                        cmd_tx,
                        task,
                    }),
                );
            }
            Ok(watcher::Event::Delete(p)) => {
                let v = serde_json::to_value(&p).unwrap_or_default();
                let mut map = pods.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(h) = map.remove(&key(&v)) {
                    let _ = h.0.pod_tx.send(None);
                }
            }
            _ => {}
        }
    }
}
