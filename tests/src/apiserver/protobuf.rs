//! Decoding `application/vnd.kubernetes.protobuf` request bodies (pure).
//!
//! kubectl's generator commands (`kubectl create namespace|secret|configmap|serviceaccount|
//! deployment|role|rolebinding|clusterrole|clusterrolebinding|service`) send protobuf. The wire
//! format ("Kubernetes Protobuf encoding", k8s.io/docs/reference/using-api/api-concepts) is the
//! magic `k8s\0` followed by a `runtime.Unknown` {1: typeMeta {1: apiVersion, 2: kind}, 2: raw,
//! 3: contentEncoding, 4: contentType}; `raw` is the object's message from k8s.io/api's
//! `generated.proto`. The Go encoder writes zero values of non-pointer fields, which JSON omits
//! (`omitempty`); they are dropped here, except for pointer fields (`replicas: 0` stays).
//!
//! Only the messages those generators produce are known. A non-empty field the table does not
//! know is an error (415, "send JSON") rather than silently lost data.

use base64::Engine as _;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    Msg(&'static str),
    MapStr,
    MapBytes,
    /// map<string, Quantity>
    MapQuantity,
    IntOrString,
    Time,
}

/// (field number, JSON name, kind, repeated, keep zero values)
type Field = (u64, &'static str, Kind, bool, bool);

const fn f(n: u64, name: &'static str, kind: Kind) -> Field {
    (n, name, kind, false, false)
}
const fn rep(n: u64, name: &'static str, kind: Kind) -> Field {
    (n, name, kind, true, false)
}
/// A pointer field in Go: present even when zero.
const fn ptr(n: u64, name: &'static str, kind: Kind) -> Field {
    (n, name, kind, false, true)
}

use Kind::*;

/// Field tables from k8s.io/api and k8s.io/apimachinery `generated.proto` (v1.33).
const MESSAGES: &[(&str, &[Field])] = &[
    (
        "ObjectMeta",
        &[
            f(1, "name", Str),
            f(2, "generateName", Str),
            f(3, "namespace", Str),
            f(4, "selfLink", Str),
            f(5, "uid", Str),
            f(6, "resourceVersion", Str),
            f(7, "generation", Int),
            f(8, "creationTimestamp", Time),
            f(9, "deletionTimestamp", Time),
            ptr(10, "deletionGracePeriodSeconds", Int),
            f(11, "labels", MapStr),
            f(12, "annotations", MapStr),
            rep(13, "ownerReferences", Msg("OwnerReference")),
            rep(14, "finalizers", Str),
        ],
    ),
    (
        "OwnerReference",
        &[
            f(5, "apiVersion", Str),
            f(1, "kind", Str),
            f(3, "name", Str),
            f(4, "uid", Str),
            ptr(6, "controller", Bool),
            ptr(7, "blockOwnerDeletion", Bool),
        ],
    ),
    (
        "Namespace",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("NamespaceSpec")),
            f(3, "status", Msg("NamespaceStatus")),
        ],
    ),
    ("NamespaceSpec", &[rep(1, "finalizers", Str)]),
    ("NamespaceStatus", &[f(1, "phase", Str)]),
    (
        "ServiceAccount",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            rep(2, "secrets", Msg("ObjectReference")),
            rep(3, "imagePullSecrets", Msg("LocalObjectReference")),
            ptr(4, "automountServiceAccountToken", Bool),
        ],
    ),
    (
        "ObjectReference",
        &[
            f(1, "kind", Str),
            f(2, "namespace", Str),
            f(3, "name", Str),
            f(4, "uid", Str),
            f(5, "apiVersion", Str),
            f(6, "resourceVersion", Str),
            f(7, "fieldPath", Str),
        ],
    ),
    ("LocalObjectReference", &[f(1, "name", Str)]),
    (
        "ConfigMap",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "data", MapStr),
            f(3, "binaryData", MapBytes),
            ptr(4, "immutable", Bool),
        ],
    ),
    (
        "Secret",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "data", MapBytes),
            f(3, "type", Str),
            f(4, "stringData", MapStr),
            ptr(5, "immutable", Bool),
        ],
    ),
    (
        "Role",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            rep(2, "rules", Msg("PolicyRule")),
        ],
    ),
    (
        "ClusterRole",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            rep(2, "rules", Msg("PolicyRule")),
            f(3, "aggregationRule", Msg("AggregationRule")),
        ],
    ),
    (
        "AggregationRule",
        &[rep(1, "clusterRoleSelectors", Msg("LabelSelector"))],
    ),
    (
        "PolicyRule",
        &[
            rep(1, "verbs", Str),
            rep(2, "apiGroups", Str),
            rep(3, "resources", Str),
            rep(4, "resourceNames", Str),
            rep(5, "nonResourceURLs", Str),
        ],
    ),
    (
        "RoleBinding",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            rep(2, "subjects", Msg("Subject")),
            f(3, "roleRef", Msg("RoleRef")),
        ],
    ),
    (
        "ClusterRoleBinding",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            rep(2, "subjects", Msg("Subject")),
            f(3, "roleRef", Msg("RoleRef")),
        ],
    ),
    (
        "Subject",
        &[
            f(1, "kind", Str),
            f(2, "apiGroup", Str),
            f(3, "name", Str),
            f(4, "namespace", Str),
        ],
    ),
    (
        "RoleRef",
        &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)],
    ),
    (
        "Deployment",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("DeploymentSpec")),
            f(3, "status", Msg("Ignored")),
        ],
    ),
    (
        "DeploymentSpec",
        &[
            ptr(1, "replicas", Int),
            f(2, "selector", Msg("LabelSelector")),
            f(3, "template", Msg("PodTemplateSpec")),
            f(4, "strategy", Msg("DeploymentStrategy")),
            f(5, "minReadySeconds", Int),
            ptr(6, "revisionHistoryLimit", Int),
            f(7, "paused", Bool),
            ptr(9, "progressDeadlineSeconds", Int),
        ],
    ),
    (
        "DeploymentStrategy",
        &[
            f(1, "type", Str),
            f(2, "rollingUpdate", Msg("RollingUpdateDeployment")),
        ],
    ),
    (
        "RollingUpdateDeployment",
        &[
            ptr(1, "maxUnavailable", IntOrString),
            ptr(2, "maxSurge", IntOrString),
        ],
    ),
    (
        "LabelSelector",
        &[
            f(1, "matchLabels", MapStr),
            rep(2, "matchExpressions", Msg("LabelSelectorRequirement")),
        ],
    ),
    (
        "LabelSelectorRequirement",
        &[
            f(1, "key", Str),
            f(2, "operator", Str),
            rep(3, "values", Str),
        ],
    ),
    (
        "PodTemplateSpec",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("PodSpec")),
        ],
    ),
    (
        "PodSpec",
        &[
            rep(1, "volumes", Msg("Unsupported")),
            rep(2, "containers", Msg("Container")),
            f(3, "restartPolicy", Str),
            ptr(4, "terminationGracePeriodSeconds", Int),
            ptr(5, "activeDeadlineSeconds", Int),
            f(6, "dnsPolicy", Str),
            f(7, "nodeSelector", MapStr),
            f(8, "serviceAccountName", Str),
            f(9, "serviceAccount", Str),
            f(10, "nodeName", Str),
            f(11, "hostNetwork", Bool),
            f(12, "hostPID", Bool),
            f(13, "hostIPC", Bool),
            f(14, "securityContext", Msg("Unsupported")),
            rep(15, "imagePullSecrets", Msg("LocalObjectReference")),
            f(16, "hostname", Str),
            f(17, "subdomain", Str),
            f(19, "schedulerName", Str),
            rep(20, "initContainers", Msg("Container")),
            ptr(21, "automountServiceAccountToken", Bool),
            f(24, "priorityClassName", Str),
            ptr(25, "priority", Int),
            ptr(30, "enableServiceLinks", Bool),
        ],
    ),
    (
        "Container",
        &[
            f(1, "name", Str),
            f(2, "image", Str),
            rep(3, "command", Str),
            rep(4, "args", Str),
            f(5, "workingDir", Str),
            rep(6, "ports", Msg("ContainerPort")),
            rep(7, "env", Msg("EnvVar")),
            f(8, "resources", Msg("ResourceRequirements")),
            f(13, "terminationMessagePath", Str),
            f(14, "imagePullPolicy", Str),
            f(16, "stdin", Bool),
            f(17, "stdinOnce", Bool),
            f(18, "tty", Bool),
            f(20, "terminationMessagePolicy", Str),
        ],
    ),
    (
        "ContainerPort",
        &[
            f(1, "name", Str),
            f(2, "hostPort", Int),
            f(3, "containerPort", Int),
            f(4, "protocol", Str),
            f(5, "hostIP", Str),
        ],
    ),
    ("EnvVar", &[f(1, "name", Str), f(2, "value", Str)]),
    (
        "ResourceRequirements",
        &[f(1, "limits", MapQuantity), f(2, "requests", MapQuantity)],
    ),
    (
        "Service",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("ServiceSpec")),
            f(3, "status", Msg("Ignored")),
        ],
    ),
    (
        "ServiceSpec",
        &[
            rep(1, "ports", Msg("ServicePort")),
            f(2, "selector", MapStr),
            f(3, "clusterIP", Str),
            f(4, "type", Str),
            rep(5, "externalIPs", Str),
            f(7, "sessionAffinity", Str),
            f(10, "externalName", Str),
            rep(18, "clusterIPs", Str),
            ptr(17, "ipFamilyPolicy", Str),
            rep(19, "ipFamilies", Str),
        ],
    ),
    (
        "ServicePort",
        &[
            f(1, "name", Str),
            f(2, "protocol", Str),
            f(3, "port", Int),
            f(4, "targetPort", IntOrString),
            f(5, "nodePort", Int),
            ptr(6, "appProtocol", Str),
        ],
    ),
    // client-go sends delete options as protobuf too (helm uninstall deleting its release Secret).
    (
        "DeleteOptions",
        &[
            ptr(1, "gracePeriodSeconds", Int),
            f(2, "preconditions", Msg("Preconditions")),
            ptr(3, "orphanDependents", Bool),
            ptr(4, "propagationPolicy", Str),
            rep(5, "dryRun", Str),
            ptr(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool),
        ],
    ),
    (
        "Preconditions",
        &[ptr(1, "uid", Str), ptr(2, "resourceVersion", Str)],
    ),
];

/// Root messages by `kind`.
const ROOTS: &[&str] = &[
    "DeleteOptions",
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Secret",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "Deployment",
    "Service",
];

const MAGIC: &[u8] = b"k8s\0";

fn varint(b: &[u8], i: &mut usize) -> Result<u64, String> {
    let (mut r, mut shift) = (0u64, 0u32);
    loop {
        let byte = *b.get(*i).ok_or("truncated varint")?;
        *i += 1;
        if shift >= 64 {
            return Err("varint too long".into());
        }
        r |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte < 0x80 {
            return Ok(r);
        }
    }
}

/// One wire-level field: number and payload (varint value or length-delimited bytes).
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
}

fn fields(b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, wt) = (key >> 3, key & 7);
        match wt {
            0 => out.push((num, Wire::Varint(varint(b, &mut i)?))),
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).map_err(|_| "length overflow")?;
                let end = i
                    .checked_add(len)
                    .filter(|e| *e <= b.len())
                    .ok_or("truncated field")?;
                out.push((num, Wire::Len(&b[i..end])));
                i = end;
            }
            1 => i += 8,
            5 => i += 4,
            other => return Err(format!("unsupported wire type {other}")),
        }
    }
    Ok(out)
}

fn utf8(b: &[u8]) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in a string field".into())
}

fn map_entry(b: &[u8]) -> Result<(String, Option<&[u8]>), String> {
    let (mut k, mut v) = (String::new(), None);
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Len(x)) => k = utf8(x)?,
            (2, Wire::Len(x)) => v = Some(x),
            _ => {}
        }
    }
    Ok((k, v))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
    }
}

fn scalar(kind: Kind, w: &Wire<'_>) -> Result<Value, String> {
    Ok(match (kind, w) {
        (Str, Wire::Len(b)) => json!(utf8(b)?),
        // int32/int64 negative values are 10-byte two's complement varints.
        (Int, Wire::Varint(v)) => json!(*v as i64),
        (Bool, Wire::Varint(v)) => json!(*v != 0),
        (Msg(name), Wire::Len(b)) => message(name, b)?,
        (IntOrString, Wire::Len(b)) => {
            let (mut t, mut i, mut s) = (0, 0i64, String::new());
            for (n, w) in fields(b)? {
                match (n, w) {
                    (1, Wire::Varint(v)) => t = v,
                    (2, Wire::Varint(v)) => i = v as i64,
                    (3, Wire::Len(x)) => s = utf8(x)?,
                    _ => {}
                }
            }
            if t == 1 { json!(s) } else { json!(i) }
        }
        (Time, Wire::Len(b)) => {
            let mut secs = 0i64;
            for (n, w) in fields(b)? {
                if let (1, Wire::Varint(v)) = (n, w) {
                    secs = v as i64;
                }
            }
            if secs == 0 {
                Value::Null
            } else {
                k8s_openapi::jiff::Timestamp::from_second(secs)
                    .map(|t| json!(super::meta::format_time(t)))
                    .map_err(|e| e.to_string())?
            }
        }
        _ => return Err(format!("wire type does not match field kind {kind:?}")),
    })
}

fn message(name: &str, b: &[u8]) -> Result<Value, String> {
    if name == "Ignored" {
        return Ok(Value::Null);
    }
    let table = MESSAGES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
    let mut out = Map::new();
    for (num, w) in fields(b)? {
        let Some(&(_, json_name, kind, repeated, keep)) =
            table.and_then(|t| t.iter().find(|fd| fd.0 == num))
        else {
            let empty = matches!(w, Wire::Varint(0)) || matches!(w, Wire::Len(x) if x.is_empty());
            if empty {
                continue;
            }
            return Err(format!(
                "protobuf field {num} of {name} is not supported by the emulator"
            ));
        };
        match kind {
            MapStr | MapBytes | MapQuantity => {
                let Wire::Len(entry) = w else {
                    return Err(format!("map field {json_name} is not length-delimited"));
                };
                let (k, v) = map_entry(entry)?;
                let v = v.unwrap_or_default();
                let value = match kind {
                    MapStr => json!(utf8(v)?),
                    MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(v)),
                    _ => {
                        let q = fields(v)?.into_iter().find_map(|(n, w)| match (n, w) {
                            (1, Wire::Len(x)) => Some(x),
                            _ => None,
                        });
                        json!(utf8(q.unwrap_or_default())?)
                    }
                };
                out.entry(json_name).or_insert_with(|| json!({}))[k] = value;
            }
            _ => {
                let v = scalar(kind, &w)?;
                if repeated {
                    let arr = out.entry(json_name).or_insert_with(|| json!([]));
                    if let Value::Array(a) = arr {
                        a.push(v);
                    }
                } else if keep || !is_zero(&v) {
                    out.insert(json_name.to_owned(), v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf request body into its JSON form (with `apiVersion` and `kind`).
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("missing the k8s protobuf magic prefix")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (n, w) in fields(rest)? {
        match (n, w) {
            (1, Wire::Len(tm)) => {
                for (n2, w2) in fields(tm)? {
                    match (n2, w2) {
                        (1, Wire::Len(x)) => api_version = utf8(x)?,
                        (2, Wire::Len(x)) => kind = utf8(x)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(x)) => raw = Some(x),
            (3, Wire::Len(x)) if !x.is_empty() => {
                return Err("content-encoded protobuf is not supported".into());
            }
            _ => {}
        }
    }
    if !ROOTS.contains(&kind.as_str()) {
        return Err(format!(
            "protobuf bodies for kind {kind:?} are not supported by the emulator"
        ));
    }
    let mut obj = message(&kind, raw.unwrap_or_default())?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
#[path = "protobuf_tests.rs"]
mod tests;
