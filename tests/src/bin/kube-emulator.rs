//! Standalone Kubernetes API emulator: `kube-emulator --kubeconfig PATH [--port N] [--token T]`.
//!
//! Writes a kubeconfig for kubectl / kube-rs and serves until interrupted.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use stratum_e2e::apiserver::{Config, Emulator};

#[derive(Debug, Parser)]
#[command(about = "Serve an in-memory Kubernetes API (see docs/testing.md)")]
struct Args {
    /// Where to write the kubeconfig that points at the emulator.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Loopback port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Require this static bearer token on every request.
    #[arg(long)]
    token: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let config = Config {
        token: args.token,
        ..Config::default()
    };
    let emu = Emulator::start(config, args.port)
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    emu.write_kubeconfig(&args.kubeconfig)
        .with_context(|| format!("writing {}", args.kubeconfig.display()))?;
    println!(
        "kube-emulator serving http://{} ; kubeconfig written to {}",
        emu.addr,
        args.kubeconfig.display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
