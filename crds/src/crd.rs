//! The generated CustomResourceDefinition, as committed in `crds/imagebuild.yaml`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::ImageBuild;

/// The command that regenerates `crds/imagebuild.yaml`.
pub const REGENERATE: &str = "cargo run -p stratum-crds --bin crdgen > crds/imagebuild.yaml";

/// Why the CRD could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the ImageBuild CRD as YAML: {0}")]
pub struct RenderError(#[from] serde_saphyr::ser::Error);

/// The ImageBuild CustomResourceDefinition.
pub fn crd() -> CustomResourceDefinition {
    ImageBuild::crd()
}

/// The CRD as the YAML document committed in `crds/imagebuild.yaml`.
pub fn crd_yaml() -> Result<String, RenderError> {
    let body = serde_saphyr::to_string(&crd())?;
    Ok(format!(
        "# Generated from crds/src by `{REGENERATE}`. Do not edit.\n---\n{body}"
    ))
}

#[cfg(test)]
#[path = "crd_tests.rs"]
mod tests;
