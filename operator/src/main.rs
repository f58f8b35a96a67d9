//! `stratum-operator`: reconciles `ImageBuild` resources into builder pods.

use clap::Parser;

/// The Stratum operator. Reconciliation arrives with the ImageBuild API issue; today the binary
/// only answers `--help` and `--version` and refuses to run, so nobody mistakes it for a working
/// controller.
#[derive(Debug, Parser)]
#[command(name = "stratum-operator", version, about)]
struct Args {}

fn main() -> std::process::ExitCode {
    let _args = Args::parse();
    eprintln!("stratum-operator: the reconciler is not implemented yet (see docs/architecture.md)");
    std::process::ExitCode::from(2)
}
