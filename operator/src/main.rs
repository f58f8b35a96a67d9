//! `stratum-operator`: reconciles `ImageBuild` resources into builder pods.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;
use clap::Parser;
use stratum_operator::config::Config;
use stratum_operator::controller;
use stratum_operator::http::{HttpState, router};
use stratum_operator::metrics::Metrics;
use stratum_operator::result::RegistryVerifier;
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
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight reconciles"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight reconciles"),
        }
        let _ = stop_tx.send(true);
    });

    controller::run(
        client,
        controller::Settings {
            namespaces: config.namespaces.clone(),
            pod_config: config.pod_config(),
            concurrency: usize::try_from(config.concurrency).unwrap_or(usize::MAX),
        },
        Arc::new(RegistryVerifier::default()),
        metrics,
        ready,
        stop_rx,
    )
    .await;
    server
        .await
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
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
