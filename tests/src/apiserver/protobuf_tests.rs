//! Golden tests: bodies captured from kubectl 1.33 generator commands, decoded and compared with
//! what `kubectl create ... --dry-run=client -o json` prints for the same command (minus empty
//! values: empty messages such as `resources: {}` or `status: {}` are dropped, which means the
//! same to the apiserver).

use serde_json::{Value, json};

use super::decode;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/protobuf/{name}.pb", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn kubectl_generator_bodies_decode_like_their_json_form() {
    let cases: Vec<(&str, Value)> = vec![
        (
            "namespace",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}}),
        ),
        (
            "serviceaccount",
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "bar"}}),
        ),
        (
            "deployment",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"app": "d"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "x", "image": "x", "ports": [{"containerPort": 80}]}]}}}}),
        ),
        (
            "rolebinding",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}),
        ),
        (
            "service-clusterip",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "labels": {"app": "svc"}},
            "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}], "selector": {"app": "svc"}, "type": "ClusterIP"}}),
        ),
        (
            "configmap",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2"}, "data": {"a": "b", "c": "d"}}),
        ),
    ];
    for (name, want) in cases {
        let got = decode(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn secrets_keep_bytes_as_base64_and_rules_as_lists() {
    let s = decode(&fixture("secret-dockerconfig")).unwrap();
    assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        s["data"][".dockerconfigjson"].as_str().unwrap(),
    )
    .unwrap();
    assert!(
        String::from_utf8(raw)
            .unwrap()
            .contains("\"username\":\"u\"")
    );
    let g = decode(&fixture("secret-generic")).unwrap();
    assert_eq!(g["data"]["k"], "dg==");
    let role = decode(&fixture("role")).unwrap();
    assert_eq!(
        role["rules"],
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
    );
    let crb = decode(&fixture("clusterrolebinding")).unwrap();
    assert_eq!(crb["subjects"][0]["kind"], "Group");
}

#[test]
fn malformed_and_unknown_bodies_are_errors() {
    assert!(decode(b"{}").is_err(), "no magic");
    assert!(decode(b"k8s\0\x0a\x05").is_err(), "truncated");
    // typeMeta for an unsupported kind
    let mut body = b"k8s\0".to_vec();
    body.extend([
        0x0a, 0x0b, 0x0a, 0x02, b'v', b'1', 0x12, 0x05, b'N', b'o', b'd', b'e', b's',
    ]);
    assert!(decode(&body).unwrap_err().contains("not supported"));
    // A non-empty field the table does not know (ConfigMap field 9).
    let mut cm = b"k8s\0".to_vec();
    cm.extend([0x0a, 0x0f, 0x0a, 0x02, b'v', b'1', 0x12, 0x09]);
    cm.extend(b"ConfigMap");
    cm.extend([0x12, 0x03, 0x4a, 0x01, b'x']);
    assert!(decode(&cm).unwrap_err().contains("field 9 of ConfigMap"));
}

/// A length-delimited protobuf field.
fn len_field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2, u8::try_from(bytes.len()).unwrap()];
    out.extend_from_slice(bytes);
    out
}

#[test]
fn delete_options_decode() {
    // What client-go sends for `Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy:
    // &background, GracePeriodSeconds: &zero})`: runtime.Unknown{typeMeta, raw}.
    let mut raw = vec![1 << 3, 0]; // gracePeriodSeconds = 0 (a pointer: kept)
    raw.extend(len_field(4, b"Background"));
    raw.extend(len_field(2, &len_field(1, b"u-1")));
    let mut type_meta = len_field(1, b"v1");
    type_meta.extend(len_field(2, b"DeleteOptions"));
    let mut body = b"k8s\0".to_vec();
    body.extend(len_field(1, &type_meta));
    body.extend(len_field(2, &raw));
    assert_eq!(
        decode(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
               "propagationPolicy": "Background", "preconditions": {"uid": "u-1"}})
    );
}
