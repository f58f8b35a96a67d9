//! Built-in types: decoding through the k8s-openapi structs, defaulting and validation.
//!
//! The real apiserver decodes a request body into the Go type, which silently drops unknown
//! fields (reported as warnings, or as a 400 `strict decoding error` with
//! `fieldValidation=Strict`, see "Field validation" in the API concepts) and rejects wrongly typed
//! values with 400 BadRequest. Round-tripping through k8s-openapi's generated structs (v1_33)
//! reproduces both.

use k8s_openapi::api::{apps, coordination, core::v1 as core, events, networking, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::error::{ApiError, Cause};
use super::resources::ResourceType;

fn roundtrip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Decodes a built-in object, returning the decoded form and the paths of dropped unknown fields.
pub fn decode(rt: &ResourceType, body: &Value) -> Result<(Value, Vec<String>), ApiError> {
    let decoded = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => roundtrip::<core::Pod>(body),
        ("", "namespaces") => roundtrip::<core::Namespace>(body),
        ("", "secrets") => roundtrip::<core::Secret>(body),
        ("", "configmaps") => roundtrip::<core::ConfigMap>(body),
        ("", "serviceaccounts") => roundtrip::<core::ServiceAccount>(body),
        ("", "services") => roundtrip::<core::Service>(body),
        ("", "nodes") => roundtrip::<core::Node>(body),
        ("", "events") => roundtrip::<core::Event>(body),
        ("events.k8s.io", "events") => roundtrip::<events::v1::Event>(body),
        ("coordination.k8s.io", "leases") => roundtrip::<coordination::v1::Lease>(body),
        ("apps", "deployments") => roundtrip::<apps::v1::Deployment>(body),
        ("networking.k8s.io", "networkpolicies") => {
            roundtrip::<networking::v1::NetworkPolicy>(body)
        }
        ("rbac.authorization.k8s.io", "roles") => roundtrip::<rbac::v1::Role>(body),
        ("rbac.authorization.k8s.io", "rolebindings") => roundtrip::<rbac::v1::RoleBinding>(body),
        ("rbac.authorization.k8s.io", "clusterroles") => roundtrip::<rbac::v1::ClusterRole>(body),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            roundtrip::<rbac::v1::ClusterRoleBinding>(body)
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            roundtrip::<apiext::CustomResourceDefinition>(body)
        }
        _ => Ok(body.clone()),
    }
    .map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        ))
    })?;
    let mut unknown = Vec::new();
    dropped_fields(body, &decoded, "", &mut unknown);
    Ok((decoded, unknown))
}

/// Paths present (non-null) in `input` but absent from `decoded`.
fn dropped_fields(input: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(i), Value::Object(d)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match d.get(k) {
                    Some(dv) => dropped_fields(v, dv, &p, out),
                    None if v.is_null() || is_empty(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(d)) => {
            for (n, (iv, dv)) in i.iter().zip(d).enumerate() {
                dropped_fields(iv, dv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Go's `omitempty` drops empty strings, maps and lists; those are not unknown fields.
fn is_empty(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.is_empty())
        || matches!(v, Value::Array(a) if a.is_empty())
        || matches!(v, Value::Object(o) if o.is_empty())
        || v == &json!(false)
        || v == &json!(0)
}

/// events.k8s.io/v1 → core/v1 storage shape (`k8s.io/kubernetes/pkg/apis/events/v1` conversion).
pub fn event_to_core(v: &Value) -> Value {
    let mut out = v.clone();
    let o = out.as_object_mut().expect("decoded events are objects");
    let renames = [
        ("regarding", "involvedObject"),
        ("note", "message"),
        ("deprecatedSource", "source"),
        ("deprecatedFirstTimestamp", "firstTimestamp"),
        ("deprecatedLastTimestamp", "lastTimestamp"),
        ("deprecatedCount", "count"),
        ("reportingController", "reportingComponent"),
    ];
    for (from, to) in renames {
        if let Some(x) = o.remove(from) {
            o.insert(to.into(), x);
        }
    }
    o.insert("apiVersion".into(), json!("v1"));
    out
}

/// core/v1 storage shape → events.k8s.io/v1.
pub fn event_from_core(v: &Value) -> Value {
    let mut out = v.clone();
    let o = out.as_object_mut().expect("stored events are objects");
    let renames = [
        ("involvedObject", "regarding"),
        ("message", "note"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
        ("reportingComponent", "reportingController"),
    ];
    for (from, to) in renames {
        if let Some(x) = o.remove(from) {
            o.insert(to.into(), x);
        }
    }
    o.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out
}

/// Create-time defaulting of built-ins (`pkg/apis/core/v1/defaults.go` for the fields our
/// components read back; `PrepareForCreate` resets pod status to Pending).
pub fn default_on_create(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => default_pod(obj),
        ("", "namespaces") => {
            let name = obj["metadata"]["name"].clone();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "secrets") if obj.get("type").is_none() => obj["type"] = json!("Opaque"),
        ("apps", "deployments") => {
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("replicas", json!(1)),
                ("revisionHistoryLimit", json!(10)),
                ("progressDeadlineSeconds", json!(600)),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            if spec.get("strategy").is_none() {
                spec["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            }
            if let Some(tpl) = spec.get_mut("template") {
                default_pod(tpl);
                if let Some(t) = tpl.as_object_mut() {
                    t.remove("status");
                }
            }
            obj["status"] = json!({});
        }
        _ => {}
    }
    secret_string_data(obj, rt);
}

/// `stringData` is write-only: merged into `data` base64-encoded (Secret API reference).
fn secret_string_data(obj: &mut Value, rt: &ResourceType) {
    use base64::Engine as _;
    if !(rt.group.is_empty() && rt.plural == "secrets") {
        return;
    }
    if let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|o| o.remove("stringData")) {
        for (k, v) in sd {
            let enc =
                base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or_default());
            obj["data"][k] = json!(enc);
        }
    }
}

/// Secret `stringData` on updates too.
pub fn default_on_update(rt: &ResourceType, obj: &mut Value) {
    secret_string_data(obj, rt);
}

fn default_pod(pod: &mut Value) {
    let spec = &mut pod["spec"];
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
        ("serviceAccountName", json!("default")),
    ] {
        if spec.get(k).is_none() {
            spec[k] = v;
        }
    }
    for list in ["initContainers", "containers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs {
                let image = c["image"].as_str().unwrap_or_default().to_owned();
                let last = image.rsplit('/').next().unwrap_or_default();
                let tagged = last.contains(':') && !last.ends_with(":latest");
                let policy = if image.contains('@') || tagged {
                    "IfNotPresent"
                } else {
                    "Always"
                };
                for (k, v) in [
                    ("terminationMessagePath", json!("/dev/termination-log")),
                    ("terminationMessagePolicy", json!("File")),
                    ("imagePullPolicy", json!(policy)),
                ] {
                    if c.get(k).is_none() {
                        c[k] = v;
                    }
                }
            }
        }
    }
    pod["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
}

/// Type-specific validation (`pkg/apis/core/validation`) for the rules our components can break.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    if rt.group.is_empty() && rt.plural == "pods" {
        let containers = obj.pointer("/spec/containers").and_then(Value::as_array);
        if containers.is_none_or(|c| c.is_empty()) {
            causes.push(Cause::new(
                "FieldValueRequired",
                "spec.containers",
                "Required value",
            ));
        }
        for (i, c) in containers.into_iter().flatten().enumerate() {
            if c.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    &format!("spec.containers[{i}].name"),
                    "Required value",
                ));
            }
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    &format!("spec.containers[{i}].image"),
                    "Required value",
                ));
            }
        }
        if let Some(old) = old {
            causes.extend(pod_spec_immutability(old, obj));
        }
    }
    causes
}

/// "Pod updates may not change fields other than spec.containers[*].image,
/// spec.initContainers[*].image, spec.activeDeadlineSeconds, spec.tolerations (only additions to
/// existing tolerations), spec.terminationGracePeriodSeconds" (ValidatePodUpdate).
fn pod_spec_immutability(old: &Value, new: &Value) -> Option<Cause> {
    let strip = |pod: &Value| {
        let mut spec = pod.get("spec").cloned().unwrap_or(Value::Null);
        for list in ["containers", "initContainers"] {
            if let Some(Value::Array(cs)) = spec.get_mut(list) {
                for c in cs {
                    if let Some(o) = c.as_object_mut() {
                        o.remove("image");
                    }
                }
            }
        }
        if let Some(o) = spec.as_object_mut() {
            for k in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
            ] {
                o.remove(k);
            }
        }
        spec
    };
    (strip(old) != strip(new)).then(|| {
        Cause::new(
            "FieldValueForbidden",
            "spec",
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::builtins;

    fn rt(plural: &str) -> ResourceType {
        builtins()
            .into_iter()
            .find(|r| r.plural == plural && r.group.is_empty())
            .unwrap()
    }

    #[test]
    fn decode_drops_unknown_fields_and_rejects_bad_types() {
        let (v, unknown) = decode(
            &rt("configmaps"),
            &json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "bogus": 1}),
        )
        .unwrap();
        assert_eq!(unknown, ["bogus"]);
        assert!(v.get("bogus").is_none());
        let err = decode(
            &rt("configmaps"),
            &json!({"metadata": {"name": "c"}, "data": {"a": 1}}),
        )
        .unwrap_err();
        assert_eq!(err.code, 400);
    }

    #[test]
    fn events_convert_both_ways() {
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "regarding": {"name": "x"}, "note": "hi", "reportingController": "c"});
        let core = event_to_core(&ev);
        assert_eq!(core["involvedObject"]["name"], "x");
        assert_eq!(core["message"], "hi");
        assert_eq!(event_from_core(&core), ev);
    }

    #[test]
    fn pod_defaults_and_immutability() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        default_on_create(&rt("pods"), &mut pod);
        assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["status"]["phase"], "Pending");
        let mut changed = pod.clone();
        changed["spec"]["containers"][0]["image"] = json!("busybox:2");
        assert!(validate(&rt("pods"), &changed, Some(&pod)).is_empty());
        changed["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            validate(&rt("pods"), &changed, Some(&pod))[0].reason,
            "FieldValueForbidden"
        );
    }
}
