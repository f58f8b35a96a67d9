//! Test fixtures shared by the emulator's tests: a small generic CRD (`Widget`,
//! `widgets.test.stratum.dev`) independent of Stratum's own CRDs.

use kube::api::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// The Widget CRD manifest (YAML), also applied with real kubectl.
pub const WIDGET_CRD_YAML: &str = include_str!("../fixtures/widget-crd.yaml");

/// Path of the Widget CRD manifest on disk.
pub fn widget_crd_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/widget-crd.yaml")
}

/// The Widget CRD as JSON.
pub fn widget_crd() -> Value {
    serde_saphyr::from_str(WIDGET_CRD_YAML).expect("fixtures/widget-crd.yaml is valid YAML")
}

/// The `ApiResource` for `Api<DynamicObject>` access to widgets.
pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.stratum.dev", "v1", "Widget"),
        "widgets",
    )
}
