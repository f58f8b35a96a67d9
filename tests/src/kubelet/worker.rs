//! One pod's lifecycle on the emulated node ("Pod Lifecycle"): volumes → images → init containers
//! in order → app containers together (restarted per `restartPolicy`) → a terminal phase;
//! `activeDeadlineSeconds`; graceful deletion (SIGTERM, SIGKILL after the grace period, then the
//! final delete with grace 0); eviction and OOM kills on request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, watch};

use super::Ctx;
use super::api::Objects;
use super::container::{prepare_container, run_once, should_restart};
use super::runtime::{self, ContainerSpec};
use super::status::{self, ContainerInfo, State};
use super::volumes;
use crate::apiserver::meta;

/// Requests from the kubelet's fault hooks.
#[derive(Debug, Clone)]
pub enum Command {
    /// Node-pressure eviction: kill now, `Failed` / `Evicted`.
    Evict(String),
    /// Kill one container as the OOM killer would (exit 137, reason `OOMKilled`).
    OomKill(String),
}

/// What container tasks share with the pod worker (cheap to clone).
#[derive(Clone)]
pub(super) struct Shared {
    pub(super) ctx: Arc<Ctx>,
    pub(super) pod: Value,
    pub(super) ns: String,
    pub(super) name: String,
    /// Set once the pod is being stopped: no more restarts.
    pub(super) stopping: Arc<AtomicBool>,
    /// Running containers' process ids (= process group ids).
    pub(super) pids: Arc<Mutex<BTreeMap<String, u32>>>,
    /// Containers the OOM fault killed (their exit is reported as `OOMKilled`).
    pub(super) oom: Arc<Mutex<Vec<String>>>,
}

impl Shared {
    pub(super) fn api(&self) -> Api<Pod> {
        Api::namespaced(self.ctx.client.clone(), &self.ns)
    }

    pub(super) async fn kill_all(&self, sig: Signal) {
        for pid in self.pids.lock().await.values() {
            runtime::signal(*pid, sig);
        }
    }
}

/// The pod worker's view: shared parts plus the status it reports.
pub(super) struct PodRun {
    pub(super) s: Shared,
    pub(super) init: Vec<ContainerInfo>,
    pub(super) main: Vec<ContainerInfo>,
    pub(super) start: String,
    pub(super) reason: Option<(String, String)>,
}

pub(super) enum Event {
    Started(String),
    Exited(String, State),
}

impl PodRun {
    async fn push(&self) {
        let init_done = self
            .init
            .iter()
            .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
        let policy = self.s.pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always");
        let mut phase = status::phase(init_done, &self.main, policy);
        if self.reason.is_some() {
            phase = "Failed";
        }
        let init_failed = policy == "Never"
            && self
                .init
                .iter()
                .any(|c| matches!(c.state, State::Terminated { exit_code, .. } if exit_code != 0));
        if init_failed {
            phase = "Failed";
        }
        let reason = self.reason.as_ref().map(|(r, m)| (r.as_str(), m.as_str()));
        let st = status::pod_status(
            phase,
            &self.init,
            &self.main,
            &self.start,
            &meta::now(),
            reason,
        );
        if let Err(e) = self
            .s
            .api()
            .patch_status(
                &self.s.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": st})),
            )
            .await
        {
            tracing::debug!(pod = %self.s.name, error = %e, "kubelet status update failed");
        }
    }

    fn phase_is_terminal(&self) -> bool {
        let init_done = self
            .init
            .iter()
            .all(|c| matches!(c.state, State::Terminated { exit_code: 0, .. }));
        let policy = self.s.pod["spec"]["restartPolicy"]
            .as_str()
            .unwrap_or("Always");
        self.reason.is_some()
            || matches!(
                status::phase(init_done, &self.main, policy),
                "Succeeded" | "Failed"
            )
            || (policy == "Never"
                && self.init.iter().any(
                    |c| matches!(c.state, State::Terminated { exit_code, .. } if exit_code != 0),
                ))
    }

    fn info_mut(&mut self, name: &str) -> Option<&mut ContainerInfo> {
        self.init
            .iter_mut()
            .chain(self.main.iter_mut())
            .find(|c| c.name == name)
    }
}

/// The pod worker: runs until the pod is gone.
pub async fn run(
    ctx: Arc<Ctx>,
    mut pod_rx: watch::Receiver<Option<Value>>,
    mut cmd_rx: mpsc::Receiver<Command>,
) {
    let Some(pod) = pod_rx.borrow().clone() else {
        return;
    };
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let info = |c: &Value| {
        ContainerInfo::new(
            c["name"].as_str().unwrap_or_default(),
            c["image"].as_str().unwrap_or_default(),
        )
    };
    let mut run = PodRun {
        init: pod["spec"]["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(info)
            .collect(),
        main: pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(info)
            .collect(),
        start: pod["status"]["startTime"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(meta::now),
        reason: None,
        s: Shared {
            stopping: Arc::new(AtomicBool::new(false)),
            pids: Arc::default(),
            oom: Arc::default(),
            ns,
            name,
            pod,
            ctx,
        },
    };
    run.push().await;
    let shared = run.s.clone();
    let ctx = shared.ctx.clone();
    let pod_dir = ctx.pod_dir(&shared.pod);
    let objects = Objects {
        ctx: &ctx,
        namespace: shared.ns.clone(),
    };
    let deadline = shared.pod["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let policy = shared.pod["spec"]["restartPolicy"]
        .as_str()
        .unwrap_or("Always")
        .to_owned();
    let grace = shared.pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);

    // Volumes and container configs; failures keep the pod Pending (retried every second).
    let mut reported = String::new();
    let prepared: Option<Vec<(Value, ContainerSpec)>> = loop {
        if shared.stopping.load(Ordering::SeqCst) {
            break None;
        }
        let attempt = volumes::prepare(&shared.pod, &objects, &pod_dir)
            .map_err(|e| ("FailedMount".to_owned(), e.to_string()))
            .and_then(|vols| {
                let all: Vec<Value> = shared.pod["spec"]["initContainers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(
                        shared.pod["spec"]["containers"]
                            .as_array()
                            .into_iter()
                            .flatten(),
                    )
                    .cloned()
                    .collect();
                let mut specs = Vec::new();
                for c in all {
                    match prepare_container(&ctx, &shared.pod, &c, &vols, &objects, &pod_dir) {
                        Ok(spec) => specs.push((c, spec)),
                        Err((reason, msg)) => {
                            return Err((
                                format!("{}:{reason}", c["name"].as_str().unwrap_or_default()),
                                msg,
                            ));
                        }
                    }
                }
                Ok(specs)
            });
        match attempt {
            Ok(specs) => break Some(specs),
            Err((what, msg)) => {
                if what != reported {
                    reported = what.clone();
                    match what.split_once(':') {
                        Some((container, reason)) => {
                            let (event, state) = match reason {
                                "ErrImagePull" => ("Failed", State::waiting("ErrImagePull", &msg)),
                                other => ("Failed", State::waiting(other, &msg)),
                            };
                            ctx.event(&shared.pod, "Warning", event, &msg).await;
                            if let Some(ci) = run.info_mut(container) {
                                ci.state = state;
                            }
                        }
                        None => ctx.event(&shared.pod, "Warning", "FailedMount", &msg).await,
                    }
                    run.push().await;
                } else if reported.ends_with(":ErrImagePull") {
                    // The kubelet backs off after the first failed pull.
                    let container = reported.split(':').next().unwrap_or_default().to_owned();
                    if let Some(ci) = run.info_mut(&container) {
                        ci.state = State::waiting(
                            "ImagePullBackOff",
                            &format!("Back-off pulling image \"{}\"", ci.image),
                        );
                    }
                    reported.push('+');
                    ctx.event(&shared.pod, "Normal", "BackOff", "Back-off pulling image")
                        .await;
                    run.push().await;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    changed = pod_rx.changed() => if changed.is_err() || deleting(&pod_rx) { break None; },
                    _ = sleep_until(deadline) => {
                        run.reason = Some(("DeadlineExceeded".into(), "Pod was active on the node longer than the specified deadline".into()));
                        run.push().await;
                        break None;
                    }
                }
            }
        }
    };

    let (tx, mut rx) = mpsc::channel::<Event>(64);
    let n_init = run.init.len();
    let run = Arc::new(Mutex::new(run));
    if let Some(specs) = prepared {
        let (init_specs, main_specs): (Vec<_>, Vec<_>) = specs
            .into_iter()
            .enumerate()
            .partition(|(i, _)| *i < n_init);
        // Init containers, in order, then the app containers together — one task drives them.
        let mut driver = AbortOnDrop({
            let shared = shared.clone();
            let tx = tx.clone();
            let policy = policy.clone();
            tokio::spawn(async move {
                let init_policy = if policy == "Always" {
                    "OnFailure"
                } else {
                    policy.as_str()
                };
                for (_, (c, spec)) in init_specs {
                    loop {
                        let state = run_once(&shared, &c, &spec, &tx).await;
                        let restart = should_restart(init_policy, &state)
                            && !shared.stopping.load(Ordering::SeqCst);
                        let ok = matches!(state, State::Terminated { exit_code: 0, .. });
                        let _ = tx
                            .send(Event::Exited(
                                c["name"].as_str().unwrap_or_default().into(),
                                state,
                            ))
                            .await;
                        if ok {
                            break;
                        }
                        if !restart {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                let mut handles = Vec::new();
                for (_, (c, spec)) in main_specs {
                    let shared = shared.clone();
                    let tx = tx.clone();
                    let policy = policy.clone();
                    handles.push(AbortOnDrop(tokio::spawn(async move {
                        loop {
                            let state = run_once(&shared, &c, &spec, &tx).await;
                            let restart = should_restart(&policy, &state)
                                && !shared.stopping.load(Ordering::SeqCst);
                            let _ = tx
                                .send(Event::Exited(
                                    c["name"].as_str().unwrap_or_default().into(),
                                    state,
                                ))
                                .await;
                            if !restart {
                                return;
                            }
                            // CrashLoopBackOff starts at 10 s in the kubelet; the emulator uses 1 s.
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            if shared.stopping.load(Ordering::SeqCst) {
                                return;
                            }
                        }
                    })));
                }
                for mut h in handles {
                    let _ = (&mut h.0).await;
                }
            })
        });
        drop(tx);
        supervise(&run, &mut rx, &mut pod_rx, &mut cmd_rx, deadline, grace).await;
        let _ = (&mut driver.0).await;
    }
    // The pod stays until it is deleted; then the kubelet confirms the deletion.
    wait_for_deletion(&shared, &mut pod_rx).await;
    let _ = std::fs::remove_dir_all(&pod_dir);
}

/// A container task that is aborted when its owner is dropped. Aborting a pod worker (node loss,
/// `Kubelet::stop`, dropping the kubelet) must take its container tasks along: their `Child`
/// handles kill the processes (`kill_on_drop`). A plain `JoinHandle` would detach them, and the
/// containers would run on until the runtime shuts down.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn deleting(rx: &watch::Receiver<Option<Value>>) -> bool {
    rx.borrow()
        .as_ref()
        .is_none_or(|p| p.pointer("/metadata/deletionTimestamp").is_some())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Applies container events to the status until every container is done, handling deletion,
/// the active deadline and fault commands on the way.
async fn supervise(
    run: &Arc<Mutex<PodRun>>,
    rx: &mut mpsc::Receiver<Event>,
    pod_rx: &mut watch::Receiver<Option<Value>>,
    cmd_rx: &mut mpsc::Receiver<Command>,
    deadline: Option<tokio::time::Instant>,
    grace: u64,
) {
    let mut kill_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                let mut r = run.lock().await;
                match ev {
                    Event::Started(name) => {
                        let now = meta::now();
                        if let Some(ci) = r.info_mut(&name) {
                            ci.state = State::Running { started_at: now };
                        }
                        let pod = r.s.pod.clone();
                        r.s.ctx.event(&pod, "Normal", "Started", &format!("Started container {name}")).await;
                    }
                    Event::Exited(name, state) => {
                        let restarting = {
                            let policy = r.s.pod["spec"]["restartPolicy"].as_str().unwrap_or("Always").to_owned();
                            should_restart(&policy, &state) && !r.s.stopping.load(Ordering::SeqCst) && r.main.iter().any(|c| c.name == name)
                        };
                        if let Some(ci) = r.info_mut(&name) {
                            if restarting {
                                ci.last_state = Some(state);
                                ci.restart_count += 1;
                                ci.state = State::waiting("CrashLoopBackOff", &format!("back-off restarting failed container {name}"));
                            } else {
                                ci.state = state;
                            }
                        }
                    }
                }
                r.push().await;
            }
            changed = pod_rx.changed() => {
                let gone = changed.is_err() || pod_rx.borrow().is_none();
                let r = run.lock().await;
                if gone {
                    r.s.stopping.store(true, Ordering::SeqCst);
                    r.s.kill_all(Signal::SIGKILL).await;
                } else if deleting(pod_rx) && !r.s.stopping.swap(true, Ordering::SeqCst) {
                    let g = pod_rx.borrow().as_ref().and_then(|p| p.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_u64)).unwrap_or(grace);
                    let pod = r.s.pod.clone();
                    r.s.ctx.event(&pod, "Normal", "Killing", "Stopping container").await;
                    r.s.kill_all(Signal::SIGTERM).await;
                    kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(g));
                }
            }
            _ = sleep_until(kill_at) => {
                run.lock().await.s.kill_all(Signal::SIGKILL).await;
                kill_at = None;
            }
            _ = sleep_until(deadline), if !run.lock().await.s.stopping.load(Ordering::SeqCst) => {
                let mut r = run.lock().await;
                r.s.stopping.store(true, Ordering::SeqCst);
                r.reason = Some(("DeadlineExceeded".into(), "Pod was active on the node longer than the specified deadline".into()));
                let pod = r.s.pod.clone();
                r.s.ctx.event(&pod, "Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline").await;
                r.s.kill_all(Signal::SIGTERM).await;
                kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(grace));
            }
            cmd = cmd_rx.recv() => {
                let Some(cmd) = cmd else { continue };
                let mut r = run.lock().await;
                match cmd {
                    Command::Evict(message) => {
                        r.s.stopping.store(true, Ordering::SeqCst);
                        r.reason = Some(("Evicted".into(), message.clone()));
                        let pod = r.s.pod.clone();
                        r.s.ctx.event(&pod, "Warning", "Evicted", &message).await;
                        r.s.kill_all(Signal::SIGKILL).await;
                    }
                    Command::OomKill(container) => {
                        r.s.oom.lock().await.push(container.clone());
                        if let Some(pid) = r.s.pids.lock().await.get(&container) {
                            runtime::signal(*pid, Signal::SIGKILL);
                        }
                    }
                }
            }
        }
        let r = run.lock().await;
        if r.phase_is_terminal()
            && r.s.pids.lock().await.is_empty()
            && r.s.stopping.load(Ordering::SeqCst)
        {
            r.push().await;
        }
    }
    run.lock().await.push().await;
}

/// Waits until the pod is deleted, then completes a graceful deletion with grace period 0.
async fn wait_for_deletion(run: &Shared, pod_rx: &mut watch::Receiver<Option<Value>>) {
    loop {
        if pod_rx.borrow().is_none() {
            return;
        }
        if deleting(pod_rx) {
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            };
            let _ = run.api().delete(&run.name, &dp).await;
            return;
        }
        if pod_rx.changed().await.is_err() {
            return;
        }
    }
}
