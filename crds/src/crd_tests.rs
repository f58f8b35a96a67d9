//! The generated CRD is one a real apiserver accepts: a structural schema, CEL rules that compile
//! within the cost budget, printer columns that point at real fields.

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_cel::{CompiledSchema, ScopeContext, analyze_rule, compile_schema};
use serde_json::Value;

use super::*;
use crate::validate::schema_check::crd_schema;

#[test]
fn names_scope_and_subresources() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("imagebuilds.stratum.dev")
    );
    assert_eq!(crd.spec.group, crate::GROUP);
    assert_eq!(crd.spec.scope, "Namespaced");
    let names = &crd.spec.names;
    assert_eq!(
        (names.kind.as_str(), names.plural.as_str()),
        ("ImageBuild", "imagebuilds")
    );
    assert_eq!(names.short_names.as_deref(), Some(&["ib".to_owned()][..]));
    assert_eq!(
        names.categories.as_deref(),
        Some(&["stratum".to_owned()][..])
    );
    let [version] = &crd.spec.versions[..] else {
        panic!("one version")
    };
    assert_eq!(version.name, crate::VERSION);
    assert!(version.served && version.storage);
    let subresources = version.subresources.as_ref().unwrap();
    assert!(subresources.status.is_some() && subresources.scale.is_none());
}

/// The rules of a structural schema (Kubernetes "Specifying a structural schema"), checked on
/// every node, plus what the apiserver additionally refuses in CRDs.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let mut problem = |what: &str| problems.push(format!("{path}: {what}"));
    let Some(obj) = node.as_object() else {
        problem("is not an object");
        return;
    };
    for forbidden in [
        "$ref",
        "definitions",
        "$defs",
        "$schema",
        "oneOf",
        "anyOf",
        "allOf",
        "not",
        "uniqueItems",
    ] {
        if obj.contains_key(forbidden) {
            problem(&format!("uses {forbidden}"));
        }
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let ty = obj.get("type").and_then(Value::as_str);
    match ty {
        Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
        None if int_or_string || preserve => {}
        other => problem(&format!("has type {other:?}")),
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        problem("has both properties and additionalProperties");
    }
    if ty == Some("array") && !obj.contains_key("items") {
        problem("is an array without items");
    }
    if let Some(required) = obj.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if obj.get("properties").and_then(|p| p.get(name)).is_none() {
                problem(&format!("requires undeclared {name}"));
            }
        }
    }
    match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let items = &obj["items"];
            let required: Vec<&str> = items["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let keys = obj
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array);
            for key in keys.into_iter().flatten().filter_map(Value::as_str) {
                let key_schema = &items["properties"][key];
                let scalar = matches!(key_schema["type"].as_str(), Some("string" | "integer"));
                if !scalar || !(required.contains(&key) || key_schema.get("default").is_some()) {
                    problem(&format!(
                        "list-map key {key} must be a required or defaulted scalar"
                    ));
                }
            }
        }
        Some("set") if obj["items"].get("properties").is_some() => {
            problem("a set's items must be scalars");
        }
        Some("set") | None => {}
        Some(other) => problem(&format!("unknown list type {other}")),
    }
    if let Some(default) = obj.get("default") {
        let fits = match ty {
            Some("string") => default.is_string(),
            Some("boolean") => default.is_boolean(),
            Some("integer") => default.is_i64(),
            _ => true,
        };
        let pattern_ok = obj
            .get("pattern")
            .and_then(Value::as_str)
            .zip(default.as_str())
            .is_none_or(|(p, d)| regex::Regex::new(p).unwrap().is_match(d));
        let enum_ok = obj
            .get("enum")
            .and_then(Value::as_array)
            .is_none_or(|values| values.contains(default));
        if !fits || !pattern_ok || !enum_ok {
            problem(&format!(
                "default {default} does not validate against the field"
            ));
        }
    }
    if let Some(pattern) = obj.get("pattern").and_then(Value::as_str)
        && regex::Regex::new(pattern).is_err()
    {
        problem("has a pattern that does not compile");
    }
    for (name, child) in obj
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        check_structural(child, &format!("{path}.{name}"), problems);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = obj.get(key).filter(|c| c.is_object()) {
            check_structural(child, &format!("{path}[{key}]"), problems);
        }
    }
}

#[test]
fn the_schema_is_structural() {
    let schema = crd_schema();
    let mut problems = Vec::new();
    check_structural(&schema, "", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");
    let top: BTreeSet<_> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        top,
        BTreeSet::from(["spec".to_owned(), "status".to_owned()])
    );
    assert_eq!(schema["required"], serde_json::json!(["spec"]));
}

fn each_rule(node: &CompiledSchema, f: &mut impl FnMut(&CompiledSchema, &str)) {
    for compiled in node.validations.iter().flatten() {
        f(node, &compiled.rule.rule);
    }
    for child in node.properties.values() {
        each_rule(child, f);
    }
    for child in node.items.iter().chain(node.additional_properties.iter()) {
        each_rule(child, f);
    }
}

fn compile_errors(node: &CompiledSchema, errors: &mut Vec<String>) {
    errors.extend(node.compilation_errors().iter().map(|e| format!("{e:?}")));
    for child in node.properties.values() {
        compile_errors(child, errors);
    }
    for child in node.items.iter().chain(node.additional_properties.iter()) {
        compile_errors(child, errors);
    }
}

/// A CEL rule that does not compile, references a variable CRDs do not have, or may exceed the
/// cost budget makes the apiserver refuse the whole CRD.
#[test]
fn cel_rules_compile_within_budget_and_match_cel_all() {
    let compiled = compile_schema(&crd_schema());
    let mut errors = Vec::new();
    compile_errors(&compiled, &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");

    let mut in_schema = BTreeSet::new();
    each_rule(&compiled, &mut |node, rule| {
        in_schema.insert(rule.to_owned());
        let warnings: Vec<_> = analyze_rule(rule, node, ScopeContext::CrdValidation)
            .into_iter()
            .filter(|w| !binds_comprehension_variable(rule, &w.message))
            .collect();
        assert!(warnings.is_empty(), "{rule}: {warnings:?}");
    });
    let declared: BTreeSet<_> = crate::cel::ALL.iter().map(|r| r.rule.to_owned()).collect();
    assert_eq!(
        in_schema, declared,
        "the schema's rules and cel::ALL differ"
    );
}

/// kube-cel 0.8's scope analysis reports the variable a macro binds (`k` in `self.all(k, …)`) as
/// out of scope; such a warning is dropped when the rule binds that name.
fn binds_comprehension_variable(rule: &str, warning: &str) -> bool {
    let Some(name) = warning
        .strip_prefix("variable '")
        .and_then(|w| w.split('\'').next())
    else {
        return false;
    };
    ["all", "exists", "exists_one", "map", "filter"]
        .iter()
        .any(|m| rule.contains(&format!(".{m}({name},")))
}

/// Every printer column reads a field the schema declares (an apiserver prints `<none>` for a
/// path that does not exist, silently).
#[test]
fn printer_columns_point_at_declared_fields() {
    let crd = crd();
    let schema = crd_schema();
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap();
    let names: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["Phase", "Image", "Digest", "Age", "Reason", "Commit"]
    );
    for column in columns {
        let path = column.json_path.trim_start_matches('.');
        if path.starts_with("metadata.") {
            continue;
        }
        let mut node = &schema;
        for part in path.split('.') {
            node = &node["properties"][part];
        }
        assert!(
            node.is_object(),
            "column {} reads undeclared {path}",
            column.name
        );
    }
}

/// Everything the operator writes into status must survive pruning, so the status type and the
/// schema must declare the same fields.
#[test]
fn a_full_status_survives_pruning() {
    use crate::types::status::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap());
    let status = ImageBuildStatus {
        phase: Some(Phase::Succeeded),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "BuildSucceeded".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: now.clone(),
        }],
        observed_generation: Some(1),
        attempt: Some(1),
        rebuild: Some(1),
        pod_name: Some("app-1r1-1".into()),
        start_time: Some(now.clone()),
        completion_time: Some(now.clone()),
        source: Some(ResolvedSource {
            git: Some(ResolvedGit {
                commit: "a".repeat(40),
            }),
            url: Some(ResolvedUrl {
                sha256: Some("b".repeat(64)),
                etag: Some("\"e\"".into()),
                last_modified: Some("Sun, 22 Nov 2026 18:00:00 GMT".into()),
            }),
        }),
        image_id: Some("sha256:c".into()),
        digest: Some("sha256:d".into()),
        short_digest: Some("dddddddddddd".into()),
        image: Some("r.io/app@sha256:d".into()),
        tags: vec!["1.0".into()],
        size: Some(1),
        layers: vec![LayerStatus {
            digest: "sha256:e".into(),
            diff_id: "sha256:f".into(),
            size: 1,
            media_type: "m".into(),
            created_by: Some("RUN x".into()),
        }],
        steps: vec![StepStatus {
            index: 0,
            instruction: Some("FROM x".into()),
            cached: true,
            duration_millis: 1,
        }],
        omitted_steps: Some(OmittedSteps {
            count: 1,
            cached: 1,
            duration_millis: 1,
        }),
        failure: Some(Failure {
            reason: "StepFailed".into(),
            message: "m".into(),
            step: Some("RUN x".into()),
            line: Some(1),
            exit_code: Some(1),
        }),
        history: vec![BuildRecord {
            generation: 1,
            rebuild: Some(1),
            attempt: 1,
            source_revision: Some("a".into()),
            digest: Some("sha256:d".into()),
            phase: Phase::Failed,
            reason: Some("StepFailed".into()),
            completion_time: Some(now),
        }],
    };
    let value = serde_json::to_value(&status).unwrap();
    let schema = &crd_schema()["properties"]["status"];
    let mut undeclared = Vec::new();
    find_undeclared(schema, &value, "status", &mut undeclared);
    assert!(
        undeclared.is_empty(),
        "pruned by the apiserver: {undeclared:?}"
    );
}

fn find_undeclared(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if schema.get("properties").is_some() => {
            for (key, child) in map {
                match schema["properties"].get(key) {
                    Some(child_schema) => {
                        find_undeclared(child_schema, child, &format!("{path}.{key}"), out)
                    }
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_undeclared(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// serde-saphyr folds long strings; reading the YAML back must give the same CRD.
#[test]
fn the_yaml_reads_back_as_the_same_crd() {
    let yaml = crd_yaml().unwrap();
    let body = yaml.split_once("---\n").unwrap().1;
    let back: CustomResourceDefinition = serde_saphyr::from_str(body).unwrap();
    assert_eq!(back, crd());
}
