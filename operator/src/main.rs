//! `stratum-operator`: reconciles `ImageBuild` resources into builder pods.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use clap::Parser;
use stratum_operator::config::Config;
use stratum_operator::controller;
use stratum_operator::http::{HttpState, router};
use stratum_operator::leader::{self, Elector};
use stratum_operator::metrics::Metrics;
use stratum_operator::result::RegistryVerifier;
use stratum_operator::source::builder::BuilderResolver;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_logs(&config.log_format);
    tracing::info!(
        namespaces = ?config.namespaces,
        concurrency = config.concurrency,
        builder_image = %config.builder_image,
        "starting stratum-operator {}",
        env!("CARGO_PKG_VERSION")
    );

    let client = kube::Client::try_default()
        .await
        .context("cannot configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    if config.remove_finalizers {
        let removed = controller::uninstall::remove_finalizers(&client, &config.namespaces)
            .await
            .context("cannot remove the finalizers")?;
        tracing::info!(removed, "finalizers removed; not starting the controller");
        return Ok(());
    }
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_addr))?;
    let app = router(HttpState {
        metrics: metrics.clone(),
        ready: ready.clone(),
    });
    let mut http_stop = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await
    });

    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let signal_tx = stop_tx.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight reconciles"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight reconciles"),
        }
        let _ = signal_tx.send(true);
    });

    let settings = controller::Settings {
        namespaces: config.namespaces.clone(),
        pod_config: config.pod_config(),
        concurrency: usize::try_from(config.concurrency).unwrap_or(usize::MAX),
    };
    let verifier = Arc::new(RegistryVerifier::default());
    let resolver = Arc::new(BuilderResolver::default());
    let mut lost_leadership = false;
    if config.leader_election {
        // clap requires --lease-namespace with --leader-election.
        let namespace = config.lease_namespace.clone().unwrap_or_default();
        let identity = match &config.identity {
            Some(id) => id.clone(),
            None => hostname()?,
        };
        let elector = Elector::new(client.clone(), &namespace, &identity);
        let (leading_tx, mut leading) = tokio::sync::watch::channel(false);
        let election = tokio::spawn(leader::lead(elector, leading_tx, stop_rx.clone()));
        tracing::info!(%identity, lease = %format!("{namespace}/{}", leader::LEASE_NAME), "waiting to lead");
        let mut stopped = stop_rx.clone();
        tokio::select! {
            _ = leading.wait_for(|l| *l) => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
        if *leading.borrow() {
            // The controller stops on SIGTERM or when leadership is lost.
            let (ctrl_tx, ctrl_rx) = tokio::sync::watch::channel(false);
            let mut stopped = stop_rx.clone();
            let mut still = leading.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => {}
                    _ = still.wait_for(|l| !*l) => {}
                }
                let _ = ctrl_tx.send(true);
            });
            controller::run(
                client, settings, verifier, resolver, metrics, ready, ctrl_rx,
            )
            .await;
            lost_leadership = !*leading.borrow();
        }
        let _ = stop_tx.send(true);
        let elector = election.await.context("the leader-election task failed")?;
        if !lost_leadership && let Err(e) = elector.release().await {
            tracing::warn!("cannot release the Lease: {e}");
        }
    } else {
        controller::run(
            client, settings, verifier, resolver, metrics, ready, stop_rx,
        )
        .await;
        let _ = stop_tx.send(true);
    }
    server
        .await
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")?;
    if lost_leadership {
        // Exit non-zero: the pod restarts as a standby candidate (client-go's OnStoppedLeading).
        anyhow::bail!("leadership lost; stopped the controller");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The kernel's hostname: in Kubernetes, the pod name.
fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("cannot read the hostname for the leader-election identity; set --identity")?;
    Ok(name.trim().to_owned())
}

/// JSON lines by default (log collectors); `RUST_LOG` filters, default `info`.
fn init_logs(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}
