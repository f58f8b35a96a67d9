//! Prints `docs/api.md`, the ImageBuild API reference generated from the CRD schema.
//!
//! `cargo run -p stratum-crds --bin apidoc > docs/api.md`; a test fails when the committed file
//! differs from this output.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let doc = stratum_crds::apidoc::render(&stratum_crds::crd());
    match std::io::stdout().lock().write_all(doc.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apidoc: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}
