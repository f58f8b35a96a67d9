use serde_json::json;

use super::Schema;

fn widget_schema() -> Schema {
    Schema(json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {
                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                    "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                    "port": {"x-kubernetes-int-or-string": true},
                    "note": {"type": "string", "nullable": true},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2, "x-kubernetes-list-type": "set"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": true,
                        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}
                    },
                    "nested": {"type": "object", "default": {}, "properties": {"level": {"type": "integer", "default": 3}}}
                }
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
        }
    }))
}

#[test]
fn prune_drops_unknown_fields_and_reports_them() {
    let mut obj = json!({
        "apiVersion": "test.stratum.dev/v1", "kind": "Widget",
        "metadata": {"name": "w", "bogusMeta": 1},
        "spec": {"size": 2, "unknown": true, "extra": {"anything": [1]}, "labels": {"a": "b"}},
        "status": {"phase": "Done", "notInSchema": "x"},
        "topLevel": 1
    });
    let mut pruned = widget_schema().normalize(&mut obj);
    pruned.sort();
    assert_eq!(
        pruned,
        [
            "metadata.bogusMeta",
            "spec.unknown",
            "status.notInSchema",
            "topLevel"
        ]
    );
    assert_eq!(obj["status"], json!({"phase": "Done"}));
    assert_eq!(
        obj["spec"]["extra"],
        json!({"anything": [1]}),
        "preserve-unknown-fields keeps data"
    );
    assert_eq!(obj["metadata"], json!({"name": "w"}));
}

#[test]
fn embedded_resource_keeps_type_meta_and_prunes_inside() {
    let mut obj = json!({"spec": {"size": 1, "template": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1},
        "spec": {"a": "x", "b": "y"}
    }}});
    let pruned = widget_schema().normalize(&mut obj);
    assert_eq!(
        pruned,
        ["spec.template.metadata.junk", "spec.template.spec.b"]
    );
    assert_eq!(obj["spec"]["template"]["kind"], "Pod");
}

#[test]
fn defaults_fill_absent_fields_recursively() {
    let mut obj = json!({"spec": {"size": 1}});
    widget_schema().normalize(&mut obj);
    assert_eq!(obj["spec"]["color"], "red");
    assert_eq!(obj["spec"]["nested"], json!({"level": 3}));
    let mut explicit = json!({"spec": {"size": 1, "color": "blue", "nested": {"level": 1}}});
    widget_schema().normalize(&mut explicit);
    assert_eq!(explicit["spec"]["color"], "blue");
    assert_eq!(explicit["spec"]["nested"]["level"], 1);
}

#[test]
fn nulls_are_dropped_unless_nullable_then_defaulted() {
    let mut obj = json!({"spec": {"size": 1, "color": null, "note": null}});
    widget_schema().normalize(&mut obj);
    assert_eq!(
        obj["spec"]["color"], "red",
        "null is pruned, then the default applies"
    );
    assert!(obj["spec"].as_object().unwrap().contains_key("note"));
    assert!(widget_schema().validate(&obj).is_empty());
}

#[test]
fn validation_table() {
    // (spec, expected (field, reason) pairs)
    let cases: Vec<(serde_json::Value, Vec<(&str, &str)>)> = vec![
        (json!({"size": 5}), vec![]),
        (json!({}), vec![("spec.size", "FieldValueRequired")]),
        (
            json!({"size": "5"}),
            vec![("spec.size", "FieldValueTypeInvalid")],
        ),
        (json!({"size": 0}), vec![("spec.size", "FieldValueInvalid")]),
        (
            json!({"size": 11}),
            vec![("spec.size", "FieldValueInvalid")],
        ),
        (
            json!({"size": 1.5}),
            vec![("spec.size", "FieldValueTypeInvalid")],
        ),
        (
            json!({"size": 1, "color": "green"}),
            vec![("spec.color", "FieldValueNotSupported")],
        ),
        (
            json!({"size": 1, "name": "toolong"}),
            vec![("spec.name", "FieldValueTooLong")],
        ),
        (
            json!({"size": 1, "name": "AB"}),
            vec![("spec.name", "FieldValueInvalid")],
        ),
        (json!({"size": 1, "port": 80}), vec![]),
        (json!({"size": 1, "port": "http"}), vec![]),
        (
            json!({"size": 1, "port": true}),
            vec![("spec.port", "FieldValueTypeInvalid")],
        ),
        (
            json!({"size": 1, "tags": ["a", "b", "c"]}),
            vec![("spec.tags", "FieldValueTooMany")],
        ),
        (
            json!({"size": 1, "tags": ["a", "a"]}),
            vec![("spec.tags[1]", "FieldValueDuplicate")],
        ),
        (
            json!({"size": 1, "labels": {"a": 1}}),
            vec![("spec.labels.a", "FieldValueTypeInvalid")],
        ),
        (
            json!({"size": 1, "template": {"spec": {}}}),
            vec![
                ("spec.template.apiVersion", "FieldValueRequired"),
                ("spec.template.kind", "FieldValueRequired"),
            ],
        ),
    ];
    for (spec, want) in cases {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec});
        let schema = widget_schema();
        schema.normalize(&mut obj);
        let got: Vec<(String, String)> = schema
            .validate(&obj)
            .into_iter()
            .map(|c| (c.field, c.reason))
            .collect();
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(f, r)| (f.to_string(), r.to_string()))
            .collect();
        assert_eq!(got, want, "spec {spec}");
    }
}

#[test]
fn one_of_and_any_of() {
    let s = Schema(json!({"type": "object", "properties": {"v": {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "oneOf": [{"required": ["a"]}, {"required": ["b"]}]
    }}}));
    assert!(s.validate(&json!({"v": {"a": "x"}})).is_empty());
    assert_eq!(s.validate(&json!({"v": {"a": "x", "b": "y"}})).len(), 1);
    assert_eq!(s.validate(&json!({"v": {}})).len(), 1);
}

#[test]
fn cel_rules_and_transition_rules() {
    let s = Schema(
        json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "source": {"type": "object", "properties": {"git": {"type": "string"}, "url": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "[has(self.git), has(self.url)].filter(x, x).size() == 1", "message": "exactly one source"}]},
            "serial": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "serial is immutable"}]}
        }}}}),
    );
    let obj = |spec: serde_json::Value| json!({"spec": spec});
    assert!(
        s.validate_cel(&obj(json!({"source": {"git": "g"}})), None)
            .is_empty()
    );
    let both = s.validate_cel(&obj(json!({"source": {"git": "g", "url": "u"}})), None);
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].field, "spec.source");
    assert!(
        both[0].message.contains("exactly one source"),
        "{}",
        both[0].message
    );
    assert_eq!(s.validate_cel(&obj(json!({"source": {}})), None).len(), 1);
    // Transition rules only run on updates.
    assert!(
        s.validate_cel(&obj(json!({"serial": "a"})), None)
            .is_empty()
    );
    assert!(
        s.validate_cel(
            &obj(json!({"serial": "a"})),
            Some(&obj(json!({"serial": "a"})))
        )
        .is_empty()
    );
    let changed = s.validate_cel(
        &obj(json!({"serial": "b"})),
        Some(&obj(json!({"serial": "a"}))),
    );
    assert_eq!(changed.len(), 1);
    assert!(changed[0].message.contains("serial is immutable"));
}
