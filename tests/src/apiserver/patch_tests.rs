use serde_json::{Value, json};

use super::*;

#[test]
fn merge_patch_rfc7386_examples() {
    // RFC 7386 appendix A, a selection.
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (mut target, patch, want) in cases {
        merge_patch(&mut target, &patch);
        assert_eq!(target, want, "patch {patch}");
    }
}

#[test]
fn json_patch_rfc6902_operations() {
    let doc = json!({"a": {"b": [1, 2]}, "c": "x", "t~/": 1});
    let cases: Vec<(Value, Result<Value, ()>)> = vec![
        (
            json!([{"op": "add", "path": "/a/b/1", "value": 9}]),
            Ok(json!({"a": {"b": [1, 9, 2]}, "c": "x", "t~/": 1})),
        ),
        (
            json!([{"op": "add", "path": "/a/b/-", "value": 3}]),
            Ok(json!({"a": {"b": [1, 2, 3]}, "c": "x", "t~/": 1})),
        ),
        (
            json!([{"op": "remove", "path": "/c"}]),
            Ok(json!({"a": {"b": [1, 2]}, "t~/": 1})),
        ),
        (
            json!([{"op": "remove", "path": "/t~0~1"}]),
            Ok(json!({"a": {"b": [1, 2]}, "c": "x"})),
        ),
        (
            json!([{"op": "replace", "path": "/c", "value": "y"}]),
            Ok(json!({"a": {"b": [1, 2]}, "c": "y", "t~/": 1})),
        ),
        (
            json!([{"op": "move", "from": "/c", "path": "/d"}]),
            Ok(json!({"a": {"b": [1, 2]}, "d": "x", "t~/": 1})),
        ),
        (
            json!([{"op": "copy", "from": "/c", "path": "/d"}]),
            Ok(json!({"a": {"b": [1, 2]}, "c": "x", "d": "x", "t~/": 1})),
        ),
        (
            json!([{"op": "test", "path": "/c", "value": "x"}]),
            Ok(doc.clone()),
        ),
        (json!([{"op": "test", "path": "/c", "value": "y"}]), Err(())),
        (
            json!([{"op": "replace", "path": "/missing", "value": 1}]),
            Err(()),
        ),
        (json!([{"op": "remove", "path": "/a/b/5"}]), Err(())),
        // Atomic: the first op must not stick when the second fails.
        (
            json!([{"op": "add", "path": "/z", "value": 1}, {"op": "remove", "path": "/nope"}]),
            Err(()),
        ),
    ];
    for (ops, want) in cases {
        let mut target = doc.clone();
        let got = json_patch(&mut target, &ops)
            .map(|()| target.clone())
            .map_err(|_| ());
        assert_eq!(got, want, "ops {ops}");
        if want.is_err() {
            assert_eq!(target, doc, "failed patch left the document unchanged");
        }
    }
}

#[test]
fn strategic_merge_merges_containers_by_name() {
    let mut pod = json!({"spec": {"containers": [
        {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
        {"name": "b", "image": "b:1"}
    ]}});
    let patch = json!({"spec": {"containers": [
        {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
        {"name": "c", "image": "c:1"}
    ]}});
    strategic_merge(&mut pod, &patch).unwrap();
    assert_eq!(
        pod,
        json!({"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
            {"name": "b", "image": "b:1"},
            {"name": "c", "image": "c:1"}
        ]}})
    );
}

#[test]
fn strategic_merge_directives() {
    let base = json!({
        "metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "args": ["1", "2"]}
    });
    let cases = [
        // $patch: delete on a list element
        (
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}}, "spec": {"containers": [{"name": "b"}], "args": ["1", "2"]}}),
        ),
        // $patch: replace on a map
        (
            json!({"metadata": {"labels": {"z": "3", "$patch": "replace"}}}),
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {"z": "3"}}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "args": ["1", "2"]}}),
        ),
        // finalizers merge as a set; atomic lists (args) replace
        (
            json!({"metadata": {"finalizers": ["c"]}, "spec": {"args": ["3"]}}),
            json!({"metadata": {"finalizers": ["a", "b", "c"], "labels": {"x": "1", "y": "2"}}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "args": ["3"]}}),
        ),
        // $deleteFromPrimitiveList and null deletion
        (
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"x": null}}}),
            json!({"metadata": {"finalizers": ["b"], "labels": {"y": "2"}}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "args": ["1", "2"]}}),
        ),
        // $setElementOrder reorders
        (
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}}, "spec": {"containers": [{"name": "b"}, {"name": "a"}], "args": ["1", "2"]}}),
        ),
    ];
    for (patch, want) in cases {
        let mut obj = base.clone();
        strategic_merge(&mut obj, &patch).unwrap();
        assert_eq!(obj, want, "patch {patch}");
    }
}

#[test]
fn strategic_merge_conditions_by_type_and_missing_key_is_an_error() {
    let mut obj = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    strategic_merge(&mut obj, &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Done", "status": "True"}]}})).unwrap();
    assert_eq!(
        obj["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "Done", "status": "True"}])
    );
    let err = strategic_merge(
        &mut obj,
        &json!({"status": {"conditions": [{"status": "x"}]}}),
    )
    .unwrap_err();
    assert!(
        err.0.contains("does not contain declared merge key: type"),
        "{err}"
    );
}
