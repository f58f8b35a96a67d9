//! Prints the ImageBuild CustomResourceDefinition as YAML.
//!
//! `cargo run -p stratum-crds --bin crdgen > crds/imagebuild.yaml`; a test fails when the
//! committed file differs from this output.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match stratum_crds::crd_yaml() {
        Ok(yaml) => yaml,
        Err(e) => {
            eprintln!("crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    match std::io::stdout().lock().write_all(yaml.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}
