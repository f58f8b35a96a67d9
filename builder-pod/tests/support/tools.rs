//! Independent readers of what the client pushed: skopeo and umoci.

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn skopeo(args: &[&str], creds: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.arg("--insecure-policy").args(args);
    if let Some(creds) = creds {
        cmd.args(["--creds", creds]);
    }
    run(&mut cmd)
}

/// `skopeo inspect --raw`: the manifest bytes as the registry serves them.
pub fn skopeo_raw_manifest(image: &str, creds: Option<&str>) -> Vec<u8> {
    skopeo(
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{image}"),
        ],
        creds,
    )
}

/// `skopeo inspect --config --raw`: the config bytes as the registry serves them.
pub fn skopeo_raw_config(image: &str, creds: Option<&str>) -> Vec<u8> {
    skopeo(
        &[
            "inspect",
            "--tls-verify=false",
            "--config",
            "--raw",
            &format!("docker://{image}"),
        ],
        creds,
    )
}

/// `skopeo inspect`: the summary JSON (its `Digest` is the manifest digest skopeo computed).
pub fn skopeo_inspect(image: &str, creds: Option<&str>) -> serde_json::Value {
    serde_json::from_slice(&skopeo(
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ],
        creds,
    ))
    .expect("skopeo JSON")
}

/// `skopeo copy docker://image oci:dir:tag`.
pub fn skopeo_copy_to_oci(image: &str, layout: &Path, tag: &str, creds: Option<&str>) {
    let dest = format!("oci:{}:{tag}", layout.display());
    let mut cmd = Command::new("skopeo");
    cmd.args(["--insecure-policy", "copy", "--src-tls-verify=false"]);
    if let Some(creds) = creds {
        cmd.args(["--src-creds", creds]);
    }
    cmd.arg(format!("docker://{image}")).arg(dest);
    run(&mut cmd);
}

/// `umoci raw unpack --image dir:tag rootfs`: applies the layers the way runc-based tools do.
pub fn umoci_raw_unpack(layout: &Path, tag: &str, rootfs: &Path) {
    run(Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(rootfs));
}
