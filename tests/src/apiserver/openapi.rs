//! OpenAPI v3 documents (`/openapi/v3` and `/openapi/v3/<api|apis/group>/<version>`), as far
//! as kubectl needs them ("OpenAPI V3" in "The Kubernetes API" docs page):
//!
//! - kubectl 1.27+ refuses to apply without an OpenAPI document (`--validate=true` default). It
//!   checks for server-side field validation by looking for a `fieldValidation` query parameter on
//!   the PATCH operation tagged with the resource's `x-kubernetes-group-version-kind`, and then
//!   sends `fieldValidation=Strict` instead of validating client-side. Every resource's PATCH
//!   operation declares `fieldValidation`, `fieldManager`, `dryRun` and `force`.
//! - `kubectl explain` reads `components.schemas`: custom resources publish their structural
//!   schema there (tagged with their GVK). Built-in types publish no schemas, so kubectl computes
//!   strategic merge patches from its compiled-in types, and `kubectl explain` works only for
//!   custom resources.

use serde_json::{Map, Value, json};

use super::resources::ResourceType;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable content hash (FNV-1a) for the `?hash=` cache key clients use.
fn hash(v: &Value) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// `GET /openapi/v3`: the index of group-version documents.
pub fn index(types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = types
        .iter()
        .map(|t| (t.group.clone(), t.version.clone()))
        .collect();
    gvs.sort();
    gvs.dedup();
    for (g, v) in gvs {
        let doc = group_version(types, &g, &v).unwrap_or(Value::Null);
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

/// Reverse-DNS schema name, as the apiserver names CRD schemas (`dev.stratum.test.v1.Widget`).
fn schema_name(t: &ResourceType) -> String {
    let mut parts: Vec<&str> = t.group.split('.').collect();
    parts.reverse();
    let prefix = if t.group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else {
        parts.join(".")
    };
    format!("{prefix}.{}.{}", t.version, t.kind)
}

/// `GET /openapi/v3/<gv path>`.
pub fn group_version(types: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let in_gv: Vec<&ResourceType> = types
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if in_gv.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    for t in in_gv {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let base = format!("/{}", gv_path(&t.group, &t.version));
        let item = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        let op = |action: &str| {
            json!({
                "operationId": format!("{action}{}", t.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [param("fieldValidation"), param("fieldManager"), param("dryRun"), param("force")],
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}));
        if let Some(schema) = &t.schema {
            let mut s = schema.0.clone();
            if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
                props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
                props.insert(
                    "metadata".into(),
                    json!({"type": "object", "description": "Standard object's metadata."}),
                );
            }
            s["x-kubernetes-group-version-kind"] = json!([gvk]);
            schemas.insert(schema_name(t), s);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;

    #[test]
    fn index_lists_every_group_version_with_a_hash() {
        let idx = index(&builtins());
        let url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(idx["paths"]["api/v1"].is_object());
    }

    #[test]
    fn patch_operations_declare_field_validation() {
        let doc = group_version(&builtins(), "apps", "v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(group_version(&builtins(), "nope", "v1").is_none());
    }
}
