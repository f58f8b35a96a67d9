//! A container's environment (pure): "Define Environment Variables for a Container",
//! "Expose Pod Information to Containers Through Environment Variables" (downward API field refs)
//! and `envFrom` ("Configure a Pod to Use a ConfigMap").
//!
//! Order follows the kubelet: `envFrom` sources first (each with its `prefix`), then `env` in
//! order, later entries overriding earlier ones; `$(VAR)` references to variables defined earlier
//! are expanded, `$$(VAR)` escapes.

use std::collections::BTreeMap;

use serde_json::Value;

/// Looks up a key of a Secret (`"secret"`) or ConfigMap (`"configmap"`) in the pod's namespace:
/// `Ok(None)` when the key is missing, `Err` when the object is missing.
pub trait Lookup {
    fn object(&self, kind: &str, name: &str) -> Option<BTreeMap<String, String>>;
}

/// Why a pod's environment cannot be built (`CreateContainerConfigError` in the kubelet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{kind} \"{name}\" not found")]
    MissingObject { kind: String, name: String },
    #[error("couldn't find key {key} in {kind} {name}")]
    MissingKey {
        kind: String,
        name: String,
        key: String,
    },
    #[error("unsupported fieldPath {0}")]
    FieldPath(String),
}

/// `fieldRef.fieldPath` values the downward API supports.
pub fn field_ref(pod: &Value, path: &str) -> Result<String, EnvError> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Ok(match path {
        "metadata.name" => s(&pod["metadata"]["name"]),
        "metadata.namespace" => s(&pod["metadata"]["namespace"]),
        "metadata.uid" => s(&pod["metadata"]["uid"]),
        "spec.nodeName" => s(&pod["spec"]["nodeName"]),
        "spec.serviceAccountName" => s(&pod["spec"]["serviceAccountName"]),
        "status.podIP" | "status.hostIP" => "127.0.0.1".into(),
        p if p.starts_with("metadata.labels['") || p.starts_with("metadata.annotations['") => {
            let (map, rest) = p
                .split_once("['")
                .ok_or_else(|| EnvError::FieldPath(p.into()))?;
            let key = rest
                .strip_suffix("']")
                .ok_or_else(|| EnvError::FieldPath(p.into()))?;
            let field = map.trim_start_matches("metadata.");
            s(&pod["metadata"][field][key])
        }
        "metadata.labels" | "metadata.annotations" => {
            let field = path.trim_start_matches("metadata.");
            let mut lines: Vec<String> = pod["metadata"][field]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
                .collect();
            lines.sort();
            lines.join("\n")
        }
        other => return Err(EnvError::FieldPath(other.into())),
    })
}

/// Expands `$(VAR)` with already-defined variables (`$$` escapes), as the kubelet does.
pub fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(')
            && let Some(end) = r.find(')')
        {
            let name = &r[..end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn source(
    lookup: &dyn Lookup,
    kind: &str,
    sel: &Value,
) -> Result<Option<BTreeMap<String, String>>, EnvError> {
    let name = sel["name"].as_str().unwrap_or_default();
    let optional = sel["optional"].as_bool().unwrap_or(false);
    match lookup.object(kind, name) {
        Some(m) => Ok(Some(m)),
        None if optional => Ok(None),
        None => Err(EnvError::MissingObject {
            kind: kind.into(),
            name: name.into(),
        }),
    }
}

/// The container's variables (pod-defined ones only; the runtime adds PATH and HOSTNAME).
pub fn container_env(
    pod: &Value,
    container: &Value,
    lookup: &dyn Lookup,
) -> Result<BTreeMap<String, String>, EnvError> {
    let mut env = BTreeMap::new();
    for from in container["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        for (kind, field) in [("configmap", "configMapRef"), ("secret", "secretRef")] {
            if let Some(sel) = from.get(field)
                && let Some(m) = source(lookup, kind, sel)?
            {
                for (k, v) in m {
                    env.insert(format!("{prefix}{k}"), v);
                }
            }
        }
    }
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_owned();
        let value = if let Some(v) = var.get("value").and_then(Value::as_str) {
            expand(v, &env)
        } else if let Some(vf) = var.get("valueFrom") {
            if let Some(fr) = vf.get("fieldRef") {
                field_ref(pod, fr["fieldPath"].as_str().unwrap_or_default())?
            } else if let Some((kind, sel)) = vf
                .get("secretKeyRef")
                .map(|s| ("secret", s))
                .or_else(|| vf.get("configMapKeyRef").map(|s| ("configmap", s)))
            {
                let key = sel["key"].as_str().unwrap_or_default();
                let optional = sel["optional"].as_bool().unwrap_or(false);
                match source(lookup, kind, sel)? {
                    Some(m) => match m.get(key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::MissingKey {
                                kind: kind.into(),
                                name: sel["name"].as_str().unwrap_or_default().into(),
                                key: key.into(),
                            });
                        }
                    },
                    None => continue,
                }
            } else {
                // resourceFieldRef: the emulator enforces no resources; report the limit as declared.
                String::new()
            }
        } else {
            String::new()
        };
        env.insert(name, value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Objects;
    impl Lookup for Objects {
        fn object(&self, kind: &str, name: &str) -> Option<BTreeMap<String, String>> {
            match (kind, name) {
                ("secret", "creds") => Some([("token".to_string(), "s3cret".to_string())].into()),
                ("configmap", "cfg") => Some(
                    [
                        ("A".to_string(), "1".to_string()),
                        ("B".to_string(), "2".to_string()),
                    ]
                    .into(),
                ),
                _ => None,
            }
        }
    }

    #[test]
    fn env_sources_and_order() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "x"}}, "spec": {"nodeName": "n1"}});
        let c = json!({
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {"name": "GREETING", "value": "hi $(POD) $$(POD) $(NOPE)"},
                {"name": "CFG_A", "value": "override"},
                {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": true}}},
            ]
        });
        let env = container_env(&pod, &c, &Objects).unwrap();
        assert_eq!(env["POD"], "p");
        assert_eq!(env["APP"], "x");
        assert_eq!(env["TOKEN"], "s3cret");
        assert_eq!(env["GREETING"], "hi p $(POD) $(NOPE)");
        assert_eq!(env["CFG_A"], "override");
        assert_eq!(env["CFG_B"], "2");
        assert!(!env.contains_key("MAYBE"));
    }

    #[test]
    fn missing_sources_are_errors() {
        let pod = json!({"metadata": {"name": "p"}});
        let missing = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]});
        assert_eq!(
            container_env(&pod, &missing, &Objects).unwrap_err(),
            EnvError::MissingObject {
                kind: "secret".into(),
                name: "absent".into()
            }
        );
        let no_key = json!({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope"}}}]});
        assert!(matches!(
            container_env(&pod, &no_key, &Objects).unwrap_err(),
            EnvError::MissingKey { .. }
        ));
    }
}
