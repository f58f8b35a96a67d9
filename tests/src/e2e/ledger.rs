//! [`PodLedger`]: every builder-pod change the API server commits, in commit order, as the
//! ground truth for "no duplicate pods for one attempt" and "never more than N builds running".
//!
//! The ledger subscribes to the emulator's store itself (the same broadcast its watches are fed
//! from, subscribed under the store lock), not to an HTTP watch: nothing a fault script does to
//! watches reaches it, and it sees every committed state, so a limit is checked at every
//! resourceVersion rather than sampled. A ledger that falls behind the broadcast reports it
//! ([`PodLedger::lagged`]) instead of silently missing events.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use stratum_crds::BUILD_LABEL;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::apiserver::ApiServer;
use crate::apiserver::store::{Event, EventType};

/// Every change `server` commits from now on, in commit order (the broadcast its watches are
/// fed from, subscribed under the store lock). For measurements outside this crate, such as the
/// operator benchmark.
pub fn subscribe(server: &ApiServer) -> tokio::sync::broadcast::Receiver<Arc<Event>> {
    server.inner.store.lock().subscribe()
}

/// The operator's attempt labels (`stratum_operator::names`; the e2e crate does not depend on
/// the operator crate, and the labels are part of its observable contract).
pub const GENERATION_LABEL: &str = "stratum.dev/generation";
pub const ATTEMPT_LABEL: &str = "stratum.dev/attempt";

/// One attempt of one build: (build, generation label, attempt label).
pub type AttemptKey = (String, String, String);

/// What the ledger has seen so far.
#[derive(Debug, Clone, Default)]
pub struct LedgerSummary {
    /// Every pod UID ever created for an attempt, in creation order.
    pub created: BTreeMap<AttemptKey, Vec<String>>,
    /// The most builder pods that were active (phase neither Succeeded nor Failed) at once,
    /// and the resourceVersion at which that was first reached.
    pub max_active: usize,
    pub max_active_rv: u64,
    /// The most active pods one build had at once, and which build.
    pub max_active_per_build: usize,
    pub max_active_build: String,
    /// The most ImageBuilds that held a concurrency slot at once: the status names a pod and the
    /// phase is not final — what the operator's `--concurrency` counts. A build whose pod has
    /// finished still holds its slot until the operator has verified the push and written the
    /// final phase, so this can reach the limit while fewer pods are active.
    pub max_holding: usize,
    /// Builder-pod events seen.
    pub events: usize,
    /// Every ImageBuild's status phases in commit order, one entry per change of
    /// (observedGeneration, phase), e.g. `1:Queued`, `1:Pending`, `1:Building`, `1:Succeeded`.
    pub phases: BTreeMap<String, Vec<String>>,
    /// Events the subscription missed (the broadcast overflowed); non-zero voids the ledger.
    pub lagged: u64,
}

impl LedgerSummary {
    /// Attempts for which more than one pod was ever created.
    pub fn duplicates(&self) -> Vec<(&AttemptKey, &Vec<String>)> {
        self.created
            .iter()
            .filter(|(_, uids)| uids.len() > 1)
            .collect()
    }

    /// How many pods were created in all.
    pub fn pods_created(&self) -> usize {
        self.created.values().map(Vec::len).sum()
    }

    /// How many times `build` entered a final phase (the ledger's phases; once is right).
    pub fn terminal_entries(&self, build: &str) -> usize {
        self.phases.get(build).map_or(0, |seq| {
            seq.iter()
                .filter(|p| {
                    p.ends_with(":Succeeded") || p.ends_with(":Failed") || p.ends_with(":Cancelled")
                })
                .count()
        })
    }

    /// Pods created for `build` (all generations and attempts).
    pub fn pods_of(&self, build: &str) -> usize {
        self.created
            .iter()
            .filter(|((b, _, _), _)| b == build)
            .map(|(_, uids)| uids.len())
            .sum()
    }
}

#[derive(Debug, Default)]
struct State {
    summary: LedgerSummary,
    /// Live pods by name: (build, active).
    live: HashMap<String, (String, bool)>,
    /// ImageBuilds holding a slot now (see [`LedgerSummary::max_holding`]).
    holding: std::collections::HashSet<String>,
}

/// Records builder pods of one namespace from the API server's commit stream. Stops on drop.
#[derive(Debug)]
pub struct PodLedger {
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl PodLedger {
    /// Starts recording builder pods (label `stratum.dev/build`) in `namespace`. Only changes
    /// committed after this call are seen: start it before the builds.
    pub fn start(server: &ApiServer, namespace: &str) -> Self {
        let mut rx = subscribe(server);
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        let namespace = namespace.to_owned();
        let task = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.key.namespace == namespace => match ev.key.resource.as_str() {
                        "pods" => lock(&shared).record(&ev),
                        "imagebuilds" => lock(&shared).record_build(&ev),
                        _ => {}
                    },
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => lock(&shared).summary.lagged += n,
                    Err(RecvError::Closed) => return,
                }
            }
        });
        PodLedger { state, task }
    }

    /// A copy of what has been recorded so far.
    pub fn summary(&self) -> LedgerSummary {
        lock(&self.state).summary.clone()
    }

    /// Builder pods active right now (by the ledger's view).
    pub fn active_now(&self) -> usize {
        lock(&self.state).live.values().filter(|(_, a)| *a).count()
    }
}

impl Drop for PodLedger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn label<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod["metadata"]["labels"][key].as_str()
}

/// Active: not finished. A deleting pod whose containers still run counts (its build still
/// uses the node), so the phase decides, not `deletionTimestamp`.
fn active(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

impl State {
    fn record_build(&mut self, ev: &Event) {
        let build = ev.object.as_ref();
        let status = &build["status"];
        let Some(phase) = status["phase"].as_str() else {
            return;
        };
        let entry = format!(
            "{}:{phase}",
            status["observedGeneration"].as_i64().unwrap_or(0)
        );
        let seq = self.summary.phases.entry(ev.key.name.clone()).or_default();
        if seq.last() != Some(&entry) {
            seq.push(entry);
        }
        let final_phase = matches!(phase, "Succeeded" | "Failed" | "Cancelled");
        if status["podName"].is_string() && !final_phase && ev.type_ != EventType::Deleted {
            self.holding.insert(ev.key.name.clone());
        } else {
            self.holding.remove(&ev.key.name);
        }
        self.summary.max_holding = self.summary.max_holding.max(self.holding.len());
    }

    fn record(&mut self, ev: &Event) {
        let pod = ev.object.as_ref();
        let Some(build) = label(pod, BUILD_LABEL) else {
            return;
        };
        let name = ev.key.name.clone();
        let s = &mut self.summary;
        s.events += 1;
        match ev.type_ {
            EventType::Added => {
                let key = (
                    build.to_owned(),
                    label(pod, GENERATION_LABEL).unwrap_or_default().to_owned(),
                    label(pod, ATTEMPT_LABEL).unwrap_or_default().to_owned(),
                );
                let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
                s.created.entry(key).or_default().push(uid.to_owned());
                self.live.insert(name, (build.to_owned(), active(pod)));
            }
            EventType::Modified => {
                self.live.insert(name, (build.to_owned(), active(pod)));
            }
            EventType::Deleted => {
                self.live.remove(&name);
            }
        }
        let total = self.live.values().filter(|(_, a)| *a).count();
        if total > s.max_active {
            s.max_active = total;
            s.max_active_rv = ev.rv;
        }
        let of_build = self.live.values().filter(|(b, a)| *a && b == build).count();
        if of_build > s.max_active_per_build {
            s.max_active_per_build = of_build;
            s.max_active_build = build.to_owned();
        }
    }
}
