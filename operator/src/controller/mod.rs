//! The running controller: a `kube::runtime::Controller` over ImageBuilds that owns Pods, wired
//! to the pure core (observe → [`crate::reconcile::decide`] → apply → [`crate::status`]).
//!
//! - [`observe`]: the live reads of one reconcile (pods, Secrets, the concurrency slot).
//! - [`apply`]: doing the decided action and writing the status (server-side apply).
//! - this module: the context, errors with stable categories, `error_policy`, and [`run`].

pub mod apply;
pub mod observe;
pub mod slots;
pub mod uninstall;

#[cfg(test)]
mod feature_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::Controller;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::controller::{Action as Requeue, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, ResourceExt};
use stratum_crds::{ImageBuild, ImageBuildStatus, Phase};

use crate::metrics::Metrics;
use crate::names::BUILD_LABEL;
use crate::pod::{PodConfig, PodError};
use crate::result::ImageVerifier;
use crate::source::SourceResolver;
use slots::Slots;

pub use apply::reconcile;

/// The field manager of every server-side apply, and the Events' reporting controller.
pub const MANAGER: &str = "stratum-operator";
/// The first `error_policy` delay; it doubles per consecutive failure of the same build.
pub const ERROR_BACKOFF_BASE: Duration = Duration::from_secs(5);
/// The longest `error_policy` delay.
pub const ERROR_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Reconciles in flight at once, per controller. kube's default is unbounded: with 1,000 builds
/// created at once every reconcile was in flight together, each holding its own HTTP/1.1
/// connection to the apiserver (operator-bench: peak RSS grew ~80 KiB per build). A reconcile
/// is a handful of short API calls, so a small pool keeps up (docs/performance.md, "Operator").
pub const RECONCILE_PARALLELISM: u16 = 16;

/// Who publishes the operator's Events: `stratum-operator`, instance `$POD_NAME`.
pub(super) fn reporter() -> Reporter {
    Reporter {
        controller: MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    }
}

/// Everything a reconcile needs besides the ImageBuild.
pub struct Context {
    pub client: Client,
    pub pod_config: PodConfig,
    /// Builds that may hold a slot at once.
    pub concurrency: usize,
    pub verifier: Arc<dyn ImageVerifier>,
    pub resolver: Arc<dyn SourceResolver>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// The ImageBuild caches of every controller (one per watched namespace); the concurrency
    /// slot is counted over all of them.
    pub stores: Vec<Store<ImageBuild>>,
    /// Which builds hold a concurrency slot, as this process decided it (see [`Slots`]).
    pub slots: Slots,
    /// When the source of each build was last resolved (the `pollInterval` clock).
    source_checks: Mutex<HashMap<ObjectRef<ImageBuild>, Timestamp>>,
    /// Consecutive reconcile failures per build, for `error_policy`'s backoff.
    failures: Mutex<HashMap<ObjectRef<ImageBuild>, u32>>,
    /// Per controller (same order as `stores`): wakes a queued build when a slot frees.
    wakers: Vec<UnboundedSender<ObjectRef<ImageBuild>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("pod_config", &self.pod_config)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        client: Client,
        pod_config: PodConfig,
        concurrency: usize,
        verifier: Arc<dyn ImageVerifier>,
        resolver: Arc<dyn SourceResolver>,
        metrics: Arc<Metrics>,
        stores: Vec<Store<ImageBuild>>,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter()),
            client,
            pod_config,
            concurrency,
            verifier,
            resolver,
            metrics,
            stores,
            slots: Slots::default(),
            source_checks: Mutex::default(),
            failures: Mutex::default(),
            wakers: Vec::new(),
        }
    }

    /// Wakers for queued builds, one per controller, in the order of `stores`.
    pub fn with_wakers(mut self, wakers: Vec<UnboundedSender<ObjectRef<ImageBuild>>>) -> Self {
        self.wakers = wakers;
        self
    }

    /// A slot was freed: reconcile the oldest queued builds now, as many as there are free
    /// slots, instead of at their next [`apply::QUEUE_RECHECK`].
    pub fn wake_queued(&self) {
        let free = self.concurrency.saturating_sub(self.running(None));
        for (i, build) in slots::queued(&self.stores, free) {
            if let Some(waker) = self.wakers.get(i) {
                // A closed channel means the controller is stopping.
                let _ = waker.unbounded_send(build);
            }
        }
    }

    /// Builds other than `except` that hold a slot (see [`Slots::count`]).
    pub fn running(&self, except: Option<&ObjectRef<ImageBuild>>) -> usize {
        self.slots.count(&self.stores, except)
    }

    /// When this process last resolved `build`'s source.
    pub fn last_source_check(&self, build: &ObjectRef<ImageBuild>) -> Option<Timestamp> {
        lock(&self.source_checks).get(build).copied()
    }

    fn source_checked(&self, build: &ObjectRef<ImageBuild>, at: Timestamp) {
        lock(&self.source_checks).insert(build.clone(), at);
    }

    /// Drops everything kept about a build whose finalizer was removed (it is about to go).
    fn forget(&self, build: &ObjectRef<ImageBuild>) {
        self.slots.forget(build);
        lock(&self.source_checks).remove(build);
        self.lock_failures().remove(build);
    }

    fn succeeded(&self, build: &ObjectRef<ImageBuild>) {
        self.lock_failures().remove(build);
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ImageBuild>, u32>> {
        // A panic while holding this lock leaves only counters behind; keep using them.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A lock whose data stays usable after a panic elsewhere (these maps hold only bookkeeping).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `build` holds a concurrency slot.
pub fn holds_slot(build: &ImageBuild) -> bool {
    status_holds_slot(build.metadata.generation, build.status.as_ref())
}

/// Whether a build of `generation` with `status` holds a concurrency slot: the status describes
/// that generation, names a pod, and is between pod creation and a final phase.
pub fn status_holds_slot(generation: Option<i64>, status: Option<&ImageBuildStatus>) -> bool {
    let phase = status.and_then(|s| s.phase);
    let current = status.and_then(|s| s.observed_generation) == generation;
    current
        && status.is_some_and(|s| s.pod_name.is_some())
        && matches!(
            phase,
            Some(Phase::Pending | Phase::Fetching | Phase::Building | Phase::Pushing)
        )
}

/// Why a reconcile failed. The build is retried by `error_policy` with a capped backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{step} for ImageBuild {build}: {source}")]
    Kube {
        step: &'static str,
        build: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Pod(#[from] PodError),
    #[error("ImageBuild {build} has no namespace; ImageBuilds are namespaced")]
    NoNamespace { build: String },
    #[error("ImageBuild {build}: push Secret {secret} changed while verifying: {problem}")]
    PushSecret {
        build: String,
        secret: String,
        problem: String,
    },
}

impl Error {
    /// A stable category, for the `reason` label of `stratum_reconcile_errors_total`.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { step, .. } => step,
            Error::Pod(_) => "pod_spec",
            Error::NoNamespace { .. } => "no_namespace",
            Error::PushSecret { .. } => "push_secret",
        }
    }
}

/// The delay after the `failures`-th consecutive failure: 5 s, 10 s, 20 s, … capped at 5 min.
pub fn error_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    ERROR_BACKOFF_BASE
        .saturating_mul(1 << doublings)
        .min(ERROR_BACKOFF_MAX)
}

/// `error_policy` of the controller: count the error, back off per build.
// The signature is kube-runtime's `error_policy` callback.
#[allow(clippy::needless_pass_by_value)]
pub fn error_policy(build: Arc<ImageBuild>, error: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.reconcile_error(error.category());
    let key = ObjectRef::from_obj(build.as_ref());
    let failures = {
        let mut map = ctx.lock_failures();
        let n = map.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = error_backoff(failures);
    tracing::warn!(
        namespace = build.namespace().unwrap_or_default(),
        name = build.name_any(),
        category = error.category(),
        failures,
        retry_in_s = delay.as_secs(),
        "reconcile failed: {error}"
    );
    Requeue::requeue(delay)
}

/// What the flags decide about the controller.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Namespaces to watch; empty: all.
    pub namespaces: Vec<String>,
    pub pod_config: PodConfig,
    /// Builds that may hold a slot at once.
    pub concurrency: usize,
}

/// Runs one controller per watched namespace (or one over all namespaces) until `shutdown`
/// turns true; in-flight reconciles finish first. `ready` turns true once every ImageBuild
/// watch has listed (the cache the concurrency slot is counted from).
pub async fn run(
    client: Client,
    settings: Settings,
    verifier: Arc<dyn ImageVerifier>,
    resolver: Arc<dyn SourceResolver>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let Settings {
        namespaces,
        pod_config,
        concurrency,
    } = settings;
    let scopes: Vec<(Api<ImageBuild>, Api<Pod>)> = if namespaces.is_empty() {
        vec![(Api::all(client.clone()), Api::all(client.clone()))]
    } else {
        namespaces
            .iter()
            .map(|ns| {
                (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                )
            })
            .collect()
    };
    // Readiness comes from our own view of the watch (its first `InitDone`), never from the
    // store's `wait_until_ready`: that is a oneshot receiver shared by every clone of the store
    // which keeps only the last poller's waker, and the controller's applier waits on it too —
    // a second waiter could leave either side asleep (seen against the kube emulator: /readyz
    // stayed 503 forever under leader election while the controller ran).
    let scopes_total = scopes.len();
    let synced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut wakers = Vec::new();
    let controllers: Vec<_> = scopes
        .into_iter()
        .map(|(builds, pods)| {
            let mut stop = shutdown.clone();
            let (reader, writer) = reflector::store();
            let (ready, synced) = (ready.clone(), synced.clone());
            let mut first_sync = true;
            let trigger = reflector(
                writer,
                watcher(builds, watcher::Config::default().any_semantic()),
            )
            .inspect(move |event| {
                if first_sync && matches!(event, Ok(watcher::Event::InitDone)) {
                    first_sync = false;
                    if synced.fetch_add(1, Ordering::SeqCst) + 1 == scopes_total {
                        ready.store(true, Ordering::SeqCst);
                        tracing::info!("ImageBuild caches are synced; ready");
                    }
                }
            })
            .applied_objects();
            let (waker, woken) = unbounded();
            wakers.push(waker);
            Controller::for_stream(trigger, reader)
                .with_config(ControllerConfig::default().concurrency(RECONCILE_PARALLELISM))
                // Only builder pods: `stratum.dev/build` exists.
                .owns(pods, watcher::Config::default().labels(BUILD_LABEL))
                // Queued builds woken when a slot frees (`Context::wake_queued`).
                .reconcile_on(woken)
                .graceful_shutdown_on(async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                })
        })
        .collect();
    let stores: Vec<_> = controllers.iter().map(Controller::store).collect();
    let ctx = Arc::new(
        Context::new(
            client,
            pod_config,
            concurrency,
            verifier,
            resolver,
            metrics,
            stores,
        )
        .with_wakers(wakers),
    );
    let streams = controllers.into_iter().map(|c| {
        c.run(reconcile, error_policy, ctx.clone())
            .filter_map(|r| async move {
                if let Err(e) = r {
                    tracing::debug!("controller: {e}");
                }
                None::<()>
            })
            .boxed()
    });
    futures::stream::select_all(streams)
        .for_each(|()| async {})
        .await;
    tracing::info!("controller stopped");
}
