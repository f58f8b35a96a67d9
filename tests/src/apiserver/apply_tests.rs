use serde_json::{Value, json};

use super::*;

fn req<'a>(manager: &'a str, force: bool) -> ApplyRequest<'a> {
    ApplyRequest {
        manager,
        force,
        subresource: "",
        api_version: "v1",
        now: "2025-01-01T00:00:00Z",
        schema: None,
    }
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    read_managed(obj)
        .into_iter()
        .map(|e| (e.manager, e.operation))
        .collect()
}

#[test]
fn field_set_uses_fieldsv1_shape() {
    let obj = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}, "finalizers": ["x"]},
        "spec": {"containers": [{"name": "c", "image": "i"}], "args": ["1"]}
    });
    assert_eq!(
        field_set(&obj, None),
        json!({
            "f:metadata": {"f:labels": {"f:a": {}}, "f:finalizers": {"v:\"x\"": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}, "f:args": {}}
        })
    );
}

#[test]
fn leaves_roundtrip() {
    let set = json!({"f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}}, "f:x": {}}});
    assert_eq!(from_leaves(&leaves(&set)), set);
}

#[test]
fn apply_creates_merges_and_records_manager() {
    let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    apply(
        &mut live,
        &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
        &req("mgr-a", false),
    )
    .unwrap();
    apply(
        &mut live,
        &json!({"metadata": {"name": "c"}, "data": {"b": "2"}}),
        &req("mgr-b", false),
    )
    .unwrap();
    assert_eq!(live["data"], json!({"a": "1", "b": "2"}));
    assert_eq!(
        managers(&live),
        [
            ("mgr-a".into(), "Apply".into()),
            ("mgr-b".into(), "Apply".into())
        ]
    );
}

#[test]
fn reapply_without_a_field_removes_it_unless_someone_else_owns_it() {
    let mut live = json!({"metadata": {"name": "c"}});
    apply(
        &mut live,
        &json!({"data": {"a": "1", "b": "2"}}),
        &req("m", false),
    )
    .unwrap();
    apply(&mut live, &json!({"data": {"a": "1"}}), &req("m", false)).unwrap();
    assert_eq!(live["data"], json!({"a": "1"}));

    apply(
        &mut live,
        &json!({"data": {"a": "1"}}),
        &req("other", false),
    )
    .unwrap();
    apply(&mut live, &json!({"data": {"z": "9"}}), &req("m", false)).unwrap();
    assert_eq!(
        live["data"],
        json!({"a": "1", "z": "9"}),
        "a is still owned by `other`"
    );
}

#[test]
fn conflicting_value_is_rejected_unless_forced() {
    let mut live = json!({"metadata": {"name": "c"}});
    apply(&mut live, &json!({"data": {"a": "1"}}), &req("m1", false)).unwrap();
    // Same value: shared ownership, no conflict.
    apply(&mut live, &json!({"data": {"a": "1"}}), &req("m2", false)).unwrap();
    let err = apply(&mut live, &json!({"data": {"a": "2"}}), &req("m3", false)).unwrap_err();
    assert_eq!(
        err,
        [
            Conflict {
                manager: "m1".into(),
                field: ".data.a".into()
            },
            Conflict {
                manager: "m2".into(),
                field: ".data.a".into()
            },
        ]
    );
    apply(&mut live, &json!({"data": {"a": "2"}}), &req("m3", true)).unwrap();
    assert_eq!(live["data"]["a"], "2");
    assert_eq!(
        managers(&live),
        [("m3".to_string(), "Apply".to_string())],
        "forced apply took ownership"
    );
}

#[test]
fn update_takes_ownership_of_changed_fields() {
    let mut live = json!({"metadata": {"name": "c"}});
    apply(
        &mut live,
        &json!({"data": {"a": "1", "b": "1"}}),
        &req("applier", false),
    )
    .unwrap();
    let mut updated = live.clone();
    updated["data"]["a"] = json!("edited");
    record_update(&live, &mut updated, "kubectl-edit", "", "v1", "t", None);
    let entries = read_managed(&updated);
    assert_eq!(entries[0].fields.len(), 1, "applier keeps only data.b");
    assert_eq!(entries[1].manager, "kubectl-edit");
    assert_eq!(
        render_path(entries[1].fields.iter().next().unwrap()),
        ".data.a"
    );
    let err = apply(
        &mut updated,
        &json!({"data": {"a": "1", "b": "1"}}),
        &req("applier", false),
    )
    .unwrap_err();
    assert_eq!(err[0].manager, "kubectl-edit");
}

#[test]
fn associative_lists_merge_by_key() {
    let mut live = json!({"spec": {"containers": [{"name": "a", "image": "1"}]}});
    apply(
        &mut live,
        &json!({"spec": {"containers": [{"name": "b", "image": "2"}]}}),
        &req("m", false),
    )
    .unwrap();
    assert_eq!(live["spec"]["containers"].as_array().unwrap().len(), 2);
    let crd_schema = json!({"properties": {"spec": {"properties": {"items": {
        "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
        "items": {"type": "object"}
    }}}}});
    let mut cr = json!({"spec": {"items": [{"id": 1, "v": "a"}]}});
    let r = ApplyRequest {
        schema: Some(&crd_schema),
        ..req("m", false)
    };
    apply(
        &mut cr,
        &json!({"spec": {"items": [{"id": 2, "v": "b"}]}}),
        &r,
    )
    .unwrap();
    assert_eq!(
        cr["spec"]["items"],
        json!([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    );
}
