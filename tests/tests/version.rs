//! `kube-emulator --version` prints the binary's name and the workspace version (issue 8, packaging).

use std::process::Command;

#[test]
fn version_is_the_workspace_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_kube-emulator"))
        .arg("--version")
        .output()
        .expect("run kube-emulator --version");
    assert!(output.status.success(), "exit status {}", output.status);
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert_eq!(
        stdout,
        concat!("kube-emulator ", env!("CARGO_PKG_VERSION"), "\n")
    );
}
