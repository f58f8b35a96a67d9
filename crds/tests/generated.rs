//! The committed generated files match what the code generates now.

use std::path::Path;

fn committed(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn crd_yaml_is_current() {
    let generated = stratum_crds::crd_yaml().unwrap();
    assert!(
        committed("imagebuild.yaml") == generated,
        "crds/imagebuild.yaml is stale: run `{}`",
        stratum_crds::crd::REGENERATE
    );
}

#[test]
fn api_reference_is_current() {
    let generated = stratum_crds::apidoc::render(&stratum_crds::crd());
    assert!(
        committed("../docs/api.md") == generated,
        "docs/api.md is stale: run `{}`",
        stratum_crds::apidoc::REGENERATE
    );
}
