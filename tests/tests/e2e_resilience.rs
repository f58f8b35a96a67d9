//! The operator under failure, end to end (issue 6: "the operator killed at random points",
//! "two operator replicas with leader election", "injected API faults and watch drops →
//! convergence"): the real `stratum-operator` process(es) against the API-server emulator over
//! HTTP, builder pods running the real `stratum pod-build` through the kubelet emulator, a real
//! registry. Runs as root.
//!
//! The ground truth is the emulator's commit stream ([`PodLedger`]): every builder pod ever
//! created and every ImageBuild phase change, in commit order. Each scenario asserts on it:
//! one pod per attempt (never a second pod for the same build, generation and attempt), never
//! two active pods of one build, and every build entering exactly one final phase.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::ListParams;
use stratum_crds::{ImageBuild, Phase};
use stratum_e2e::apiserver::Verb;
use stratum_e2e::e2e::{Cluster, ClusterOptions, LedgerSummary, Operator, PodLedger};

/// Generous: builds take seconds on a quiet machine, much longer on a loaded 2-core one.
const TIMEOUT: Duration = Duration::from_secs(300);

/// splitmix64 (Steele, Lea, Flood 2014): a seeded, reproducible sequence without a dependency.
struct Rng(u64);

impl Rng {
    /// `STRATUM_E2E_SEED` or the clock; the seed is printed so a failure can be replayed.
    fn from_env(test: &str) -> Self {
        let seed = std::env::var("STRATUM_E2E_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            });
        eprintln!("{test}: seed {seed} (replay with STRATUM_E2E_SEED={seed})");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration in `[lo, hi)` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }
}

/// Creates `count` cheap builds named `<prefix>-<i>`; each holds its pod for `hold` seconds so
/// that kills and faults land while builds are in flight.
async fn create_builds(
    cluster: &Cluster,
    prefix: &str,
    count: usize,
    hold: u32,
) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for i in 0..count {
        let name = format!("{prefix}-{i}");
        let dockerfile = format!("FROM {{BASE}}\nRUN echo {i} > /n && sleep {hold}\n");
        cluster
            .create(&cluster.inline_build(&name, &dockerfile))
            .await?;
        names.push(name);
    }
    Ok(names)
}

fn final_phase(build: &ImageBuild) -> Option<Phase> {
    let status = build.status.as_ref()?;
    (status.observed_generation == build.metadata.generation)
        .then_some(status.phase)
        .flatten()
        .filter(|p| p.is_terminal())
}

/// Waits until every build in `names` has a final phase. Tolerates API errors (a fault script
/// may be active); on timeout the error carries the cluster's diagnostics.
async fn wait_all_final(
    cluster: &Cluster,
    names: &[String],
    timeout: Duration,
) -> anyhow::Result<Vec<ImageBuild>> {
    let deadline = Instant::now() + timeout;
    let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    loop {
        if let Ok(list) = cluster.builds().list(&ListParams::default()).await {
            let done: Vec<ImageBuild> = list
                .items
                .into_iter()
                .filter(|b| wanted.contains(b.metadata.name.as_deref().unwrap_or_default()))
                .filter(|b| final_phase(b).is_some())
                .collect();
            if done.len() == wanted.len() {
                return Ok(done);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} of {} builds final within {timeout:?}\n{}",
                    done.len(),
                    wanted.len(),
                    cluster.diagnostics().await
                );
            }
        } else if Instant::now() >= deadline {
            bail!(
                "cannot list ImageBuilds; deadline passed\n{}",
                cluster.diagnostics().await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The invariants every scenario shares, checked on the commit stream and the final objects:
/// all `Succeeded` at attempt 1, exactly one pod ever created per build, never two active pods
/// of one build, exactly one final phase entered per build.
async fn check_converged(
    cluster: &Cluster,
    ledger: &PodLedger,
    builds: &[ImageBuild],
    names: &[String],
) -> anyhow::Result<LedgerSummary> {
    // Let late writes (a second, wrong final status) land before judging.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary = ledger.summary();
    let context = || async { format!("ledger: {summary:#?}\n{}", cluster.diagnostics().await) };
    ensure!(
        summary.lagged == 0,
        "the ledger missed {} events",
        summary.lagged
    );
    for build in builds {
        let name = build.metadata.name.as_deref().unwrap_or_default();
        let status = build.status.as_ref().context("status")?;
        if status.phase != Some(Phase::Succeeded) || status.digest.is_none() {
            bail!("{name} did not succeed: {status:?}\n{}", context().await);
        }
        if status.attempt != Some(1) {
            bail!(
                "{name} needed attempt {:?}\n{}",
                status.attempt,
                context().await
            );
        }
    }
    let duplicates = summary.duplicates();
    if !duplicates.is_empty() {
        bail!(
            "more than one pod for one attempt: {duplicates:?}\n{}",
            context().await
        );
    }
    if summary.max_active_per_build > 1 {
        bail!(
            "{} had {} active pods at once\n{}",
            summary.max_active_build,
            summary.max_active_per_build,
            context().await
        );
    }
    for name in names {
        let pods = summary.pods_of(name);
        let finals = summary.terminal_entries(name);
        if pods != 1 || finals != 1 {
            bail!(
                "{name}: {pods} pods created, {finals} final phases entered ({:?})\n{}",
                summary.phases.get(name),
                context().await
            );
        }
    }
    Ok(summary)
}

/// SIGKILL at random points while 20 builds run, restart each time: every build still ends
/// `Succeeded` once, from one pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_killed_at_random_points_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    let mut rng = Rng::from_env("operator_killed_at_random_points");
    let mut cluster = Cluster::start(ClusterOptions {
        namespace: "kill".into(),
        ..ClusterOptions::default()
    })
    .await?;
    let ledger = PodLedger::start(cluster.server(), cluster.namespace());
    let names = create_builds(&cluster, "k", 20, 2).await?;

    // Kill points: right after creation (reconciles in flight), mid-build, while results are
    // recorded. Each restart waits for /readyz, then runs a random while before the next kill.
    let mut kills = 0;
    let started = Instant::now();
    while kills < 8 && started.elapsed() < Duration::from_secs(150) {
        tokio::time::sleep(rng.millis(200, 4000)).await;
        cluster.kill_operator();
        kills += 1;
        tokio::time::sleep(rng.millis(0, 1500)).await;
        cluster.restart_operator().await?;
    }
    eprintln!("{kills} kills in {:?}", started.elapsed());

    let builds = wait_all_final(&cluster, &names, TIMEOUT).await?;
    let summary = check_converged(&cluster, &ledger, &builds, &names).await?;
    ensure!(summary.pods_created() == 20, "{summary:?}");
    Ok(())
}

/// The Lease holder's identity.
async fn holder(cluster: &Cluster) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(cluster.client(), cluster.namespace());
    leases
        .get_opt("stratum-operator")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Two replicas with leader election: exactly one runs the controller; every build runs once;
/// SIGKILL of the leader mid-build hands over to the standby, which finishes the work and
/// builds what arrives later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_build_once_and_the_standby_takes_over() -> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        namespace: "ha".into(),
        start_operator: false,
        ..ClusterOptions::default()
    })
    .await?;
    let ledger = PodLedger::start(cluster.server(), cluster.namespace());
    let args = ["--leader-election", "--lease-namespace", "ha"];
    // The identity is the replica's POD_NAME, as in a Deployment.
    let mut replicas = [
        cluster.spawn_operator("replica-a", &args).await?,
        cluster.spawn_operator("replica-b", &args).await?,
    ];
    let result = handover(&cluster, &ledger, &mut replicas).await;
    result.with_context(|| {
        format!(
            "=== replica-a log ===\n{}\n=== replica-b log ===\n{}",
            replicas[0].logs(),
            replicas[1].logs()
        )
    })
}

async fn handover(
    cluster: &Cluster,
    ledger: &PodLedger,
    replicas: &mut [Operator; 2],
) -> anyhow::Result<()> {
    // One of them leads and becomes ready; the other stays a standby.
    let deadline = Instant::now() + Duration::from_secs(60);
    let leader = loop {
        if let Some(id) = holder(cluster).await
            && replicas.iter().any(Operator::is_ready)
        {
            break id;
        }
        ensure!(Instant::now() < deadline, "no leader within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (l, s) = if leader == "replica-a" {
        (0, 1)
    } else {
        (1, 0)
    };
    ensure!(
        replicas[l].is_ready() && !replicas[s].is_ready(),
        "exactly one replica, the Lease holder {leader}, is ready"
    );

    let mut names = create_builds(cluster, "ha", 8, 4).await?;
    // Kill the leader while builds run (some pods exist, none has finished everything).
    let deadline = Instant::now() + TIMEOUT;
    while ledger.summary().pods_created() < 3 {
        ensure!(
            Instant::now() < deadline,
            "no pods\n{}",
            cluster.diagnostics().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(
        !replicas[s].is_ready(),
        "the standby runs no controller while the leader lives"
    );
    replicas[l].kill();
    // Builds created while nobody leads wait for the new leader.
    names.extend(create_builds(cluster, "late", 4, 0).await?);

    let deadline = Instant::now() + Duration::from_secs(120);
    while !replicas[s].is_ready() {
        ensure!(
            Instant::now() < deadline && replicas[s].is_running(),
            "the standby did not take over within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new_holder = holder(cluster).await.context("Lease holder")?;
    ensure!(
        new_holder != leader,
        "the Lease still names the killed leader {leader}"
    );

    let builds = wait_all_final(cluster, &names, TIMEOUT).await?;
    check_converged(cluster, ledger, &builds, &names).await?;
    Ok(())
}

/// 500s and 429s on pod creation, 409 on status writes, 429 on watches, dropped watches and
/// forced 410 Gone (compaction) while builds run: every build converges to `Succeeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_faults_and_watch_drops_converge() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(ClusterOptions {
        namespace: "faults".into(),
        ..ClusterOptions::default()
    })
    .await?;
    let ledger = PodLedger::start(cluster.server(), cluster.namespace());
    let faults = cluster.server().faults().clone();
    // The operator's writes: pod creation (500, then 429 with Retry-After), status writes of
    // two builds (409 Conflict), and its live pod list (500). Counted, so they run out.
    faults.fail(
        Some(Verb::Create),
        "/namespaces/faults/pods",
        500,
        None,
        Some(2),
    );
    faults.fail(
        Some(Verb::Create),
        "/namespaces/faults/pods",
        429,
        Some(1),
        Some(2),
    );
    faults.fail(
        Some(Verb::Patch),
        "imagebuilds/f-1/status",
        409,
        None,
        Some(2),
    );
    faults.fail(
        Some(Verb::Patch),
        "imagebuilds/f-4/status",
        409,
        None,
        Some(1),
    );
    faults.fail(
        Some(Verb::List),
        "/namespaces/faults/pods",
        500,
        None,
        Some(2),
    );
    // Watch (re)connections of ImageBuilds are throttled once.
    faults.fail(Some(Verb::Watch), "imagebuilds", 429, Some(1), Some(1));

    let names = create_builds(&cluster, "f", 6, 2).await?;
    // While they run: drop every watch, force 410 on the next ImageBuild watch, and compact
    // the history so resumptions from an old resourceVersion get 410 Gone and relist.
    for round in 0..6 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        match round % 3 {
            0 => faults.drop_watches(""),
            1 => {
                faults.expire_next_watch("imagebuilds");
                faults.drop_watches("imagebuilds");
            }
            _ => {
                cluster.server().compact();
                faults.drop_watches("");
            }
        }
    }

    let builds = wait_all_final(&cluster, &names, TIMEOUT).await?;
    check_converged(&cluster, &ledger, &builds, &names).await?;
    // The faults reached the operator (not only the test's own requests): its error counter
    // names each failed step.
    let metrics = cluster
        .operator()
        .and_then(|o| o.metrics())
        .context("the operator's /metrics")?;
    for step in ["create_pod", "list_pods", "patch_status"] {
        ensure!(
            metrics.contains(&format!(
                "stratum_reconcile_errors_total{{reason=\"{step}\"}}"
            )),
            "no {step} error was counted: the fault did not reach the operator\n{metrics}"
        );
    }
    Ok(())
}
