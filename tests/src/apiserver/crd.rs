//! CustomResourceDefinition registration.
//!
//! "Extend the Kubernetes API with CustomResourceDefinitions" (k8s.io docs): a CRD named
//! `<plural>.<group>` serves `/apis/<group>/<version>/[namespaces/<ns>/]<plural>` for every version
//! with `served: true`; the apiextensions controllers then set `status.acceptedNames` and the
//! `NamesAccepted` and `Established` conditions, and discovery lists the new resource. Deleting a
//! CRD deletes all its custom resources first (finalizer
//! `customresourcecleanup.apiextensions.k8s.io`).

use serde_json::{Value, json};

use super::error::{ApiError, Cause};
use super::resources::{PrinterColumn, ResourceType, TableKind};
use super::schema::Schema;

pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Validates the parts of a CRD the emulator relies on (`ValidateCustomResourceDefinition`).
pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if group.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if spec["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if name != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let scope = spec["scope"].as_str().unwrap_or_default();
    if scope != "Namespaced" && scope != "Cluster" {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            format!(
                "Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
            ),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: null: must have exactly one version marked as storage version",
        ));
    }
    if versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count()
        != 1
        && !versions.is_empty()
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let s = v.pointer("/schema/openAPIV3Schema");
        if s.is_none() {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required",
            ));
        } else if let Some(s) = s
            && s.get("type").and_then(Value::as_str) != Some("object")
        {
            causes.push(Cause::new(
                "FieldValueRequired",
                &format!("spec.versions[{i}].schema.openAPIV3Schema.type"),
                "Required value: must not be empty at the root",
            ));
        }
    }
    causes
}

/// The resource types a CRD serves (one per served version).
pub fn resource_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_owned();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default().to_owned();
    let kind = names["kind"].as_str().unwrap_or_default().to_owned();
    let singular = names["singular"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| kind.to_lowercase());
    let crd_name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"] != json!(true) {
            continue;
        }
        let schema = v
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or(json!({"type": "object"}));
        let printer_columns = v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: c["name"].as_str().unwrap_or_default().to_owned(),
                type_: c["type"].as_str().unwrap_or("string").to_owned(),
                json_path: c["jsonPath"].as_str().unwrap_or_default().to_owned(),
                description: c["description"].as_str().unwrap_or_default().to_owned(),
                priority: c["priority"].as_i64().unwrap_or(0),
            })
            .collect();
        let field_labels = v["selectableFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                f["jsonPath"]
                    .as_str()
                    .map(|p| p.trim_start_matches('.').to_owned())
            })
            .collect();
        out.push(ResourceType {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or_default().to_owned(),
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced: spec["scope"] == json!("Namespaced"),
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            status_subresource: v.pointer("/subresources/status").is_some(),
            has_generation: true,
            storage_group: group.clone(),
            storage_resource: plural.clone(),
            schema: Some(Schema(schema)),
            printer_columns,
            table: TableKind::Generic,
            field_labels,
            crd: Some(crd_name.clone()),
        });
    }
    out
}

/// What the apiextensions controllers write into a new or changed CRD's status.
pub fn established_status(crd: &Value, now: &str) -> Value {
    let names = crd["spec"]["names"].clone();
    let mut accepted = names;
    if accepted.get("singular").is_none() {
        accepted["singular"] = json!(
            crd["spec"]["names"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
        );
    }
    if accepted.get("listKind").is_none() {
        accepted["listKind"] = json!(format!(
            "{}List",
            crd["spec"]["names"]["kind"].as_str().unwrap_or_default()
        ));
    }
    let stored: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == json!(true))
        .map(|v| v["name"].clone())
        .collect();
    json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored,
    })
}

/// Rejects a CRD whose group/plural collides with a built-in resource.
pub fn check_collision(types: &[ResourceType], builtins: &[ResourceType]) -> Result<(), ApiError> {
    for t in types {
        if builtins
            .iter()
            .any(|b| b.group == t.group && b.plural == t.plural)
        {
            return Err(ApiError::bad_request(format!(
                "{}.{} collides with a built-in resource",
                t.plural, t.group
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.test.stratum.dev"},
            "spec": {"group": "test.stratum.dev", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                    "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v0", "served": false, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        })
    }

    #[test]
    fn served_versions_become_resource_types() {
        let types = resource_types(&widget_crd());
        assert_eq!(types.len(), 1);
        let t = &types[0];
        assert_eq!(
            (
                t.group.as_str(),
                t.version.as_str(),
                t.plural.as_str(),
                t.kind.as_str()
            ),
            ("test.stratum.dev", "v1", "widgets", "Widget")
        );
        assert!(t.status_subresource && t.namespaced);
        assert_eq!(t.singular, "widget");
        assert_eq!(t.printer_columns[0].json_path, ".spec.size");
        assert!(validate(&widget_crd()).is_empty());
    }

    #[test]
    fn invalid_crds_are_rejected() {
        let mut bad = widget_crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["scope"] = json!("Everywhere");
        let fields: Vec<String> = validate(&bad).into_iter().map(|c| c.field).collect();
        assert_eq!(fields, ["metadata.name", "spec.scope"]);
    }

    #[test]
    fn status_marks_established() {
        let s = established_status(&widget_crd(), "2025-01-01T00:00:00Z");
        assert_eq!(s["conditions"][1]["type"], "Established");
        assert_eq!(s["acceptedNames"]["listKind"], "WidgetList");
        assert_eq!(s["storedVersions"], json!(["v1"]));
    }
}
