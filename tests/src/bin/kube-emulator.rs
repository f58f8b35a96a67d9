//! Standalone Kubernetes emulator:
//! `kube-emulator --kubeconfig PATH [--port N] [--token T] [--kubelet --image REF=BINARY[=ENTRYPOINT]...]`.
//!
//! Writes a kubeconfig for kubectl / kube-rs and serves until interrupted. With `--kubelet`, a
//! kubelet emulator schedules pods onto node `emulator-node` and runs them as local processes;
//! each `--image` maps an image (reference or repository) to a host binary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Parser;
use stratum_e2e::apiserver::{ApiServer, Config, Emulator, MemoryLogs};
use stratum_e2e::kubelet::{ImageMap, Kubelet, KubeletConfig};

#[derive(Debug, Parser)]
#[command(
    name = "kube-emulator",
    version,
    about = "Serve an in-memory Kubernetes API (see docs/testing.md)"
)]
struct Args {
    /// Where to write the kubeconfig that points at the emulator.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Loopback port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Require this static bearer token on every request (kubectl sends none over plain http).
    #[arg(long)]
    token: Option<String>,
    /// Also run a kubelet emulator (node `emulator-node`).
    #[arg(long)]
    kubelet: bool,
    /// Image mapping for the kubelet: REF=BINARY or REF=BINARY=ENTRYPOINT_PATH_IN_IMAGE.
    #[arg(long = "image", value_name = "REF=BINARY[=ENTRYPOINT]")]
    images: Vec<String>,
    /// Directory for pod volumes (default: a temporary directory).
    #[arg(long)]
    kubelet_root: Option<PathBuf>,
}

fn parse_images(specs: &[String]) -> anyhow::Result<ImageMap> {
    let mut map = ImageMap::default();
    for spec in specs {
        let parts: Vec<&str> = spec.splitn(3, '=').collect();
        match parts.as_slice() {
            [image, binary] => map = map.with(image, *binary, None),
            [image, binary, entrypoint] => map = map.with(image, *binary, Some(entrypoint)),
            _ => bail!("--image {spec:?}: expected REF=BINARY or REF=BINARY=ENTRYPOINT"),
        }
    }
    Ok(map)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let images = parse_images(&args.images)?;
    let config = Config {
        token: args.token.clone(),
        ..Config::default()
    };
    let logs = MemoryLogs::default();
    let server = ApiServer::with_logs(config, Arc::new(logs.clone()));
    let emu = Emulator::serve(server.clone(), args.port)
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    emu.write_kubeconfig(&args.kubeconfig)
        .with_context(|| format!("writing {}", args.kubeconfig.display()))?;
    let _tmp;
    let _kubelet = if args.kubelet {
        let root = match &args.kubelet_root {
            Some(r) => r.clone(),
            None => {
                let t =
                    tempfile::tempdir().context("creating the kubelet's temporary directory")?;
                let p = t.path().to_path_buf();
                _tmp = t;
                p
            }
        };
        let cfg = KubeletConfig {
            node_name: "emulator-node".into(),
            images,
            root,
        };
        Some(
            Kubelet::start(server, logs, cfg)
                .await
                .context("starting the kubelet emulator")?,
        )
    } else {
        None
    };
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
